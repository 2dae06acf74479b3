"""HTTP to an OpenAI-compatible ``/chat/completions`` (streaming SSE) and ``/audio/transcriptions``
(multipart), with retries.

Things real clients get wrong and this one doesn't:
- it reads past the ``finish_reason`` chunk to ``data: [DONE]``, because OpenRouter sends usage
  and cost in a final chunk with empty ``choices``;
- yet a stream that ends after ``finish_reason`` without ``[DONE]`` is a whole answer the server
  billed: it is kept, not retried (which would bill it twice);
- a chunk carrying an ``error`` object (a provider failing mid-stream) is an error, not an answer;
- every retry is accounted for (``Response.attempts`` / ``.retries``) and honours ``Retry-After``.

The client reports what the server said; pricing what it did not say is the runner's job.
Errors are mapped in :mod:`voxmagic.http_errors`, streams joined in :mod:`voxmagic.streaming`.
"""

from __future__ import annotations

import functools
import json
import random
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import httpx
import httpx_sse

from .errors import APIConnectionError, APIError, RateLimitError
from .http_errors import raise_for_status, translated
from .providers import TRANSCRIPTIONS_ENDPOINT
from .redact import Redactor
from .results import Response, Usage, attach_json
from .streaming import Accumulator, EventHandler, Retrying, Sent, TextDelta

if TYPE_CHECKING:
    from .chat import ChatRequest
    from .settings import Settings
    from .transcriptions import TranscriptionRequest

MAX_RETRY_AFTER_S = 60.0
MAX_BACKOFF_S = 30.0


@functools.cache
def tls_context() -> ssl.SSLContext:
    """httpx's TLS set-up (certifi's CA bundle, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), built once:
    loading the bundle took 50–90 ms of every new client's creation, the first request's included;
    ``%load_ext`` now builds it in the background (voxmagic/warmup.py)."""
    return httpx.create_ssl_context()


def ready_to_connect() -> None:
    """What a first connection needs beyond httpx's modules, made ready by ``%load_ext``'s warm-up
    (voxmagic/warmup.py): the TLS context, and anyio's asyncio backend, which httpcore imports
    only as it opens its first connection (~50 ms that a fresh kernel's first request waited)."""
    import anyio  # httpx's own dependency

    tls_context()
    anyio.run(anyio.sleep, 0)


