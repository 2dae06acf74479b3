"""Who gets an answer from the local server: the key check, then the per-key rate limit.

Every endpoint admits a request the same way, in OpenRouter's order, before looking at what it
asks; kept apart so the handlers in ``server.py`` are only about their endpoint. With
``echo_key`` refusals quote the Authorization header back (``echoed``), as careless servers do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._fake_streams import error_body, key_refused, seconds_header

__all__ = ["Admission", "echoed"]


def echoed(headers: Mapping[str, str], cfg: Any) -> str | None:
    """The Authorization header exactly as received when the server echoes it (``cfg.echo_key``),
    else None — also when there is no header, since then there is nothing to leak."""
    value = headers.get("Authorization", "")
    return value if cfg.echo_key and value.strip() else None


class Admission:
    """The key check and a token bucket per Authorization header (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def clear(self) -> None:
        """Forget the rate-limit state (every bucket full again)."""
        with self._lock:
            self._buckets.clear()

    def refusal(self, headers: Mapping[str, str], cfg: Any) -> web.Response | None:
        """The 401 or 429 the request gets, or None when it may go on."""
        denied = auth_error(headers, cfg)
        if denied is not None:
            return denied
        wait = self._wait(headers.get("Authorization", ""), cfg)
        if wait is None:
            return None
        retry = {"Retry-After": seconds_header(round(wait, 3) or 0.001)}
        return error_body(
            429,
            f"Rate limit exceeded: {cfg.rate_limit:g} requests per second",
            {"error_type": "rate_limit_exceeded"},
            retry,
        )

    def _wait(self, key: str, cfg: Any) -> float | None:
        """Seconds to wait when the request must be refused; None takes a token and lets it in."""
        if not cfg.rate_limit:
            return None
        now, capacity = time.monotonic(), max(1.0, cfg.rate_limit)
        with self._lock:
            tokens, last = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * cfg.rate_limit)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / cfg.rate_limit
            self._buckets[key] = (tokens - 1.0, now)
        return None


def auth_error(headers: Mapping[str, str], cfg: Any) -> web.Response | None:
    """OpenRouter's 401s (vLLM without ``--api-key`` checks nothing); quoting the header with echo_key."""
    if cfg.dialect == "vllm" and cfg.api_key is None:
        return None
    echo = echoed(headers, cfg)
    scheme, _, key = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return key_refused(echo) if echo else error_body(401, "No auth credentials found")
    if cfg.api_key is not None and key.strip() != cfg.api_key:
        return key_refused(echo) if echo else error_body(401, "User not found.")
    return None
