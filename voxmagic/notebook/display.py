"""Live views of a running call, and what stays in the notebook afterwards.

In a kernel: an ipywidgets view that voxmagic's loop thread updates at a bounded rate (a kernel
drops iopub messages above ~1,000/s, and every update resends the whole text), which is then
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

import html
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..chat import ChatRequest
from ..cost import audio_tokens, format_usd, pricing_for, text_tokens
from ..loop import Throttle
from ..streaming import Event, Retrying, TextDelta
from ..tools import tool_line


def widgets_available(mode: str = "auto") -> bool:
    """Widgets only where a kernel can carry them (``mode``: auto, widget or text)."""
    if mode != "auto":
        return mode == "widget"
    from IPython import get_ipython

    ip = get_ipython()
    return ip is not None and getattr(ip, "kernel", None) is not None


def _pre(text: str) -> str:
    return (
        '<pre style="white-space:pre-wrap;margin:0;font-family:var(--jp-content-font-family,'
        f'inherit)">{html.escape(text)}</pre>'
    )


def _muted(text: str, color: str = "var(--jp-ui-font-color2,#666)") -> str:
    """A status line. The classes keep MathJax off it: JupyterLab would typeset the text between
    two dollar amounts ("$0.0002 · session $0.0004") as LaTeX."""
    return (
        f'<div class="mathjax_ignore tex2jax_ignore" style="color:{color};font-size:90%">'
        f"{html.escape(text).replace(chr(10), '<br>')}</div>"
    )


def show(bundle: dict[str, str]) -> None:
    from IPython.display import display

    display(bundle, raw=True)


class StreamView:
    """What ``%%voxtral`` shows while an answer streams: status line and growing text."""

    def __init__(self, request: ChatRequest, *, widget: bool, rate: float = 10.0):
        self.model, self.audio_seconds = request.model, request.audio_seconds
        self.audio_tokens = sum(audio_tokens(c.duration_s) for c in request.audio)
        self.prompt_tokens = self.audio_tokens + text_tokens(request.all_text)
        self.pricing = pricing_for(request.model)
        self.parts: list[str] = []
        self.tokens = 0
        self.note = ""
        self.started = time.monotonic()
        self.throttle = Throttle(rate, self._flush)
        self.widget = widget
        self.handle = None
        self.updates = 0  # times the widget's text really changed
        if widget:
            import ipywidgets as w
            from IPython.display import display

            self.status, self.body = w.HTML(), w.HTML()
            self.body.observe(self._count, "value")
            self.box = w.VBox([self.status, self.body])
            self.status.value = _muted(self.status_line())
            self.handle = display(self.box, display_id=True)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def status_line(self) -> str:
        cost = self.pricing.cost(self.prompt_tokens, self.tokens, self.audio_seconds, self.audio_tokens)
        note = f" · {self.note}" if self.note else ""
        return (
            f"{self.model} · {time.monotonic() - self.started:.1f} s · {self.tokens} tokens · ≈${cost:.4f} so far{note}"
        )

    def on_event(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.parts.append(event.text)
            self.tokens += 1
            if not self.widget:
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, Retrying):
            self.parts.clear()
            self.tokens = 0
            self.note = f"attempt {event.attempt} failed ({type(event.error).__name__}); retrying"
            if not self.widget:
                sys.stdout.write(f"\n[{self.note} in {event.wait_s:.1f} s]\n")
        self.throttle.poke()

    def on_tools(self, runs: list[dict[str, Any]]) -> None:
        """Functions run for the model's tool calls: one line each, between the answers."""
        lines = self._new_line() + "".join(f"{tool_line(run)}\n" for run in runs)
        self.parts.append(lines)
        if not self.widget:
            sys.stdout.write(lines)
            sys.stdout.flush()
        self.throttle.poke()

    def _new_line(self) -> str:
        """What starts a new line after the text so far."""
        return "\n" if self.text and not self.text.endswith("\n") else ""

    def _count(self, change: Any) -> None:
        self.updates += 1

    def _flush(self) -> None:
        if self.widget:
            self.body.value = _pre(self.text)
            self.status.value = _muted(self.status_line())

    def close(self) -> None:
        """The last, exact update; later events change nothing (loop thread, idempotent)."""
        self.throttle.close()

    def finish(self, text: str, summary: str, tally: str, extra_html: str = "") -> None:
        """Close, then replace the live view with the final result (loop thread)."""
        self.close()
        if self.widget and self.handle is not None:
            self.handle.update(
                {
                    "text/plain": f"{text}\n[{summary}]\n{tally}",
                    "text/html": _muted(summary) + _pre(text) + extra_html + _muted(tally),
                },
                raw=True,
            )
            self.box.close()
        else:
            # print what did not stream (tool calls shown but not run); the rest is on screen
            streamed = [line for line in self.text.splitlines() if line.strip()]
            lines = [line for line in text.splitlines() if line.strip()]
            missing = lines[len(streamed) :] if lines[: len(streamed)] == streamed else lines
            if missing:
                print(self._new_line() + "\n".join(missing), end="")
            print(f"\n[{summary}]\n{tally}")

    def fail(self, message: str) -> None:
        """Close, then keep whatever had streamed, with the error under it (loop thread)."""
        self.close()
        partial = self.text
        if self.widget and self.handle is not None:
            self.handle.update(
                {
                    "text/plain": f"{partial}\n[{message}]",
                    "text/html": _pre(partial) + _muted(message, "var(--jp-error-color1,#c00)"),
                },
                raw=True,
            )
            self.box.close()
        elif partial:
            print()