class Client:
    """Async client for one :class:`~voxmagic.settings.Settings`; owns an ``httpx.AsyncClient``
    (so one event loop). ``settings.transport`` replaces the network (``httpx.MockTransport``)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.dialect = settings.effective_dialect
        self.redactor = Redactor.for_key(settings.api_key)
        headers = {"User-Agent": "voxmagic"}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key}"
        if settings.referer:
            headers["HTTP-Referer"] = settings.referer
        if settings.title:
            headers["X-Title"] = settings.title
        self._http = httpx.AsyncClient(
            headers=headers,
            verify=tls_context(),
            transport=settings.transport,
            timeout=httpx.Timeout(settings.timeout, read=settings.read_timeout, pool=None),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        )

    def __repr__(self) -> str:  # never shows the key
        return f"Client(base_url={self.base_url!r}, dialect={self.dialect!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def complete(self, request: ChatRequest, on_event: EventHandler | None = None) -> Response:
        """Send ``request``, retrying transient failures; raises an :class:`APIError` subclass."""
        started = time.monotonic()
        return await self._retrying(lambda: self._send_once(request, on_event, started), on_event)

    async def transcription(self, request: TranscriptionRequest, on_event: EventHandler | None = None) -> Response:
        """Send one clip to ``{base_url}/audio/transcriptions`` (multipart), with the same retries,
        Retry-After and typed errors as :meth:`complete`. Nothing streams: ``on_event`` gets
        :class:`Sent` as each attempt's request has left, :class:`Retrying` between attempts, and
        one :class:`TextDelta` with the whole text at the end."""
        started = time.monotonic()
        response = await self._retrying(lambda: self._transcription_once(request, started, on_event), on_event)
        if on_event and response.text:
            on_event(TextDelta(response.text))
        return response

    async def _retrying(self, attempt: Callable[[], Awaitable[Response]], on_event: EventHandler | None) -> Response:
        """Run ``attempt`` until it succeeds, a failure is not retryable, or the retries run out;
        the response (or the error) tells how many attempts it took and how long it waited."""
        started = time.monotonic()
        try:  # most requests succeed at once: tenacity's machinery (~0.3 ms) only after a failure
            response = await attempt()
        except APIError as exc:
            if not exc.retryable:
                exc.attempts, exc.waited_s = 1, time.monotonic() - started
                raise
            failure = exc
        else:
            response.attempts, response.retries = 1, []
            return response
        return await self._retried(attempt, failure, on_event, started)

    async def _retried(
        self,
        attempt: Callable[[], Awaitable[Response]],
        failure: APIError,
        on_event: EventHandler | None,
        started: float,
    ) -> Response:
        """:meth:`_retrying` after a first, retryable ``failure``: tenacity sees it as its first
        attempt (so the backoff, the stop rule and the events treat it as any other)."""
        from tenacity import AsyncRetrying, retry_if_exception  # only now: a first request skips its ~10 ms

        first = [failure]

        async def replayed() -> Response:
            if first:
                raise first.pop()
            return await attempt()

        retries: list[tuple[str, float]] = []

        def before_sleep(state: Any) -> None:
            exc = state.outcome.exception()
            wait = state.next_action.sleep
            retries.append((type(exc).__name__ + (f" {exc.status}" if exc.status else ""), wait))
            if on_event:
                on_event(Retrying(state.attempt_number, exc, wait))

        failures = 0  # attempts that failed for a reason other than a rate limit

        def stop(state: Any) -> bool:
            """429s are waited out for up to ``rate_limit_patience`` seconds (a batch slowing down
            is not failing); every other failure counts towards ``max_attempts``."""
            nonlocal failures
            exc = state.outcome.exception()
            if isinstance(exc, RateLimitError):  # a wait the server asks for that outlasts the patience is not begun
                asked, patience = min(exc.retry_after or 0.0, MAX_RETRY_AFTER_S), self.settings.rate_limit_patience
                if asked >= patience:
                    exc.advice = f"the server asked to wait {asked:g} s, over the {patience:g} s of rate_limit_patience"
                return time.monotonic() - started + asked >= patience
            failures += 1
            return failures >= self.settings.max_attempts

        retrying = AsyncRetrying(
            stop=stop,
            wait=self._wait,
            reraise=True,
            before_sleep=before_sleep,
            retry=retry_if_exception(lambda e: isinstance(e, APIError) and e.retryable),
        )
        try:
            async for attempt_state in retrying:
                with attempt_state:
                    response = await replayed()
        except APIError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            exc.waited_s = time.monotonic() - started
            raise
        response.attempts = retrying.statistics.get("attempt_number", 1)
        response.retries = retries
        return response

    def _wait(self, state: Any) -> float:
        """Exponential backoff with jitter, unless the server said how long (Retry-After).

        Retry-After is honoured as a minimum plus up to half again, so requests refused together
        do not all come back in the same instant and get refused together again.
        """
        exc = state.outcome.exception()
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return float(min(retry_after * (1 + random.random() / 2), MAX_RETRY_AFTER_S))
        return float(self._backoff(state))

    @functools.cached_property
    def _backoff(self) -> Any:
        """Exponential backoff with jitter of the same scale: 1×, 2×, 4× ... backoff, + up to 1×."""
        from tenacity import wait_exponential, wait_random

        return wait_exponential(multiplier=self.settings.backoff, max=MAX_BACKOFF_S) + wait_random(
            0, self.settings.backoff
        )

    async def _send_once(self, request: ChatRequest, on_event: EventHandler | None, started: float) -> Response:
        body = request.body()
        body["stream"] = request.params.stream
        url = f"{self.base_url}/chat/completions"
        acc = Accumulator(on_event, self.redactor)
        extensions = _sent_trace(on_event)
        with translated(acc, url):
            if request.params.stream:
                await self._stream(url, body, acc, extensions)
            else:
                resp = await self._http.post(url, json=body, extensions=extensions)
                await raise_for_status(resp, self.redactor)
                acc.add_message(self._json(resp.text))
        acc.finish()
        return self._chat_response(request, acc, started)

    async def _stream(self, url: str, body: dict, acc: Accumulator, extensions: dict[str, Any]) -> None:
        async with httpx_sse.aconnect_sse(self._http, "POST", url, json=body, extensions=extensions) as source:
            await raise_for_status(source.response, self.redactor)
            if "text/event-stream" not in source.response.headers.get("content-type", ""):
                acc.add_message(self._json((await source.response.aread()).decode("utf-8", "replace")))
                return
            async for sse in source.aiter_sse():
                if sse.data.strip() == "[DONE]":
                    acc.done = True
                    return
                if sse.data.strip():
                    acc.add_chunk(self._json(sse.data))
        if not acc.complete:
            raise APIConnectionError("the stream ended before the answer did; it may be incomplete")

    def _json(self, text: str) -> Any:
        """Every body is redacted before it is parsed: nothing read from it can carry the key."""
        return json.loads(self.redactor.text(text))

    @staticmethod
    def _chat_response(request: ChatRequest, acc: Accumulator, started: float) -> Response:
        usage = Usage.from_api(acc.usage)
        response = Response(
            text=acc.text,
            model=acc.model or request.model,
            finish_reason=acc.finish_reason,
            usage=usage,
            cost_usd=usage.cost,
            cost_source="reported" if usage.cost is not None else "unknown",
            audio_seconds=request.audio_seconds,
            latency_s=time.monotonic() - started,
            ttft_s=None if acc.first_token_at is None else acc.first_token_at - started,
            generation_id=acc.id,
            provider=acc.provider,
            tool_calls=acc.tool_calls(),
            sources=[a.label for a in request.audio],
        )
        if request.params.wants_json and not response.tool_calls:
            attach_json(response, request.params.response_model)
        return response

    async def _transcription_once(
        self, request: TranscriptionRequest, started: float, on_event: EventHandler | None = None
    ) -> Response:
        url = f"{self.base_url}/{TRANSCRIPTIONS_ENDPOINT}"
        data: dict[str, list[str]] = {}
        for name, value in request.form_fields():  # a list value is sent as one field per value
            data.setdefault(name, []).append(value)
        with translated(Accumulator(None, self.redactor), url):
            files = {"file": request.upload()}  # Sent once written: a dropped answer then may be billed
            resp = await self._http.post(url, data=data, files=files, extensions=_sent_trace(on_event))
            await raise_for_status(resp, self.redactor)
            payload = self._json(resp.text)
            if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
                raise ValueError(f"no transcript text in the answer: {str(payload)[:120]}")
            try:
                segments = [_segment(s) for s in payload.get("segments") or []]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"a segment lacks start, end or text ({exc!r})") from exc
        return _transcription_response(request, payload, segments, started)


def _segment(piece: dict) -> dict:
    """A timed piece of a transcript; ``speaker`` is Mistral's ``speaker_id`` when it diarized."""
    speaker = piece.get("speaker_id")
    segment = {"start_s": float(piece["start"]), "end_s": float(piece["end"]), "text": str(piece["text"]).strip()}
    return {**segment, "speaker": str(speaker)} if speaker not in (None, "") else segment


