"""PyAV at the edges: any container (or array) in, 16 kHz mono int16 PCM out, and PCM encoded in an
upload format — streamed in ~10 s blocks, so a 2-hour 44.1 kHz stereo file is never in memory raw.

Upload default: MP3 at 32 kbit/s, chosen by measuring bytes per audio second on a minute of
16 kHz mono speech (espeak-ng), before base64: WAV 32,001 · FLAC 17,995 · M4A/AAC 6,946 ·
MP3 4,009 · Ogg/Opus 2,800. MP3 is the smallest format every Voxtral host decodes (OpenRouter,
Mistral's API, vLLM): 44× smaller than 44.1 kHz stereo WAV, where FLAC is only 9.8× smaller.
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from typing import Any

import numpy as np

from . import lame, mp3_threads, sniff
from .errors import AudioError
from .formats import DEFAULT_FORMAT, ENCODERS, UPLOAD_FORMATS
from .resample import SAMPLE_RATE, resampled

PROBE_BYTES = 64 * 1024  # read at most this much of a container to learn its duration
# With the demuxer known from the first bytes (voxmagic.sniff) FFmpeg need not probe the format;
# and in an audio-only container it need not look further than the first packet either: its
# default probe of a 1-second 44.1 kHz WAV took 12 ms, this 0.5 ms, for the same samples. (Not
# in a video container: which stream a seek goes by depends on what the probe found.)
SNIFFED_PROBE_BYTES = 32  # (FFmpeg's minimum)
AUDIO_ONLY = {"wav", "flac", "mp3", "aac", "aiff"}
# Decoded and dropped before a moment: an MP3 frame's bits can start in the frames before it (the
# bit reservoir) and every MDCT codec overlaps a frame with the one before; a decoder that starts
# at the moment's own frame gives silence there (FFmpeg's MP3 decoder: the moment's first 20 ms).
SEEK_PREROLL_S = 0.25
HEADER_DURATION = {"wav", "flac", "aiff", "ogg", "mov", "matroska"}  # not estimated: their headers say


@dataclass(frozen=True, eq=False)
class PCM:
    """Decoded audio: int16 mono samples at 16 kHz."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.sample_rate

    def slice(self, start_s: float, end_s: float) -> PCM:
        """A view (no copy) of [start_s, end_s)."""
        a, b = round(start_s * self.sample_rate), round(end_s * self.sample_rate)
        return PCM(self.samples[a:b], self.sample_rate)


@dataclass(frozen=True, eq=False)
class EncodedAudio:
    """Audio exactly as it will be sent; its digest identifies it (e.g. as a cache key)."""

    data: bytes
    format: str
    duration_s: float
    label: str = ""
    start_s: float = 0.0  # where this piece starts in its source (long audio is sent in chunks)
    digest: str | None = None  # set instead of ``data`` for a reference to audio known by its hash
    # with silence trimmed: the stretches of its source it holds, end to end (see voxmagic.silence),
    # and the seconds of silence cut out of the stretch it stands for (not sent, not billed)
    spans: tuple[tuple[float, float], ...] = ()
    trimmed_s: float = 0.0
    joined: bool = False  # its spans are moments joined by silence: a timed piece lies within one

    @cached_property
    def sha256(self) -> str:
        return self.digest or hashlib.sha256(self.data).hexdigest()

    @property
    def end_s(self) -> float:
        return self.spans[-1][1] if self.spans else self.start_s + self.duration_s

    def reference(self) -> dict:
        """What a store keeps to stand for this piece later, without its bytes."""
        keys = ("format", "duration_s", "start_s", "sha256", "spans", "trimmed_s", "joined")
        return {k: getattr(self, k) for k in keys}

    @classmethod
    def referring(cls, known: dict, label: str) -> EncodedAudio:
        """A piece known by its :meth:`reference`: its hash instead of its bytes."""
        spans = tuple((a, b) for a, b in known.get("spans", ()))
        return cls(b"", known["format"], known["duration_s"], label, known["start_s"], known["sha256"],
                   spans, known.get("trimmed_s", 0.0), known.get("joined", False))  # fmt: skip

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def __repr__(self) -> str:
        return (
            f"EncodedAudio({self.label!r}, {self.format}, {self.duration_s:.3f} s, "
            f"{len(self.data):,} bytes, sha256={self.sha256[:12]})"
        )


