"""Where a call goes and how: provider, base URL, key, model, timeouts, retries — from arguments,
then the environment, then the provider's defaults. Every connection default is written here once.

Cheap to import (no httpx): the notebook layer reads its defaults from :class:`Settings`.
"""

from __future__ import annotations

import difflib
import os
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import limits
from .errors import ConfigError
from .providers import DEFAULT_BASE_URL, DEFAULT_MODEL, KEY_ENV, PROVIDERS, dialect_for, needs_key, provider_name_for

if TYPE_CHECKING:
    from .chat import Params


@dataclass(frozen=True)
class Settings:
    """Connection settings; the key is kept out of ``repr`` so it never lands in output or logs.

    ``transport`` is an ``httpx.AsyncBaseTransport`` handed to the client (``httpx.MockTransport``
    in unit tests); None means real HTTP.
    """

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
    provider: str = "openrouter"
    transcription_model: str | None = None
    dialect: str | None = None
    referer: str | None = None
    title: str | None = "voxmagic"
    timeout: float = 30.0
    read_timeout: float = 180.0
    max_attempts: int = 4
    rate_limit_patience: float = 120.0
    backoff: float = 1.0
    download_timeout: float = 300.0
    key_env: str = KEY_ENV
    transport: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        limits.check_all({f.name: getattr(self, f.name) for f in fields(self)})
        if self.dialect not in (None, "openrouter", "openai", "mistral"):
            raise ConfigError(f"dialect={self.dialect!r}: use openrouter, openai (vLLM) or mistral")
        if self.transport is not None and not hasattr(self.transport, "handle_async_request"):
            raise ConfigError(f"transport={self.transport!r:.40}: give an httpx.AsyncBaseTransport")

    @classmethod
    def resolve(cls, **overrides: Any) -> Settings:
        """Explicit values win; then the environment (``VOXMAGIC_PROVIDER``, ``VOXMAGIC_BASE_URL``,
        ``VOXMAGIC_MODEL``, and the key in the provider's variable — ``OPENROUTER_API_KEY``,
        ``MISTRAL_API_KEY``, ``OPENAI_API_KEY`` — or the ``key_env`` named); then a ``.env`` file
        in the working directory; then the provider's defaults. Without a provider, the base URL
        says which one it is."""
        unknown = set(overrides) - SETTING_NAMES
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        env = _environment()
        base_url = given.get("base_url") or url_for(
            given.get("provider"), env.get("VOXMAGIC_BASE_URL"), env.get("VOXMAGIC_PROVIDER")
        )
        _check_url(base_url, "the base URL" if given.get("base_url") else "$VOXMAGIC_BASE_URL")
        name = given.get("provider") or env.get("VOXMAGIC_PROVIDER") or provider_name_for(base_url)
        if name not in PROVIDERS:
            where = "" if given.get("provider") else " (from $VOXMAGIC_PROVIDER)"
            raise ConfigError(f"unknown provider {name!r}{where}; use one of {', '.join(PROVIDERS)}")
        provider = PROVIDERS[name]
        given["provider"] = provider.name
        given["base_url"] = base_url or provider.base_url
        given.setdefault("model", env.get("VOXMAGIC_MODEL") or provider.model)
        given.setdefault(
            "transcription_model",
            provider.transcription_model
            and (given["model"] if provider.name == "openai-compatible" else provider.transcription_model),
        )
        given.setdefault("dialect", provider.dialect)
        given.setdefault("key_env", provider.key_env)
        where = "given as api_key=" if given.get("api_key") else f"in {given['key_env']}"
        given["api_key"] = _clean_key(given.get("api_key") or env.get(given["key_env"]), where)
        return cls(**given)

    @property
    def has_transcriptions(self) -> bool:
        """Plain transcripts go to ``/audio/transcriptions`` unless asked otherwise."""
        return PROVIDERS[self.provider].has_transcriptions

    @property
    def effective_dialect(self) -> str:
        return self.dialect or dialect_for(self.base_url)

    @property
    def key_given(self) -> bool:
        """Whether the key was passed in (``api_key=``) rather than read from ``key_env``."""
        return bool(self.api_key) and self.api_key != (_environment().get(self.key_env) or "").strip()

    def check(self) -> Settings:
        """Fail early, in one line, when the endpoint would only answer 401."""
        if not self.api_key and needs_key(self.provider, self.base_url):
            example = PROVIDERS[self.provider].key_example
            raise ConfigError(
                f"no API key for {self.provider}: set {self.key_env} in the environment or "
                f"in a .env file in {Path.cwd()} (e.g. {self.key_env}={example}), or pass "
                "api_key=..."
            )
        return self


