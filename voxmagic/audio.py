"""Audio in: what a user can point at (a path, bytes, a URL, an array with its rate, IPython Audio)
as an :class:`AudioSource`, checked on arrival, read lazily — then 16 kHz mono PCM with an exact
duration, then compact bytes for upload (the decoding and encoding are in :mod:`voxmagic.codec`).

Voxtral hears 16 kHz mono, so that is what we keep; PyAV carries FFmpeg in its wheel, so every
container users have works without system packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import numbers
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import limits
from .codec import PCM, SAMPLE_RATE, EncodedAudio, array_blocks, container_blocks, encode, preview, probe_duration
from .download import DOWNLOAD_TIMEOUT_S, MAX_DOWNLOAD_BYTES, download
from .errors import AudioError
from .files import did_you_mean
from .formats import DEFAULT_FORMAT, UPLOAD_FORMATS

__all__ = [
    "AudioSource",
    "as_source",
    "as_list",
    "is_array_pair",
    "prepare",
    "encode",
    "PCM",
    "EncodedAudio",
    "preview",
    "SAMPLE_RATE",
    "DEFAULT_FORMAT",
    "UPLOAD_FORMATS",
    "download",
    "fetched",
    "DOWNLOAD_TIMEOUT_S",
    "MAX_DOWNLOAD_BYTES",
]

MAX_AS_IS_BIT_RATE = 64_000  # an MP3 at or under this is uploaded as it is
# Hz an array may claim (voxmagic.limits): 16, kHz meant as Hz, would make the audio 1000× too long
ARRAY_RATES = (int(limits.BOUNDS["sample_rate"].lo or 0), int(limits.BOUNDS["sample_rate"].hi or 0))
MAX_CHANNELS = 8


@dataclass(frozen=True, eq=False)
class AudioSource:
    """One thing a user can point at: a path, bytes, an array with its rate, or a URL.

    Nothing is read until :meth:`decode`; ``label`` names the source in tables and errors. An
    array and its rate are checked on arrival, so a mistake is one line naming the source.
    """

    label: str
    path: Path | None = None
    data: bytes | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None
    url: str | None = None

    def __post_init__(self) -> None:
        if self.array is None:
            return
        name = self.label or "<array>"
        rate = _sample_rate(self.sample_rate, name)
        samples = _samples(self.array, name)
        object.__setattr__(self, "array", samples)
        object.__setattr__(self, "sample_rate", rate)
        if not self.label:
            object.__setattr__(self, "label", f"<array {samples.shape[-1] / rate:.2f} s @ {rate} Hz>")

    def blocks(self) -> Iterator[np.ndarray]:
        """16 kHz mono int16 samples in blocks of about 10 s, decoded as they are read.

        Raises :class:`AudioError` for a missing, unreadable or empty (0 s) source. A URL is
        downloaded first (see :func:`fetched`).
        """
        if self.url is not None:
            yield from self._fetched_now().blocks()
            return
        if self.array is not None:
            blocks = array_blocks(self.array, int(self.sample_rate or 0))
        elif self.data is not None:
            blocks = container_blocks(io.BytesIO(self.data), self.label)
        else:
            assert self.path is not None
            if self.path.is_dir():
                raise AudioError(self.label, "is a directory; pass the files in it (or a glob such as dir/*.mp3)")
            if not self.path.exists():
                hint = did_you_mean(self.path)
                raise AudioError(self.label, f"no such file (looked for {self.path.resolve()}){hint}")
            blocks = container_blocks(str(self.path), self.label)
        empty = True
        for block in blocks:
            empty = False
            yield block
        if empty:
            raise AudioError(self.label, "contains no audio samples (0 s)")

    def _fetched_now(self) -> AudioSource:
        """This source with a URL downloaded (see :func:`fetched`), for sync callers.

        It runs on voxmagic's loop thread and is waited on in short slices, so it is bounded by
        :data:`DOWNLOAD_TIMEOUT_S` and a Ctrl-C in the calling thread cancels it and closes the socket.
        """
        if self.url is None:
            return self
        from .loop import LOOP

        if LOOP.on_loop_thread():
            raise RuntimeError(
                f"{self.label}: cannot download with a blocking call on voxmagic's event "
                "loop; `source = await voxmagic.audio.fetched(source)` first"
            )
        return LOOP.run(fetched(self, timeout_s=DOWNLOAD_TIMEOUT_S, limit=MAX_DOWNLOAD_BYTES))

    def probe_duration(self) -> float | None:
        """Seconds, known without decoding — from the array's length, or from the container's
        header (reading at most :data:`voxmagic.codec.PROBE_BYTES`), so that too-long audio is refused before a
        3-hour file is decoded. None when the header does not say, the file cannot be read (decoding
        gives the proper error) or for a URL (that would cost the download)."""
        if self.array is not None:
            return self.array.shape[-1] / self.sample_rate
        if self.data is None and (self.path is None or not self.path.is_file()):
            return None
        return probe_duration(io.BytesIO(self.data) if self.data is not None else str(self.path))

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
        source = self._fetched_now()
        return source.as_is(format) or encode(source.decode(), format, label=self.label)

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
        data = self.data if self.data is not None else Path(str(file)).read_bytes()
        return EncodedAudio(data, "mp3", seconds, self.label)


async def fetched(
    source: AudioSource, *, timeout_s: float = DOWNLOAD_TIMEOUT_S, limit: int = MAX_DOWNLOAD_BYTES
) -> AudioSource:
    """A URL source as a bytes-backed one with the same label (others unchanged), so that the
    worker threads that decode it never touch the network."""
    if source.url is None:
        return source
    data = await download(source.url, limit=limit, timeout_s=timeout_s)
    return dataclasses.replace(source, url=None, data=data)


def as_source(obj: Any, *, sample_rate: int | None = None, label: str | None = None) -> AudioSource:
    """Coerce what a user passes (path, bytes, (array, rate), IPython Audio, URL) to an AudioSource."""
    if isinstance(obj, AudioSource):
        return obj
    if is_array_pair(obj):
        obj, sample_rate = obj
    elif _is_pandas(obj):  # a Series of sources is several (see as_list), not one array
        raise AudioError(label or f"<{type(obj).__name__}>", "holds several sources: pass them one by one")
    if _is_array(obj):
        return AudioSource(label or "", array=obj, sample_rate=sample_rate)  # checked on arrival
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
    raise AudioError(
        label or repr(obj)[:60],
        f"cannot use a {type(obj).__name__} as audio "
        "(pass a path, URL, bytes, (array, sample_rate) or IPython.display.Audio)",
    )


def is_array_pair(value: Any) -> bool:
    """True for ``(samples, rate)``: a 2-tuple whose first item is an array (NumPy, or anything with
    a ``shape`` and ``dtype``) and whose second is not. The one rule every caller uses, so a tuple
    never counts as one source here and two there; a bad rate in it is then reported as such by
    :func:`as_source` instead of being read as a second source (``(a, b)`` of two arrays is two)."""
    return isinstance(value, tuple) and len(value) == 2 and _is_array(value[0]) and not _is_array(value[1])


def as_list(audio: Any) -> list[Any]:
    """The sources in ``audio``: a list, tuple, pandas Series or Index holds several, an
    ``(array, rate)`` pair (:func:`is_array_pair`) is one, and anything else is one."""
    if is_array_pair(audio):
        return [audio]
    if isinstance(audio, (list, tuple)):
        return list(audio)
    if _is_pandas(audio):
        return list(audio.tolist())
    return [audio]


def prepare(obj: Any, format: str = DEFAULT_FORMAT, **kw: Any) -> EncodedAudio:
    """Source (anything :func:`as_source` takes) → bytes ready to upload."""
    return as_source(obj, **kw).prepare(format)


def _sample_rate(rate: Any, name: str) -> int:
    """An array's rate as an int, or an AudioError saying what to pass instead."""
    if rate is None:
        raise AudioError(name, "a numpy array needs its sample rate: pass (array, rate), e.g. (samples, 16000)")
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, numbers.Real):
        raise AudioError(
            name, f"sample rate {rate!r} is a {type(rate).__name__}, not a number of Hz; pass an int such as 16000"
        )
    if not isinstance(rate, numbers.Integral) and not _is_whole(rate):
        raise AudioError(name, f"sample rate {rate} is not a whole number of Hz; pass an int such as 16000")
    hz = int(float(rate))
    low, high = ARRAY_RATES
    if not low <= hz <= high:
        raise AudioError(
            name, f"sample rate {hz:,} Hz is outside {low:,}–{high:,} Hz; pass samples per second (16 kHz is 16000)"
        )
    return hz


