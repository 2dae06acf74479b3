"""What a file is, from its first bytes: the FFmpeg demuxer to open it with, and the layout of a
plain PCM WAV — so that FFmpeg need not probe (its default probe of a 1-second 44.1 kHz WAV reads
and analyses the whole file: ~15 ms, more than decoding it).

A sniffed name is only a hint: :func:`voxmagic.codec.opened` falls back to FFmpeg's own probe when
the demuxer named here cannot open the file, so a file whose extension lies, or that no rule here
knows, is read as before. Nothing here imports numpy or PyAV.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

HEAD_BYTES = 64  # enough for every magic number below (MPEG frames and ID3-tagged files get a second read)
_FRAMES_BYTES = 8_192 + 7  # the longest ADTS frame and the next header: two frames in a row
_WAVE_EXTENSIBLE = 0xFFFE
_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_PCM after its tag
_SPDIF_SYNC = b"\x72\xf8\x1f\x4e"  # IEC 61937 burst preamble, as FFmpeg's wav demuxer looks for it
_SPDIF_PROBE = 1 << 16  # ... in this much of the data
_WAV_HEAD = 4096 + _SPDIF_PROBE  # one read for the chunk headers and the S/PDIF check, usually
_MAX_CHUNKS = 64  # a WAV header with more chunks before its data is left to FFmpeg

# MPEG audio: bit rates (kbit/s) by [MPEG-1?][layer III only here] and index; sample rates by version
_L3_KBPS = {True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
            False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)}  # fmt: skip
_RATES = {3: (44_100, 48_000, 32_000), 2: (22_050, 24_000, 16_000), 0: (11_025, 12_000, 8_000)}


@dataclass(frozen=True)
class PcmWav:
    """Where a WAV's 16-bit little-endian PCM samples are: ``frames`` of ``channels`` from ``offset``."""

    offset: int
    frames: int
    channels: int
    rate: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate


def read_at(file: str | io.BytesIO, offset: int, size: int) -> bytes:
    """``size`` bytes (fewer at the end) from ``offset`` of a path or an in-memory file (whose
    position is left where it was, for FFmpeg to read from); b"" when it cannot be read."""
    if isinstance(file, io.BytesIO):
        with file.getbuffer() as view:
            return bytes(view[offset : offset + size])
    try:
        with open(file, "rb") as f:
            f.seek(offset)
            return f.read(size)
    except OSError:
        return b""


def container(file: str | io.BytesIO) -> str | None:
    """The demuxer for ``file`` by its magic bytes (``wav``, ``flac``, ``ogg``, ``mp3``, ``mov``,
    ``matroska``, ``aac``, ``aiff``), or None: not recognised, let FFmpeg probe."""
    head = read_at(file, 0, HEAD_BYTES)
    if size := _id3_size(head):  # an ID3v2 tag: what follows it decides
        return _after_id3(read_at(file, size, _FRAMES_BYTES))
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[4:8] == b"ftyp":
        return "mov"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if head[:1] == b"\xff":  # MPEG audio or ADTS with no tag: check two frames in a row
        return _frames(head + read_at(file, len(head), _FRAMES_BYTES - len(head)))
    return None


def _after_id3(data: bytes) -> str | None:
    if data[:4] == b"fLaC":
        return "flac"
    return _frames(data)


def _frames(data: bytes) -> str | None:
    """``mp3`` or ``aac`` when ``data`` (read up to :data:`_FRAMES_BYTES`, or to the end of the
    file) starts with a frame of MPEG-1/2/2.5 layer III or ADTS and the next frame's header
    follows where the first says it ends — or the file ends there."""
    kind, length = _frame(data)
    if kind is None or len(data) < length:
        return None
    if len(data) > length and _frame(data[length:])[0] != kind:
        return None
    return kind


def _frame(data: bytes) -> tuple[str | None, int]:
    """(kind, length in bytes) of the frame whose header starts ``data``; (None, 0) if none."""
    if len(data) < 7 or data[0] != 0xFF or data[1] & 0xE0 != 0xE0:
        return None, 0
    version, layer = (data[1] >> 3) & 3, (data[1] >> 1) & 3
    if layer == 0 and data[1] & 0xF6 == 0xF0:  # ADTS: 12-bit sync, layer 0
        length = ((data[3] & 3) << 11) | (data[4] << 3) | (data[5] >> 5)
        return ("aac", length) if length >= 7 and (data[2] >> 2) & 0xF < 13 else (None, 0)
    bitrate_index, rate_index = data[2] >> 4, (data[2] >> 2) & 3
    if layer != 1 or version == 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None, 0  # layer I/II, free format and reserved values: left to FFmpeg's probe
    mpeg1 = version == 3
    kbps, rate = _L3_KBPS[mpeg1][bitrate_index], _RATES[version][rate_index]
    return "mp3", (144 if mpeg1 else 72) * kbps * 1000 // rate + ((data[2] >> 1) & 1)


