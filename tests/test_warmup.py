"""``%load_ext voxmagic`` returns at once and imports what the first call needs in the background:
the live view's module last, and only while no call has begun."""

from __future__ import annotations

import json
import subprocess
import sys

CODE = """
import json, sys, threading
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic('load_ext', 'voxmagic')
from voxmagic import warmup
names = [t.name for t in threading.enumerate()]
done = warmup.wait(60)
warmup.start(['voxmagic.no_such_module'])  # a second start does nothing
print(json.dumps({"threads": names, "done": done, "loaded": sorted(m for m in
      ['numpy', 'av', 'soxr', 'lameenc', 'httpx', 'httpcore', 'anywidget', 'voxmagic.notebook.ask']
      if m in sys.modules),
      "tls": sys.modules['voxmagic.client'].tls_context.cache_info().currsize}))
"""


def test_load_ext_starts_importing_what_the_first_call_needs():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "voxmagic-warmup" in result["threads"] and result["done"]
    assert result["loaded"] == [
        "anywidget", "av", "httpcore", "httpx", "lameenc", "numpy", "soxr", "voxmagic.notebook.ask"
    ]  # fmt: skip
    assert result["tls"] == 1  # the TLS context the first connection will use is built


def test_a_module_that_fails_to_import_does_not_stop_the_others(monkeypatch):
    from voxmagic import warmup

    monkeypatch.setattr(warmup, "_thread", None)
    warmup.start(["voxmagic.no_such_module", "voxmagic.lame"])
    assert warmup.wait(30)
    assert "voxmagic.lame" in sys.modules


def _in_fresh_process(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_call_that_began_leaves_the_live_view_to_itself():
    """A cell run at once (Run All) imports anywidget after its request has left; the warm-up does
    not compete with it for the CPU meanwhile."""
    result = _in_fresh_process("""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
from voxmagic import warmup
warmup.call_began()  # as a %%voxtral cell does first
InteractiveShell.instance().run_line_magic('load_ext', 'voxmagic')
warmup.wait(60)
print(json.dumps({m: m in sys.modules for m in ['anywidget', 'voxmagic.notebook.live_text', 'av', 'httpcore']}))
""")
    assert result == {"anywidget": False, "voxmagic.notebook.live_text": False, "av": True, "httpcore": True}
