"""Offline tools: a local OpenRouter-compatible server and synthesised audio."""

from __future__ import annotations

import os
from typing import Any


def use_local_server(*, force: bool = False, **config: Any):
    """Start a :class:`~voxmagic.testing.server.LocalServer` and point voxmagic at it — unless a
    key is configured (environment or ``.env``), in which case nothing changes and None is returned.

    For demos and notebooks: the Python API and the magics read ``VOXMAGIC_BASE_URL`` and
    ``OPENROUTER_API_KEY``, which this sets for the current process. ``force`` (or the
    environment variable ``VOXMAGIC_OFFLINE=1``, which the test suite sets) starts the server even
    with a key; ``config`` goes to the server (``latency``, ``token_rate``, ...). By default it
    answers at a human pace — 0.4 s before the first word, then 30 tokens a second, about a real
    model's — so a newcomer sees the answer grow in the live view instead of appear at once.
    """
    config = {"latency": 0.4, "token_rate": 30.0, **config}
    from ..settings import Settings
    from .server import LocalServer

    force = force or os.environ.get("VOXMAGIC_OFFLINE") == "1"
    if not force and Settings.resolve().api_key:
        print("voxmagic: an API key is set, so the real endpoint is used")
        return None

    server = LocalServer(**config).start()
    os.environ["VOXMAGIC_BASE_URL"] = server.base_url
    os.environ["OPENROUTER_API_KEY"] = "local-server-key"
    print(
        f"voxmagic: using the local server at {server.base_url} (no OPENROUTER_API_KEY); "
        "its answers describe the audio it received instead of the words"
    )
    return server
