"""A call left running in the background (``--background``): ask it how it is, wait, or cancel.

Background runs never see kernel interrupts, so the handle carries an explicit ``cancel()``.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

from .loop import LOOP


class Job:
    """Handle of a background call; ``result()`` waits (interruptibly) and returns its value."""

    def __init__(self, future: concurrent.futures.Future, description: str):
        self._future = future
        self.description = description

    def done(self) -> bool:
        return self._future.done()

    def cancel(self) -> bool:
        """Stop the work: requests in flight are closed, finished ones stay in history and cache."""
        return self._future.cancel()

    def cancelled(self) -> bool:
        return self._future.cancelled()

    def result(self, timeout: float | None = None) -> Any:
        """The value ``-o`` receives; raises the job's error. Ctrl-C stops waiting, not the job."""
        return LOOP.wait(self._future, timeout)

    def when_failed(self, callback: Callable[[BaseException], object]) -> None:
        """``callback(error)`` once the job has failed (not when it succeeds or is cancelled)."""

        def done(future: concurrent.futures.Future) -> None:
            if not future.cancelled() and (error := future.exception()) is not None:
                callback(error)

        self._future.add_done_callback(done)

    def exception(self) -> BaseException | None:
        if not self._future.done() or self._future.cancelled():
            return None
        return self._future.exception()

    @property
    def state(self) -> str:
        if not self._future.done():
            return "running"
        if self._future.cancelled():
            return "cancelled"
        error = self._future.exception()
        return f"failed: {error}" if error else "done"

    def __repr__(self) -> str:
        return f"<voxmagic job {self.description!r}: {self.state}>"
