"""The Python API as a notebook user calls it: ``voxmagic.ask``, ``transcribe``, ``ask_each`` and
``transcripts`` show the magics' live views when they run in a Jupyter kernel — the answer
growing, a batch's progress — and are :mod:`voxmagic.api`'s own functions everywhere else
(scripts, terminals) or when the caller follows the work itself (``on_event=``/``on_result=``).

The core never imports this module; the package's public names point here (``voxmagic/__init__``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .. import api, runner
from ..audio import source_options
from ..audio import sources as audio_sources
from ..errors import VoxmagicError
from ..limits import DEFAULT_CONCURRENCY
from ..loop import LOOP
from ..runner import ledger
from .display import BatchView, StreamView, widgets_available

T = TypeVar("T")


def _live(options: dict[str, Any], hook: str) -> bool:
    return options.get(hook) is None and widgets_available()


def _run(work: Callable[[], Coroutine[Any, Any, T]], view: Any, done: Callable[[T], None]) -> T:
    """``work`` on voxmagic's loop; the view is closed and finished (or failed) there too."""

    async def watched() -> T:
        try:
            result = await work()
        except VoxmagicError as exc:
            view.fail(str(exc))
            raise
        except asyncio.CancelledError:
            view.fail("cancelled: what finished is in the history (voxmagic.history())")
            raise
        done(result)
        return result

    return LOOP.run(watched())


@functools.wraps(api.ask)
def ask(audio: Any, prompt: str, **options: Any) -> Any:
    if not _live(options, "on_event"):
        return api.ask(audio, prompt, **options)
    view = StreamView(None, widget=True)

    def done(r: Any) -> None:
        view.finish(r.text, r.summary, ledger.tally(r.cost_usd, max(1, len(r.rounds))))

    return _run(lambda: api.ask_async(audio, prompt, on_event=view.on_event, **options), view, done)


def _batch(function: Callable[..., Any], sources: Any, *args: Any, **options: Any) -> Any:
    """A table-shaped call with a progress view: one line per finished source, then the tally."""
    items = audio_sources(sources, **source_options(options))
    concurrency = options.get("concurrency", DEFAULT_CONCURRENCY)
    view = BatchView([runner.label(s) for s in items], widget=True, concurrency=concurrency)

    def on_result(index: int, row: dict) -> None:
        view.on_result(index, [row])

    mark = ledger.calls

    def done(df: Any) -> None:
        view.finish(ledger.tally_since(mark))

    async def work() -> Any:
        view.start()  # the header ticks from now on (loop thread)
        return await function(items, *args, on_result=on_result, **options)

    return _run(work, view, done)


@functools.wraps(api.transcribe)
def transcribe(sources: Any, *args: Any, **options: Any) -> Any:
    if not _live(options, "on_result"):
        return api.transcribe(sources, *args, **options)
    return _batch(api.transcribe_async, sources, *args, **options)


@functools.wraps(api.ask_each)
def ask_each(sources: Any, prompt: str, **options: Any) -> Any:
    if not _live(options, "on_result"):
        return api.ask_each(sources, prompt, **options)
    return _batch(api.ask_each_async, sources, prompt, **options)
