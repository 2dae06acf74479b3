"""``%load_ext voxmagic`` returns at once and imports what the first call needs in the background."""
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
      ['numpy', 'av', 'lameenc', 'httpx', 'anywidget', 'voxmagic.notebook.ask'] if m in sys.modules),
      "tls": sys.modules['voxmagic.client'].tls_context.cache_info().currsize}))
"""


def test_load_ext_starts_importing_what_the_first_call_needs():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "voxmagic-warmup" in result["threads"] and result["done"]
    assert result["loaded"] == ["anywidget", "av", "httpx", "lameenc", "numpy", "voxmagic.notebook.ask"]
    assert result["tls"] == 1  # the TLS context the first connection will use is built


def test_a_module_that_fails_to_import_does_not_stop_the_others(monkeypatch):
    from voxmagic import warmup

    monkeypatch.setattr(warmup, "_thread", None)
    warmup.start(["voxmagic.no_such_module", "voxmagic.lame"])
    assert warmup.wait(30)
    assert "voxmagic.lame" in sys.modules
