"""HTTP to an OpenAI-compatible ``/chat/completions`` (streaming SSE) and ``/audio/transcriptions``
(multipart): errors, retries.

Three things real clients get wrong and this one doesn't:
- it reads past the ``finish_reason`` chunk to ``data: [DONE]``, because OpenRouter sends usage
  and cost in a final chunk with empty ``choices``;
- a chunk carrying an ``error`` object (a provider failing mid-stream) is an error, not an answer;
- every retry is accounted for (``Response.attempts`` / ``.retries``) and honours ``Retry-After``.

httpx exceptions are translated to :mod:`voxmagic.errors` in one place (``_translated``).
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator

import httpx
import httpx_sse
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential, wait_random

from .cost import audio_tokens, pricing_for
from .errors import (APIConnectionError, APIError, APITimeoutError, RateLimitError, ServerError,
                     error_for_status)
from .requests import ChatRequest
from .results import Response, ToolCall, Usage, attach_json
from .transcriptions import ENDPOINT as TRANSCRIPTIONS, TranscriptionRequest, transcription_price

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed answer text."""

    text: str


@dataclass(frozen=True)
class Retrying:
    """The previous attempt failed and another follows after ``wait_s``; discard partial text."""

    attempt: int
    error: APIError
    wait_s: float


Event = TextDelta | Retrying
EventHandler = Callable[[Event], None]


def dialect_for(base_url: str) -> str:
    """Guess the server's dialect from its URL: OpenRouter, Mistral's API, or plain OpenAI-style."""
    if "openrouter.ai" in base_url or base_url.rstrip("/").endswith("/api/v1"):
        return "openrouter"
    if "api.mistral.ai" in base_url:
        return "mistral"
    return "openai"


