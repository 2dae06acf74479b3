"""Live views of a running call, and what stays in the notebook afterwards.

In a kernel: a widget that voxmagic's loop thread updates at a bounded rate (a kernel drops iopub
messages above ~1,000/s; a streamed answer's view sends only what is new, :mod:`.live_text`), then
replaced, through its display id, by a static HTML + text/plain result — what nbconvert and
nbclient save, and what a frontend without widgets shows. Without a kernel (terminal IPython,
scripts) the text is printed as it streams.

Threads: a view is created (and its widget displayed) on the main thread, inside the cell;
from then on only voxmagic's loop thread touches it — ``on_event``/``on_result`` as the call
runs, then ``finish`` or ``fail``, which first ``close`` it (the throttle's last, exact update)
and then replace it — so one widget is never mutated from two threads at once. With
``--background`` those last calls happen after the cell has returned, still on the loop thread.
"""

from __future__ import annotations

import asyncio
import html
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from ..chat import ChatRequest
from ..loop import LOOP, Throttle
from ..progress import Answering, Progress
from ..streaming import Event, Retrying, Sent, TextDelta
from ..tools import tool_line


def widgets_available(mode: str = "auto") -> bool:
    """Widgets only where a kernel can carry them (``mode``: auto, widget or text)."""
    if mode != "auto":
        return mode == "widget"
    from IPython import get_ipython

    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _pre(text: str) -> str:
    """Text as it came, wrapped at spaces: a frontend's output ``pre`` breaks words anywhere
    (``word-break: break-all`` in JupyterLab, Notebook 7 and nbconvert's HTML) unless told not to."""
    return (
        '<pre style="white-space:pre-wrap;word-break:normal;overflow-wrap:anywhere;margin:0;'
        f'font-family:var(--jp-content-font-family,inherit)">{html.escape(text)}</pre>'
    )


def _muted(text: str, color: str = "var(--jp-ui-font-color2,#666)") -> str:
    """A status line. The classes keep MathJax off it: JupyterLab would typeset the text between
    two dollar amounts ("$0.0002 · session $0.0004") as LaTeX."""
    return (
        f'<div class="mathjax_ignore tex2jax_ignore" style="color:{color};font-size:90%;word-break:normal">'
        f"{html.escape(text).replace(chr(10), '<br>')}</div>"
    )


def _close(box: Any) -> None:
    """Close a view's widgets — the box, its children and their layout and style models: a saved
    notebook keeps the state of every widget still open (30 models, 25 KB, for the quickstart)."""
    for widget in (*getattr(box, "children", ()), box):
        for part in (getattr(widget, "style", None), getattr(widget, "layout", None), widget):
            if part is not None:
                part.close()


