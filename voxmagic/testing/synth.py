"""Synthesised audio files for tests, demos and benchmarks — nothing is ever downloaded.

Tones are written with PyAV in the container users would have (mp3, flac, m4a, webm, the audio
track of an mp4/mkv video, ...), at a rate and channel count other than 16 kHz mono, so that
every test also exercises decoding, downmixing and resampling.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# suffix → (container format, audio codec, video codec or None)
CONTAINERS: dict[str, tuple[str, str, str | None]] = {
    "wav": ("wav", "pcm_s16le", None),
    "mp3": ("mp3", "libmp3lame", None),
    "flac": ("flac", "flac", None),
    "ogg": ("ogg", "libopus", None),
    "opus": ("opus", "libopus", None),
    "m4a": ("ipod", "aac", None),
    "aac": ("adts", "aac", None),
    "webm": ("webm", "libopus", None),
    "mp4": ("mp4", "aac", "mpeg4"),
    "mkv": ("matroska", "libmp3lame", "mpeg4"),
}


def tone(
    seconds: float, rate: int = 44_100, channels: int = 2, freq: float = 440.0, amplitude: float = 0.3
) -> np.ndarray:
    """A sine with a slow tremolo, shape (channels, samples), float32 in [-1, 1]."""
    t = np.arange(round(seconds * rate)) / rate
    mono = amplitude * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 2 * t))
    return np.repeat(mono[None, :].astype(np.float32), channels, axis=0)


def speechlike(
    seconds: float, rate: int = 16_000, seed: int = 0, pause_every: float = 4.0, pause: float = 0.6
) -> np.ndarray:
    """Harmonic bursts with noise and regular silent pauses, mono float32 (1, samples)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    pitch = 140 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
    x = 0.25 * voice + 0.02 * rng.standard_normal(t.size)
    silent = (t % pause_every) > (pause_every - pause)
    x[silent] = 0.001 * rng.standard_normal(int(silent.sum()))
    return x[None, :].astype(np.float32)


def write_audio(path: str | Path, samples: np.ndarray, rate: int = 44_100) -> Path:
    """Write (channels, n) float32 samples in the container the suffix names."""
    import av

    path = Path(path)
    fmt, acodec, vcodec = CONTAINERS[path.suffix.lstrip(".").lower()]
    channels = samples.shape[0]
    if acodec == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError("opus needs 8/12/16/24/48 kHz")
    with av.open(str(path), "w", format=fmt) as out:
        astream = out.add_stream(acodec, rate=rate, layout="stereo" if channels == 2 else "mono")
        vstream = None
        if vcodec:
            vstream = out.add_stream(vcodec, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        block = rate // 5
        for i, start in enumerate(range(0, samples.shape[1], block)):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + block]), format="fltp", layout=astream.layout.name
            )
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            out.mux(astream.encode(frame))
            if vstream is not None and i % 2 == 0:
                img = np.full((48, 64, 3), (i * 7) % 255, dtype=np.uint8)
                vframe = av.VideoFrame.from_ndarray(img, format="rgb24")
                vframe.pts = i // 2
                out.mux(vstream.encode(vframe))
        out.mux(astream.encode(None))
        if vstream is not None:
            out.mux(vstream.encode(None))
    return path


def tone_file(
    path: str | Path, seconds: float, rate: int | None = None, channels: int = 2, freq: float = 440.0
) -> Path:
    """A tone of ``seconds`` in the container named by the suffix (48 kHz for opus, else 44.1 kHz)."""
    suffix = Path(path).suffix.lstrip(".").lower()
    rate = rate or (48_000 if CONTAINERS[suffix][1] == "libopus" else 44_100)
    return write_audio(path, tone(seconds, rate, channels, freq), rate)


# -- voices: speech-like turns a pitch-based diarizer can tell apart -----------------------------
def voice_turns(
    turns: list[tuple[float, float]], pause_s: float = 0.4, lead_s: float = 0.3
) -> list[tuple[float, float, float]]:
    """``(start_s, end_s, pitch_hz)`` of each turn as :func:`voices` lays them out: ``lead_s`` of
    quiet, then the turns in order with ``pause_s`` of quiet between them."""
    spans, t = [], lead_s
    for pitch, seconds in turns:
        spans.append((round(t, 6), round(t + seconds, 6), float(pitch)))
        t += seconds + pause_s
    return spans


def _voiced(pitch: float, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """One turn of one voice: the first harmonics of ``pitch`` (1/k amplitudes), a slow intonation
    contour and vibrato (together within ±5 %), syllables at ~4 Hz (the envelope never drops below
    a fifth of its peak, so a syllable is not a pause) and 15 ms fades."""
    t = np.arange(round(seconds * rate)) / rate
    phase0, syl0 = rng.uniform(0, 2 * np.pi, 2)
    f = pitch * (1 + 0.03 * np.sin(2 * np.pi * 0.4 * t + phase0) + 0.02 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f) / rate
    ks = [k for k in range(1, 9) if k * pitch * 1.05 < 0.45 * rate]
    wave = sum(np.sin(k * phase) / k for k in ks) / 1.8
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4.3 * t + syl0)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.015) if t.size else t
    return 0.25 * wave * envelope * fade + 0.003 * rng.standard_normal(t.size)


def voice_samples(
    turns: list[tuple[float, float]],
    rate: int = 16_000,
    pause_s: float = 0.4,
    lead_s: float = 0.3,
    tail_s: float = 0.3,
    channels: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """Turns of speech-like voiced sound, ``(pitch_hz, seconds)`` each, as (channels, n) float32.

    Quiet stretches (lead, pauses, tail) hold faint noise (-66 dBFS), never digital zero, so lossy
    codecs treat them as real recordings do. Deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    spans = voice_turns(turns, pause_s, lead_s)
    total = (spans[-1][1] if spans else lead_s) + tail_s
    x = 0.0005 * rng.standard_normal(round(total * rate))
    for (start, _, pitch), (_, seconds) in zip(spans, turns, strict=True):
        i = round(start * rate)
        piece = _voiced(pitch, seconds, rate, rng)[: x.size - i]
        x[i : i + piece.size] = piece
    return np.repeat(x[None, :].astype(np.float32), channels, axis=0)


def voices(
    path: str | Path,
    turns: list[tuple[float, float]],
    pause_s: float = 0.4,
    lead_s: float = 0.3,
    tail_s: float = 0.3,
    rate: int | None = None,
    channels: int = 2,
    seed: int = 0,
) -> Path:
    """Speakers taking turns, written in the container the suffix names (44.1 kHz stereo by
    default, 48 kHz for opus). ``turns`` is ``[(pitch_hz, seconds), ...]``: each speaker is its
    pitch. The local server's diarizer (``_fake_voices``) tells pitches apart that differ by more
    than 2 semitones (use e.g. 110, 165 and 220 Hz); :func:`voice_turns` gives the boundaries."""
    suffix = Path(path).suffix.lstrip(".").lower()
    rate = rate or (48_000 if CONTAINERS[suffix][1] == "libopus" else 44_100)
    samples = voice_samples(turns, rate, pause_s, lead_s, tail_s, channels, seed)
    return write_audio(path, samples, rate)