def _transcription_response(
    request: TranscriptionRequest, payload: dict, segments: list[dict], started: float
) -> Response:
    """Mistral's usage has ``prompt_audio_seconds`` (and tokens); vLLM's json answer has
    ``usage: {type: "duration", seconds}``; vLLM's verbose_json has none (see Usage.from_api)."""
    usage = Usage.from_api(payload.get("usage") if isinstance(payload.get("usage"), dict) else {})
    return Response(
        text=payload["text"].strip(),
        model=payload.get("model") or request.model,
        finish_reason="stop",
        usage=usage,
        cost_usd=usage.cost,
        cost_source="reported" if usage.cost is not None else "unknown",
        audio_seconds=request.clip.duration_s,
        latency_s=time.monotonic() - started,
        generation_id=payload.get("id"),
        sources=[request.clip.label],
        segments=segments,
    )


def _sent_trace(on_event: EventHandler | None) -> dict[str, Any]:
    """httpx request extensions that tell ``on_event`` when the request body has been written
    (httpcore's ``trace`` hook: ``http11.send_request_body.complete``, or ``http2.``); none
    without a handler, or through a transport that does not trace (a mock)."""
    if on_event is None:
        return {}

    async def trace(name: str, info: dict[str, Any]) -> None:
        if name.endswith("send_request_body.complete"):
            on_event(Sent())

    return {"trace": trace}
