"""The first ``%%voxtral`` of a fresh kernel, run at once after ``%load_ext`` (Run All): its
request leaves before the live view's module (anywidget) is imported, and the view is still
shown, with every word; a view shown after its call began gets what came before it, or the
call's result when the call has already ended."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from IPython.utils.capture import capture_output

from voxmagic.loop import LOOP
from voxmagic.notebook.display import StreamView
from voxmagic.streaming import TextDelta
from voxmagic.testing.synth import tone_file

# A fresh process, as a fresh kernel: an audit hook notes when each module's import begins.
RUN_ALL = """
import json, sys, time
began = {}
def hook(event, args):
    if event == "import":
        began.setdefault(args[0], time.time())
    elif event == "socket.connect":  # the last one: the request's (the first may fetch /models)
        began["connect"] = time.time()
sys.addaudithook(hook)
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "voxmagic")
ip.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
with capture_output() as cap:
    ip.run_cell("%%voxtral talk.mp3 --no-cache -o ans\\nWhat is said?")
view = ip.magics_manager.registry["VoxtralMagics"].session.last_view
print(json.dumps({"anywidget": began.get("anywidget"), "connect": began.get("connect"),
                  "ans": ip.user_ns.get("ans"), "text": view.text,
                  "box": type(view.box).__name__, "stderr": cap.stderr, "final": cap.outputs[-1].data,
                  "unneeded": [m for m in ("pandas", "voxmagic.batch", "voxmagic.notebook.tables",
                               "voxmagic.recording", "voxmagic.realtime", "voxmagic.stitch", "tenacity") if m in sys.modules]}))
"""


def test_a_cell_run_at_once_sends_before_importing_the_live_view(server, tmp_path):
    tone_file(tmp_path / "talk.mp3", 2.0)
    server.configure(latency=0.3, answer_tokens=20)
    env = {**os.environ, "OPENROUTER_API_KEY": "sk-or-test", "VOXMAGIC_BASE_URL": server.base_url}
    out = subprocess.run([sys.executable, "-c", RUN_ALL], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["anywidget"] is not None and result["box"] == "LiveText"  # the live view was shown
    assert result["connect"] < result["anywidget"]  # after the request's connection was made
    assert result["ans"] and result["text"] == result["ans"] and not result["stderr"]
    assert result["final"]["text/plain"].startswith(result["ans"] + "\n[")  # and replaced by the result
    assert result["unneeded"] == []  # a question imports no table, batch runner, microphone or retrying


def _feed(view: StreamView, *pieces: str) -> None:
    async def feed() -> None:
        for piece in pieces:
            view.on_event(TextDelta(piece))

    LOOP.run(feed())


def test_what_streamed_before_the_view_was_shown_reaches_it(shell):
    with capture_output():
        view = StreamView(None, widget=True, later=True)
        _feed(view, "Hello ", "world")  # the call runs before the widget exists
        assert view.box is None and view.throttle.flushes == 0  # no flushes into nothing
        view.show()
        deadline = time.monotonic() + 5
        while view.box.text != "Hello world" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert view.box.text == "Hello world"
        _feed(view, "!")
        LOOP.run(_finish(view))
    assert view.box.text == "Hello world!"
    assert view.updates <= view.throttle.flushes <= view.updates + 1  # each flush but the last showed new text


async def _finish(view: StreamView) -> None:
    view.finish(view.text, "summary", "tally")


def test_a_call_that_ended_before_its_view_was_shown_shows_its_result(shell):
    with capture_output() as cap:
        view = StreamView(None, widget=True, later=True)
        _feed(view, "All ", "done")
        LOOP.run(_finish(view))
        assert not cap.outputs and not cap.stdout  # nothing shown, nothing printed yet
        view.show()
        view.show()  # once
    assert view.box is None and len(cap.outputs) == 1
    final = cap.outputs[0].data
    assert final["text/plain"] == "All done\n[summary]\ntally" and "All done" in final["text/html"]
