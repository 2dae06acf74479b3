"""Upload size: bytes per audio second of what voxmagic sends by default, against raw 44.1 kHz
stereo 16-bit WAV (176,400 B/s).

    python benchmarks/upload_size.py

Two one-minute inputs, each written as a 44.1 kHz stereo 16-bit WAV file (what a recorder or a
DAW exports): speech-like sound from ``voxmagic.testing.synth.speechlike``, and real (espeak-ng)
speech — the bundled samples (``voxmagic.demo.sample_paths()``) decoded, repeated to a minute
and upsampled. ``voxmagic.audio.prepare(path)`` decodes it to 16 kHz mono and encodes it (MP3
at 32 kbit/s by default); the figure is 176,400 / (uploaded bytes / audio seconds). Base64,
which the JSON body carries, adds a third: printed too, with flac and ogg for comparison.
Deterministic: one run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from _common import Row, report, temp_history

TARGET = 10.0
WAV_BYTES_PER_S = 44_100 * 2 * 2


def speech_samples(seconds: float):
    """The bundled espeak-ng samples, 16 kHz mono, repeated to ``seconds`` and upsampled to 44.1 kHz
    stereo float32 (linear interpolation: the upload is resampled back to 16 kHz anyway)."""
    import numpy as np

    import voxmagic
    from voxmagic.demo import sample_paths

    pcm = np.concatenate([voxmagic.as_source(str(p)).decode().samples for p in sample_paths()])
    pcm = np.tile(pcm, int(np.ceil(seconds * 16_000 / pcm.size)))[: int(seconds * 16_000)]
    t = np.arange(int(seconds * 44_100)) / 44_100
    mono = np.interp(t, np.arange(pcm.size) / 16_000, pcm / 32768).astype(np.float32)
    return np.stack([mono, mono])


def main() -> list[Row]:
    import numpy as np

    import voxmagic.audio
    from voxmagic.testing.synth import speechlike, write_audio

    synth = speechlike(60.0, 44_100, seed=7)[0]
    inputs = {"speech-like synth": np.stack([synth, np.roll(synth, 37)]),
              "espeak-ng samples": speech_samples(60.0)}
    rows = []
    with tempfile.TemporaryDirectory(prefix="voxmagic-bench-") as tmp:
        for name, samples in inputs.items():
            wav = write_audio(Path(tmp) / "minute.wav", samples, 44_100)
            seconds = samples.shape[1] / 44_100
            print(f"{name}: {seconds:.1f} s, WAV file {wav.stat().st_size / seconds:,.0f} B/s")
            sizes = {}
            for fmt in ("mp3", "flac", "ogg"):
                clip = voxmagic.audio.prepare(str(wav), fmt)
                per_s, b64_per_s = len(clip.data) / clip.duration_s, len(clip.base64()) / clip.duration_s
                sizes[fmt] = (per_s, b64_per_s)
                default = " (default)" if fmt == voxmagic.audio.DEFAULT_FORMAT else ""
                print(f"  {fmt:<4}{default:<10} {per_s:8,.0f} B/s  {WAV_BYTES_PER_S / per_s:5.1f}x smaller; "
                      f"base64 {b64_per_s:8,.0f} B/s  {WAV_BYTES_PER_S / b64_per_s:5.1f}x smaller")
            per_s, b64_per_s = sizes["mp3"]
            ratio = WAV_BYTES_PER_S / per_s
            rows.append(Row(f"upload_size: default upload vs 44.1 kHz stereo WAV, a minute of {name}",
                            f"≥ {TARGET:.0f}× smaller", f"{ratio:.1f}× ({per_s:,.0f} B/s; base64 "
                            f"{b64_per_s:,.0f} B/s = {WAV_BYTES_PER_S / b64_per_s:.1f}×)", ratio >= TARGET))
    return rows


if __name__ == "__main__":
    with temp_history():  # nothing here sends, but nothing may touch the user's history either
        report(main())