class Client:
    """Async client bound to one base URL and key; owns an ``httpx.AsyncClient`` (one event loop)."""

    def __init__(self, api_key: str | None = None, *, base_url: str = DEFAULT_BASE_URL,
                 dialect: str | None = None, referer: str | None = None, title: str | None = "voxmagic",
                 timeout: float = 30.0, read_timeout: float = 180.0, max_attempts: int = 4,
                 backoff: float = 1.0, max_backoff: float = 30.0, rate_limit_patience: float = 120.0,
                 transport: httpx.AsyncBaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.dialect = dialect or dialect_for(self.base_url)
        self.max_attempts = max(1, max_attempts)
        self.rate_limit_patience = rate_limit_patience
        # exponential backoff with jitter of the same scale: 1×, 2×, 4× ... backoff, + up to 1×
        self._backoff = wait_exponential(multiplier=backoff, max=max_backoff) + wait_random(0, backoff)
        headers = {"User-Agent": "voxmagic"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        if referer:
            headers["HTTP-Referer"] = referer
        if title:
            headers["X-Title"] = title
        self._http = httpx.AsyncClient(
            headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout, read=read_timeout, pool=None),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32))

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

    async def transcribe(self, request: TranscriptionRequest, on_event: EventHandler | None = None
                         ) -> Response:
        """Send one clip to ``{base_url}/audio/transcriptions`` (multipart), with the same retries,
        Retry-After and typed errors as :meth:`complete`. Nothing streams: ``on_event`` gets one
        :class:`TextDelta` with the whole text at the end (and :class:`Retrying` between attempts)."""
        started = time.monotonic()
        response = await self._retrying(lambda: self._transcribe_once(request, started), on_event)
        if on_event and response.text:
            on_event(TextDelta(response.text))
        return response

    async def _retrying(self, attempt: Callable[[], Awaitable[Response]],
                        on_event: EventHandler | None) -> Response:
        """Run ``attempt`` until it succeeds, a failure is not retryable, or the retries run out;
        the response (or the error) tells how many attempts it took."""
        retries: list[tuple[str, float]] = []

        def before_sleep(state) -> None:
            exc = state.outcome.exception()
            wait = state.next_action.sleep
            retries.append((type(exc).__name__ + (f" {exc.status}" if exc.status else ""), wait))
            if on_event:
                on_event(Retrying(state.attempt_number, exc, wait))

        failures = 0  # attempts that failed for a reason other than a rate limit

        def stop(state) -> bool:
            """429s are waited out for up to ``rate_limit_patience`` seconds (a batch slowing down
            is not failing); every other failure counts towards ``max_attempts``."""
            nonlocal failures
            if isinstance(state.outcome.exception(), RateLimitError):
                return state.seconds_since_start >= self.rate_limit_patience
            failures += 1
            return failures >= self.max_attempts

        retrying = AsyncRetrying(
            stop=stop, wait=self._wait, reraise=True, before_sleep=before_sleep,
            retry=retry_if_exception(lambda e: isinstance(e, APIError) and e.retryable))
        try:
            async for attempt_state in retrying:
                with attempt_state:
                    response = await attempt()
        except APIError as exc:
            exc.attempts = retrying.statistics.get("attempt_number", 1)
            raise
        response.attempts = retrying.statistics.get("attempt_number", 1)
        response.retries = retries
        return response

    def _wait(self, state) -> float:
        """Exponential backoff with jitter, unless the server said how long (Retry-After).

        Retry-After is honoured as a minimum plus up to half again, so requests refused together
        do not all come back in the same instant and get refused together again.
        """
        exc = state.outcome.exception()
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after * (1 + random.random() / 2), MAX_RETRY_AFTER_S)
        return self._backoff(state)

    async def _send_once(self, request: ChatRequest, on_event: EventHandler | None,
                         started: float) -> Response:
        body = request.body()
        body["stream"] = request.params.stream
        url = f"{self.base_url}/chat/completions"
        acc = _Accumulator(on_event, started)
        with _translated(acc, url):
            if request.params.stream:
                async with httpx_sse.aconnect_sse(self._http, "POST", url, json=body) as source:
                    await _raise_for_status(source.response)
                    if "text/event-stream" not in source.response.headers.get("content-type", ""):
                        acc.add_message(json.loads(await source.response.aread()))
                    else:
                        async for sse in source.aiter_sse():
                            if sse.data.strip() == "[DONE]":
                                acc.done = True
                                break
                            if sse.data.strip():
                                acc.add_chunk(json.loads(sse.data))
                        if not acc.done:
                            raise APIConnectionError("the stream ended before [DONE]; the answer may be "
                                                     "incomplete")
            else:
                resp = await self._http.post(url, json=body)
                await _raise_for_status(resp)
                acc.add_message(resp.json())
        return self._response(request, acc, started)

    def _response(self, request: ChatRequest, acc: _Accumulator, started: float) -> Response:
        usage = Usage.from_api(acc.usage)
        seconds = request.audio_seconds
        if usage.cost is not None:
            cost, source = usage.cost, "reported"
        elif usage.prompt_tokens is not None and usage.completion_tokens is not None:
            a_tokens = usage.audio_tokens
            if a_tokens is None:
                a_tokens = min(usage.prompt_tokens, sum(audio_tokens(a.duration_s) for a in request.audio))
            cost = pricing_for(request.model).cost(usage.prompt_tokens, usage.completion_tokens,
                                                   seconds, audio_tokens=a_tokens)
            source = "estimated"
        else:
            cost, source = None, "unknown"
        response = Response(
            text=acc.text, model=acc.model or request.model, finish_reason=acc.finish_reason,
            usage=usage, cost_usd=cost, cost_source=source, audio_seconds=seconds,
            latency_s=time.monotonic() - started,
            ttft_s=None if acc.first_token_at is None else acc.first_token_at - started,
            generation_id=acc.id, provider=acc.provider, tool_calls=acc.tool_calls(),
            sources=[a.label for a in request.audio])
        if request.params.wants_json and not response.tool_calls:
            attach_json(response, request.params.response_model)
        return response

    async def _transcribe_once(self, request: TranscriptionRequest, started: float) -> Response:
        url = f"{self.base_url}/{TRANSCRIPTIONS}"
        data: dict[str, list[str]] = {}
        for name, value in request.form_fields():  # a list value is sent as one field per value
            data.setdefault(name, []).append(value)
        with _translated(_Accumulator(None, started), url):
            resp = await self._http.post(url, data=data, files={"file": request.upload()})
            await _raise_for_status(resp)
            payload = resp.json()
            if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
                raise ValueError(f"no transcript text in the answer: {str(payload)[:120]}")
            try:
                segments = [{"start_s": float(s["start"]), "end_s": float(s["end"]), "text": str(s["text"]).strip()}
                            for s in payload.get("segments") or []]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"a segment lacks start, end or text ({exc!r})") from exc
        return self._transcription_response(request, payload, segments, started)

    @staticmethod
    def _transcription_response(request: TranscriptionRequest, payload: dict, segments: list[dict],
                                started: float) -> Response:
        """Mistral's usage has ``prompt_audio_seconds`` (and tokens); vLLM's json answer has
        ``usage: {type: "duration", seconds}``; vLLM's verbose_json has none. The endpoint bills
        audio seconds: the cost is estimated from the price table and the seconds the server
        reports, else the clip's duration."""
        raw = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        usage = Usage.from_api(raw)
        reported = raw.get("prompt_audio_seconds")
        if reported is None and raw.get("type") == "duration":
            reported = raw.get("seconds")
        seconds = request.clip.duration_s
        if isinstance(reported, (int, float)) and not isinstance(reported, bool) and reported > 0:
            seconds = float(reported)
        price = transcription_price(request.model)
        cost, source = (price * seconds, "estimated") if price is not None else (None, "unknown")
        return Response(
            text=payload["text"].strip(), model=payload.get("model") or request.model, finish_reason="stop",
            usage=usage, cost_usd=cost, cost_source=source, audio_seconds=request.clip.duration_s,
            latency_s=time.monotonic() - started, generation_id=payload.get("id"),
            sources=[request.clip.label], segments=segments)