def mp3_length_tag(file: str | io.BytesIO) -> bool:
    """Whether an MP3's first frame (after any ID3v2 tag) is a Xing/Info header that gives the
    frame count, or a VBRI header: then FFmpeg's duration is exact, not estimated from the bit rate."""
    frame = read_at(file, _id3_size(read_at(file, 0, 10)), 4 + 32 + 12)
    if _frame(frame)[0] != "mp3":
        return False
    mono = frame[3] >> 6 == 3
    side = (17 if mono else 32) if (frame[1] >> 3) & 3 == 3 else (9 if mono else 17)
    tag = frame[4 + side : 4 + side + 8]
    if tag[:4] in (b"Xing", b"Info"):
        return bool(tag[7] & 1)  # the flags' "frames" bit
    return frame[36:40] == b"VBRI"


def _id3_size(head: bytes) -> int:
    """The bytes an ID3v2 tag at the start of ``head`` takes (header, body, footer); 0 if none."""
    if head[:3] != b"ID3" or len(head) < 10:
        return 0
    return 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)


def _syncsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def pcm_wav(file: str | io.BytesIO) -> PcmWav | None:
    """The layout of a RIFF WAV holding 16-bit little-endian integer PCM (a plain or extensible
    ``fmt `` chunk) whose ``data`` chunk is whole; None for anything else (8/24/32-bit, float,
    compressed, big-endian, RF64, a truncated or streamed file): FFmpeg reads those."""
    magic = read_at(file, 0, 12)
    if magic[:4] != b"RIFF" or magic[8:12] != b"WAVE":
        return None  # known from 12 bytes, before reading the 69 KB a WAV's headers take
    head = _Head(file, _WAV_HEAD)
    at, fmt = 12, None
    for _ in range(_MAX_CHUNKS):
        chunk = head.at(at, 8)
        if len(chunk) < 8:
            return None
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"fmt ":
            fmt = _pcm16_format(head.at(at + 8, min(size, 40)))
            if fmt is None:
                return None
        elif kind == b"data":
            return _data(head, at + 8, size, fmt)
        at += 8 + size + (size & 1)
    return None


def flac_seconds(file: str | io.BytesIO) -> float | None:
    """A FLAC file's length from its STREAMINFO block (total samples / rate, as FFmpeg reports
    it); None when it is not a FLAC that starts with one, or the total is not given (0)."""
    head = read_at(file, 0, 26)
    if len(head) < 26 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    info = int.from_bytes(head[18:26], "big")  # rate (20 bits), channels, bits, total samples (36)
    rate, total = info >> 44, info & ((1 << 36) - 1)
    return total / rate if rate and total else None


class _Head:
    """Reads of a file served from one read of its first ``size`` bytes when they fall inside them."""

    def __init__(self, file: str | io.BytesIO, size: int):
        self.file, self.head = file, read_at(file, 0, size)
        self.whole = len(self.head) < size  # the file ends inside the head

    def at(self, offset: int, size: int) -> bytes:
        if offset + size <= len(self.head) or self.whole:
            return self.head[offset : offset + size]
        return read_at(self.file, offset, size)


def _pcm16_format(body: bytes) -> tuple[int, int] | None:
    """(channels, rate) of a ``fmt `` chunk for 16-bit integer PCM, else None."""
    if len(body) < 16:
        return None
    tag, channels, rate, byte_rate, align, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _WAVE_EXTENSIBLE:
        if len(body) < 40 or body[24:26] != b"\x01\x00" or body[26:40] != _PCM_GUID_TAIL:
            return None
        if struct.unpack("<H", body[18:20])[0] != 16:  # valid bits per sample
            return None
    elif tag != 1:
        return None
    if bits != 16 or not channels or not rate or align != 2 * channels or byte_rate != rate * align:
        return None
    return channels, rate


def _data(head: _Head, offset: int, size: int, fmt: tuple[int, int] | None) -> PcmWav | None:
    """The samples of a ``data`` chunk, when a format came before it, its size is known (FFmpeg
    reads a size of 0 or 0xFFFFFFFF as "to the end"), all of it is there (a truncated file: FFmpeg
    keeps what decodes) and it holds no S/PDIF sync word (FFmpeg would decode AC-3/DTS in it)."""
    if fmt is None or size in (0, 0xFFFFFFFF):
        return None
    channels, rate = fmt
    if len(head.at(offset + size - 1, 1)) != 1 or _SPDIF_SYNC in head.at(offset, _SPDIF_PROBE):
        return None
    return PcmWav(offset, size // (2 * channels), channels, rate)
