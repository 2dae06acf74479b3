"""What a batch would send — ``--dry-run``, :func:`voxmagic.batch_run.run` without sending: every source
prepared as the run would (nothing written to the cache), the requests the cache would answer
counted out, the first request that would go as JSON, and the estimate for those that would."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import limits
from .batch import Batch
from .cost import Estimate
from .preparing import prepared
from .prices import ensure_prices
from .results import counted
from .runner import Caching, Plan, answered_before, map_bounded, planned


@dataclass(frozen=True)
class BatchPlan:
    """What :func:`run` would send: the first request, and the estimate for every chunk."""

    first: Plan | None
    estimate: Estimate | None
    files: int
    requests: int
    errors: list[str]
    cached: int = 0  # requests the cache would answer (free, not sent)

    def __str__(self) -> str:
        sent = self.requests - self.cached
        head = f"{counted(self.files, 'file')}, {counted(sent, 'request')} would be sent"
        if self.cached:
            head += f"; {self.cached} of {counted(self.requests, 'request')} answered from the cache ($0)"
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
        name, chunks = await prepared(item, replace(batch, caching=Caching(read=False, write=False)), cpu)
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
    )