class StreamView:
    """What ``%%voxtral`` shows while an answer streams: status line and growing text."""

    def __init__(self, request: ChatRequest | None, *, widget: bool, rate: float = 10.0, later: bool = False):
        """``request`` gives the status line its model and running cost estimate; without it (the
        Python API starts its view before the audio is read) they come with the Planned event.
        ``later``: the widget is displayed by :meth:`show`, which may come after the call began."""
        self.answering = Answering(request)
        self.parts: list[str] = []
        self.throttle = Throttle(rate, self._flush)
        self.widget = widget
        self.handle: Any = None
        self.box: Any = None
        self.updates = 0  # times the widget's text really changed
        self._lock = threading.Lock()  # the widget's creation (main thread) against its updates (loop)
        self.sent = threading.Event()  # the request has left, or the call is over
        self._shown = False
        self._final: dict[str, str] | None = None  # a result that came before the widget was shown
        self._later = later
        if widget and not later:
            self.show()

    def show(self) -> None:
        """Display the widget (main thread, in the cell; only the first call does anything). The
        call may already be running: what streamed before goes out with the next update, and a
        call that already ended is shown as its result, where the widget would have been."""
        if not self.widget or self._shown:
            return
        from IPython.display import display

        from .live_text import LiveText  # anywidget: ~0.1 s in a fresh kernel, while the request goes out

        with self._lock:
            if self._shown:
                return
            self._shown = True
            if self._final is not None:
                display(self._final, raw=True)
                return
            self.box = LiveText(self.status_line())
            self.handle = display(self.box, display_id=True)
        if self._later:  # what came before the widget existed (on the loop thread, as every update)
            LOOP.loop.call_soon_threadsafe(self.throttle.poke)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def status_line(self) -> str:
        return self.answering.line()

    @property
    def tokens(self) -> int:
        return self.answering.tokens

    def on_event(self, event: Event) -> None:
        self.answering.event(event)
        if isinstance(event, TextDelta):
            self.parts.append(event.text)
            if not self.widget:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, Retrying):
            self.parts.clear()
            if not self.widget:
                sys.stdout.write(f"\n[{self.answering.note} in {event.wait_s:.1f} s]\n")
        elif isinstance(event, Sent):
            self.sent.set()
        self._poke()

    def on_tools(self, runs: list[dict[str, Any]]) -> None:
        """Functions run for the model's tool calls: one line each, between the answers."""
        lines = self._new_line() + "".join(f"{tool_line(run)}\n" for run in runs)
        self.parts.append(lines)
        if not self.widget:
            sys.stdout.write(lines)
            sys.stdout.flush()
        self._poke()

    def _poke(self) -> None:
        """A widget not shown yet takes no flushes: :meth:`show` pokes once it exists."""
        if self._shown or not self.widget:
            self.throttle.poke()

    def _new_line(self) -> str:
        """What starts a new line after the text so far."""
        return "\n" if self.text and not self.text.endswith("\n") else ""

    def _flush(self) -> None:
        if self.widget:
            with self._lock:
                if self.box is not None:
                    self.updates += self.box.show(self.text, self.status_line())

    def close(self) -> None:
        """The last, exact update; later events change nothing (loop thread, idempotent)."""
        self.throttle.close()
        self.sent.set()

    def finish(self, text: str, summary: str, tally: str) -> None:
        """Close, then replace the live view with the final result (loop thread)."""
        html_ = _muted(summary) + _pre(text) + _muted(tally)
        if not self._replace(f"{text}\n[{summary}]\n{tally}", html_):
            # print what did not stream (tool calls shown but not run); the rest is on screen
            streamed = [line for line in self.text.splitlines() if line.strip()]
            lines = [line for line in text.splitlines() if line.strip()]
            missing = lines[len(streamed) :] if lines[: len(streamed)] == streamed else lines
            if missing:
                print(self._new_line() + "\n".join(missing), end="")
            print(f"\n[{summary}]\n{tally}")

    def fail(self, message: str) -> None:
        """Close, then keep whatever had streamed, with the error under it (loop thread)."""
        partial = self.text
        html_ = _pre(partial) + _muted(message, "var(--jp-error-color1,#c00)")
        if not self._replace(f"{partial}\n[{message}]", html_) and partial:
            print()

    def _replace(self, plain: str, html_: str) -> bool:
        """Close, then put the final result in the widget's place (or leave it for :meth:`show`
        when the widget is not displayed yet); False without a widget."""
        self.close()
        if not self.widget:
            return False
        bundle = {"text/plain": plain, "text/html": html_}
        with self._lock:
            if not self._shown:
                self._final = bundle
                return True
        if self.handle is None:
            return False
        self.handle.update(bundle, raw=True)
        _close(self.box)
        return True


