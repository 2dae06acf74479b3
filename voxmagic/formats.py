"""Upload formats: which encoder makes each, and the default (see :mod:`voxmagic.audio` for why MP3).

Kept free of numpy and PyAV so that ``%load_ext voxmagic`` can name the choices cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_FORMAT = "mp3"


@dataclass(frozen=True)
class _Encoder:
    container: str
    codec: str
    bit_rate: int | None = None
    options: dict[str, str] = field(default_factory=dict)


# Upload formats OpenRouter names for ``input_audio.format`` that PyAV's bundled FFmpeg can write.
ENCODERS: dict[str, _Encoder] = {
    "mp3": _Encoder("mp3", "libmp3lame", 32_000, {"compression_level": "7"}),
    "flac": _Encoder("flac", "flac"),
    "wav": _Encoder("wav", "pcm_s16le"),
    "ogg": _Encoder("ogg", "libopus", 24_000, {"compression_level": "5"}),  # 3x faster than 10
    "m4a": _Encoder("ipod", "aac", 48_000),
    "aac": _Encoder("adts", "aac", 48_000),
    "aiff": _Encoder("aiff", "pcm_s16be"),
}
UPLOAD_FORMATS = (*ENCODERS, "pcm16")
