"""Files uploaded as they are, when re-encoding them would cost CPU and a generation of quality
for bytes that do not matter.

Two rules, both only for the default upload format (MP3) and only for containers the provider
is known to decode (:data:`voxmagic.providers.UNCHANGED_FORMATS`):

- **compact**: an MP3 of at most 64 kbit/s (a voice memo) goes as it is, whatever its length;
- **small**: a file of at most 1/10 the bytes per second of 44.1 kHz stereo WAV (an ordinary
  128 kbit/s MP3 or AAC) goes as it is when re-encoding would save under
  :data:`SMALL_SAVING_BYTES`. Re-encoding has a fixed cost per file (opening, decoding,
  resampling, starting LAME: ~5 ms of CPU for a 1-s clip here) that a few kilobytes of upload do
  not repay, while a minute of 128 kbit/s (720 KB saved) is still re-encoded.

The duration must be exact (it prices the request and places timestamps): an MP3's comes from
its Xing/Info/VBRI header when it has one (as FFmpeg reads it: equal to the decoded samples,
LAME's delay and padding removed), else from counting decoded samples; an M4A's from its header
(the edit list says where the AAC priming and padding end, which decoding every frame would
count in). Nothing here imports numpy.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import sniff
from .providers import UNCHANGED_FORMATS

MAX_COMPACT_BIT_RATE = 64_000
MAX_SMALL_BIT_RATE = 141_120  # 44,100 × 2 × 16 / 10
SMALL_SAVING_BYTES = 32_000
DEFAULT_UPLOAD_BYTES_PER_S = 4_000  # MP3 at 32 kbit/s
MP3_ONLY: tuple[str, ...] = ("mp3",)


def unchanged_formats(dialect: str) -> tuple[str, ...]:
    """The containers a file may go in unchanged to servers of ``dialect``."""
    return UNCHANGED_FORMATS.get(dialect, MP3_ONLY)


_FORMATS = {"mp3": "mp3", "mov": "m4a"}  # sniffed container → upload format name
_CODECS = {"mp3": ("mp3", "mp3float"), "m4a": ("aac",)}


@dataclass(frozen=True)
class AsIs:
    """A file to upload unchanged: its bytes, upload format and exact duration."""

    data: bytes
    format: str
    seconds: float


def as_is(file: str | io.BytesIO, accepted: tuple[str, ...] = MP3_ONLY, max_s: float | None = None) -> AsIs | None:
    """``file`` unchanged when a rule above lets it go (and it is at most ``max_s`` long), else
    None — also when it cannot be read: decoding it gives the proper error."""
    import av

    upload = _FORMATS.get(sniff.container(file) or "")
    if upload is None or upload not in accepted:
        return None
    size = len(file.getbuffer()) if isinstance(file, io.BytesIO) else Path(file).stat().st_size
    tagged = upload != "mp3" or sniff.mp3_length_tag(file)
    try:
        with _opened(file, upload) as container:
            seconds = _qualifying_seconds(container, upload, size, max_s, tagged)
    except av.error.FFmpegError:
        return None
    if seconds is None:
        return None
    data = file.getvalue() if isinstance(file, io.BytesIO) else Path(file).read_bytes()
    return AsIs(data, upload, seconds)


def _opened(file: str | io.BytesIO, upload: str) -> Any:
    from .codec import opened

    return opened(file, "mp3" if upload == "mp3" else "mov")


def _qualifying_seconds(container: Any, upload: str, size: int, max_s: float | None, tagged: bool) -> float | None:
    """The exact duration of a file a rule lets go; None for any other."""
    streams = container.streams
    if len(streams) != 1 or not streams.audio or streams.audio[0].codec_context.name not in _CODECS[upload]:
        return None  # a video, several tracks, ALAC in an M4A: decoded and encoded
    stream = streams.audio[0]
    bit_rate = stream.codec_context.bit_rate or container.bit_rate or 0
    if not bit_rate or bit_rate > MAX_SMALL_BIT_RATE:
        return None
    header = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
    if max_s and header and header > max_s * 1.05:
        return None  # clearly too long to go whole: don't decode it just to count
    compact = upload == "mp3" and bit_rate <= MAX_COMPACT_BIT_RATE
    if not compact and (header is None or size - header * DEFAULT_UPLOAD_BYTES_PER_S >= SMALL_SAVING_BYTES):
        return None
    cut_short = header is not None and size < header * bit_rate / 8 * 0.9  # a download that stopped early
    if cut_short and upload != "mp3":
        return None  # decoded: what is there, and an error if nothing is
    if not tagged or cut_short:  # FFmpeg's duration is estimated from the bit rate, or the header tells
        header = _decoded_seconds(container, stream)  # of more than there is: count the samples
    if not header or (max_s and header > max_s):
        return None
    return header


def _decoded_seconds(container: Any, stream: Any) -> float:
    samples = sum(frame.samples for frame in container.decode(stream))
    rate = stream.codec_context.sample_rate
    return samples / rate if rate else 0.0
