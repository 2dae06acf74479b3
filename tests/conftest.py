"""Shared fixtures: a real local OpenRouter-compatible server per test, isolated user dirs."""
from __future__ import annotations

import pytest

from voxmagic.testing.server import LocalServer


@pytest.fixture
def server():
    """A fresh local server on a free 127.0.0.1 port; fast by default (no latency)."""
    with LocalServer(latency=0.0, token_rate=0.0) as srv:
        yield srv
