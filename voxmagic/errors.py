"""Every error voxmagic raises on purpose, in one tree.

    VoxmagicError                    base; ``str(err)`` is one line saying what happened and what to do
    ├── AudioError                   a source could not be read, decoded or is empty
    ├── ConfigError                  no API key, bad base URL or option value
    ├── BudgetError                  the estimate exceeds what the budget has left (nothing was sent)
    ├── Interrupted                  a magic was stopped (Ctrl-C / interrupt); finished results kept
    └── APIError                     the endpoint refused or failed; ``.status``, ``.code``, ``.metadata``
        ├── BadRequestError          400 / 413 / 422: the request itself is wrong; not retried
        │   └── NotFoundError        404: nothing at that address (base URL) or no such model
        ├── AuthenticationError      401: the key is missing or wrong
        ├── InsufficientCreditsError 402: the account is out of credits
        ├── ModerationError          403: the input was flagged
        └── RetryableError           worth trying again; retried with backoff before it reaches you
            ├── RateLimitError       429; ``.retry_after`` seconds when the server said
            ├── APITimeoutError      408, or no byte arrived within the read timeout
            ├── ServerError          5xx, or an error chunk in the middle of a stream
            └── APIConnectionError   could not connect, connection dropped, malformed stream

Foreign exceptions (httpx, JSON) are translated in exactly one place, ``client.py``, and chained
with ``from``. ``APIError.partial_text`` keeps whatever text had already streamed, so a failure
never silently throws away an answer.
"""

from __future__ import annotations

from typing import Any


class VoxmagicError(Exception):
    """Base class: catch this to handle anything voxmagic raises deliberately."""


class AudioError(VoxmagicError):
    """An audio source that cannot be used; the message names the source and the cause."""

    def __init__(self, source: str, cause: str):
        self.source = source
        self.cause = cause
        super().__init__(f"{source}: {cause}")


class ConfigError(VoxmagicError):
    """Settings are missing or invalid (e.g. no API key)."""


class CacheGone(VoxmagicError):
    """A chunk was found in the cache (so its audio was not prepared), but by the time it was sent
    the answer could no longer be read (another process locked or damaged the history file
    meanwhile): the batch reads the source's audio again and sends it."""


class BudgetError(VoxmagicError):
    """Refused before sending: the cost estimate exceeds the budget left."""

    def __init__(self, message: str, *, estimate_usd: float, remaining_usd: float):
        self.estimate_usd = estimate_usd
        self.remaining_usd = remaining_usd
        super().__init__(message)


class Interrupted(VoxmagicError):
    """A blocking magic was interrupted; the message says where the finished results are."""


class APIError(VoxmagicError):
    """The chat-completions endpoint answered with an error, or the exchange failed."""

    retryable = False
    advice = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: Any = None,
        metadata: dict | None = None,
        partial_text: str = "",
        generation_id: str | None = None,
    ):
        self.message = message
        self.status = status
        self.code = code
        self.metadata = metadata or {}
        self.partial_text = partial_text
        self.generation_id = generation_id
        self.attempts = 1
        self.waited_s: float | None = None  # from the first attempt to giving up
        self.cost_usd: float | None = None  # when the server reported usage before failing
        self.refused = False  # an error status before any answer began: nothing was generated or billed
        super().__init__(message)

    def __str__(self) -> str:
        head = f"HTTP {self.status}: " if self.status else ""
        tail = f" ({self.advice})" if self.advice else ""
        tries = ""
        if self.attempts > 1:
            over = f" over {self.waited_s:.0f} s" if self.waited_s is not None else ""
            tries = f" [gave up after {self.attempts} attempts{over}]"
        return f"{head}{self.message}{tail}{tries}"


class BadRequestError(APIError):
    advice = "the request was rejected as invalid; check the options and the audio"


class NotFoundError(BadRequestError):
    advice = (
        "nothing answers at that address: check the base URL (it ends in /api/v1 for OpenRouter, "
        "/v1 for Mistral and vLLM) and the model name"
    )


class AuthenticationError(APIError):
    advice = "check the key in OPENROUTER_API_KEY, or pass api_key="


class InsufficientCreditsError(APIError):
    advice = "add credits at https://openrouter.ai/settings/credits or lower max_tokens"


class ModerationError(APIError):
    advice = "the input was flagged by moderation; it will not pass unchanged"


class RetryableError(APIError):
    retryable = True


class RateLimitError(RetryableError):
    advice = "rate limited; wait a minute or lower the concurrency"

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class APITimeoutError(RetryableError):
    advice = "the server took too long; try again or raise the timeout"


class ServerError(RetryableError):
    advice = "the provider failed; try again later"


class APIConnectionError(RetryableError):
    advice = "the connection failed or dropped; check the network and the base URL"


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: ModerationError,
    404: NotFoundError,
    408: APITimeoutError,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
}


def error_for_status(status: int) -> type[APIError]:
    """The exception class for an HTTP status (any 5xx is a ServerError)."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return APIError
