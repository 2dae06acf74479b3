"""The one place where HTTP failures become :mod:`voxmagic.errors`: status codes, error bodies in
each provider's shape, ``Retry-After``, and httpx's transport exceptions.

OpenRouter answers ``{"error": {"code", "message", "metadata"}}`` (``code`` a number, or in a
mid-stream chunk sometimes a string such as ``"server_error"``); Mistral's and vLLM's
validation errors are FastAPI ``{"detail": [...]}`` lists. Every body passes the client's
:class:`~voxmagic.redact.Redactor` before it is read, so an echoed key never reaches a message.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import httpx
import httpx_sse

from .errors import APIConnectionError, APIError, APITimeoutError, RateLimitError, ServerError, error_for_status
from .providers import is_loopback
from .redact import Redactor


class Partial(Protocol):
    """What an answer in progress tells a failure: the text so far, the generation id, usage."""

    @property
    def text(self) -> str: ...

    id: str | None
    usage: dict | None


@contextmanager
def translated(acc: Partial, url: str) -> Iterator[None]:
    """httpx and parsing failures become voxmagic errors that keep the partial answer."""
    try:
        yield
    except APIError as exc:
        _keep(exc, acc)
        raise
    except httpx.TimeoutException as exc:
        raise _keep(APITimeoutError(f"no answer from {url} within the timeout ({type(exc).__name__})"), acc) from exc
    except httpx.ConnectError as exc:
        raise _refused(url, exc) from exc
    except httpx.TransportError as exc:
        raise _keep(
            APIConnectionError(f"the connection to {url} dropped mid-answer ({str(exc) or type(exc).__name__})"), acc
        ) from exc
    except (ValueError, httpx_sse.SSEError) as exc:  # json.JSONDecodeError is a ValueError
        raise _keep(APIConnectionError(f"malformed response from {url} ({exc})"), acc) from exc


def _refused(url: str, exc: httpx.ConnectError) -> APIConnectionError:
    """Nothing answered. On this machine that is final (no server is listening, retrying will not
    start one): say so at once instead of backing off for seconds."""
    error = APIConnectionError(f"could not connect to {url} ({exc})")
    if url.startswith("https://") and "SSL" in str(exc):  # e.g. WRONG_VERSION_NUMBER: plain HTTP answered
        error.retryable = False
        error.advice = "the server there does not speak TLS: use http:// in the base URL"
    elif is_loopback(url):
        error.retryable = False
        error.advice = "nothing is listening there: start the server, or check the port in the base URL"
    return error


def _keep(exc: APIError, acc: Partial) -> APIError:
    exc.partial_text = exc.partial_text or acc.text
    exc.generation_id = exc.generation_id or acc.id
    cost = (acc.usage or {}).get("cost")
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        exc.cost_usd = float(cost)
    return exc


async def raise_for_status(resp: httpx.Response, redactor: Redactor) -> None:
    """A 4xx/5xx as the typed error its status and body say; nothing for a success."""
    if resp.status_code < 400:
        return
    raw = redactor.text((await resp.aread()).decode("utf-8", "replace"))
    error, message = error_body(raw)
    if isinstance(message, str) and message.startswith(f"{resp.status_code}: "):  # aiohttp's "404: Not Found"
        message = message[len(f"{resp.status_code}: ") :]
    refusal = payload_error(
        {**error, "message": message or resp.reason_phrase},
        status=resp.status_code,
        retry_after=retry_after(resp.headers.get("retry-after")),
        generation_id=resp.headers.get("x-generation-id"),
    )
    refusal.refused = True
    raise refusal


def error_body(raw: str) -> tuple[dict, Any]:
    """An error response's body (already redacted): its error object (OpenRouter's ``{"error":
    {...}}``, else the body's own fields) and its message — ``message``, a FastAPI ``detail``, or
    the start of the text — on one line (vLLM's validation errors come in several)."""
    try:
        payload = json.loads(raw)
    except ValueError:
        payload = {}
    if not isinstance(payload, dict):
        payload = {}
    error = payload["error"] if isinstance(payload.get("error"), dict) else payload
    message = error.get("message") or _detail(error.get("detail")) or raw[:200].strip()
    return error, " ".join(message.split()) if isinstance(message, str) else message


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


_CODE_NAMES = {
    "rate_limit_exceeded": 429,
    "server_error": 502,
    "provider_overloaded": 503,
    "context_length_exceeded": 400,
    "payment_required": 402,
    "timeout": 408,
}


def payload_error(
    error: dict,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    partial_text: str = "",
    generation_id: str | None = None,
) -> APIError:
    """The typed error for an OpenRouter/OpenAI error object (``code`` may be int or string)."""
    code = error.get("code")
    metadata = error["metadata"] if isinstance(error.get("metadata"), dict) else {}
    effective = status or (code if isinstance(code, int) else None)
    if effective is None:
        effective = _CODE_NAMES.get(str(code or metadata.get("error_type") or ""), 502)
    cls = error_for_status(effective)
    if cls is APIError and status is None:
        cls = ServerError
    kw: dict[str, Any] = dict(
        status=status, code=code, metadata=metadata, partial_text=partial_text, generation_id=generation_id
    )
    message = str(error.get("message") or "unknown error")
    if raw := metadata.get("raw"):
        message += f": {str(raw)[:200]}"
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after, **kw)
    return cls(message, **kw)


def retry_after(value: str | None) -> float | None:
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
