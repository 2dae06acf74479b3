"""Live widget updates per second while ``%%voxtral`` streams 2,000 tokens at 1,000 tokens/s, whether
the widget's final text is exact, and the bytes the live view sends over the widget comms while a
4,000-token answer streams, per byte of the answer.

    python benchmarks/widgets.py [--repeat 3]

Runs a real ``IPython.core.interactiveshell.InteractiveShell`` in this process (``%load_ext
voxmagic``, ``%config VoxtralMagics.display_mode = 'widget'``) against the local server started
with ``--answer-tokens 2000 --token-rate 1000``. Each cell is ``%%voxtral CLIP -o answer
--no-cache`` (so it really streams). After it, the magic's ``last_view`` says how many times the
widget's text changed (``.updates``) and what it last held (``.text``).

Every widget comm records what it sends (``comm.create_comm`` returns a comm whose
``publish_msg`` keeps each message): the message content — ``{"data", "comm_id", ...}`` — and its
metadata JSON-encoded as ``jupyter_client`` puts them on the wire, plus binary buffers; the Jupyter
envelope (header, parent header, signature: a few hundred bytes a message, whatever it carries) is
not counted — the view sends one message per update, the former view two. The front end's text
is rebuilt from the custom messages as ``live_text.js`` applies them.

updates/s = updates / streaming time (first token to end, ``_voxtral.latency_s - ttft_s``), the
median of ``repeat`` cells, for the default ``updates_per_second`` (10) and for 20. "exact": in
every cell the view's text equals ``-o answer``, so does the text the front end rebuilds from the
messages, and the answer has 2,000 tokens.

bytes / answer: the server then answers 4,000 tokens (at 1,000/s); everything the cell's widgets
sent (opening, updates, closing) over the answer's UTF-8 size, median of ``repeat`` cells, for the
default ``updates_per_second`` (the target) and for 20 (information: each update also carries the
status line, about 200 bytes a message with the comm's framing).
"Whole text per update" is the view before it sent appends — a VBox of two ``HTML`` widgets, the
body's value set to the whole text at every update — replayed through real ipywidgets with the
same sequence of updates, so both figures come from the same cells.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request
from typing import Any

import comm
from _common import Row, local_server, median, memo_clips, report, runs, temp_history
from jupyter_client.session import json_packer

TARGET = 25.0
BYTES_TARGET = 2.0


class Wire:
    """Every message of every widget comm opened from now on, with its size on the wire."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, int, Any]] = []  # (msg_type, bytes, data)
        wire = self

        class Recording(comm.DummyComm):
            def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
                content = dict(data=data, comm_id=self.comm_id, **keys)  # as ipykernel's Comm builds it
                size = len(json_packer(content)) + len(json_packer(metadata or {}))
                wire.messages.append((msg_type, size + sum(memoryview(b).nbytes for b in buffers or ()), data))

        comm.create_comm = Recording

    def since(self, start: int) -> tuple[int, list[dict]]:
        """Bytes sent since message ``start``, and the custom messages among them."""
        sent = self.messages[start:]
        custom = [d["content"] for kind, _, d in sent if kind == "comm_msg" and d.get("method") == "custom"]
        return sum(size for _, size, _ in sent), custom


def front_end(custom: list[dict]) -> list[tuple[str, str]]:
    """(text, status line) after each custom message, as ``live_text.js`` shows them."""
    text, status, states = "", "", []
    for msg in custom:
        status = msg.get("status", status)
        text = msg["text"] if "text" in msg else text + msg.get("add", "")
        states.append((text, status))
    return states


def whole_text_bytes(wire: Wire, states: list[tuple[str, str]]) -> int:
    """What the former view (status and body ``HTML`` widgets in a VBox, the whole text at every
    update) sends for the same updates: opened, updated, closed, as it did."""
    import ipywidgets as w

    from voxmagic.notebook.display import _close, _muted, _pre

    start = len(wire.messages)
    status, body = w.HTML(), w.HTML()
    box = w.VBox([status, body])
    status.value = _muted(states[0][1])  # the first update (the status line alone) was its initial state
    for text, line in states[1:]:
        body.value = _pre(text)
        status.value = _muted(line)
    _close(box)
    return wire.since(start)[0]


