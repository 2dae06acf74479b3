"""How far a call has got. A batch, as tqdm users expect it: done/total, percent, in flight,
failures, rate, cost so far, elapsed and ETA, and one line per finished source
(:class:`Progress`). An answer as it streams: model, elapsed, tokens, cost so far, retries
(:class:`Answering`).

Plain bookkeeping and text, no display: the notebook's live views draw it, the command line
prints it.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

from .cost import audio_tokens, pricing_for, text_tokens
from .results import CUT, format_usd
from .streaming import Event, Planned, Retrying, TextDelta


class Answering:
    """One answer as it streams; ``request`` (or the :class:`Planned` event) tells the model and
    the audio, for the running cost estimate."""

    def __init__(self, request: Any = None):
        self.describe(request)
        self.tokens, self.note, self.began = 0, "", time.monotonic()

    def describe(self, request: Any) -> None:
        self.model: str = request.model if request else ""
        self.audio_seconds: float = request.audio_seconds if request else 0.0
        self.audio_tokens = sum(audio_tokens(c.duration_s) for c in request.audio) if request else 0
        self.prompt_tokens = self.audio_tokens + text_tokens(request.all_text) if request else 0
        self.pricing = pricing_for(request.model) if request else None

    def event(self, event: Event) -> None:
        if isinstance(event, TextDelta):
            self.tokens += 1
        elif isinstance(event, Retrying):
            self.tokens = 0
            self.note = f"attempt {event.attempt} failed ({type(event.error).__name__}); retrying"
        elif isinstance(event, Planned):
            self.describe(event.request)

    def line(self) -> str:
        """``mistralai/voxtral-small-24b-2507 · 2.0 s · 42 tokens · ≈$0.000213 so far``"""
        p = self.pricing
        cost = p.cost(self.prompt_tokens, self.tokens, self.audio_seconds, self.audio_tokens) if p else None
        bits = [self.model, f"{time.monotonic() - self.began:.1f} s", f"{self.tokens} tokens",
                f"≈{format_usd(cost)} so far" if cost is not None else "", self.note]  # fmt: skip
        return " · ".join(b for b in bits if b)


def clock(seconds: float) -> str:
    """A duration as a person reads it: 8.4 s, 3 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(seconds)
    return f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


