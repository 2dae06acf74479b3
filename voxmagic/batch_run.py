"""Many sources at once: long files cut into chunks, bounded concurrency, cache-first reruns.

:func:`run` sends a :class:`~voxmagic.batch.Batch` over many sources. Per source: look up what it
became last time (by a digest of its bytes) — when every chunk's answer is cached, nothing is
decoded or sent; otherwise decode, cut long audio at pauses (:mod:`voxmagic.segment`), and send
each chunk as soon as it is prepared (:mod:`voxmagic.preparing`). A chunk whose transcript hit the
output limit (``finish_reason == "length"``) is cut in two and sent again. Rows come back in
input order, one per source (chunks stitched) or one per chunk (``segments=True``); a failure
fills ``error`` and costs the other rows nothing — also a source that cannot be read or
prepared at all (a missing file, an array with a negative rate): it becomes an error row.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from . import audio as _audio
from . import limits
from .audio import PCM, SAMPLE_RATE, EncodedAudio
from .batch import MAX_RESPLITS, Batch, Gate
from .cost import ASK_THE_TEXT, Estimate
from .errors import CacheGone, VoxmagicError
from .moments import sub_spans
from .preparing import Prepared, chunk_stream, prepared, why
from .prices import ensure_prices
from .runner import answered_before, check_budget, check_context, label, ledger, map_bounded, planned, send
from .segment import find_cut
from .stitch import stitch

WHOLE = "--chunk-minutes 0 (max_chunk_s=0) sends it whole: leave that out, or cut at 40 minutes or less"


async def send_chunk(clip: EncodedAudio, batch: Batch, gate: Gate, depth: int = 0) -> list[dict]:
    """Rows for one chunk — or for its halves when its transcript was cut at the output limit."""
    row: dict[str, Any] = {
        "source": clip.label,
        "duration_s": clip.duration_s,
        "start_s": clip.start_s,
        "end_s": clip.end_s,
        "audio_format": clip.format,
        "audio_sha256": clip.sha256,
        **({"trimmed_s": clip.trimmed_s, "spans": clip.spans, "joined": clip.joined} if clip.spans else {}),
    }
    try:
        request = batch.request(clip)
        check_context(request, WHOLE if batch.transcript and not batch.max_chunk_s else ASK_THE_TEXT)
        async with gate:
            response = await send(request, batch.settings, caching=batch.caching)
    except CacheGone:
        raise  # the source is read again (see _again)
    except VoxmagicError as exc:
        return [{**row, "error": str(exc)}]
    if batch.structured:
        row.update(parsed=response.parsed, parse_error=response.parse_error)
    if response.segments:
        row["segments"] = response.segments
    if (
        response.finish_reason == "length"
        and not batch.params.max_tokens
        and clip.data
        and depth < MAX_RESPLITS
        and clip.duration_s > 60
    ):
        halves = await asyncio.to_thread(_halve, clip)
        parts = await asyncio.gather(*(send_chunk(h, batch, gate, depth + 1) for h in halves))
        rows = [r for part in parts for r in part]
        if response.cost_usd:  # the cut-off answer was paid for too: the column still adds up
            rows[0]["cost_usd"] = (rows[0].get("cost_usd") or 0.0) + response.cost_usd
        return rows
    return [{**row, **response.to_row()}]


def _halve(clip: EncodedAudio) -> list[EncodedAudio]:
    """Cut an encoded chunk in two at a pause near its middle, keeping its place in the source."""
    samples = _audio.as_source(clip.data, label=clip.label).decode().samples
    n = samples.size
    cut = find_cut(samples, int(n * 0.4), int(n * 0.6), SAMPLE_RATE)
    return [
        _audio.encode(
            PCM(samples[a:b]),
            clip.format,
            label=clip.label,
            start_s=clip.start_s + a / SAMPLE_RATE,
            spans=sub_spans(clip.spans, a / SAMPLE_RATE, b / SAMPLE_RATE),
            trimmed_s=clip.trimmed_s * (b - a) / n,  # (shared by length)
        )
        for a, b in ((0, cut), (cut, n))
    ]


CACHE_GONE = (
    "found in the cache, which went off before the answer could be read (the history file was "
    "locked or damaged meanwhile); run it again to send it"
)


async def _again(sending: Sequence[Awaitable[list[dict]]]) -> list[list[dict]] | None:
    """Every chunk's rows, or None when a chunk's cached answer was gone by the time it was sent
    (:class:`~voxmagic.errors.CacheGone`; its audio was never prepared): the source must go again."""
    parts = await asyncio.gather(*sending, return_exceptions=True)
    if any(isinstance(p, CacheGone) for p in parts):
        return None
    for part in parts:
        if isinstance(part, BaseException):
            raise part
    return [p for p in parts if not isinstance(p, BaseException)]


def _reading(batch: Batch) -> Batch:
    """``batch`` finding nothing in the cache (it still writes), so every chunk carries its audio."""
    return replace(batch, caching=replace(batch.caching, read=False))


async def _finished(entry: Prepared, batch: Batch, gate: Gate, segments: bool) -> list[dict]:
    """A prepared source's rows (every chunk in hand: a budget was checked first)."""
    name, chunks = entry
    if isinstance(chunks, str):
        return [{"source": name, "error": chunks}]
    if len(chunks) > 1 and batch.structured and not segments:
        return [
            {
                "source": name,
                "duration_s": sum(c.duration_s for c in chunks),
                "chunks": len(chunks),
                "error": f"{len(chunks)} chunks: one JSON answer per file needs audio that fits one "
                "request; add --segments (segments=True) for one row per chunk",
            }
        ]
    sending = [(c, _sent(send_chunk(c, batch, gate), gate)) for c in chunks]
    try:
        parts = await _again([task for _, task in sending])
    except asyncio.CancelledError:
        _stopped(name, sending, gate, segments, prepared=True)
        raise
    if parts is None:  # with a budget, nothing is sent that the estimate counted as free
        return [{"source": name, "error": CACHE_GONE}]
    return _rows(name, [r for part in parts for r in part], segments)


