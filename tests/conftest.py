"""Fixtures shared by the magic tests (the offline server and isolation come from
``voxmagic.testing.pytest_plugin``)."""
from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

SECRET = "sk-or-v1-SECRET-do-not-print"


@pytest.fixture
def shell(server, monkeypatch, tmp_path):
    """A real InteractiveShell with voxmagic loaded fresh, pointed at the local server, working
    in an empty folder, with a key that must never be printed."""
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    if "voxmagic" in ip.extension_manager.loaded:
        ip.run_line_magic("unload_ext", "voxmagic")
    ip.config.pop("VoxtralMagics", None)
    ip.run_line_magic("load_ext", "voxmagic")
    ip.run_line_magic("config", f"VoxtralMagics.base_url = {server.base_url!r}")
    before = set(ip.user_ns)
    yield ip
    for name in set(ip.user_ns) - before:
        ip.user_ns.pop(name, None)


def run(ip, cell):
    """Run a cell as a user would; returns (stdout, stderr)."""
    with capture_output() as cap:
        ip.run_cell(cell)
    return cap.stdout, cap.stderr