class Progress:
    """A batch of ``labels`` as it runs. In flight: the sources whose first request went out
    (:meth:`started`) and that have not finished; without such reports, an upper bound (``≤N``)
    from ``concurrency``."""

    def __init__(self, labels: list[str], concurrency: int | None = None):
        self.labels = [Path(label).name or label for label in labels]
        self.total, self.done, self.failed, self.cost = len(labels), 0, 0, 0.0
        self.unpriced = 0  # finished sources whose cost the server did not say (vLLM)
        self.concurrency, self.reported_starts = concurrency, False
        self.running: set[int] = set()
        self.recent: deque[str] = deque(maxlen=6)
        self.began = time.monotonic()
        self.partial: dict[int, tuple[int, float, float]] = {}  # a long source's chunks in: count, reach, cost
        self.lengths: dict[int, float] = {}  # a long source's audio seconds, as its header says
        self.since: dict[int, float] = {}  # when work on a source began

    def started(self, index: int) -> None:
        self.reported_starts = True
        self.running.add(index)
        self.since.setdefault(index, time.monotonic())

    def chunk(self, index: int, rows: list[dict[str, Any]], length_s: float | None = None) -> str:
        """Count a chunk of a source still running (a long file moves the header before it ends);
        from a source's second chunk on, its line, e.g. ``… talk.mp3: 2 chunks in, 50 min 00 s of
        2 h 00 min of audio · $0.005 so far · ETA 3 min 10 s`` (empty for the first: most sources
        have only one). ``length_s``: the source's length, when known without decoding it."""
        from .stitch import summary  # batches only: a question's progress never imports stitch

        done = summary(rows)
        if done["error"]:  # a failed chunk is not "in": the source's row will say what failed
            return ""
        count, seconds, cost = self.partial.get(index, (0, 0.0, 0.0))
        count, seconds, cost = count + 1, seconds + done["reach_s"], cost + (done["cost_usd"] or 0.0)
        self.partial[index] = (count, seconds, cost)
        if length_s:
            self.lengths[index] = length_s
        if count < 2:
            return ""
        length = self.lengths.get(index)
        of = f" of {clock(length)}" if length and length > seconds else ""
        left = self._left(index)
        eta = f" · ETA {clock(left)}" if left is not None else ""
        return (
            f"… {self.labels[index]}: {count} chunks in, {clock(seconds)}{of} of audio · {format_usd(cost)} so far{eta}"
        )

    def _left(self, index: int) -> float | None:
        """Seconds until a long source is done, at the pace its audio has gone so far; None when
        its length is not known (a URL, a header that does not say)."""
        _, seconds, _ = self.partial.get(index, (0, 0.0, 0.0))
        length, elapsed = self.lengths.get(index), time.monotonic() - self.since.get(index, self.began)
        if not length or not seconds or elapsed <= 0 or length <= seconds:
            return None
        return (length - seconds) * elapsed / seconds

    def finished(self, index: int, rows: list[dict[str, Any]]) -> str:
        """Count a finished source (its row, or its chunks' rows); its line, e.g.
        ``✓ a.mp3 · 12.0 s audio · $0.000604``."""
        from .stitch import summary

        self.done += 1
        self.running.discard(index)
        self.partial.pop(index, None)  # its whole row counts now
        self.lengths.pop(index, None)
        self.since.pop(index, None)
        name, total = self.labels[index], summary(rows)
        self.cost += total["cost_usd"] or 0.0
        self.unpriced += total["cost_usd"] is None and not total["error"]
        if total["error"]:
            self.failed += 1
            line = f"✗ {name}: {total['error']}"
        else:
            cached = " (cached)" if total["cached"] else ""
            line = f"✓ {name} · {total['duration_s']:.1f} s audio · {format_usd(total['cost_usd'])}{cached}"
            if total["cut"]:  # ✓ alone read as complete (--max-tokens, or a chunk too short to cut again)
                part = "the answer" if len(rows) == 1 else f"{total['cut']} of {len(rows)} chunks"
                line += f" · {part} {CUT} (finish_reason length)"
        self.recent.append(line)
        return line

    def in_flight(self) -> str:
        if self.reported_starts:
            return str(len(self.running))
        return f"≤{min(self.concurrency, self.total - self.done)}" if self.concurrency else ""

    def header(self) -> str:
        """``1/2 files · 50% · 1 in flight · 1 failed · 1.6 s/file · $0.000604 · 1.7 s elapsed · ETA 1.6 s``"""
        elapsed, left = time.monotonic() - self.began, self.total - self.done
        rate = self.done / elapsed if elapsed > 0 else 0.0
        flying = self.in_flight() if left else ""
        chunks = sum(n for n, _, _ in self.partial.values() if n > 1)
        cost = self.cost + sum(c for _, _, c in self.partial.values())  # chunks answered count at once
        bits = [
            f"{self.done}/{self.total} files",
            f"{100 * self.done // max(1, self.total)}%" if self.done else "",
            f"{flying} in flight" if flying not in ("", "0", "≤0") else "",
            f"{chunks} chunks of long files in" if chunks else "",
            f"{self.failed} failed" if self.failed else "",
            (f"{rate:.2f} files/s" if rate >= 1 else f"{1 / rate:.1f} s/file") if rate else "",
            "cost unknown" if self.unpriced and not cost else format_usd(cost),
            f"{self.unpriced} of unknown cost" if self.unpriced and cost else "",
            f"{clock(elapsed)} elapsed",
            f"ETA {clock(left / rate)}" if rate and left else self._long_eta() if left else "",
        ]
        return " · ".join(b for b in bits if b)

    def _long_eta(self) -> str:
        """Before any source has finished: the ETA of the long sources under way, when each of them
        has its length and every source is one of them (a batch of one 2-hour file)."""
        lefts = [self._left(i) for i in self.partial]
        if not lefts or None in lefts or len(self.partial) < self.total - self.done:
            return ""
        return f"ETA {clock(max(x for x in lefts if x is not None))}"