def configure(server: Any, **config: Any) -> None:
    req = urllib.request.Request(server.url + "/_control/config", data=json.dumps(config).encode(), method="POST")
    urllib.request.urlopen(req).close()


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clip = memo_clips(1)[0]
    wire = Wire()
    rows = []
    with temp_history() as work, local_server(answer_tokens=2000, token_rate=1000) as server:
        os.environ["IPYTHONDIR"] = str(work / "ipython")  # not the user's profile
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.utils.capture import capture_output
        from traitlets.config import Config

        os.environ["OPENROUTER_API_KEY"] = "bench"
        config = Config()
        config.HistoryManager.enabled = False  # keep IPython's input history in memory
        ip = InteractiveShell.instance(config=config)

        def run(cell: str) -> None:
            with capture_output():  # the widget's repr and the final text would fill the log
                result = ip.run_cell(cell)
            result.raise_error()

        def ask() -> tuple[Any, Any, str, int, list[dict]]:
            """One streamed answer: the view, the response, the answer, bytes sent, custom messages."""
            start = len(wire.messages)
            run(f"%%voxtral {clip} -o answer --no-cache\nDescribe the audio.")
            view = ip.magics_manager.registry["VoxtralMagics"].session.last_view
            return (view, ip.user_ns["_voxtral"], ip.user_ns["answer"], *wire.since(start))

        run("%load_ext voxmagic")
        run(f"%config VoxtralMagics.display_mode = 'widget'\n%config VoxtralMagics.base_url = '{server.base_url}'")
        for rate in (None, 20):
            if rate is not None:
                run(f"%config VoxtralMagics.updates_per_second = {rate}")
            per_second, walls, exact = [], [], True
            for _ in range(args.repeat):
                started = time.perf_counter()
                view, response, answer, _, custom = ask()
                walls.append(time.perf_counter() - started)
                streaming = response.latency_s - response.ttft_s
                per_second.append(view.updates / streaming)
                shown = front_end(custom)[-1][0]
                exact &= (view.text == answer == shown and response.usage.completion_tokens == 2000)
                tokens = response.usage.completion_tokens
                print(f"updates_per_second={rate or 10}: {view.updates} updates in {streaming:.2f} s of "
                      f"streaming ({walls[-1]:.2f} s cell) -> {per_second[-1]:.1f}/s; {tokens} tokens "
                      f"({tokens / streaming:.0f}/s); text exact: {view.text == answer == shown}")
            value = median(per_second)
            print(f"updates_per_second={rate or 10}: {runs(per_second, '{:.1f}')} /s, median {value:.1f}/s")
            setting = "default (10)" if rate is None else str(rate)
            rows.append(Row(f"widgets: updates/s streaming 2,000 tokens at 1,000/s, updates_per_second = "
                            f"{setting} (median of {args.repeat})", f"≤ {TARGET:g}/s, exact",
                            f"{value:.1f}/s, {'exact' if exact else 'NOT exact'}", value <= TARGET and exact))
        configure(server, answer_tokens=4000)
        rows += [traffic(ask, run, wire, rate, args.repeat) for rate in (10, 20)]
    return rows


def traffic(ask: Any, run: Any, wire: Wire, rate: int, repeat: int) -> Row:
    """Bytes over the widget comms per byte of a 4,000-token answer, now and as the whole text per update."""
    run(f"%config VoxtralMagics.updates_per_second = {rate}")
    ratios, before, exact = [], [], True
    for _ in range(repeat):
        view, response, answer, sent, custom = ask()
        states = front_end(custom)
        size = len(answer.encode())
        adds = "".join(msg.get("add", "") for msg in custom)
        exact &= (states[-1][0] == adds == answer and response.usage.completion_tokens == 4000
                  and not any("text" in msg for msg in custom))
        old = whole_text_bytes(wire, states)
        ratios.append(sent / size)
        before.append(old / size)
        print(f"updates_per_second={rate}: {sent:,} B ({view.updates} updates, {len(custom)} messages) "
              f"for a {size:,} B answer "
              f"({response.usage.completion_tokens} tokens) -> {sent / size:.2f}x; whole text per update: "
              f"{old:,} B -> {old / size:.1f}x; appends add up to the answer: {adds == answer}")
    value, old_value = median(ratios), median(before)
    print(f"updates_per_second={rate}: {runs(ratios, '{:.2f}')} x, median {value:.2f}x "
          f"(whole text per update {runs(before, '{:.1f}')} x)")
    default = rate == 10  # the target is for the default rate; 20/s is printed for comparison
    return Row(f"widgets: bytes sent over the widget comms / answer bytes, streaming 4,000 tokens at 1,000/s, "
               f"updates_per_second = {'default (10)' if default else rate} (median of {repeat})",
               f"≤ {BYTES_TARGET:g}×, exact" if default else "comparison",
               f"{value:.2f}× (whole text per update: {old_value:.1f}×), {'exact' if exact else 'NOT exact'}",
               value <= BYTES_TARGET and exact if default else None)


if __name__ == "__main__":
    report(main())
