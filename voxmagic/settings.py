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
class Settings:
    """Connection settings; the key is kept out of ``repr`` so it never lands in output or logs."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = field(default=None, repr=False)
    model: str = DEFAULT_MODEL
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
        """Explicit values win; then the environment (``OPENROUTER_API_KEY`` or the ``key_env``
        named, ``VOXMAGIC_BASE_URL``, ``VOXMAGIC_MODEL``); then a ``.env`` file in the working
        directory."""
        names = {f.name for f in fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        given = {k: v for k, v in overrides.items() if v is not None}
        env = _environment()
        given.setdefault("base_url", env.get("VOXMAGIC_BASE_URL") or DEFAULT_BASE_URL)
        given.setdefault("model", env.get("VOXMAGIC_MODEL") or DEFAULT_MODEL)
        given.setdefault("api_key", env.get(given.get("key_env", KEY_ENV)) or None)
        return cls(**given)

    @property
    def effective_dialect(self) -> str:
        return self.dialect or dialect_for(self.base_url)

    def check(self) -> Settings:
        """Fail early, in one line, when OpenRouter would only answer 401."""
        if not self.api_key and self.effective_dialect != "openai":
            raise ConfigError(f"no API key: set {self.key_env} in the environment or in a .env file "
                              f"in {Path.cwd()} (e.g. {self.key_env}=sk-or-...), or pass api_key=...")
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