def encode(
    pcm: PCM,
    format: str = DEFAULT_FORMAT,
    *,
    label: str = "",
    start_s: float = 0.0,
    bit_rate: int | None = None,
    spans: tuple[tuple[float, float], ...] = (),
    trimmed_s: float = 0.0,
) -> EncodedAudio:
    """Encode 16 kHz mono PCM in one of :data:`UPLOAD_FORMATS` (``bit_rate`` overrides the
    format's own, e.g. for a small preview; ``spans``: see :attr:`EncodedAudio.spans`)."""
    start_s = spans[0][0] if spans else start_s
    if format == "pcm16":
        data = pcm.samples.astype("<i2").tobytes()
        return EncodedAudio(data, format, pcm.duration_s, label, start_s, spans=spans, trimmed_s=trimmed_s)
    if format not in ENCODERS:
        raise AudioError(
            label or "<audio>", f"unknown upload format {format!r}; choose one of {', '.join(UPLOAD_FORMATS)}"
        )
    rate = bit_rate or ENCODERS[format].bit_rate
    fast = lame.mp3([pcm.samples], pcm.sample_rate, rate) if format == "mp3" and rate and pcm.samples.size else None
    data = _pyav_encoded(pcm, format, rate) if fast is None else fast[0]
    return EncodedAudio(data, format, pcm.duration_s, label, start_s, spans=spans, trimmed_s=trimmed_s)


STREAMED = ("mp3",)  # formats :func:`encode_blocks` encodes while the blocks are still coming


def encode_blocks(
    blocks: Iterable[np.ndarray],
    format: str = DEFAULT_FORMAT,
    *,
    label: str = "",
    whole: Callable[[], np.ndarray] | None = None,
) -> EncodedAudio:
    """:func:`encode` of 16 kHz int16 ``blocks`` as they are decoded: MP3 is encoded on another core
    meanwhile (see :func:`voxmagic.lame.mp3`), other formats once all are in. ``whole`` gives all
    the samples again, after the blocks, should LAME not take them; without it each block is kept
    as it passes, which holds them all until the end."""
    kept: list[np.ndarray] = []
    todo = iter(blocks)

    def keeping() -> Iterator[np.ndarray]:
        for block in todo:
            if whole is None:
                kept.append(block)
            yield block

    rate = ENCODERS["mp3"].bit_rate
    fast = lame.mp3(keeping(), SAMPLE_RATE, rate) if format in STREAMED and rate else None
    if fast is not None:
        return EncodedAudio(fast[0], format, fast[1] / SAMPLE_RATE, label)
    if whole is not None:  # what lame.mp3 left (all of it without lameenc) is read, not kept
        for _ in todo:
            pass
        return encode(PCM(whole()), format, label=label)
    kept += todo
    return encode(PCM(np.concatenate(kept) if kept else np.zeros(0, np.int16)), format, label=label)


