"""One event loop on one daemon thread, owned by voxmagic, where every request runs; and a throttle
that bounds how often work on that loop (a live view's update) runs.

Inside ipykernel the kernel's own loop is already running, so ``asyncio.run`` fails there, and
patching asyncio (nest-asyncio) breaks later cells. Instead sync calls hand coroutines to this
loop and wait in short slices, so a kernel interrupt (KeyboardInterrupt) arrives at once and
cancels the work; async calls await the same loop. One loop also means one ``httpx`` connection
pool per endpoint, shared by every call of the session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """A lazily started event loop on a daemon thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cache: dict[Any, Any] = {}  # loop-bound objects (HTTP clients), touched on the loop only

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or not self._thread or not self._thread.is_alive():
                self._loop = asyncio.new_event_loop()
                self._cache = {}
                self._thread = threading.Thread(target=self._loop.run_forever, name="voxmagic-loop", daemon=True)
                self._thread.start()
            return self._loop

    def on_loop_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], meanwhile: Callable[[], object] | None = None) -> T:
        """Block until ``coro`` finishes on the loop; Ctrl-C / kernel interrupt cancels it cleanly.
        ``meanwhile`` runs on this thread once ``coro`` has started (work that can overlap it)."""
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError(
                "voxmagic's blocking calls cannot run inside its own event loop; use the *_async functions there"
            )
        finished = threading.Event()

        async def tracked() -> T:
            try:
                return await coro
            finally:
                finished.set()

        future = self.submit(tracked())
        try:
            if meanwhile is not None:
                meanwhile()
            return self.wait(future)
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(timeout=5)  # let the task close its connections before returning
            raise

    @staticmethod
    def wait(future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
        """``future.result()`` in 0.1 s slices, so that Ctrl-C / a kernel interrupt lands at once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return future.result(timeout=0.1)
            except concurrent.futures.TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the loop from any other loop (or directly when already on it)."""
        if self.on_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def cached(self, key: Any, factory: Callable[[], T]) -> T:
        """A per-loop singleton (call on the loop thread only)."""
        if key not in self._cache:
            self._cache[key] = factory()
        return self._cache[key]


class Throttle:
    """Call ``flush`` at most ``rate`` times per second on the running loop; ``close`` flushes last."""

    def __init__(self, rate: float, flush: Callable[[], None]):
        self.interval = 1.0 / rate
        self.flush = flush
        self.last = -math.inf
        self.timer: asyncio.TimerHandle | None = None
        self.flushes = 0
        self.closed = False

    def poke(self) -> None:
        if self.timer is not None or self.closed:
            return
        wait = self.last + self.interval - time.monotonic()
        if wait <= 0:
            self._fire()
        else:
            self.timer = asyncio.get_running_loop().call_later(wait, self._fire)

    def _fire(self) -> None:
        self.timer = None
        self.last = time.monotonic()
        self.flushes += 1
        self.flush()

    def close(self) -> None:
        """One last flush (only the first call does anything)."""
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
        self._fire()


LOOP = BackgroundLoop()
