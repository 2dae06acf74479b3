"""Where a call goes and how: base URL, key, model, timeouts — from arguments, then the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .client import DEFAULT_BASE_URL, Client, dialect_for
from .errors import ConfigError
from .requests import DEFAULT_MODEL

KEY_ENV = "OPENROUTER_API_KEY"


@dataclass(frozen=True)
class Provider:
    """Where Voxtral is served, and how that service is spoken to."""

    name: str
    base_url: str
    key_env: str
    model: str  # for chat completions
    dialect: str  # the request shape (see voxmagic.requests.ChatRequest)
    transcription_model: str | None  # for POST /audio/transcriptions; None: no such endpoint
    has_transcriptions: bool = False  # used for plain transcripts unless told otherwise


PROVIDERS = {
    "openrouter": Provider("openrouter", DEFAULT_BASE_URL, KEY_ENV, DEFAULT_MODEL, "openrouter", None),
    "mistral": Provider("mistral", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "voxtral-small-latest",
                        "mistral", "voxtral-mini-latest", has_transcriptions=True),
    # e.g. `vllm serve mistralai/Voxtral-Small-24B-2507 ...`; it has /audio/transcriptions too, but
    # another OpenAI-compatible server may not, so it is used only when asked for (--api transcriptions)
    "openai-compatible": Provider("openai-compatible", "http://localhost:8000/v1", "OPENAI_API_KEY",
                                  "mistralai/Voxtral-Small-24B-2507", "openai", "mistralai/Voxtral-Small-24B-2507"),
}
_BY_DIALECT = {"openrouter": "openrouter", "mistral": "mistral", "openai": "openai-compatible"}


def _provider(name: str | None, base_url: str | None) -> Provider:
    if name is None:
        name = _BY_DIALECT[dialect_for(base_url)] if base_url else "openrouter"
    if name not in PROVIDERS:
        raise ConfigError(f"unknown provider {name!r}; use one of {', '.join(PROVIDERS)}")
    return PROVIDERS[name]


def is_loopback(url: str) -> bool:
    """A server on this machine (a self-hosted vLLM, voxmagic's local server)."""
    from urllib.parse import urlsplit

    return (urlsplit(url).hostname or "") in ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class Settings:
    """Connection settings; the key is kept out of ``repr`` so it never lands in output or logs."""

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
    key_env: str = KEY_ENV

    @classmethod
    def resolve(cls, **overrides: Any) -> Settings:
        """Explicit values win; then the environment (``VOXMAGIC_PROVIDER``, ``VOXMAGIC_BASE_URL``,
        ``VOXMAGIC_MODEL``, and the key in the provider's variable — ``OPENROUTER_API_KEY``,
        ``MISTRAL_API_KEY``, ``OPENAI_API_KEY`` — or the ``key_env`` named); then a ``.env`` file
        in the working directory; then the provider's defaults. Without a provider, the base URL
        says which one it is."""
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        env = _environment()
        base_url = given.get("base_url") or env.get("VOXMAGIC_BASE_URL")
        provider = _provider(given.get("provider") or env.get("VOXMAGIC_PROVIDER"), base_url)
        given["provider"] = provider.name
        given["base_url"] = base_url or provider.base_url
        given.setdefault("model", env.get("VOXMAGIC_MODEL") or provider.model)
        given.setdefault("transcription_model", provider.transcription_model and (
            given["model"] if provider.name == "openai-compatible" else provider.transcription_model))
        given.setdefault("dialect", provider.dialect)
        given.setdefault("key_env", provider.key_env)
        given.setdefault("api_key", env.get(given["key_env"]) or None)
        return cls(**given)

    @property
    def has_transcriptions(self) -> bool:
        """Plain transcripts go to ``/audio/transcriptions`` unless asked otherwise."""
        return PROVIDERS[self.provider].has_transcriptions

    @property
    def effective_dialect(self) -> str:
        return self.dialect or dialect_for(self.base_url)

    def check(self) -> Settings:
        """Fail early, in one line, when OpenRouter would only answer 401."""
        if not self.api_key and not (self.provider == "openai-compatible" and is_loopback(self.base_url)):
            example = {"openrouter": "sk-or-...", "mistral": "..."}.get(self.provider, "...")
            raise ConfigError(f"no API key for {self.provider}: set {self.key_env} in the environment or "
                              f"in a .env file in {Path.cwd()} (e.g. {self.key_env}={example}), or pass "
                              "api_key=...")
        return self

    def client(self) -> Client:
        return Client(self.api_key, base_url=self.base_url, dialect=self.dialect, referer=self.referer,
                      title=self.title, timeout=self.timeout, read_timeout=self.read_timeout,
                      max_attempts=self.max_attempts, backoff=self.backoff,
                      rate_limit_patience=self.rate_limit_patience)


def _environment() -> dict[str, str]:
    """``os.environ`` over the ``.env`` file of the working directory (which never overrides it)."""
    from dotenv import dotenv_values

    dotenv = Path(".env")
    values = {k: v for k, v in dotenv_values(dotenv).items() if v} if dotenv.is_file() else {}
    return {**values, **os.environ}
