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
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import limits
from .arrays import is_array, is_array_pair, is_pandas
from .arrays import sample_rate as sample_rate_of
from .arrays import samples as samples_of
from .as_is import MP3_ONLY
from .as_is import as_is as unchanged
from .codec import (
    PCM,
    SAMPLE_RATE,
    EncodedAudio,
    array_blocks,
    container_blocks,
    encode,
    encode_blocks,
    preview,
    probe_duration,
)
from .download import DOWNLOAD_TIMEOUT_S, MAX_DOWNLOAD_BYTES, download, shown
from .errors import AudioError
from .files import did_you_mean, expand_all
from .formats import DEFAULT_FORMAT, UPLOAD_FORMATS
from .moments import GAP_S, Span, base_label, check_span, describe, mmss, no_moments_yet, parse_time
from .silence import trimmed_clip

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

NO_SPEECH = "holds no speech: --trim-silence (trim_silence=True) found only silence; leave it out to send the audio"


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
    # moments of it to send, in order, on its own timeline (empty: all of it); several are joined
    # with GAP_S of silence between them into one clip
    spans: tuple[Span, ...] = ()
    trim: bool = False  # send it with its long pauses cut (see voxmagic.silence)

    def __post_init__(self) -> None:
        if self.array is None:
            return
        name = self.label or "<array>"
        rate = sample_rate_of(self.sample_rate, name)
        samples = samples_of(self.array, name)
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
        empty = True
        for i, (start, end) in enumerate(self.spans or ((0.0, None),)):
            if i:
                yield np.zeros(round(GAP_S * SAMPLE_RATE), np.int16)
            for block in self._span_blocks(start, end):
                empty = False
                yield block
        if empty:
            raise AudioError(self.label, self._nothing_in())

    def _nothing_in(self) -> str:
        """Why no sample came: the file is empty, or the moments asked for lie past its end."""
        if not self.spans:
            return "contains no audio samples (0 s)"
        whole = dataclasses.replace(self, spans=()).probe_duration()
        past = f": the audio ends at {mmss(whole)}" if whole is not None and self.spans[0][0] >= whole else ""
        moment = "" if self.label.endswith(describe(self.spans)) else f"{describe(self.spans)} "  # said once
        return f"{moment}holds no audio samples (0 s){past}"

    def _span_blocks(self, start: float, end: float | None) -> Iterator[np.ndarray]:
        if self.array is not None:
            return array_blocks(self.array, int(self.sample_rate or 0), start, end)
        if self.data is not None:
            return container_blocks(io.BytesIO(self.data), self.label, start, end)
        assert self.path is not None
        if self.path.is_dir():
            raise AudioError(self.label, "is a directory; pass the files in it (or a glob such as dir/*.mp3)")
        if not self.path.exists():
            hint = did_you_mean(self.path)
            raise AudioError(self.label, f"no such file (looked for {self.path.resolve()}){hint}")
        return container_blocks(str(self.path), self.label, start, end)

    def moments(self, *spans: Span) -> AudioSource:
        """Only these moments of it (on its own timeline), e.g. ``source.moments((750, 840))``."""
        base = base_label(self.label)
        return dataclasses.replace(self, spans=spans, label=f"{base} {describe(spans)}" if spans else base)

    def trimmed(self, trim: bool = True) -> AudioSource:
        """This source sent without its long pauses; timestamps still on its own timeline."""
        return dataclasses.replace(self, trim=trim)

    @property
    def offset_s(self) -> float:
        """Where what is sent starts on the source's timeline (one moment: its start)."""
        return self.spans[0][0] if len(self.spans) == 1 else 0.0

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
            whole: float | None = self.array.shape[-1] / (self.sample_rate or 1)
        elif self.data is None and (self.path is None or not self.path.is_file()):
            return None
        else:
            whole = probe_duration(io.BytesIO(self.data) if self.data is not None else str(self.path))
        if not self.spans or whole is None:
            return whole
        kept = sum(max(0.0, min(whole, whole if end is None else end) - start) for start, end in self.spans)
        return kept + GAP_S * (len(self.spans) - 1)

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
        if self.spans:
            h.update(f"|spans {self.spans}".encode())
        if self.trim:
            h.update(b"|silence trimmed")
        return h.hexdigest()

    def decode(self) -> PCM:
        """All of it at once (16 kHz mono int16; a 10-minute file is 19 MB)."""
        out = bytearray()
        for block in self.blocks():
            out += block.tobytes()
        return PCM(np.frombuffer(out, dtype=np.int16))

    def prepare(self, format: str = DEFAULT_FORMAT, accepted: tuple[str, ...] = MP3_ONLY) -> EncodedAudio:
        """Bytes to upload: the file as it is when :meth:`as_is` lets it go (``accepted``: the
        containers the provider decodes), else decoded and encoded."""
        source = self._fetched_now()
        if not self.trim:
            return source.as_is(format, None, accepted) or encode_blocks(source.blocks(), format, label=self.label)
        clip = trimmed_clip(source.decode(), format, self.label, self.offset_s)
        if clip is None:
            raise AudioError(self.label, NO_SPEECH)
        return clip

    def as_is(
        self, format: str, max_s: float | None = None, accepted: tuple[str, ...] = MP3_ONLY
    ) -> EncodedAudio | None:
        """The source's own bytes when ``format`` is the default and :mod:`voxmagic.as_is` lets the
        file go unchanged (a compact MP3, or a small file in a container of ``accepted``), with its
        exact duration; None otherwise. A file whose first bytes say it is something else is not
        opened at all."""
        if format != DEFAULT_FORMAT or self.spans or self.trim or (self.path is None and self.data is None):
            return None
        if self.path is not None and not self.path.is_file():
            return None
        found = unchanged(io.BytesIO(self.data) if self.data is not None else str(self.path), accepted, max_s)
        return None if found is None else EncodedAudio(found.data, found.format, found.seconds, self.label)


