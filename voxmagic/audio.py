"""Audio in: any source → 16 kHz mono PCM with an exact duration → compact bytes for upload.

Voxtral hears 16 kHz mono, so that is what we keep: decoding, downmixing and resampling stream
through PyAV (FFmpeg in the wheel, so every container users have works without system packages)
and only the 16 kHz int16 samples are held — a 2-hour 44.1 kHz stereo file is never in memory raw.

Upload default: MP3 at 32 kbit/s, chosen by measuring bytes per audio second on a minute of
16 kHz mono speech (espeak-ng), before base64: WAV 32,001 · FLAC 17,995 · M4A/AAC 6,946 ·
MP3 4,009 · Ogg/Opus 2,800. MP3 is the smallest format every Voxtral host decodes (OpenRouter,
Mistral's API, vLLM): 44× smaller than 44.1 kHz stereo WAV, where FLAC is only 9.8× smaller.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .errors import AudioError
from .formats import DEFAULT_FORMAT, ENCODERS, UPLOAD_FORMATS

SAMPLE_RATE = 16_000
MAX_DOWNLOAD_BYTES = 200 * 1024 * 1024
BLOCK_BYTES = SAMPLE_RATE * 2 * 10  # decode in ~10 s blocks
MAX_AS_IS_BIT_RATE = 64_000  # an MP3 at or under this is uploaded as it is




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

    @cached_property
    def sha256(self) -> str:
        return self.digest or hashlib.sha256(self.data).hexdigest()

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def __repr__(self) -> str:
        return (f"EncodedAudio({self.label!r}, {self.format}, {self.duration_s:.3f} s, "
                f"{len(self.data):,} bytes, sha256={self.sha256[:12]})")


@dataclass(frozen=True, eq=False)
class AudioSource:
    """One thing a user can point at: a path, bytes, an array with its rate, or a URL.

    Nothing is read until :meth:`decode`; ``label`` names the source in tables and errors.
    """

    label: str
    path: Path | None = None
    data: bytes | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None
    url: str | None = None

    def blocks(self) -> Iterator[np.ndarray]:
        """16 kHz mono int16 samples in blocks of about 10 s, decoded as they are read.

        Raises :class:`AudioError` for a missing, unreadable or empty (0 s) source.
        """
        if self.array is not None:
            blocks = _array_blocks(self.array, self.sample_rate, self.label)
        elif self.url is not None:
            blocks = _container_blocks(io.BytesIO(_download(self.url)), self.label)
        elif self.data is not None:
            blocks = _container_blocks(io.BytesIO(self.data), self.label)
        else:
            assert self.path is not None
            if self.path.is_dir():
                raise AudioError(self.label, "is a directory; pass the files in it (or a glob such as dir/*.mp3)")
            if not self.path.exists():
                raise AudioError(self.label, f"no such file (looked for {self.path.resolve()})")
            blocks = _container_blocks(str(self.path), self.label)
        empty = True
        for block in blocks:
            empty = False
            yield block
        if empty:
            raise AudioError(self.label, "contains no audio samples (0 s)")

    def content_digest(self) -> str | None:
        """sha256 of the source's bytes before decoding (None for URLs: that would cost a download)."""
        h = hashlib.sha256()
        if self.array is not None:
            h.update(f"{self.array.dtype}|{self.array.shape}|{self.sample_rate}|".encode())
            h.update(np.ascontiguousarray(self.array).tobytes())
        elif self.data is not None:
            h.update(self.data)
        elif self.path is not None and self.path.is_file():
            with open(self.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        else:
            return None
        return h.hexdigest()

    def decode(self) -> PCM:
        """All of it at once (16 kHz mono int16; a 10-minute file is 19 MB)."""
        out = bytearray()
        for block in self.blocks():
            out += block.tobytes()
        return PCM(np.frombuffer(out, dtype=np.int16))

    def prepare(self, format: str = DEFAULT_FORMAT) -> EncodedAudio:
        """Bytes to upload: the file as it is when already compact in ``format``, else decoded
        and encoded."""
        return self.as_is(format) or encode(self.decode(), format, label=self.label)

    def as_is(self, format: str, max_s: float | None = None) -> EncodedAudio | None:
        """The source's own bytes when it is already an MP3 of at most 64 kbit/s (and at most
        ``max_s`` long) and ``format`` is mp3: re-encoding would cost CPU and quality for nothing.

        Its exact duration comes from decoding (counting samples); None when it does not qualify.
        """
        if format != "mp3" or (self.path is None and self.data is None):
            return None
        if self.path is not None and not self.path.is_file():
            return None
        import av

        file = io.BytesIO(self.data) if self.data is not None else str(self.path)
        try:
            with av.open(file, metadata_errors="ignore") as container:
                streams = container.streams.audio
                if container.format.name != "mp3" or len(streams) != 1:
                    return None
                stream = streams[0]
                if not stream.codec_context.bit_rate or stream.codec_context.bit_rate > MAX_AS_IS_BIT_RATE:
                    return None
                if max_s and container.duration and container.duration / 1e6 > max_s * 1.05:
                    return None  # clearly too long to go whole: don't decode it just to count
                samples = sum(frame.samples for frame in container.decode(stream))
                rate = stream.codec_context.sample_rate
        except av.error.FFmpegError:
            return None  # the decoding path gives the proper error
        seconds = samples / rate if rate else 0.0
        if not seconds or (max_s and seconds > max_s):
            return None
        data = self.data if self.data is not None else self.path.read_bytes()
        return EncodedAudio(data, "mp3", seconds, self.label)


def as_source(obj: Any, *, sample_rate: int | None = None, label: str | None = None) -> AudioSource:
    """Coerce what a user passes (path, bytes, (array, rate), IPython Audio, URL) to an AudioSource."""
    if isinstance(obj, AudioSource):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], np.ndarray):
        obj, sample_rate = obj
    if isinstance(obj, np.ndarray):
        if not sample_rate:
            raise AudioError(label or "<array>", "a numpy array needs its sample rate: pass (array, rate)")
        arr_label = f"<array {obj.shape[-1] / sample_rate:.2f} s @ {sample_rate} Hz>"
        return AudioSource(label or arr_label, array=obj, sample_rate=int(sample_rate))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        return AudioSource(label or f"<{len(data):,} bytes>", data=data)
    if _is_ipython_audio(obj):
        if obj.data is not None:
            return AudioSource(label or "<IPython Audio>", data=bytes(obj.data))
        if obj.url:
            return as_source(obj.url, label=label)
        if obj.filename:
            return as_source(obj.filename, label=label)
        raise AudioError(label or "<IPython Audio>", "holds no data, file name or URL")
    if isinstance(obj, (str, os.PathLike)):
        text = os.fspath(obj)
        if text.startswith(("http://", "https://")):
            return AudioSource(label or text, url=text)
        return AudioSource(label or text, path=Path(text).expanduser())
    raise AudioError(label or repr(obj)[:60], f"cannot use a {type(obj).__name__} as audio "
                     "(pass a path, URL, bytes, (array, sample_rate) or IPython.display.Audio)")


