"""The async work behind every call: prepare audio, check context and budget, consult the cache,
send, price what the server did not, record the outcome (history) and the cost (ledger).

Runs on voxmagic's background loop (:mod:`voxmagic.loop`). Audio decoding is CPU work and goes
to worker threads, and SQLite to a thread of its own (:func:`in_store`), so streams keep flowing
while the next file decodes or the history file waits on a lock. Batches are in
:mod:`voxmagic.batch`, conversations in :mod:`voxmagic.conversation`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import audio as _audio
from .as_is import MP3_ONLY, unchanged_formats
from .audio import EncodedAudio
from .chat import ChatRequest, Params
from .client import Client
from .cost import (
    ASK_THE_TEXT,
    CostLedger,
    Estimate,
    LedgerEntry,
    audio_tokens,
    check_length,
    estimate,
    format_usd,
    pricing_for,
    text_tokens,
    transcript_token_bound,
)
from .errors import APIError, AudioError, AuthenticationError, BudgetError, CacheGone, InsufficientCreditsError
from .loop import LOOP
from .prices import ensure_prices
from .providers import transcription_price
from .results import Response, attach_json
from .storage import Store
from .streaming import Retrying, Sent, TextDelta
from .transcriptions import TranscriptionRequest

if TYPE_CHECKING:
    from .settings import Settings
    from .streaming import Event, EventHandler

T = TypeVar("T")
R = TypeVar("R")
Request = ChatRequest | TranscriptionRequest

#: Every call of this Python session, with its cost (and an optional session budget).
ledger = CostLedger()
#: Every request ever made, and the cache (a SQLite file; see :mod:`voxmagic.storage`).
store = Store()
# SQLite runs here, never on the loop: a write waiting on another process's lock stalls no stream.
_STORE_THREAD = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="voxmagic-store")


async def in_store(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the store's own thread (writes stay in order)."""
    call = functools.partial(fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(_STORE_THREAD, call)


@dataclass(frozen=True)
class Caching:
    """``read``: answer from the cache when the same request was answered before;
    ``write``: let later calls find this answer. ``--refresh`` is write-only, ``--no-cache`` neither."""

    read: bool = True
    write: bool = True

    @classmethod
    def of(cls, cache: bool = True, refresh: bool = False) -> Caching:
        return cls(read=cache and not refresh, write=cache or refresh)


Q = TypeVar("Q", bound="ChatRequest | TranscriptionRequest")


@dataclass(frozen=True)
class Plan(Generic[Q]):
    """A request ready to send, and what it may cost; its text form is what ``--dry-run`` shows."""

    request: Q
    estimate: Estimate

    def __str__(self) -> str:
        return f"{self.request.preview()}\n\nestimated cost {self.estimate}"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))


async def map_bounded(
    items: Iterable[T],
    fn: Callable[[T], Awaitable[R]],
    concurrency: int,
    on_result: Callable[[int, R], None] | None = None,
    on_start: Callable[[int], None] | None = None,
) -> list[R]:
    """``fn`` over ``items`` with at most ``concurrency`` running; results in input order;
    ``on_start(index)`` as an item begins, ``on_result(index, result)`` as it ends.

    ``fn`` should return failures as values: one failing item must not cost the others. If one
    raises anyway (or the caller is cancelled), the rest are cancelled and awaited before this
    returns, so nothing is sent after the call has ended.
    """
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(index: int, item: T) -> R:
        async with gate:
            if on_start:
                on_start(index)
            result = await fn(item)
        if on_result:
            on_result(index, result)
        return result

    tasks = [asyncio.ensure_future(one(i, x)) for i, x in enumerate(items)]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def prepared_sources(items: Sequence[Any], download_timeout: float) -> list[Any]:
    """URL sources downloaded here, on the loop (bounded, and closed at once when cancelled), so
    worker threads only ever decode from memory or disk."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, EncodedAudio):
            out.append(item)
        else:
            out.append(await _audio.fetched(_audio.as_source(item), timeout_s=download_timeout))
    return out


def _durations(sources: Sequence[Any]) -> list[float | None]:
    """What the containers' headers say (None: they don't), without decoding."""
    return [s.duration_s if isinstance(s, EncodedAudio) else s.probe_duration() for s in sources]


def prepare(items: Sequence[Any], audio_format: str, accepted: tuple[str, ...] = MP3_ONLY) -> tuple[EncodedAudio, ...]:
    return tuple(
        a if isinstance(a, EncodedAudio) else _audio.as_source(a).prepare(audio_format, accepted) for a in items
    )


async def plan(
    items: Sequence[Any],
    prompt: str,
    *,
    settings: Settings,
    params: Params,
    system: str | None = None,
    audio_format: str = _audio.DEFAULT_FORMAT,
) -> Plan[ChatRequest]:
    """Decode and encode the audio and build the request; nothing is sent. Audio too long for one
    request is refused from the containers' headers, before anything is decoded."""
    # today's prices for the estimate (once a day, never fails), fetched while the audio is prepared:
    # the first call of a day waited ~0.25 s for them before decoding
    prices = asyncio.ensure_future(ensure_prices(settings))
    try:
        sources = await prepared_sources(items, settings.download_timeout)
        check_length(await asyncio.to_thread(_durations, sources))
        clips = await asyncio.to_thread(prepare, sources, audio_format, unchanged_formats(settings.effective_dialect))
        await prices
    finally:
        prices.cancel()  # after a failure above (the shared fetch itself goes on)
    return planned(ChatRequest(prompt, clips, params, settings.model, system, settings.effective_dialect))


