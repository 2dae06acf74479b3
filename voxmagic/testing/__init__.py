"""Offline tools: a local OpenRouter-compatible server and synthesised audio."""

from __future__ import annotations

import os
from typing import Any


def use_local_server(**config: Any):
    """Start a :class:`~voxmagic.testing.server.LocalServer` and point voxmagic at it.

    For demos and notebooks without a key: the Python API and the magics read
    ``VOXMAGIC_BASE_URL`` and ``OPENROUTER_API_KEY``, which this sets for the current process.
    ``config`` goes to the server (``latency``, ``token_rate``, ...). Returns the running server.
    """
    from .server import LocalServer

    server = LocalServer(**config).start()
    os.environ["VOXMAGIC_BASE_URL"] = server.base_url
    os.environ["OPENROUTER_API_KEY"] = "local-server-key"
    print(f"voxmagic: using the local server at {server.base_url} (no OPENROUTER_API_KEY); "
          "its answers describe the audio it received instead of the words")
    return server
