"""The live text of a streaming ``%%voxtral`` answer (``voxmagic.notebook.live_text``): every comm
message the cell's widgets send, recorded through the real magic in a shell — numbered updates
whose appends add up to the answer exactly and cost at most twice its size, a retry resets the
text, a front end that missed updates asks and gets the whole text once — and the ES module,
checked by node against a stand-in DOM and model: every view, however late, shows the whole text.
The real browser's half is tests/browser/test_jupyterlab.py (a second view opened mid-answer)."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from importlib.resources import files

import comm
import pytest
from IPython.utils.capture import capture_output
from jupyter_client.session import json_packer

from voxmagic.loop import LOOP
from voxmagic.notebook.live_text import LiveText
from voxmagic.testing.synth import tone_file


class Wire:
    """Every message of the widget comms opened from now on: (comm id, type, data, bytes)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict, int]] = []
        wire = self

        class Recording(comm.DummyComm):
            def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
                content = dict(data=data, comm_id=self.comm_id, **keys)  # as ipykernel's Comm sends it
                size = len(json_packer(content)) + len(json_packer(metadata or {}))
                size += sum(memoryview(b).nbytes for b in buffers or ())
                wire.sent.append((self.comm_id, msg_type, data or {}, size))

        self.comm_class = Recording

    @property
    def custom(self) -> list[dict]:
        return [d["content"] for _, kind, d, _ in self.sent if kind == "comm_msg" and d.get("method") == "custom"]

    @property
    def bytes(self) -> int:
        return sum(size for *_, size in self.sent)


@pytest.fixture
def wire(monkeypatch):
    recorder = Wire()
    monkeypatch.setattr(comm, "create_comm", recorder.comm_class)
    return recorder


@pytest.fixture
def ip(shell, tmp_path):
    tone_file(tmp_path / "talk.mp3", 2.0)
    shell.run_line_magic("config", "VoxtralMagics.display_mode = 'widget'")
    return shell


def view_of(ip):
    return ip.magics_manager.registry["VoxtralMagics"].session.last_view


def shown(messages: list[dict]) -> str:
    """The text a front end shows after these messages, as live_text.js applies them."""
    text = ""
    for msg in messages:
        text = msg["text"] if "text" in msg else text + msg.get("add", "")
    return text


def test_the_appends_add_up_to_the_answer_and_cost_at_most_twice_its_size(ip, server, wire):
    server.configure(answer_tokens=4000, token_rate=2000)  # ~25 KB, streamed for 2 s
    with capture_output() as cap:
        ip.run_cell("%%voxtral talk.mp3 -o ans\nTalk a lot.")
    answer, view = ip.user_ns["ans"], view_of(ip)
    assert len(answer.split()) == 4000 and not cap.stderr
    adds = [msg["add"] for msg in wire.custom if "add" in msg]
    assert "".join(adds) == answer  # appends only: nothing sent twice, nothing reset
    assert not any("text" in msg for msg in wire.custom)
    assert 5 <= view.updates == len(adds)  # one message per update that changed the text
    assert all("tokens" in msg["status"] for msg in wire.custom)  # the status line rides along
    assert [msg["n"] for msg in wire.custom] == list(range(1, len(wire.custom) + 1))  # numbered, none missing
    assert wire.bytes <= 2 * len(answer.encode()), (wire.bytes, len(answer.encode()))
    opened = {cid for cid, kind, *_ in wire.sent if kind == "comm_open"}
    closed = {cid for cid, kind, *_ in wire.sent if kind == "comm_close"}
    assert len(opened) == 2 and opened == closed  # the widget and its layout: none left open
    final = cap.outputs[-1].data  # what replaced it, through the display handle
    assert final["text/plain"].startswith(answer + "\n[") and "word-break:normal" in final["text/html"]


def test_a_retry_resets_the_text_and_the_end_is_still_exact(ip, server, wire):
    ip.run_line_magic("config", "VoxtralMagics.backoff = 0.3")
    server.configure(answer_tokens=300, token_rate=300)
    server.add_fault("reset_mid_stream", after_tokens=150)
    with capture_output():
        ip.run_cell("%%voxtral talk.mp3 -o ans\nTalk a lot.")
    answer, messages = ip.user_ns["ans"], wire.custom
    assert server.request_count == 2 and len(answer.split()) == 300
    resets = [i for i, msg in enumerate(messages) if "text" in msg]
    assert resets and any("add" in msg for msg in messages[: resets[0]])  # text was shown, then reset
    assert messages[resets[0]]["text"] == ""  # the failed attempt's text is gone
    last = resets[-1]
    assert messages[last]["text"] + "".join(m.get("add", "") for m in messages[last + 1 :]) == answer
    assert shown(messages) == answer == view_of(ip).text


def test_a_front_end_that_missed_updates_gets_the_whole_text_once(ip, server, wire):
    """A widget model created from the kernel's state (a page reload while a --background cell
    streams) asks; the kernel is free to answer."""
    server.configure(answer_tokens=1000, token_rate=400)
    with capture_output():
        job = ip.run_cell_magic("voxtral", "talk.mp3 --background -o ans", "Talk a lot.")
        view = view_of(ip)
        deadline = time.monotonic() + 10
        while not view.box.text and time.monotonic() < deadline:
            time.sleep(0.02)
        model_id = view.box.model_id
        # the front end's request, as the kernel hands it to the comm (on the main thread)
        comm.get_comm_manager().comm_msg(None, None, {
            "content": {"comm_id": model_id, "data": {"method": "custom", "content": {"want": "all"}}},
            "buffers": []})
        answer = job.result(timeout=20)
    messages = wire.custom
    replies = [i for i, msg in enumerate(messages) if "text" in msg]
    assert len(replies) == 1, messages
    reply = messages[replies[0]]
    assert reply["text"] and len(reply["text"]) < len(answer)  # asked mid-stream
    assert answer.startswith(reply["text"]) and "tokens" in reply["status"]
    assert reply["n"] == messages[replies[0] - 1]["n"]  # the last update it sums up; the next is n + 1
    assert [m["n"] for m in messages[replies[0] + 1 :]] == list(range(reply["n"] + 1, len(messages)))
    # what it showed from then on: the whole text, then the appends that followed it
    assert reply["text"] + "".join(m.get("add", "") for m in messages[replies[0] + 1 :]) == answer
    assert shown(messages) == answer  # a view that was there all along just re-sets the same text