async def fetched(
    source: AudioSource, *, timeout_s: float = DOWNLOAD_TIMEOUT_S, limit: int = MAX_DOWNLOAD_BYTES
) -> AudioSource:
    """A URL source as a bytes-backed one with the same label (others unchanged), so that the
    worker threads that decode it never touch the network."""
    if source.url is None:
        return source
    data = await download(source.url, limit=limit, timeout_s=timeout_s, label=source.label)
    return dataclasses.replace(source, url=None, data=data)


@dataclass(frozen=True)
class Unusable:
    """A source already found unusable (a notebook variable's bad samples): in a batch it becomes
    its error row under the variable's name, where the bare value would say ``<array>``."""

    label: str
    cause: str


# The URLs of this session by how they are shown (a signed URL's query is a credential: never in
# a label, a table, history or a subtitle index), so a table's `source` still finds its audio.
_URLS: dict[str, str] = {}


def as_source(obj: Any, *, sample_rate: int | None = None, label: str | None = None) -> AudioSource:
    """Coerce what a user passes (path, bytes, (array, rate), IPython Audio, URL) to an AudioSource."""
    if isinstance(obj, Unusable):
        raise AudioError(obj.label, obj.cause)
    if isinstance(obj, AudioSource):
        return obj
    if _is_segment(obj) or _is_segments(obj):
        found = from_segments(obj)
        if len(found) > 1:
            raise AudioError(label or "<segments>", f"holds moments of {len(found)} files: pass them as a list")
        return found[0]
    if is_array_pair(obj):
        obj, sample_rate = obj
    elif is_pandas(obj):  # a Series of sources is several (see as_list), not one array
        raise AudioError(label or f"<{type(obj).__name__}>", "holds several sources: pass them one by one")
    if is_array(obj):
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
            url = _URLS.get(text, text)  # a URL shown without its query is the one it stands for
            if url.endswith("?…"):  # ... in the session that saw it
                raise AudioError(text, "is a URL shown without its query (its token is kept out of tables and "
                                       "history): give the full URL again")  # fmt: skip
            _URLS[shown(url)] = url
            return AudioSource(label or shown(url), url=url)
        return AudioSource(label or text, path=Path(text).expanduser())
    raise AudioError(
        label or repr(obj)[:60],
        f"cannot use a {type(obj).__name__} as audio "
        "(pass a path, URL, bytes, (array, sample_rate) or IPython.display.Audio)",
    )


