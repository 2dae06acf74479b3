"""Offline tools: a local OpenRouter-compatible server and synthesised audio."""

from __future__ import annotations

import os
from typing import Any


def use_local_server(*, force: bool = False, provider: str = "openrouter", **config: Any):
    """Start a :class:`~voxmagic.testing.server.LocalServer` and point voxmagic at it — unless a
    key is configured (environment or ``.env``), in which case nothing changes and None is returned.

    For demos and notebooks: the Python API and the magics read ``VOXMAGIC_BASE_URL``,
    ``VOXMAGIC_PROVIDER`` and the provider's key variable (``OPENROUTER_API_KEY``,
    ``MISTRAL_API_KEY``), which this sets for the current process; ``provider="mistral"`` starts a
    server that speaks Mistral's API (speakers, vocabulary). ``force`` (or the environment variable
    ``VOXMAGIC_OFFLINE=1``, which the test suite sets) starts the server even with a key;
    ``config`` goes to the server (``latency``, ``token_rate``, ...). By default it answers at a
    human pace — 0.4 s before the first word, then 30 tokens a second, about a real model's — so a
    newcomer sees the answer grow in the live view instead of appear at once.
    """
    config = {"latency": 0.4, "token_rate": 30.0, **config}
    from ..providers import PROVIDERS
    from ..settings import Settings

    LocalServer = local_server_class()

    key_env = PROVIDERS[provider].key_env
    force = force or os.environ.get("VOXMAGIC_OFFLINE") == "1"
    if not force and Settings.resolve(provider=provider).api_key:
        print(f"voxmagic: {key_env} is set, so the real endpoint is used")
        os.environ["VOXMAGIC_PROVIDER"] = provider
        return None

    server = LocalServer(dialect="mistral" if provider == "mistral" else "openrouter", **config).start()
    os.environ.update(VOXMAGIC_BASE_URL=server.base_url, VOXMAGIC_PROVIDER=provider)
    os.environ[key_env] = "local-server-key"
    print(
        f"voxmagic: using the local server at {server.base_url} (no {key_env}); "
        "its answers describe the audio it received instead of the words"
    )
    return server


def local_server_class() -> Any:
    """:class:`~voxmagic.testing.server.LocalServer`, or one line on how to install what it needs."""
    from ..errors import ConfigError

    try:
        from .server import LocalServer
    except ImportError as exc:  # aiohttp: the [server] extra
        raise ConfigError(
            f"voxmagic's local server needs {exc.name or 'aiohttp'}: pip install 'voxmagic[server]' "
            "(or set a key to use the real endpoint)"
        ) from None
    return LocalServer