SETTING_NAMES = frozenset(f.name for f in fields(Settings))


def url_for(provider: str | None, url: str | None, url_provider: str | None) -> str | None:
    """A base URL set at a lower layer (the environment, the session) beside ``url_provider`` (or
    for the provider its address names), when ``provider`` is chosen above it: kept for that same
    provider, dropped for another, which then goes to its own address — one provider's key never
    goes to another's host (``--provider mistral`` in a session set up for OpenRouter's URL). An
    address whose provider is not known (your own server, read as openai-compatible) is kept: it
    may speak any dialect."""
    owner = url_provider or (provider_name_for(url) if url else None)
    if url is None or provider is None or owner in (None, "openai-compatible"):
        return url
    return url if owner == provider else None


def _check_url(base_url: str | None, name: str = "the base URL") -> None:
    """A base URL that is not one would otherwise be read as an unknown provider's, and refused
    for want of its key. ``name``: where it came from (``$VOXMAGIC_BASE_URL``); given to a call
    or a magic, it is named so that it reads right after ``--base-url`` and ``base_url=`` alike."""
    if base_url is None:
        return
    parts = urlsplit(base_url)
    if parts.username or parts.password or parts.query:  # shown in every error and stored in history
        raise ConfigError(
            f"{name} holds a user name, a password or a query (user@host, ?key=): they would show in errors "
            "and history; give the address alone, and the key as api_key= or in the provider's key variable"
        )
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{name}{'=' if name.startswith('$') else ' '}{base_url!r} is not a URL: give the API's address, "
            "e.g. https://openrouter.ai/api/v1 or http://localhost:8000/v1"
        )


def _clean_key(key: str | None, where: str) -> str | None:
    """A pasted key brings a line end or a quote along: the spaces around it go, and a character an
    HTTP header cannot carry is refused here, in one line that never shows the key (httpx would
    raise a traceback, or put the key into a connection error)."""
    key = (key or "").strip()
    bad = next((i for i, c in enumerate(key) if not 32 < ord(c) < 127), None)
    if bad is not None:
        char = unicodedata.name(key[bad], f"U+{ord(key[bad]):04X}")
        raise ConfigError(
            f"the API key {where} holds a character a request cannot carry ({char}, character {bad + 1} "
            f"of {len(key)}): copy the key again without it"
        )
    return key or None


# The keywords the Python calls take themselves (not request parameters or settings): a typo of
# one of them is answered with "did you mean".
CALL_KEYWORDS = frozenset(
    "language segments diarize vocab start end trim_silence max_cost cache refresh system audio_format on_event "
    "on_result auto_tools max_tool_rounds api hint prompt translate_to concurrency max_chunk_s dask output "
    "partition_size chunk_minutes".split()
)


def split_options(options: dict[str, Any]) -> tuple[Settings, Params]:
    """Separate connection settings from request parameters; anything else is a mistake."""
    from .chat import PARAM_NAMES, Params

    unknown = set(options) - PARAM_NAMES - SETTING_NAMES
    if unknown:
        known = (PARAM_NAMES | SETTING_NAMES | CALL_KEYWORDS) - {"response_model"}
        elsewhere = sorted(unknown & CALL_KEYWORDS)  # right name, another call's (language= to ask)
        guesses = {
            g for name in unknown - CALL_KEYWORDS for g in difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        }
        hint = f" (did you mean {', '.join(sorted(guesses))}?)" if guesses else ""
        hint += f" ({', '.join(elsewhere)}: an option of other calls, not this one)" if elsewhere else ""
        valid = ", ".join(sorted((PARAM_NAMES | SETTING_NAMES) - {"transport", "response_model"}))
        raise ConfigError(
            f"unknown option(s) {', '.join(sorted(unknown))}{hint}; besides the function's own keywords "
            f"(help(voxmagic.ask), help(voxmagic.transcribe)) the request and connection options are: {valid}"
        )
    settings = {k: v for k, v in options.items() if k in SETTING_NAMES}
    params = {k: v for k, v in options.items() if k in PARAM_NAMES}
    return Settings.resolve(**settings), Params(**params)


def _environment() -> dict[str, str]:
    """``os.environ`` over the ``.env`` file of the working directory (which never overrides it)."""
    dotenv = Path(".env")
    if not dotenv.is_file():
        return dict(os.environ)
    from dotenv import dotenv_values

    values = {k: v for k, v in dotenv_values(dotenv).items() if v}
    return {**values, **{k: v for k, v in os.environ.items() if v}}  # an empty variable is not set