def as_list(audio: Any) -> list[Any]:
    """The sources in ``audio``: a list, tuple, pandas Series or Index holds several, an
    ``(array, rate)`` pair (:func:`is_array_pair`) is one, a table of segments (``source, start,
    end``) is one moment-source per file (:func:`from_segments`), and anything else is one."""
    if is_array_pair(audio) or _is_segment(audio):
        return [audio]
    if _is_segments(audio):
        return list(from_segments(audio))
    if isinstance(audio, (list, tuple)):
        return list(audio)
    if is_pandas(audio):
        return list(audio.tolist())
    return [audio]


def is_segments(obj: Any) -> bool:
    """A table of segments (``source, start, end`` columns), or one row of it."""
    return _is_segments(obj) or _is_segment(obj)


def _is_segments(obj: Any) -> bool:
    return hasattr(obj, "columns") and {"source", "start", "end"} <= set(obj.columns)


def _is_segment(obj: Any) -> bool:
    """One row of a segments table (a pandas Series indexed by column names)."""
    index = getattr(obj, "index", None)
    return (
        is_pandas(obj)
        and index is not None
        and not hasattr(obj, "columns")
        and {"source", "start", "end"} <= set(index)
    )


def from_segments(rows: Any) -> list[AudioSource]:
    """Segment rows — one row, or a table filtered to what matters (``seg[seg.speaker ==
    "speaker_2"]``) — as sources: per file, only its rows' moments, in row order, sent as one clip."""
    frame = rows.to_frame().T if _is_segment(rows) else rows
    spans: dict[str, list[Span]] = {}
    for source, start, end in zip(frame["source"], frame["start"], frame["end"], strict=True):
        spans.setdefault(base_label(str(source)), []).append(check_span(float(start), float(end)))
    if not spans:
        raise AudioError("<segments>", "no rows: the table of segments is empty")
    return [as_source(source).moments(*_in_order(found)) for source, found in spans.items()]


def _in_order(spans: list[Span]) -> list[Span]:
    """A file's moments in time order, overlapping or touching ones as one: a table sorted some
    other way gave a negative duration, and two overlapping moments heard the same words twice."""
    merged: list[Span] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        last = merged[-1] if merged else None
        if last is not None and (last[1] is None or start <= last[1]):
            merged[-1] = (last[0], None if last[1] is None or end is None else max(last[1], end))
        else:
            merged.append((start, end))
    return merged


def sources(
    audio: Any, start: float | str | None = None, end: float | str | None = None, trim_silence: bool = False
) -> list[Any]:
    """What a call's ``audio`` names: paths expanded (globs, folders, ``~``), a table of segments as
    moments, with ``start``/``end`` (seconds or ``"12:30"``) only that moment of each, and with
    ``trim_silence`` each sent without its long pauses."""
    trim_silence = limits.flag("trim_silence", trim_silence)
    items = expand_all(as_list(audio))
    if start is not None or end is not None:
        no_moments_yet(items)
        span = check_span(*(parse_time(t) if isinstance(t, str) else t for t in (start, end)))
        items = [as_source(item).moments(span) for item in items]
    return [as_source(item).trimmed() for item in items] if trim_silence else items


def source_options(options: dict[str, Any]) -> dict[str, Any]:
    """A call's keywords about what of each source is sent (:func:`sources`), taken out of ``options``."""
    return {name: options.pop(name) for name in ("start", "end", "trim_silence") if name in options}


def prepare(obj: Any, format: str = DEFAULT_FORMAT, **kw: Any) -> EncodedAudio:
    """Source (anything :func:`as_source` takes) → bytes ready to upload."""
    return as_source(obj, **kw).prepare(format)


def _is_ipython_audio(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "Audio" and cls.__module__.startswith("IPython")