def _pyav_encoded(pcm: PCM, format: str, bit_rate: int | None) -> bytes:
    import av

    spec = ENCODERS[format]
    buf = io.BytesIO()
    with av.open(buf, "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=pcm.sample_rate, layout="mono", options=spec.options)
        if bit_rate:
            stream.bit_rate = bit_rate
        block = pcm.sample_rate * 10
        for start in range(0, pcm.samples.size, block):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm.samples[None, start : start + block]), format="s16", layout="mono"
            )
            frame.sample_rate = pcm.sample_rate
            frame.pts, frame.time_base = start, Fraction(1, pcm.sample_rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


PREVIEW_BIT_RATE = 12_000  # Opus at 12 kbit/s: speech stays clear at 1.5 KB per second


def preview(clip: EncodedAudio) -> bytes:
    """A small Ogg/Opus copy of ``clip`` for a player: a notebook keeps every player it shows, so
    its size matters more than its fidelity (a 20 s clip: ~30 KB instead of ~80 KB of MP3)."""
    return preview_of(list(container_blocks(io.BytesIO(clip.data), clip.label)))


def preview_of(blocks: list[np.ndarray]) -> bytes:
    """16 kHz int16 ``blocks`` as a player's preview (see :func:`preview`)."""
    return encode(PCM(np.concatenate(blocks)), "ogg", bit_rate=PREVIEW_BIT_RATE).data


def probe_duration(file: str | io.BytesIO) -> float | None:
    """Seconds from a container's header, reading at most :data:`PROBE_BYTES` (a 16-bit PCM WAV's
    chunk headers or a FLAC's STREAMINFO without FFmpeg); None when the header does not say or the
    file cannot be read (decoding then gives the proper error)."""
    import av

    wav = sniff.pcm_wav(file)
    if wav is not None:
        return wav.duration_s
    kind = sniff.container(file)
    seconds = sniff.flac_seconds(file) if kind == "flac" else None
    if seconds is not None:
        return seconds
    try:
        sniffed_bytes = SNIFFED_PROBE_BYTES if kind in HEADER_DURATION else PROBE_BYTES
        with opened(file, kind, sniffed_bytes, PROBE_BYTES) as container:
            streams = container.streams.audio
            if not streams:
                return None
            return header_seconds(container, streams[0])
    except av.error.FFmpegError:
        return None


def header_seconds(container: Any, stream: Any) -> float | None:
    """An opened stream's length as the header says (the stream's own, else its container's)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration and container.duration > 0 else None


def opened(
    file: str | io.BytesIO, kind: str | None, sniffed_bytes: int | None = None, probe_bytes: int | None = None
) -> Any:
    """``file`` opened by PyAV with the demuxer :func:`voxmagic.sniff.container` named (``kind``),
    which probes ``sniffed_bytes`` (default: :data:`SNIFFED_PROBE_BYTES` in an :data:`AUDIO_ONLY`
    container, else FFmpeg's 5 MB). When that demuxer cannot open it or finds no audio in it (a
    sniff is a hint), or ``kind`` is None: by FFmpeg's own probe of ``probe_bytes`` (default 5 MB),
    which raises FFmpeg's error."""
    import av

    if kind is not None:
        size = sniffed_bytes or (SNIFFED_PROBE_BYTES if kind in AUDIO_ONLY else None)
        options = {"probesize": str(size)} if size else {}
        try:
            container = av.open(file, format=kind, metadata_errors="ignore", container_options=options)
        except av.error.FFmpegError:
            container = None
        if container is not None and container.streams.audio:
            return container
        if container is not None:
            container.close()
        if isinstance(file, io.BytesIO):
            file.seek(0)
    options = {"probesize": str(probe_bytes)} if probe_bytes else {}
    return av.open(file, metadata_errors="ignore", container_options=options)


def container_blocks(
    file: str | io.BytesIO, label: str, start_s: float = 0.0, end_s: float | None = None
) -> Iterator[np.ndarray]:
    """The audio track as 16 kHz mono blocks; with ``start_s``/``end_s`` only that moment, found by
    seeking (not by decoding what comes before it) and cut to the sample. A 16-bit PCM WAV is read
    with numpy (:func:`wav_blocks`), anything else with PyAV, opened by its sniffed demuxer."""
    import av

    wav = sniff.pcm_wav(file)
    if wav is not None:
        yield from wav_blocks(file, wav, start_s, end_s)
        return
    try:
        container = opened(file, sniff.container(file))
    except av.error.FFmpegError as exc:
        if (os.path.getsize(file) if isinstance(file, str) else len(file.getbuffer())) == 0:
            raise AudioError(label, "is empty (0 bytes)") from None
        raise AudioError(label, f"not a readable audio or video file ({_ffmpeg_reason(exc)})") from exc
    with container:
        streams = container.streams.audio
        if not streams:
            kinds = sorted({str(s.type) for s in container.streams}) or ["nothing"]
            raise AudioError(label, f"has no audio track (found: {', '.join(kinds)})")
        produced = False
        try:
            origin = _origin(streams[0])
            if start_s > 0:  # from a little before: a lossy frame's first samples lean on the ones before it
                preroll = 0.0 if _lossless(streams[0]) else SEEK_PREROLL_S
                at, base = max(0.0, start_s - preroll) + origin, streams[0].time_base
                if base:  # by the audio's own index: by the video's, a file that muxed audio ahead lost it
                    container.seek(int(at / base), stream=streams[0], backward=True, any_frame=False)
                else:
                    container.seek(int(at * av.time_base), backward=True, any_frame=False)
            length = header_seconds(container, streams[0])
            whole = start_s <= 0 and end_s is None and mp3_threads.worth_it(streams[0], length)
            decoded = mp3_threads.frames(container, streams[0]) if whole else container.decode(streams[0])
            frames = _frame_arrays(decoded, start_s, end_s, origin)
            for block in resampled(frames):
                produced = True
                yield block
        except av.error.FFmpegError as exc:  # damage after good audio: keep what decoded
            if not produced:
                raise AudioError(label, f"corrupt audio ({_ffmpeg_reason(exc)})") from exc


def wav_blocks(
    file: str | io.BytesIO, wav: sniff.PcmWav, start_s: float = 0.0, end_s: float | None = None
) -> Iterator[np.ndarray]:
    """A 16-bit PCM WAV's samples as 16 kHz mono blocks, read ~10 s at a time with numpy: the
    int16 frames FFmpeg's WAV demuxer and PCM decoder would give, without them."""
    rate, width = wav.rate, 2 * wav.channels
    first = min(wav.frames, math.floor(start_s * rate + 0.5))  # half up, as FFmpeg's seek lands
    last = wav.frames if end_s is None else max(first, min(wav.frames, round(end_s * rate)))

    def pieces() -> Iterator[tuple[np.ndarray, int]]:
        for a in range(first, last, rate * 10):
            raw = sniff.read_at(file, wav.offset + a * width, min(last - a, rate * 10) * width)
            yield np.frombuffer(raw, "<i2", len(raw) // width * wav.channels).reshape(-1, wav.channels).T, rate

    yield from resampled(pieces())


def array_blocks(a: np.ndarray, rate: int, start_s: float = 0.0, end_s: float | None = None) -> Iterator[np.ndarray]:
    """Checked samples ((n,) or (channels, n), ints or floats) → 16 kHz blocks; each ~10 s slice is
    converted on its own, so no float copy of the whole array is made."""
    a = a[None, :] if a.ndim == 1 else a
    a = a[:, round(start_s * rate) : None if end_s is None else round(end_s * rate)]
    block = rate * 10
    yield from resampled((a[:, i : i + block], rate) for i in range(0, a.shape[1], block))


def _lossless(stream: Any) -> bool:
    """PCM and lossless codecs: each frame stands alone, and a seek lands on the very sample."""
    name = stream.codec_context.name
    return name.startswith("pcm_") or name in ("flac", "alac", "wavpack", "tta", "ape")


def _origin(stream: Any) -> float:
    """When the stream's first sample plays, in its container's time: an MP3's first frame is
    stamped after the encoder's delay (25–69 ms), and a decode from the start counts from that
    sample, so a moment found by the frames' times is measured from it too."""
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def _frame_arrays(
    frames: Iterator[Any], start_s: float = 0.0, end_s: float | None = None, origin: float = 0.0
) -> Iterator[tuple[list[np.ndarray], int]]:
    """Decoded frames as (samples, one array per channel; rate) of about 10 s each (a new piece
    whenever rate, layout or sample format change), cut to [start_s, end_s) by the frames' own
    times less ``origin`` (see :func:`_origin`; counted from the first when they have none).

    Whole frames are gathered by FFmpeg (an ``av.AudioFifo``) and numpy sees them once per piece;
    only a frame cut at a moment's edge becomes an array of its own. Copying each frame's planes
    from Python cost 29 µs a frame, two-thirds as much as decoding it (0.69 s of a 10-minute
    MP3's 23,000 frames); an array per frame cost more still."""
    import av

    counted = 0.0
    kind: tuple[str, str, int] | None = None
    fifo: Any = None
    for frame in frames:
        rate, n = frame.sample_rate, frame.samples
        at = frame.time - origin if frame.time is not None else counted
        counted = at + n / rate
        if end_s is not None and at >= end_s:
            break
        first = max(0, round((start_s - at) * rate))
        last = n if end_s is None else min(n, round((end_s - at) * rate))
        if first >= last:
            continue
        now = (frame.format.name, frame.layout.name, rate)
        if now != kind or fifo.samples >= rate * 10:
            if fifo is not None and fifo.samples:
                yield _samples(fifo.read()), kind[2]  # type: ignore[index]
            kind, fifo = now, av.AudioFifo()
        if first or last < n:  # at a moment's edge: this frame's part, after what came before it
            if fifo.samples:
                yield _samples(fifo.read()), rate
            yield _samples(frame, first, last), rate
        else:
            frame.pts = None  # times were read above; the FIFO would insist that they follow on
            fifo.write(frame)
    if fifo is not None and fifo.samples:
        yield _samples(fifo.read()), kind[2]  # type: ignore[index]


def _samples(frame: Any, first: int = 0, last: int | None = None) -> list[np.ndarray]:
    """A frame's samples [first, last) as one array per channel, views of its planes (of its one
    plane, interleaved): ``to_ndarray`` copied them once more (0.16 s of a 10-minute MP3's 1.5 s)."""
    import av

    dtype = np.dtype(av.audio.frame.format_dtypes[frame.format.name]).newbyteorder("=")
    if frame.format.is_planar:
        return [np.frombuffer(plane, dtype, frame.samples)[first:last] for plane in frame.planes]
    channels = len(frame.layout.channels)
    return list(np.frombuffer(frame.planes[0], dtype, frame.samples * channels).reshape(-1, channels)[first:last].T)


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)