def test_a_request_on_the_kernel_thread_is_answered_on_voxmagic_s_loop():
    """The front end's request arrives on the kernel's thread; the reply goes out on the loop
    thread, the only one that updates the widget."""
    live = LiveText("status")
    threads = []
    live.send = lambda msg: threads.append((LOOP.on_loop_thread(), msg))
    live._handle_custom_msg({"want": "all"}, [])
    LOOP.run(_settle())
    assert threads == [(True, {"text": "", "status": "status", "n": 1})]  # the first update: the status
    live._handle_custom_msg({"something": "else"}, [])
    LOOP.run(_settle())
    assert len(threads) == 1
    live.close()


async def _settle() -> None:
    """Returns after what was already scheduled on the loop has run."""


# The ES module against a stand-in DOM and model: what each view shows after each message (a step
# is a message from Python, or "render" for a new view), and what the front end sent.
NODE_SCRIPT = """
const make = (tag) => ({tag, children: [], className: "", style: {cssText: ""},
  append(...nodes) { this.children.push(...nodes.map((n) => typeof n === "string" ? {text: n} : n)); },
  remove() { this.removed = true; },
  get textContent() { return this.children.map((c) => c.text ?? c.textContent).join(""); },
  set textContent(value) { this.children = value ? [{text: value}] : []; }});
globalThis.document = {createElement: make};
const {default: widget} = await import(MODULE);
const handlers = [], attributes = {}, sent = [];
const model = {get: (k) => attributes[k], set: (k, v) => (attributes[k] = v), send: (msg) => sent.push(msg),
  on: (name, f) => handlers.push(f), off: (name, f) => handlers.splice(handlers.indexOf(f), 1)};
widget.initialize({model});
const views = [], seen = [];
for (const step of STEPS) {
  if (step === "render") {
    const el = make("div");
    views.push({el, cleanup: widget.render({model, el})});
  } else handlers.forEach((f) => f(step));
  seen.push(views.map(({el}) => el.children[0].children.map((c) => c.textContent)));
}
const root = views[0].el.children[0], [status, text] = root.children;
views[0].cleanup();
console.log(JSON.stringify({sent, seen, root: root.className, status: status.style.cssText,
  text: [text.tag, text.style.cssText], removed: root.removed === true, listening: handlers.length}));
"""


def run_module(tmp_path, steps: list) -> dict:
    """The ES module's ``initialize`` on a stand-in model, then ``steps``, in node."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the ES module was not checked")
    module = tmp_path / "live_text.mjs"  # .mjs: node reads it as an ES module whatever its version
    module.write_text((files("voxmagic.notebook") / "live_text.js").read_text(encoding="utf-8"), encoding="utf-8")
    check = subprocess.run([node, "--check", str(module)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    script = NODE_SCRIPT.replace("MODULE", json.dumps(module.as_uri())).replace("STEPS", json.dumps(steps))
    run = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_es_module_keeps_the_whole_text_for_every_view(tmp_path):
    assert LiveText._esm == (files("voxmagic.notebook") / "live_text.js").read_text(encoding="utf-8")
    out = run_module(tmp_path, [
        {"status": "0 tokens", "n": 1}, "render", {"status": "1 tokens · $0.01 so far", "add": "Hello", "n": 2},
        {"status": "2 tokens", "add": " world", "n": 3}, "render",  # a second view, late: the whole text
        {"add": ", $5 and $6", "n": 4}, {"status": "retrying", "text": "", "n": 5}, {"add": "Again <b>&", "n": 6}])
    assert out["sent"] == []  # nothing missed, nothing asked
    assert out["seen"] == [
        [], [["0 tokens", ""]], [["1 tokens · $0.01 so far", "Hello"]], [["2 tokens", "Hello world"]],
        [["2 tokens", "Hello world"]] * 2, [["2 tokens", "Hello world, $5 and $6"]] * 2, [["retrying", ""]] * 2,
        [["retrying", "Again <b>&"]] * 2]
    assert "mathjax_ignore" in out["root"] and "tex2jax_ignore" in out["root"]  # no typesetting of $…$
    assert out["text"][0] == "pre" and "white-space:pre-wrap;word-break:normal" in out["text"][1]  # as _pre()
    assert "word-break:normal" in out["status"]
    assert out["removed"] and out["listening"] == 2  # a closed view lets go; the model's listener stays


def test_a_model_that_missed_updates_asks_once_for_the_whole_text(tmp_path):
    """Created from the kernel's state while the answer streams (a page reload, --background)."""
    out = run_module(tmp_path, [
        "render", {"status": "9 tokens", "add": " sit", "n": 7}, {"add": " amet", "n": 8},
        {"status": "9 tokens", "text": "Lorem ipsum dolor sit amet", "n": 8}, {"add": ",", "n": 9}])
    assert out["sent"] == [{"want": "all"}]
    assert [views[0][1] for views in out["seen"][1:]] == [" sit", " sit amet", "Lorem ipsum dolor sit amet",
                                                          "Lorem ipsum dolor sit amet,"]