class BatchView:
    """What ``%voxtral_transcribe`` shows: a header (done/total, percent, in flight, failures,
    rate, cost, elapsed, ETA), a bar, recent files — in a terminal, a line per finished file.

    The header ticks while nothing finishes: :meth:`start` (on voxmagic's loop) runs a timer that
    pokes the same throttle as the results, so updates stay within ``rate`` per second; ``close``
    stops it. In flight: the sources the batch runner reported started (:meth:`on_start`) and not
    yet finished; a runner that does not report starts gets an upper bound (``≤N``) from the
    concurrency."""

    CHUNK_LINE_S = 5.0  # in a terminal, a long file's progress line at most this often

    def __init__(
        self,
        labels: list[str],
        *,
        widget: bool,
        rate: float = 10.0,
        concurrency: int | None = None,
        length: Callable[[int], float | None] | None = None,
    ):
        """``length(index)``: a source's audio seconds when known without decoding it (asked once,
        at its second answered chunk: a batch of 1,000 clips reads no headers), for a long file's
        "of 2 h 00 min" and ETA."""
        self.progress = Progress(labels, concurrency)
        self.length, self.measured = length, set[int]()
        self.chunk_said = 0.0
        self.throttle = Throttle(rate, self._flush)
        self.tick_s = max(0.5, 1.0 / rate)
        self.timer: asyncio.TimerHandle | None = None
        self.widget = widget
        if widget:
            import ipywidgets as w
            from IPython.display import display

            self.header, self.log = w.HTML(_muted(self.header_line())), w.HTML()
            self.bar = w.IntProgress(value=0, min=0, max=max(1, self.progress.total))
            self.box = w.VBox([self.header, self.bar, self.log])
            self.handle = display(self.box, display_id=True)

    def header_line(self) -> str:
        return self.progress.header()

    def start(self) -> None:
        """Tick the header while the batch runs (loop thread; only the first call does anything)."""
        if self.widget and self.timer is None and not self.throttle.closed:
            self.timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def _tick(self) -> None:
        if not self.throttle.closed:
            self.throttle.poke()
            self.timer = asyncio.get_running_loop().call_later(self.tick_s, self._tick)

    def on_start(self, index: int) -> None:
        """The batch runner began on source ``index`` (preparing or sending it)."""
        self.progress.started(index)
        self.start()
        self.throttle.poke()

    def on_chunk(self, index: int, rows: list[dict[str, Any]]) -> None:
        """A chunk of a source still running was answered: a long file's progress (in a terminal,
        a line from its second chunk on)."""
        known, earlier = None, self.progress.partial.get(index, (0,))[0]
        if self.length is not None and earlier and index not in self.measured:  # a long file: not every clip
            self.measured.add(index)
            known = self.length(index)
        line = self.progress.chunk(index, rows, known)
        now, second = time.monotonic(), self.progress.partial.get(index, (0,))[0] == 2
        if line and not self.widget and (now - self.chunk_said >= self.CHUNK_LINE_S or second):
            self.chunk_said = now  # a line every few seconds, not one per chunk of a 100-chunk file
            print(f"[{self.progress.done}/{self.progress.total}] {line}", flush=True)
        self.throttle.poke()

    def on_result(self, index: int, rows: list[dict[str, Any]]) -> None:
        """A source finished: its row, or its chunks' rows."""
        line = self.progress.finished(index, rows)
        if not self.widget:
            p = self.progress
            print(f"[{p.done}/{p.total}] {line}", flush=True)
        self.start()
        self.throttle.poke()

    def _flush(self) -> None:
        if self.widget:
            self.bar.value = self.progress.done
            self.header.value = _muted(self.header_line())
            self.log.value = _pre("\n".join(self.progress.recent))

    def close(self) -> None:
        """The last, exact update; stops the ticking; later results change nothing (loop thread,
        idempotent)."""
        if self.timer is not None:
            self.timer.cancel()
        self.throttle.close()

    def finish(self, tally: str) -> None:
        self._replace(f"{self.header_line()}\n{tally}")

    def fail(self, message: str) -> None:
        """In place of the view in a notebook; in a terminal the error raised next says it."""
        self._replace(message, "var(--jp-error-color1,#c00)", echo=False)

    def discard(self) -> None:
        """Nothing to keep: the view goes (the error raised next is the whole story)."""
        self._replace("", echo=False)

    def _replace(self, text: str, color: str = "var(--jp-ui-font-color2,#666)", echo: bool = True) -> None:
        """Close, then put the final text in the view's place (loop thread)."""
        self.close()
        if self.widget and self.handle is not None:
            self.handle.update({"text/plain": text, "text/html": _muted(text, color)}, raw=True)
            _close(self.box)
        elif echo:
            print(text)