def encode(pcm: PCM, format: str = DEFAULT_FORMAT, *, label: str = "", start_s: float = 0.0) -> EncodedAudio:
    """Encode 16 kHz mono PCM in one of :data:`UPLOAD_FORMATS`."""
    if format == "pcm16":
        return EncodedAudio(pcm.samples.astype("<i2").tobytes(), format, pcm.duration_s, label, start_s)
    if format not in ENCODERS:
        raise AudioError(label or "<audio>", f"unknown upload format {format!r}; "
                         f"choose one of {', '.join(UPLOAD_FORMATS)}")
    import av

    spec = ENCODERS[format]
    buf = io.BytesIO()
    with av.open(buf, "w", format=spec.container) as out:
        stream = out.add_stream(spec.codec, rate=pcm.sample_rate, layout="mono", options=spec.options)
        if spec.bit_rate:
            stream.bit_rate = spec.bit_rate
        block = pcm.sample_rate * 10
        for start in range(0, pcm.samples.size, block):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(pcm.samples[None, start:start + block]), format="s16", layout="mono")
            frame.sample_rate = pcm.sample_rate
            frame.pts, frame.time_base = start, Fraction(1, pcm.sample_rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return EncodedAudio(buf.getvalue(), format, pcm.duration_s, label, start_s)


def prepare(obj: Any, format: str = DEFAULT_FORMAT, **kw: Any) -> EncodedAudio:
    """Source (anything :func:`as_source` takes) → bytes ready to upload."""
    return as_source(obj, **kw).prepare(format)


def _container_blocks(file: str | io.BytesIO, label: str) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(file, metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise AudioError(label, f"not a readable audio or video file ({_ffmpeg_reason(exc)})") from exc
    with container:
        streams = container.streams.audio
        if not streams:
            kinds = sorted({s.type for s in container.streams}) or ["nothing"]
            raise AudioError(label, f"has no audio track (found: {', '.join(kinds)})")
        produced = False
        try:
            for block in _resampled(_frame_arrays(container.decode(streams[0]))):
                produced = True
                yield block
        except av.error.FFmpegError as exc:  # damage after good audio: keep what decoded
            if not produced:
                raise AudioError(label, f"corrupt audio ({_ffmpeg_reason(exc)})") from exc


def _array_blocks(array: np.ndarray, rate: int | None, label: str) -> Iterator[np.ndarray]:
    """numpy samples in IPython.display.Audio's layout: (n,) or (channels, n); ints or floats."""
    a = np.asarray(array)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or a.shape[0] > 8:
        raise AudioError(label, f"array shape {array.shape} is not (samples,) or (channels, samples)")
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    a = np.asarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise AudioError(label, "array contains NaN or infinite values")
    rate = int(rate or 0)
    block = max(rate, 1) * 10
    yield from _resampled((a[:, i:i + block], rate) for i in range(0, a.shape[1], block))


def _frame_arrays(frames: Iterator[Any]) -> Iterator[tuple[np.ndarray, int]]:
    """Each decoded frame as (samples of shape (channels, n), rate), as cheaply as possible."""
    for frame in frames:
        a = frame.to_ndarray()
        if not frame.format.is_planar:
            a = a.reshape(-1, len(frame.layout.channels)).T
        yield a, frame.sample_rate


def _mono(a: np.ndarray) -> np.ndarray:
    """(channels, n) samples of any sample format → float32 mono in [-1, 1] (channels averaged)."""
    if a.dtype.kind == "u":  # unsigned 8-bit PCM
        a = (a.astype(np.float32) - 128.0) / 128.0
    elif a.dtype.kind == "i":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
    return a.mean(axis=0, dtype=np.float32) if a.shape[0] > 1 else a[0].astype(np.float32, copy=False)


def _resampled(pieces: Iterable[tuple[np.ndarray, int]]) -> Iterator[np.ndarray]:
    """(channels, n) pieces at any rate → 16 kHz mono int16 blocks of about 10 s.

    Downmixing and resampling run once per ~10 s of input rather than once per decoded frame (a
    10-minute MP3 has 23,000 frames): per-call overhead, not the filtering, dominated decoding.
    """
    import av

    resampler, rate, pending, held, out = None, 0, [], 0, bytearray()

    def push(final: bool) -> None:
        nonlocal pending, held
        if pending:
            mono = _mono(np.concatenate(pending, axis=1) if len(pending) > 1 else pending[0])
            frame = av.AudioFrame.from_ndarray(mono[None, :], format="flt", layout="mono")
            frame.sample_rate = rate
            _append(out, resampler.resample(frame))
            pending, held = [], 0
        if final and resampler is not None:
            _append(out, resampler.resample(None))

    for samples, piece_rate in pieces:
        if piece_rate != rate or (pending and samples.shape[0] != pending[0].shape[0]):
            push(final=piece_rate != rate)  # a stream may change rate or channels midway
            if piece_rate != rate:
                resampler, rate = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE), piece_rate
        pending.append(samples)
        held += samples.shape[1]
        if held >= rate * 10:
            push(final=False)
        if len(out) >= BLOCK_BYTES:
            yield _take(out)
    push(final=True)
    if out:
        yield _take(out)


def _append(out: bytearray, frames: list) -> None:
    for f in frames:
        out += memoryview(f.planes[0])[: f.samples * 2]


def _take(buffer: bytearray) -> np.ndarray:
    """The buffer's samples as a new int16 array; the buffer is emptied."""
    block = np.frombuffer(bytes(buffer), dtype=np.int16)
    buffer.clear()
    return block


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _download(url: str, limit: int = MAX_DOWNLOAD_BYTES) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=30) as resp:
            if resp.status_code >= 400:
                raise AudioError(url, f"could not download: HTTP {resp.status_code} {resp.reason_phrase}")
            size = int(resp.headers.get("content-length") or 0)
            if size > limit:
                raise AudioError(url, f"download is {size:,} bytes, over the {limit:,}-byte cap")
            body = bytearray()
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > limit:
                    raise AudioError(url, f"download exceeds the {limit:,}-byte cap")
    except httpx.HTTPError as exc:
        raise AudioError(url, f"could not download: {exc or type(exc).__name__}") from exc
    return bytes(body)


def _is_ipython_audio(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "Audio" and cls.__module__.startswith("IPython")