class BatchView:
    """What ``%voxtral_transcribe`` shows: files done/total, a bar, recent files, running cost."""

    def __init__(self, labels: list[str], *, widget: bool, rate: float = 10.0):
        self.labels = [Path(label).name or label for label in labels]
        self.total, self.done, self.failed, self.cost = len(labels), 0, 0, 0.0
        self.recent: deque[str] = deque(maxlen=6)
        self.started = time.monotonic()
        self.throttle = Throttle(rate, self._flush)
        self.widget = widget
        if widget:
            import ipywidgets as w
            from IPython.display import display

            self.header, self.log = w.HTML(_muted(self.header_line())), w.HTML()
            self.bar = w.IntProgress(value=0, min=0, max=max(1, self.total))
            self.box = w.VBox([self.header, self.bar, self.log])
            self.handle = display(self.box, display_id=True)

    def header_line(self) -> str:
        bad = f" · {self.failed} failed" if self.failed else ""
        return (
            f"{self.done}/{self.total} files{bad} · {format_usd(self.cost)} · {time.monotonic() - self.started:.1f} s"
        )

    def on_result(self, index: int, rows: list[dict[str, Any]]) -> None:
        """A source finished: its row, or its chunks' rows."""
        from ..stitch import summary

        self.done += 1
        name, total = self.labels[index], summary(rows)
        self.cost += total["cost_usd"]
        if total["error"]:
            self.failed += 1
            line = f"✗ {name}: {total['error']}"
        else:
            cached = " (cached)" if total["cached"] else ""
            line = f"✓ {name} · {total['duration_s']:.1f} s audio · {format_usd(total['cost_usd'])}{cached}"
        self.recent.append(line)
        if not self.widget:
            print(f"[{self.done}/{self.total}] {line}", flush=True)
        self.throttle.poke()

    def _flush(self) -> None:
        if self.widget:
            self.bar.value = self.done
            self.header.value = _muted(self.header_line())
            self.log.value = _pre("\n".join(self.recent))

    def close(self) -> None:
        """The last, exact update; later results change nothing (loop thread, idempotent)."""
        self.throttle.close()

    def finish(self, tally: str) -> None:
        self._replace(f"{self.header_line()}\n{tally}")

    def fail(self, message: str) -> None:
        """In place of the view in a notebook; in a terminal the error raised next says it."""
        self._replace(message, "var(--jp-error-color1,#c00)", echo=False)

    def _replace(self, text: str, color: str = "var(--jp-ui-font-color2,#666)", echo: bool = True) -> None:
        """Close, then put the final text in the view's place (loop thread)."""
        self.close()
        if self.widget and self.handle is not None:
            self.handle.update({"text/plain": text, "text/html": _muted(text, color)}, raw=True)
            self.box.close()
        elif echo:
            print(text.splitlines()[-1])