async def _streamed(item: Any, batch: Batch, gate: Gate, cpu: asyncio.Semaphore, segments: bool) -> list[dict]:
    """A source's rows, each chunk sent as soon as it is prepared. A failure after some chunks
    went out (a damaged end of file) keeps their answers and adds the error after them."""
    if batch.structured and not segments:  # one answer per file: the chunks are counted first
        return await _finished(await prepared(item, batch, cpu), batch, gate, segments)
    name, failure = label(item), None
    sending: list[tuple[EncodedAudio, asyncio.Future]] = []
    try:
        async with cpu:
            async for clip in chunk_stream(item, batch):
                sending.append((clip, _sent(send_chunk(clip, batch, gate), gate)))
    except Exception as exc:  # noqa: BLE001 - the source's error row (see preparing.why)
        failure = why(exc)
    except BaseException:  # cancelled: nothing more goes out
        _stopped(name, sending, gate, segments, prepared=False)
        raise
    try:
        parts = await _again([task for _, task in sending])
    except asyncio.CancelledError:
        _stopped(name, sending, gate, segments, prepared=failure is None)
        raise
    if parts is None:
        return await _streamed(item, _reading(batch), gate, cpu, segments)
    rows = [r for part in parts for r in part]
    if failure is not None and not rows:
        return [{"source": name, "error": failure}]
    if failure is not None:
        end = rows[-1]["end_s"]
        rows.append({"error": failure, "start_s": end, "end_s": end, "duration_s": 0.0})
    return _rows(name, rows, segments)


def _sent(sending: Awaitable[list[dict]], gate: Gate) -> asyncio.Future:
    """A chunk's request as a task that, once answered, tells ``gate.chunk`` (a long file's progress)."""
    task = asyncio.ensure_future(sending)
    if isinstance(gate, _Sending) and gate.on_chunk is not None:
        told = gate

        def answered(t: asyncio.Future) -> None:
            if not t.cancelled() and t.exception() is None:
                told.chunk(t.result())

        task.add_done_callback(answered)
    return task


def _stopped(name: str, sending: list, gate: Gate, segments: bool, prepared: bool) -> None:
    """Cancelled mid-source: the chunks answered so far are kept — handed to ``gate.stopped`` as
    the source's rows, each unanswered chunk (and, ``prepared`` False, the rest of the source) an
    error row — and the requests still out are cancelled. A stopped 2-hour file keeps its text."""
    rows: list[dict] = []
    for clip, task in sending:
        if task.done() and not task.cancelled() and task.exception() is None:
            rows += task.result()
        else:
            task.cancel()
            rows.append({**_place(clip), "error": "stopped before its answer came"})
    if not prepared:
        end = rows[-1]["end_s"] if rows else 0.0
        rows.append({"start_s": end, "end_s": end, "duration_s": 0.0, "error": "stopped before the rest was sent"})
    if any(not r.get("error") for r in rows) and isinstance(gate, _Sending):
        gate.stopped(_rows(name, rows, segments))