def planned(request: Q) -> Plan[Q]:
    """The estimate of a request whose audio is ready: its audio counted once, all its text."""
    if isinstance(request, TranscriptionRequest):
        return Plan(request, request.estimate())
    est = estimate(
        [c.duration_s for c in request.audio], request.all_text, request.params.max_tokens, pricing_for(request.model)
    )
    return Plan(request, est)


def bounded(params: Params, seconds: float) -> Params:
    """Transcripts get a ``max_tokens`` from their duration unless one was given."""
    return params if params.max_tokens else replace(params, max_tokens=transcript_token_bound(seconds))


def check_budget(est: Estimate, max_cost: float | None, what: str = "this call") -> None:
    """Refuse before sending when the estimate exceeds ``max_cost`` or the session budget left."""
    if max_cost is not None and est.usd > max_cost:
        raise BudgetError(
            f"{what} could cost up to {format_usd(est.usd)}, over the "
            f"{format_usd(max_cost)} limit; nothing was sent (raise max_cost, lower "
            "max_tokens or shorten the audio)",
            estimate_usd=est.usd,
            remaining_usd=max_cost,
        )
    left = ledger.remaining_usd
    if left is not None and est.usd > left:
        raise BudgetError(
            f"{what} could cost up to {format_usd(est.usd)}, but only {format_usd(left)} "
            f"of the session budget of {format_usd(ledger.budget_usd)} is left; nothing was "
            "sent (raise the budget: %config VoxtralMagics.budget = ..., or "
            "voxmagic.ledger.budget_usd = ...)",
            estimate_usd=est.usd,
            remaining_usd=left,
        )


def check_context(request: Request, advice: str = ASK_THE_TEXT) -> None:
    if isinstance(request, ChatRequest):  # a speech-to-text endpoint has no chat context to fill
        check_length([c.duration_s for c in request.audio], advice)


async def check_before_sending(p: Plan[Any], settings: Settings, max_cost: float | None, caching: Caching) -> None:
    """What must hold before a planned request goes out: it fits the context, and — unless it
    will be answered from the cache at $0 — its estimate fits the budget."""
    check_context(p.request)
    if not await answered_before(p.request, settings, caching):
        check_budget(p.estimate, max_cost)


async def answered_before(request: Request, settings: Settings, caching: Caching) -> bool:
    """Whether the cache would answer ``request`` at $0 instead of its being sent."""
    return caching.read and await in_store(store.cached, request.cache_key(settings.base_url)) is not None


def client_for(settings: Settings) -> Client:
    """One client (one connection pool) per settings, on the loop thread."""
    return LOOP.cached(("client", settings), lambda: Client(settings.check()))


async def send(
    request: Request, settings: Settings, on_event: EventHandler | None = None, caching: Caching = Caching()
) -> Response:
    """Answer from the cache, or send; either way write history and the ledger before returning."""
    key = request.cache_key(settings.base_url)
    labels = ", ".join(a.label for a in request.audio)
    if caching.read:
        hit = await in_store(store.cached, key)
        if hit is not None:
            return await _from_cache(hit, request, settings, on_event, labels)
    if any(not clip.data for clip in request.audio):
        raise CacheGone("audio known only by its digest is no longer in the cache; run again")
    attempts = _Attempts(request, settings, labels, on_event)
    try:
        client = client_for(settings)
        if isinstance(request, TranscriptionRequest):
            response = await client.transcription(request, attempts.on_event)
        else:
            response = await client.complete(request, attempts.on_event)
    except (APIError, asyncio.CancelledError) as exc:
        advise(exc, settings)
        await asyncio.shield(attempts.failed(exc))
        raise
    priced(response, request)
    await attempts.answered(response, key if caching.write else None)
    return response


