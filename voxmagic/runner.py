"""The async work behind every call: prepare audio, check the budget, send, record the cost.

Runs on voxmagic's background loop (:mod:`voxmagic.loop`). Audio decoding is CPU work and goes
to worker threads so that streams keep flowing while the next file decodes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Sequence, TypeVar

from . import audio as _audio
from .audio import EncodedAudio
from .cost import CostLedger, Estimate, LedgerEntry, estimate, pricing_for, transcript_token_bound
from .errors import APIError, AudioError, BudgetError, VoxmagicError
from .loop import LOOP
from .requests import ChatRequest, Params
from .results import Response
from .settings import Settings

if TYPE_CHECKING:
    from .client import Client, EventHandler

T = TypeVar("T")
R = TypeVar("R")

#: Every call of this Python session, with its cost.
ledger = CostLedger()


@dataclass(frozen=True)
class Plan:
    """A request ready to send, and what it may cost; its text form is what ``--dry-run`` shows."""

    request: ChatRequest
    estimate: Estimate

    def __str__(self) -> str:
        return f"{self.request.preview()}\n\nestimated cost {self.estimate}"

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


async def map_bounded(items: Iterable[T], fn: Callable[[T], Awaitable[R]], concurrency: int,
                      on_result: Callable[[int, R], None] | None = None) -> list[R]:
    """``fn`` over ``items`` with at most ``concurrency`` running; results in input order.

    ``fn`` should return failures as values: one failing item must not cost the others.
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, item: T) -> R:
        async with gate:
            result = await fn(item)
        if on_result:
            on_result(index, result)
        return result

    return list(await asyncio.gather(*(one(i, x) for i, x in enumerate(items))))


def _prepare(items: Sequence[Any], audio_format: str) -> tuple[EncodedAudio, ...]:
    return tuple(a if isinstance(a, EncodedAudio) else _audio.as_source(a).prepare(audio_format)
                 for a in items)


async def plan(items: Sequence[Any], prompt: str, *, settings: Settings, params: Params,
               system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT) -> Plan:
    """Decode and encode the audio and build the request; nothing is sent."""
    clips = await asyncio.to_thread(_prepare, items, audio_format)
    request = ChatRequest(prompt, clips, params, settings.model, system, settings.effective_dialect)
    est = estimate([c.duration_s for c in clips], request.text, params.max_tokens,
                   pricing_for(settings.model))
    return Plan(request, est)


@dataclass(frozen=True)
class BatchPlan:
    """What ``transcribe`` would send: the first request, and the estimate for every file."""

    first: Plan | None
    estimate: Estimate | None
    files: int
    errors: list[str]

    def __str__(self) -> str:
        lines = [f"{self.files} files would be sent"]
        if self.first is not None:
            lines.append(f"first request:\n{self.first.request.preview()}")
        if self.estimate is not None:
            lines.append(f"estimated cost for all {self.files} {self.estimate}")
        lines += [f"will fail: {e}" for e in self.errors]
        return "\n\n".join(lines)


async def plan_batch(items: Sequence[Any], prompt: str, *, settings: Settings, params: Params,
                     audio_format: str = _audio.DEFAULT_FORMAT, concurrency: int = 8) -> BatchPlan:
    """Prepare every file as :func:`transcribe` would, and send nothing."""
    async def one(item: Any) -> Plan | str:
        try:
            (clip,) = await asyncio.to_thread(_prepare, [item], audio_format)
        except AudioError as exc:
            return str(exc)
        return await plan([clip], prompt, settings=settings, params=_bounded(params, clip.duration_s))

    results = await map_bounded(items, one, concurrency)
    plans = [r for r in results if isinstance(r, Plan)]
    total = sum((p.estimate for p in plans[1:]), plans[0].estimate) if plans else None
    return BatchPlan(plans[0] if plans else None, total, len(plans),
                     [r for r in results if isinstance(r, str)])


