"""A source's chunks for a batch, produced as they are sent.

What a source became last time is looked up first (by a digest of its bytes): when every chunk's
answer is cached, references stand in for the chunks and nothing is decoded. Otherwise the pieces
are decoded and cut in a thread and each is handed on as soon as it is encoded, so the first
request of a 2-hour file goes out after its first piece, not after the whole file. A source longer
than one piece is encoded in a helper process (:mod:`voxmagic.worker`) while the next piece is
decoded here: PyAV holds the GIL, so two threads would take turns on one core where two
processes use two.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from dataclasses import replace
from typing import Any

import numpy as np

from . import audio as _audio
from .audio import AudioSource, EncodedAudio
from .batch import Batch
from .errors import AudioError, VoxmagicError
from .moments import GAP_S, Span, describe, sub_spans
from .runner import in_store, label, store
from .segment import Piece, encode_piece, pieces, seconds, sendable
from .worker import Worker, WorkerDied

AHEAD = 1  # pieces being encoded besides the one waited for: decoding the next overlaps encoding this one
_WORKER: list[Worker] = []  # the helper process, started when a long source first needs it
_STARTING = threading.Lock()


async def chunks_for(item: Any, batch: Batch) -> list[EncodedAudio]:
    """All of a source's chunks (see :func:`chunk_stream`)."""
    return [clip async for clip in chunk_stream(item, batch)]


async def chunk_stream(item: Any, batch: Batch) -> AsyncGenerator[EncodedAudio, None]:
    """The source's chunks in order, each as soon as it is ready: references only (no audio
    bytes) when every answer is cached. Raises :class:`AudioError` when it cannot be read.

    A transcript of several moments sends each moment on its own, so that every time in it is the
    file's: joined into one clip, a chat transcript's one row spanned them all. A question about
    several moments hears them as one clip (:func:`on_file_timeline`), and so does a diarized
    transcript — one request numbers its speakers once — whose segments are then kept each within
    one moment (:func:`voxmagic.timeline.segment_rows`)."""
    if isinstance(item, EncodedAudio):
        yield item
        return
    source = await _audio.fetched(_audio.as_source(item), timeout_s=batch.settings.download_timeout)
    if batch.transcript and len(source.spans) > 1 and not batch.diarize:
        sent, failed = 0, []
        for span in source.spans:  # a moment that fails does not stop the others
            try:
                async for clip in chunk_stream(source.moments(span), batch):
                    sent += 1
                    yield replace(clip, label=source.label)
            except AudioError as exc:  # which moment: the row's error is all its reader sees
                moment = describe((span,))
                failed.append((exc.cause, exc.cause if moment in exc.cause else f"{moment} {exc.cause}"))
        worth_saying = [said for cause, said in failed if not (sent and cause == _audio.NO_SPEECH)]  # silence: trimmed
        if worth_saying or (failed and not sent):
            raise AudioError(source.label, "; ".join(worth_saying or [said for _, said in failed]))
        return
    caching = batch.caching.read or batch.caching.write  # without the cache a fingerprint is for nothing
    fingerprint = await asyncio.to_thread(batch.fingerprint, source) if caching else None
    if fingerprint and batch.caching.read:
        known = await in_store(store.source, fingerprint)
        if known:
            refs = [EncodedAudio.referring(c, source.label) for c in known]
            keys = [batch.request(r).cache_key(batch.settings.base_url) for r in refs]
            if all([await in_store(store.cached, k) is not None for k in keys]):
                for ref in refs:
                    yield ref
                return
    made = []
    async for clip in _produced(source, batch):
        made.append(clip := on_file_timeline(clip, source.spans))
        yield clip
    if fingerprint and batch.caching.write:
        await in_store(store.remember_source, fingerprint, [c.reference() for c in made])


def on_file_timeline(clip: EncodedAudio, moments: tuple[Span, ...]) -> EncodedAudio:
    """A clip of several moments joined (GAP_S of silence between them) as the stretches of the
    file it holds, so that its answer's times land on the file's timeline as one moment's do. A
    gap counts as the GAP_S before the next moment: a time in it falls just before that moment."""
    if len(moments) < 2 or any(end is None for _, end in moments[:-1]):
        return clip
    joined = tuple((a - (GAP_S if i else 0.0), b if b is not None else math.inf) for i, (a, b) in enumerate(moments))
    held = clip.spans or ((clip.start_s, clip.start_s + clip.duration_s),)  # on the joined clip's timeline
    spans = tuple(s for a, b in held for s in sub_spans(joined, a, b))
    return replace(clip, spans=spans, start_s=spans[0][0], joined=True) if spans else clip