def _is_whole(x: numbers.Real) -> bool:
    try:
        return float(x).is_integer()  # False for NaN and ±inf
    except OverflowError:
        return False


def _samples(obj: Any, name: str) -> np.ndarray:
    """Samples as a real-valued (samples,) or (channels, samples) array of finite numbers, or an
    AudioError. (samples, channels), as soundfile and scipy return them, is transposed."""
    try:
        a = np.asarray(obj)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise AudioError(
            name,
            f"cannot read a {type(obj).__name__} as a NumPy array ({exc}); "
            "pass a NumPy array (e.g. tensor.cpu().numpy())",
        ) from exc
    if a.dtype.kind == "b":
        raise AudioError(name, "array is boolean (a mask?), not samples; pass int or float samples")
    if a.dtype.kind == "c":
        raise AudioError(name, "array holds complex numbers; pass real samples (e.g. array.real)")
    if a.dtype.kind not in "iuf":
        raise AudioError(
            name,
            f"array of dtype {a.dtype.name} is not audio samples; pass int or float samples "
            "(e.g. array.astype(np.float32))",
        )
    if a.ndim == 2 and a.shape[0] > MAX_CHANNELS >= a.shape[1]:
        a = a.T
    if a.ndim not in (1, 2) or a.ndim == 2 and a.shape[0] > MAX_CHANNELS:
        raise AudioError(
            name, f"array shape {a.shape} is not (samples,) or (channels, samples) with at most {MAX_CHANNELS} channels"
        )
    if a.size == 0:
        raise AudioError(name, f"array is empty (shape {a.shape}); pass at least one sample")
    step = 1 << 20  # checked in slices: no whole-array temporary
    if a.dtype.kind == "f" and not all(np.isfinite(a[..., i : i + step]).all() for i in range(0, a.shape[-1], step)):
        raise AudioError(name, "array contains NaN or infinite values; replace them (e.g. np.nan_to_num(array))")
    return a


def _is_array(x: Any) -> bool:
    return hasattr(x, "dtype") and isinstance(getattr(x, "shape", None), tuple) and len(x.shape) >= 1


def _is_pandas(x: Any) -> bool:
    return any(c.__name__ in ("Series", "Index") and c.__module__.startswith("pandas") for c in type(x).__mro__)


def _is_ipython_audio(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "Audio" and cls.__module__.startswith("IPython")