def _bounded(params: Params, seconds: float) -> Params:
    """Transcripts get a ``max_tokens`` from their duration unless one was given."""
    return params if params.max_tokens else replace(params, max_tokens=transcript_token_bound(seconds))


def check_budget(est: Estimate, max_cost: float | None, what: str = "this call") -> None:
    if max_cost is not None and est.usd > max_cost:
        raise BudgetError(f"{what} could cost up to ${est.usd:.4f}, over the ${max_cost:.4f} limit; "
                          "nothing was sent (raise max_cost, lower max_tokens or shorten the audio)",
                          estimate_usd=est.usd, remaining_usd=max_cost)


def client_for(settings: Settings) -> Client:
    """One client (one connection pool) per settings, on the loop thread."""
    return LOOP.cached(("client", settings), settings.check().client)


async def send(request: ChatRequest, settings: Settings, on_event: EventHandler | None = None) -> Response:
    """Send one request and record it in the session ledger, also when it fails after billing began."""
    try:
        response = await client_for(settings).complete(request, on_event)
    except APIError as exc:
        if exc.generation_id:  # the provider started answering: it may be billed, amount unknown
            ledger.add(LedgerEntry(time.time(), _labels(request), request.model, None, None, None,
                                   request.audio_seconds, "unknown", exc.generation_id))
        raise
    ledger.record(response, label=_labels(request))
    return response


def _labels(request: ChatRequest) -> str:
    return ", ".join(a.label for a in request.audio)


async def ask(items: Sequence[Any], prompt: str, *, settings: Settings, params: Params,
              system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT,
              max_cost: float | None = None, on_event: EventHandler | None = None) -> Response:
    settings.check()  # a missing key fails before minutes of decoding
    p = await plan(items, prompt, settings=settings, params=params, system=system,
                   audio_format=audio_format)
    check_budget(p.estimate, max_cost)
    return await send(p.request, settings, on_event)


async def transcribe(items: Sequence[Any], prompt: str, *, settings: Settings, params: Params,
                     concurrency: int = 8, audio_format: str = _audio.DEFAULT_FORMAT,
                     max_cost: float | None = None,
                     on_result: Callable[[int, dict], None] | None = None) -> list[dict]:
    """One row per item, in order; a failing item fills its ``error`` and costs the others nothing.

    With ``max_cost`` every item is prepared first so the whole batch is estimated before any
    request; otherwise decoding and sending overlap.
    """
    settings.check()

    async def prepare(item: Any) -> dict:
        row: dict[str, Any] = {"source": label(item)}
        try:
            (clip,) = await asyncio.to_thread(_prepare, [item], audio_format)
            row.update(duration_s=clip.duration_s, audio_format=clip.format, audio_sha256=clip.sha256,
                       _clip=clip)
        except AudioError as exc:
            row["error"] = exc.cause
        return row

    async def complete(row: dict) -> dict:
        clip = row.pop("_clip", None)
        if clip is None:
            return row
        request = ChatRequest(prompt, (clip,), _bounded(params, clip.duration_s), settings.model, None,
                              settings.effective_dialect)
        try:
            row.update((await send(request, settings)).to_row())
        except VoxmagicError as exc:
            row["error"] = str(exc)
        return row

    if max_cost is None:
        async def one(item: Any) -> dict:
            return await complete(await prepare(item))
        return await map_bounded(items, one, concurrency, on_result)

    rows = await map_bounded(items, prepare, concurrency)
    pricing = pricing_for(settings.model)
    estimates = [estimate([r["_clip"].duration_s], prompt,
                          _bounded(params, r["_clip"].duration_s).max_tokens, pricing)
                 for r in rows if "_clip" in r]
    if estimates:
        check_budget(sum(estimates[1:], estimates[0]), max_cost, f"this batch of {len(estimates)} files")
    return await map_bounded(rows, complete, concurrency, on_result)


def label(obj: Any) -> str:
    if isinstance(obj, EncodedAudio):
        return obj.label
    try:
        return _audio.as_source(obj).label
    except AudioError as exc:
        return exc.source
