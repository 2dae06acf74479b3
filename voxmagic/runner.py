"""The async work behind every call: prepare audio, check the budget, consult the cache, send,
record the outcome (history) and the cost (ledger).

Runs on voxmagic's background loop (:mod:`voxmagic.loop`). Audio decoding is CPU work and goes
to worker threads so that streams keep flowing while the next file decodes. Batches of files
are in :mod:`voxmagic.batch`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Sequence, TypeVar

from . import audio as _audio
from .audio import EncodedAudio
from .client import TextDelta
from .cost import (CONTEXT_TOKENS, CostLedger, Estimate, LedgerEntry, audio_tokens, estimate,
                   format_usd, pricing_for, transcript_token_bound)
from .errors import (APIError, AudioError, AuthenticationError, BudgetError, ConfigError,
                     InsufficientCreditsError)
from .loop import LOOP
from .requests import ChatRequest, Params
from .results import Response, attach_json
from .settings import Settings
from .prices import ensure_prices
from .storage import Store
from .transcriptions import TranscriptionRequest

if TYPE_CHECKING:
    from .client import Client, EventHandler

T = TypeVar("T")
R = TypeVar("R")

#: Every call of this Python session, with its cost (and an optional session budget).
ledger = CostLedger()
#: Every request ever made, and the cache (a SQLite file; see :mod:`voxmagic.storage`).
store = Store()


@dataclass(frozen=True)
class Caching:
    """``read``: answer from the cache when the same request was answered before;
    ``write``: let later calls find this answer. ``--refresh`` is write-only, ``--no-cache`` neither."""

    read: bool = True
    write: bool = True

    @classmethod
    def of(cls, cache: bool = True, refresh: bool = False) -> Caching:
        return cls(read=cache and not refresh, write=cache or refresh)


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


def prepare(items: Sequence[Any], audio_format: str) -> tuple[EncodedAudio, ...]:
    return tuple(a if isinstance(a, EncodedAudio) else _audio.as_source(a).prepare(audio_format)
                 for a in items)


async def plan(items: Sequence[Any], prompt: str, *, settings: Settings, params: Params,
               system: str | None = None, audio_format: str = _audio.DEFAULT_FORMAT) -> Plan:
    """Decode and encode the audio and build the request; nothing is sent."""
    await ensure_prices(settings)  # today's prices for the estimate (once a day, never fails)
    clips = await asyncio.to_thread(prepare, items, audio_format)
    return planned(ChatRequest(prompt, clips, params, settings.model, system, settings.effective_dialect))


def planned(request: ChatRequest | TranscriptionRequest) -> Plan:
    """The estimate of a request whose audio is ready: its audio counted once, all its text."""
    if isinstance(request, TranscriptionRequest):
        return Plan(request, request.estimate())
    est = estimate([c.duration_s for c in request.audio], request.all_text, request.params.max_tokens,
                   pricing_for(request.model))
    return Plan(request, est)


def bounded(params: Params, seconds: float) -> Params:
    """Transcripts get a ``max_tokens`` from their duration unless one was given."""
    return params if params.max_tokens else replace(params, max_tokens=transcript_token_bound(seconds))


def check_budget(est: Estimate, max_cost: float | None, what: str = "this call") -> None:
    """Refuse before sending when the estimate exceeds ``max_cost`` or the session budget left."""
    if max_cost is not None and est.usd > max_cost:
        raise BudgetError(f"{what} could cost up to {format_usd(est.usd)}, over the "
                          f"{format_usd(max_cost)} limit; nothing was sent (raise max_cost, lower "
                          "max_tokens or shorten the audio)", estimate_usd=est.usd, remaining_usd=max_cost)
    left = ledger.remaining_usd
    if left is not None and est.usd > left:
        raise BudgetError(f"{what} could cost up to {format_usd(est.usd)}, but only {format_usd(left)} "
                          f"of the session budget of {format_usd(ledger.budget_usd)} is left; nothing was "
                          "sent (raise the budget: %config VoxtralMagics.budget = ..., or "
                          "voxmagic.ledger.budget_usd = ...)", estimate_usd=est.usd, remaining_usd=left)


def check_context(request: ChatRequest) -> None:
    """Audio beyond Voxtral's 32K-token context would be refused after a long upload: say so now."""
    if isinstance(request, TranscriptionRequest):
        return  # a speech-to-text endpoint has no chat context to fill
    tokens = sum(audio_tokens(c.duration_s) for c in request.audio)
    if tokens > CONTEXT_TOKENS - 1_000:
        minutes = request.audio_seconds / 60
        raise ConfigError(f"{minutes:.0f} min of audio is more than Voxtral's context holds (about 40 min "
                          "in one request); transcribe it first (%voxtral_transcribe or "
                          "voxmagic.transcribe split long audio) and ask about the text")


def check_before_sending(p: Plan, settings: Settings, max_cost: float | None, caching: Caching) -> None:
    """What must hold before a planned request goes out: it fits the context, and — unless it
    will be answered from the cache at $0 — its estimate fits the budget."""
    check_context(p.request)
    if not (caching.read and store.cached(p.request.cache_key(settings.base_url))):
        check_budget(p.estimate, max_cost)


def client_for(settings: Settings) -> Client:
    """One client (one connection pool) per settings, on the loop thread."""
    return LOOP.cached(("client", settings), settings.check().client)


async def send(request: ChatRequest, settings: Settings, on_event: EventHandler | None = None,
               caching: Caching = Caching()) -> Response:
    """Answer from the cache, or send; either way write history and the ledger before returning."""
    key = request.cache_key(settings.base_url)
    labels = ", ".join(a.label for a in request.audio)
    if caching.read:
        hit = store.cached(key)
        if hit is not None:
            return _from_cache(hit, request, settings, on_event, labels)
    if any(not clip.data for clip in request.audio):
        raise ConfigError("internal: audio known only by its digest is not in the cache; run again")
    try:
        client = client_for(settings)
        if isinstance(request, TranscriptionRequest):
            response = await client.transcribe(request, on_event)
        else:
            response = await client.complete(request, on_event)
    except (APIError, asyncio.CancelledError) as exc:
        _advise(exc, settings)
        store.record(request, settings.base_url, error=exc)
        if getattr(exc, "generation_id", None):  # the provider started: it may bill, amount unknown
            ledger.add(LedgerEntry(time.time(), labels, request.model, None, None, None,
                                   request.audio_seconds, "unknown", exc.generation_id))
        raise
    store.record(request, settings.base_url, response=response, cache_key=key if caching.write else None)
    ledger.record(response, label=labels)
    return response


def _advise(exc: BaseException, settings: Settings) -> None:
    """What to do about a refused key or credits depends on the provider."""
    if isinstance(exc, AuthenticationError):
        exc.advice = f"check the key in {settings.key_env} (or pass api_key=)"
    elif isinstance(exc, InsufficientCreditsError) and settings.provider != "openrouter":
        exc.advice = f"add credits to your {settings.provider} account or lower max_tokens"


def _from_cache(response: Response, request: ChatRequest, settings: Settings,
                on_event: EventHandler | None, labels: str) -> Response:
    response.sources = [a.label for a in request.audio]
    if request.params.wants_json and not response.tool_calls:
        attach_json(response, request.params.response_model)
    if on_event and response.text:
        on_event(TextDelta(response.text))
    store.record(request, settings.base_url, response=response)
    ledger.record(response, label=labels)
    return response


def label(obj: Any) -> str:
    if isinstance(obj, EncodedAudio):
        return obj.label
    try:
        return _audio.as_source(obj).label
    except AudioError as exc:
        return exc.source
