"""What a batch would send — ``--dry-run``, :func:`voxmagic.batch_run.run` without sending: every source
prepared as the run would (nothing written to the cache), the requests the cache would answer
counted out, the first request that would go as JSON, and the estimate for those that would."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import limits
from .audio import as_source
from .batch import Batch
from .codec import EncodedAudio
from .cost import Estimate
from .preparing import Prepared, chunk_stream, prepared, why
from .prices import ensure_prices
from .results import counted
from .runner import Caching, Plan, answered_before, label, map_bounded, planned


@dataclass(frozen=True)
class BatchPlan:
    """What :func:`run` would send: the first request, and the estimate for every chunk."""

    first: Plan | None
    estimate: Estimate | None
    files: int
    requests: int
    errors: list[str]
    cached: int = 0  # requests the cache would answer (free, not sent)
    by_length: int = 0  # requests of long files counted from their length, not cut yet

    def __str__(self) -> str:
        sent = self.requests - self.cached
        head = f"{counted(self.files, 'file')}, {counted(sent, 'request')} would be sent"
        if self.cached:
            head += f"; {self.cached} of {counted(self.requests, 'request')} answered from the cache ($0)"
        if self.by_length:
            head += f" ({self.by_length} of them counted from a long file's length: it is cut at pauses when sent)"
        lines = [head]
        if self.first is not None:
            lines.append(f"first request:\n{self.first.request.preview()}")
        if self.estimate is not None:
            lines.append(f"estimated cost for all of them {self.estimate}")
        lines += [f"will fail: {e}" for e in self.errors]
        return "\n\n".join(lines)


async def plan_batch(items: Sequence[Any], batch: Batch, concurrency: int = limits.DEFAULT_CONCURRENCY) -> BatchPlan:
    """Prepare every source as :func:`run` would, and send nothing."""
    await ensure_prices(batch.settings)
    cpu = asyncio.Semaphore(os.cpu_count() or 2)

    async def one(item: Any) -> list[Plan] | str:
        long = _long_seconds(item, batch)
        name, chunks = await (
            _first_then_by_length(item, batch, long, cpu)
            if long
            else prepared(item, replace(batch, caching=Caching(read=False, write=False)), cpu)
        )
        if isinstance(chunks, str):
            return f"{name}: {chunks}"
        return [planned(batch.request(c)) for c in chunks]

    results = await map_bounded(items, one, limits.check("concurrency", concurrency))
    plans = [p for r in results if isinstance(r, list) for p in r]
    sent = [p for p in plans if not await answered_before(p.request, batch.settings, batch.caching)]
    total = sum((p.estimate for p in sent[1:]), sent[0].estimate) if sent else None
    return BatchPlan(
        sent[0] if sent else None,
        total,
        sum(isinstance(r, list) for r in results),
        len(plans),
        [r for r in results if isinstance(r, str)],
        len(plans) - len(sent),
        sum(p.request.audio[0].digest.startswith(NOT_CUT) for p in sent if p.request.audio[0].digest),
    )


NOT_CUT = "not-cut-yet-"  # the digest of a chunk counted from its file's length


def _long_seconds(item: Any, batch: Batch) -> float | None:
    """A source whose header says it is over two chunks long: its length, else None."""
    if not batch.max_chunk_s:
        return None
    try:
        whole = as_source(item).probe_duration()
    except Exception:  # noqa: BLE001 - the source's own error comes from preparing it
        return None
    return whole if whole and whole > 2 * batch.max_chunk_s else None


async def _first_then_by_length(item: Any, batch: Batch, whole: float, cpu: asyncio.Semaphore) -> Prepared:
    """A long source's first chunk, prepared as it will be sent (what the preview shows), and the
    rest counted from its length: decoding two hours to count five requests took longer than
    sending them. Its chunks as the cache knows them when every one was answered before."""
    name = label(item)
    stream = chunk_stream(item, replace(batch, caching=Caching(read=batch.caching.read, write=False)))
    try:
        async with cpu:
            first = await anext(stream)
            if first.digest:  # references: every chunk answered before, none decoded
                return name, [first, *[c async for c in stream]]
    except Exception as exc:  # noqa: BLE001 - see why()
        return name, why(exc)
    finally:
        await stream.aclose()
    left = whole - first.end_s
    n = math.ceil(left / (batch.max_chunk_s or whole)) if left > 0.5 else 0
    size, overlap = (left / n if n else 0.0), batch.overlap_s
    rest = [
        EncodedAudio(b"", first.format, size + overlap, first.label, first.end_s + i * size - overlap, f"{NOT_CUT}{i}")
        for i in range(n)
    ]
    return name, [first, *rest]