@dataclass
class _Accumulator:
    """Joins a stream (or a whole message) into one answer, notifying ``on_event`` per delta."""

    on_event: EventHandler | None
    started: float
    parts: list[str] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict | None = None
    id: str | None = None
    model: str | None = None
    provider: str | None = None
    first_token_at: float | None = None
    done: bool = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def _meta(self, payload: dict) -> None:
        self.id = payload.get("id") or self.id
        self.model = payload.get("model") or self.model
        self.provider = payload.get("provider") or self.provider
        if payload.get("usage"):
            self.usage = payload["usage"]

    def add_chunk(self, chunk: dict) -> None:
        self._meta(chunk)
        if chunk.get("error"):
            raise _payload_error(chunk["error"], partial_text=self.text, generation_id=self.id)
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._text(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self.calls.setdefault(call.get("index", 0), {"id": "", "name": "", "arguments": ""})
                fn = call.get("function") or {}
                slot["id"] = call.get("id") or slot["id"]
                slot["name"] = fn.get("name") or slot["name"]
                slot["arguments"] += fn.get("arguments") or ""
            if choice.get("finish_reason") == "error":
                raise _payload_error(choice.get("error") or {"message": "the provider reported an error"},
                                     partial_text=self.text, generation_id=self.id)
            self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def add_message(self, payload: dict) -> None:
        """A non-streaming reply; a 200 can still carry ``finish_reason: "error"``."""
        self._meta(payload)
        if payload.get("error"):
            raise _payload_error(payload["error"], generation_id=self.id)
        choices = payload.get("choices") or [{}]
        message = choices[0].get("message") or {}
        if message.get("content"):
            self._text(message["content"])
        for i, call in enumerate(message.get("tool_calls") or []):
            fn = call.get("function") or {}
            self.calls[i] = {"id": call.get("id", ""), "name": fn.get("name", ""),
                             "arguments": fn.get("arguments") or ""}
        self.finish_reason = choices[0].get("finish_reason")
        if self.finish_reason == "error":
            raise _payload_error(choices[0].get("error") or {"message": "the provider reported an error"},
                                 partial_text=self.text, generation_id=self.id)
        self.done = True

    def _text(self, text: str) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.parts.append(text)
        if self.on_event:
            self.on_event(TextDelta(text))

    def tool_calls(self) -> list[ToolCall]:
        return [ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(self.calls.items())]


@contextmanager
def _translated(acc: _Accumulator, url: str) -> Iterator[None]:
    """The one place where httpx and parsing failures become voxmagic errors."""
    try:
        yield
    except APIError as exc:
        exc.partial_text = exc.partial_text or acc.text
        exc.generation_id = exc.generation_id or acc.id
        raise
    except httpx.TimeoutException as exc:
        raise APITimeoutError(f"no answer from {url} within the timeout ({type(exc).__name__})",
                              partial_text=acc.text, generation_id=acc.id) from exc
    except httpx.ConnectError as exc:
        raise APIConnectionError(f"could not connect to {url} ({exc})") from exc
    except httpx.TransportError as exc:
        raise APIConnectionError(f"the connection to {url} dropped mid-answer ({exc or type(exc).__name__})",
                                 partial_text=acc.text, generation_id=acc.id) from exc
    except (ValueError, httpx_sse.SSEError) as exc:  # json.JSONDecodeError is a ValueError
        raise APIConnectionError(f"malformed response from {url} ({exc})", partial_text=acc.text,
                                 generation_id=acc.id) from exc


async def _raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    raw = await resp.aread()
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
    message = error.get("message") or _detail(error.get("detail")) or raw.decode("utf-8", "replace")[:200].strip()
    if isinstance(message, str):  # some servers (vLLM's validation errors) answer several lines
        message = " ".join(message.split())
    raise _payload_error({**error, "message": message or resp.reason_phrase}, status=resp.status_code,
                         retry_after=_retry_after(resp.headers.get("retry-after")),
                         generation_id=resp.headers.get("x-generation-id"))


def _detail(detail: Any) -> Any:
    """A FastAPI validation ``detail`` list (Mistral's and vLLM's 422s) as one line naming the fields:
    ``body.model: Field required``; anything else as it is."""
    if not isinstance(detail, list):
        return detail
    parts = []
    for item in detail:
        if isinstance(item, dict):
            loc = ".".join(str(x) for x in item.get("loc") or [])
            parts.append(f"{loc}: {item.get('msg', '')}".strip(": "))
        else:
            parts.append(str(item))
    return "; ".join(parts)


_CODE_NAMES = {"rate_limit_exceeded": 429, "server_error": 502, "provider_overloaded": 503,
               "context_length_exceeded": 400, "payment_required": 402, "timeout": 408}


def _payload_error(error: dict, *, status: int | None = None, retry_after: float | None = None,
                   partial_text: str = "", generation_id: str | None = None) -> APIError:
    """Build the typed error for an OpenRouter/OpenAI error object (``code`` may be int or string)."""
    code = error.get("code")
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    effective = status or (code if isinstance(code, int) else None)
    if effective is None:
        effective = _CODE_NAMES.get(str(code or metadata.get("error_type") or ""), 502)
    cls = error_for_status(effective)
    if cls is APIError and status is None:
        cls = ServerError
    kw = dict(status=status, code=code, metadata=metadata, partial_text=partial_text,
              generation_id=generation_id)
    message = str(error.get("message") or "unknown error")
    if raw := metadata.get("raw"):
        message += f": {str(raw)[:200]}"
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kw)
    return cls(message, **kw)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds (a number or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