def _place(clip: EncodedAudio) -> dict:
    return {"duration_s": clip.duration_s, "start_s": clip.start_s, "end_s": clip.end_s}


def _rows(name: str, rows: list[dict], segments: bool) -> list[dict]:
    rows = [dict(r, source=name) for r in rows]
    return [dict(r, chunk=i) for i, r in enumerate(rows)] if segments else [stitch(name, rows)]


async def run(
    items: Sequence[Any],
    batch: Batch,
    *,
    concurrency: int = limits.DEFAULT_CONCURRENCY,
    max_cost: float | None = None,
    segments: bool = False,
    on_result: Callable[[int, list[dict]], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_stopped: Callable[[int, list[dict]], None] | None = None,
    on_chunk: Callable[[int, list[dict]], None] | None = None,
) -> list[dict]:
    """Rows in input order (see the module docstring); ``on_start(index)`` as work on a source
    sends its first request, ``on_result(index, rows)`` as it finishes, with its row (or its
    chunks' rows) — so a view can count what is in flight; when the batch is cancelled,
    ``on_stopped(index, rows)`` for each source it cut short with some chunks answered;
    ``on_chunk(index, rows)`` as each chunk of a source is answered (a long file's progress).

    With a budget (``max_cost`` or the session's) every source is prepared first and the whole
    batch — minus what is cached — is estimated before anything is sent; otherwise decoding and
    sending overlap: while ``concurrency`` requests wait on the network, the next sources are
    prepared, at most 2 × ``concurrency`` sources held prepared or in flight.
    """
    concurrency = limits.check("concurrency", concurrency)
    limits.check("max_cost", max_cost)
    batch.check()
    await ensure_prices(batch.settings)
    gate = asyncio.Semaphore(concurrency)  # requests in flight
    cpu = asyncio.Semaphore(os.cpu_count() or 2)  # sources being decoded and encoded

    async def whole(indexed: tuple[int, Prepared]) -> list[dict]:
        index, entry = indexed
        return await _finished(entry, batch, _Sending(gate, index, on_start, on_stopped, on_chunk), segments)

    if max_cost is None and ledger.budget_usd is None:

        async def one(indexed: tuple[int, Any]) -> list[dict]:
            index, item = indexed
            return await _streamed(item, batch, _Sending(gate, index, on_start, on_stopped, on_chunk), cpu, segments)

        results = await map_bounded(list(enumerate(items)), one, 2 * concurrency, on_result)
    else:
        entries = await map_bounded(items, lambda item: prepared(item, batch, cpu), len(items) or 1)
        estimate = await _uncached_estimate(entries, batch)
        check_budget(estimate, max_cost, f"this batch of {len(entries)} files")
        results = await map_bounded(list(enumerate(entries)), whole, 2 * concurrency, on_result)
    return [row for rows in results for row in rows]


class _Sending:
    """The batch's gate on requests in flight, as one source uses it: tells ``on_start(index)``
    when the source's first request goes out."""

    def __init__(self, gate: asyncio.Semaphore, index: int, on_start: Any = None, on_stopped: Any = None,
                 on_chunk: Any = None):  # fmt: skip
        self.gate, self.on_start, self.index, self.on_stopped, self.on_chunk = (
            gate, on_start, index, on_stopped, on_chunk
        )  # fmt: skip

    def chunk(self, rows: list[dict]) -> None:
        """One of the source's chunks was answered (its rows)."""
        if self.on_chunk is not None:
            self.on_chunk(self.index, rows)

    def stopped(self, rows: list[dict]) -> None:
        """The source was cancelled with some of its chunks answered: its rows so far."""
        if self.on_stopped is not None:
            self.on_stopped(self.index, rows)

    async def __aenter__(self) -> None:
        await self.gate.acquire()
        notify, self.on_start = self.on_start, None  # the first request only
        if notify is not None:
            notify(self.index)

    async def __aexit__(self, *exc: object) -> None:
        self.gate.release()


async def _uncached_estimate(entries: list[Prepared], batch: Batch) -> Estimate:
    total = Estimate(0.0, 0, 0, 0.0)
    for _, chunks in entries:
        for clip in chunks if isinstance(chunks, list) else []:
            request = batch.request(clip)
            if not await answered_before(request, batch.settings, batch.caching):
                total += planned(request).estimate
    return total
