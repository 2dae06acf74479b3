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


def test_after_the_warm_up_a_first_request_imports_nothing_more_of_the_http_stack(server, tmp_path):
    """httpcore imports anyio's event-loop backend as it opens its first connection (~50 ms a fresh
    kernel's first request waited for): the warm-up has done that too."""
    from voxmagic.testing.synth import tone_file

    clip = tone_file(tmp_path / "clip.wav", 1.0)
    result = _in_fresh_process(f"""
import json, sys
from IPython.core.interactiveshell import InteractiveShell
InteractiveShell.instance().run_line_magic('load_ext', 'voxmagic')
from voxmagic import api, warmup
warmup.wait(60)
before = set(sys.modules)
text = api.ask({str(clip)!r}, "What is said?", base_url={server.base_url!r}, api_key="k", cache=False).text
stack = ("anyio", "httpcore", "h11", "sniffio", "httpx")
new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in stack)
print(json.dumps({{"new": new, "text": text}}))
""")
    assert result["text"]  # the request went out and was answered
    assert result["new"] == []


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


def test_a_stop_pressed_as_the_first_cell_begins_is_one_line_and_breaks_nothing(server, tmp_path):
    """Ctrl-C 20 ms into a fresh kernel's first magic (Run All, then stop): it lands while the
    warm-up imports, never inside numpy's import on the main thread (a half-imported numpy
    failed every later call with "module 'numpy' has no attribute ..."); the next run works."""
    from voxmagic.testing.synth import tone_file

    clip = tone_file(tmp_path / "clip.wav", 1.0)
    code = f"""
import json, os, signal, sys, threading, time
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
shell = InteractiveShell.instance()
shell.run_line_magic('load_ext', 'voxmagic')
def stop_once_the_magic_runs(main=threading.main_thread().ident):
    while True:  # as a person would: after pressing Run All, before the first cell is done
        frame = sys._current_frames().get(main)
        while frame is not None and frame.f_code.co_name != 'voxtral_transcribe':
            frame = frame.f_back
        if frame is not None:
            break
        time.sleep(0.001)
    time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGINT)
threading.Thread(target=stop_once_the_magic_runs, daemon=True).start()
with capture_output() as first:
    shell.run_cell('%voxtral_transcribe {clip} -o a1 --no-cache')
with capture_output() as second:
    shell.run_cell('%voxtral_transcribe {clip} -o a1 --no-cache')
a1 = shell.user_ns.get('a1')
print(json.dumps({{"first": first.stdout + first.stderr, "second": second.stdout + second.stderr,
                  "text": None if a1 is None else a1['text'].iloc[0]}}))
"""
    env = {**__import__("os").environ, "VOXMAGIC_BASE_URL": server.base_url, "OPENROUTER_API_KEY": "k",
           "VOXMAGIC_HISTORY": str(tmp_path / "h.db")}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "Traceback" not in result["first"] and "KeyboardInterrupt" not in result["first"], result["first"]
    assert "UsageError: interrupted before any request was sent" in result["first"]
    assert "Traceback" not in result["second"] and result["text"], result["second"]