async def _produced(source: AudioSource, batch: Batch) -> AsyncIterator[EncodedAudio]:
    produce = pieces(source, batch.max_chunk_s or None, batch.overlap_s, batch.audio_format)
    try:
        opening = await asyncio.to_thread(_opening, source, batch, produce)
        if not isinstance(opening, tuple):  # done in that one trip to a worker thread
            yield opening if opening is not None else sendable(source, [])[0]  # None: only silence
            return
        async for clip in _piece_by_piece(source, batch, produce, opening):
            yield clip
    finally:
        produce.close()


def _opening(source: AudioSource, batch: Batch, produce: Generator[Piece, None, None]) -> Any:
    """What one trip to a worker thread can do: the file as it is (an :class:`EncodedAudio`); or,
    when its first piece is also its last, that piece encoded (None if only silence was left);
    else the first piece, a ``(start_s, samples)`` tuple, for :func:`_piece_by_piece`. A 1-s clip
    took four trips (the as-is check, its piece, its encoding, the end), ~0.3 ms of its CPU."""
    max_s = batch.max_chunk_s or None
    as_is = source.as_is(batch.audio_format, max_s, batch.unchanged_formats)
    if as_is is not None:
        return as_is
    piece = next(produce, None)
    if piece is None or (max_s and seconds(piece) >= max_s / 2):
        return piece  # a piece of half a chunk or more may have others after it (see split_blocks)
    return encode_piece(piece[1], piece[0], batch.audio_format, source.label, source.trim)


async def _piece_by_piece(
    source: AudioSource, batch: Batch, produce: Generator[Piece, None, None], first: Piece
) -> AsyncIterator[EncodedAudio]:
    """A long source's clips: each piece encoded (from the second on, in the helper process)
    while the next is decoded, and handed on as soon as it is ready."""
    encoding: deque[asyncio.Future] = deque()
    kept, failure, count = 0, None, 0
    piece: Piece | None = first
    try:
        while piece is not None:
            count += 1  # a source of more than one piece is long: the helper encodes from its second on
            encoding.append(_encode(count > 1, piece[1], piece[0], batch.audio_format, source.label, source.trim))
            while encoding and (encoding[0].done() or len(encoding) > AHEAD):
                if (clip := await encoding.popleft()) is not None:
                    kept += 1
                    yield clip
            try:
                piece = await asyncio.to_thread(next, produce, None)
            except Exception as exc:  # noqa: BLE001 - what was prepared before still goes out
                piece, failure = None, exc
        while encoding:
            if (clip := await encoding.popleft()) is not None:
                kept += 1
                yield clip
    finally:
        for future in encoding:
            future.cancel()
    if failure is not None:
        raise failure
    if not kept:
        sendable(source, [])  # raises: only silence was left


def _encode(in_worker: bool, *args: Any) -> asyncio.Future:
    """Encode a piece in the helper process (``in_worker``) or a thread, started at once."""
    return asyncio.ensure_future(asyncio.to_thread(_encoded, in_worker, *args))


def _encoded(in_worker: bool, *args: Any) -> EncodedAudio | None:
    helper = _worker() if in_worker and isinstance(args[0], np.ndarray) else None  # not one encoded already
    if helper is not None:
        try:
            return helper.call(encode_piece, *args)
        except WorkerDied:
            _WORKER.clear()  # here, then (and a new one for the next long source)
    return encode_piece(*args)


def _worker() -> Worker | None:
    """The helper process, started when a long source first needs it; none on a single core."""
    if (os.cpu_count() or 1) < 2:
        return None
    with _STARTING:
        if not _WORKER or not _WORKER[0].alive:
            _WORKER[:] = [Worker()]
        return _WORKER[0]


Prepared = tuple[str, "list[EncodedAudio] | str"]


async def prepared(item: Any, batch: Batch, cpu: asyncio.Semaphore) -> Prepared:
    """A source's chunks, or why it could not be prepared: whatever goes wrong with one source
    (unreadable, a bad array, a failed download) becomes its error row, never the batch's."""
    name = label(item)
    try:
        async with cpu:
            return name, await chunks_for(item, batch)
    except Exception as exc:  # noqa: BLE001 - see why()
        return name, why(exc)


def why(exc: Exception) -> str:
    """A source's failure as its row's ``error``."""
    if isinstance(exc, AudioError):
        return exc.cause
    if isinstance(exc, VoxmagicError):
        return str(exc)
    return f"could not be prepared ({type(exc).__name__}: {exc})"  # e.g. a user object whose conversion fails