@dataclass
class _Attempts:
    """What one request's attempts leave behind: a history row and a ledger entry for the answer
    or the failure, and one for every retried attempt the server had started on (it may bill it)."""

    request: Request
    settings: Settings
    labels: str
    forward: EventHandler | None
    abandoned: list[APIError] | None = None
    streamed: list[str] = field(default_factory=list)  # this attempt's text so far
    sent: bool = False  # a request body has reached the server: a stop now may still be billed

    def on_event(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.streamed.append(event.text)
        elif isinstance(event, Sent):
            self.sent = True
        elif isinstance(event, Retrying):  # the attempt that failed had reached the server: it may bill
            if (event.error.generation_id or self.sent) and not event.error.refused:  # a 429/503 started nothing
                self.abandoned = [*(self.abandoned or []), event.error]
            self.streamed.clear()
            self.sent = False
        if self.forward:
            self.forward(event)

    async def _abandoned(self) -> None:
        for exc in self.abandoned or []:
            await in_store(store.record, self.request, self.settings.base_url, error=exc, abandoned=True)
            self._ledger(exc, "abandoned")

    async def failed(self, exc: BaseException) -> None:
        await self._abandoned()
        partial = getattr(exc, "partial_text", None) or "".join(self.streamed)  # a stop has none of its own
        await in_store(store.record, self.request, self.settings.base_url, error=exc, text=partial or None)
        if getattr(exc, "refused", False) or getattr(exc, "generation_id", None):  # a call the provider saw
            self._ledger(exc, "failed")
        elif isinstance(exc, asyncio.CancelledError) and (self.sent or self.streamed):  # stopped: it may bill
            self._ledger(exc, "cancelled")

    async def answered(self, response: Response, cache_key: str | None) -> None:
        await self._abandoned()
        await in_store(store.record, self.request, self.settings.base_url, response=response, cache_key=cache_key)
        ledger.record(response, label=self.labels)

    def _ledger(self, exc: BaseException, outcome: str) -> None:
        """A refused call (an error status before it began) costs nothing; one the provider began
        may be billed, for an amount it did not say unless it reported usage before failing."""
        refused = getattr(exc, "refused", False)
        cost = 0.0 if refused else getattr(exc, "cost_usd", None)
        source = "refused" if refused else "reported" if cost is not None else "unknown"
        entry = (self.labels, self.request.model, cost, None, None, self.request.audio_seconds, source)
        ledger.add(LedgerEntry(time.time(), *entry, getattr(exc, "generation_id", None), outcome))


def priced(response: Response, request: Request) -> Response:
    """The cost the server did not report, estimated from the price table: billed seconds on a
    transcriptions endpoint (unknown for a model without a price, such as a self-hosted one);
    on chat, tokens and audio seconds — counted from the request and the answer when the server
    sent no usage at all (a stream that ended before its usage chunk)."""
    if response.cost_usd is not None:
        return response
    usage = response.usage
    if isinstance(request, TranscriptionRequest):
        price = transcription_price(request.model)
        if price is not None:
            response.cost_usd = price * (usage.audio_seconds or request.clip.duration_s)
            response.cost_source = "estimated"
        return response
    counted = sum(audio_tokens(a.duration_s) for a in request.audio)
    prompt = usage.prompt_tokens if usage.prompt_tokens is not None else counted + text_tokens(request.all_text)
    completion = usage.completion_tokens
    if completion is None:
        completion = text_tokens(response.text) + sum(text_tokens(c.arguments) for c in response.tool_calls)
    a_tokens = usage.audio_tokens if usage.audio_tokens is not None else min(prompt, counted)
    response.cost_usd = pricing_for(request.model).cost(
        prompt, completion, request.audio_seconds, audio_tokens=a_tokens
    )
    response.cost_source = "estimated"
    return response


def advise(exc: BaseException, settings: Settings) -> None:
    """What to do about a refused key or credits depends on the provider."""
    if isinstance(exc, AuthenticationError) and not settings.api_key:  # an address read as openai-compatible
        exc.advice = f"no key was sent: set {settings.key_env}, or name with --provider the provider whose key is set"
    elif isinstance(exc, AuthenticationError):
        where = "given as api_key=" if settings.key_given else f"in {settings.key_env}, or pass api_key="
        exc.advice = f"check the key {where}"
    elif isinstance(exc, InsufficientCreditsError) and settings.provider != "openrouter":
        exc.advice = f"add credits to your {settings.provider} account or lower max_tokens"


async def _from_cache(
    response: Response, request: Request, settings: Settings, on_event: EventHandler | None, labels: str
) -> Response:
    response.sources = [a.label for a in request.audio]
    if request.params.wants_json and not response.tool_calls:
        attach_json(response, request.params.response_model)
    if on_event and response.text:
        on_event(TextDelta(response.text))
    await in_store(store.record, request, settings.base_url, response=response)
    ledger.record(response, label=labels)
    return response


def label(obj: Any) -> str:
    if isinstance(obj, EncodedAudio):
        return obj.label
    try:
        return _audio.as_source(obj).label
    except AudioError as exc:
        return exc.source
