"""pytest plugin (``-p voxmagic.testing.pytest_plugin``): an offline environment and a local server.

Loaded through ``addopts`` for every run, whatever paths are given, so that neither the tests nor
the notebooks nbval executes can reach a real endpoint with a developer's key.
"""

from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Forget any real key or endpoint before kernels start; notebooks then use the local server.
    History and cache go to a fresh temporary file, never the user's."""
    for name in ("OPENROUTER_API_KEY", "VOXMAGIC_BASE_URL", "VOXMAGIC_MODEL"):
        os.environ.pop(name, None)
    os.environ["VOXMAGIC_OFFLINE"] = "1"
    os.environ["VOXMAGIC_HISTORY"] = os.path.join(tempfile.mkdtemp(prefix="voxmagic-test-"), "history.db")


@pytest.fixture(autouse=True)
def _isolated_history(tmp_path, monkeypatch):
    """Each test starts with an empty history, cache, cost ledger and price list, and no session
    budget."""
    from ..prices import reset
    from ..runner import ledger, store

    monkeypatch.setenv("VOXMAGIC_HISTORY", str(tmp_path / "history.db"))
    store.use(None)  # a %config VoxtralMagics.history_path of another test is forgotten
    reset()  # no live prices from another test's server
    ledger.reset()
    ledger.budget_usd = None


@pytest.fixture
def server():
    """A fresh local server on a free 127.0.0.1 port; fast by default (no latency)."""
    from .server import LocalServer

    with LocalServer(latency=0.0, token_rate=0.0) as srv:
        yield srv
