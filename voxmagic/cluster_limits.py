"""What keeps a Dask job (:mod:`voxmagic.dask`) within its limits, seen from a worker: the run's
``distributed`` primitives — a ``Semaphore`` whose lease every request holds while in flight, a
budget ``Variable`` under a ``Lock``, the stop ``Event`` — and its progress, published with
``Worker.log_event``. Their calls block, so voxmagic's loop makes them on a small pool of
threads. And the worker's statistical profiler, paused while partitions run (see
:func:`profiler_paused`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any, Protocol


class Run(Protocol):
    """What the limits need of a run (a :class:`voxmagic.partitions.Job`)."""

    @property
    def concurrency(self) -> int: ...
    @property
    def budget(self) -> float | None: ...
    def name(self, what: str) -> str: ...


WATCH_S = 0.5  # how often a partition looks at the stop event (and publishes its progress)
SLOW_S = 30  # a budget Variable that cannot be read this long is gone: the job has ended

_PAUSES: list[Any] = []  # the profiler callbacks stopped while partitions run in this process
_RUNNING, _PAUSING = [0], threading.Lock()


@contextlib.contextmanager
def profiler_paused(worker: Any) -> Iterator[None]:
    """The worker's statistical profiler stopped while any partition runs in this process. On
    Python < 3.12 its ``sys._current_frames()`` every 10 ms can deadlock the worker for good: a
    garbage collection inside it, holding the interpreter's thread-list lock, runs a finalizer
    while a PyAV decoding thread waits to resume (CPython gh-106883, fixed in 3.12): 3 of 4
    1,000-clip jobs stalled with it running, none of 8 without."""
    if sys.version_info >= (3, 12):
        yield
        return
    with _PAUSING:
        _RUNNING[0] += 1
        if _RUNNING[0] == 1:
            callbacks = [worker.periodic_callbacks.get(n) for n in ("profile", "profile-cycle")]
            _PAUSES[:] = [c for c in callbacks if c is not None and c.is_running()]
            for callback in _PAUSES:
                worker.loop.add_callback(callback.stop)  # tornado's callbacks belong to the worker's loop
    try:
        yield
    finally:
        with _PAUSING:
            _RUNNING[0] -= 1
            if _RUNNING[0] == 0:
                for callback in _PAUSES:
                    worker.loop.add_callback(callback.start)
                _PAUSES.clear()


class Primitives:
    """A partition's handles on its run's Dask primitives. Their calls block, so voxmagic's loop
    makes them on a small pool of threads (:meth:`call`)."""

    def __init__(self, job: Run, worker: Any):
        from distributed import Event, Lock, Semaphore, Variable, get_client

        self.job, self.worker, client = job, worker, get_client()  # bound here: the pool's threads cannot find them
        self.leases = Semaphore(job.concurrency, job.name("in-flight"), worker.scheduler, worker.loop)
        self.stop = Event(job.name("stop"), client)
        self.lock = Lock(job.name("budget-lock"), worker.scheduler, worker.loop) if job.budget is not None else None
        self.spent = Variable(job.name("budget"), client) if job.budget is not None else None
        self.pool = concurrent.futures.ThreadPoolExecutor(job.concurrency + 2, thread_name_prefix="voxmagic-dask")
        self.local: asyncio.Semaphore | None = None  # this process's requests waiting for or holding a lease
        self.ended = threading.Event()
        self.outbox: list[dict] = []  # progress not yet published (see emit)
        self.outbox_lock = threading.Lock()

    def start(self, loop: asyncio.AbstractEventLoop, task: Any) -> None:
        """Begin watching the stop event: when it is set, the partition is cancelled."""
        self.local = asyncio.Semaphore(self.job.concurrency)

        def watch() -> None:
            while not self.ended.is_set():
                self.flush()
                try:
                    if self.stop.wait(WATCH_S):
                        loop.call_soon_threadsafe(task.cancel)
                        return
                except Exception:  # noqa: BLE001 - the scheduler is briefly out of reach: look again later
                    self.ended.wait(WATCH_S)

        threading.Thread(target=watch, daemon=True, name="voxmagic-dask-stop").start()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def emit(self, msg: dict) -> None:
        """Progress, published with the rest of its half second (by the stop watcher, and at the
        end): one scheduler event per partition and WATCH_S, not two per source."""
        with self.outbox_lock:
            self.outbox.append(msg)

    def flush(self) -> None:
        with self.outbox_lock:
            batch, self.outbox = self.outbox, []
        if batch:
            with contextlib.suppress(Exception):  # progress is a convenience, never a failure
                self.worker.log_event(self.job.name("progress"), {"batch": batch})

    def reserve(self, usd: float) -> bool:
        """Reserve ``usd`` of the budget, or refuse (and refuse from then on) when it would not fit."""
        assert self.lock is not None and self.spent is not None and self.job.budget is not None
        try:
            with self.lock:
                state = self.spent.get(timeout=SLOW_S)
                fits = not state["stopped"] and state["spent"] + usd <= self.job.budget
                self.spent.set(
                    {"spent": state["spent"] + usd, "stopped": False} if fits else {**state, "stopped": True}
                )
        except Exception:  # noqa: BLE001 - the job has ended (its Variable is gone): send nothing more
            return False
        return fits

    def settle(self, change: float) -> None:
        assert self.lock is not None and self.spent is not None
        with contextlib.suppress(Exception), self.lock:
            state = self.spent.get(timeout=SLOW_S)
            self.spent.set({**state, "spent": state["spent"] + change})

    def close(self) -> None:
        self.flush()
        self.ended.set()
        self.pool.shutdown(wait=True)


class Gate:
    """One source's way through the cluster's limit: a lease of the run's Semaphore around each
    request; the first one tells the client the source has started."""

    def __init__(self, cluster: Primitives, index: int):
        self.cluster, self.index, self.told = cluster, index, False

    async def __aenter__(self) -> None:
        cluster = self.cluster
        assert cluster.local is not None
        await cluster.local.acquire()
        leased = asyncio.get_running_loop().run_in_executor(cluster.pool, cluster.leases.acquire)
        try:
            await asyncio.shield(leased)
        except BaseException:
            leased.add_done_callback(self._give_back)  # cancelled while waiting: the lease is returned
            cluster.local.release()
            raise
        if not self.told:
            self.told = True
            cluster.emit({"start": self.index})

    def _give_back(self, leased: asyncio.Future) -> None:
        if not leased.cancelled() and leased.exception() is None:
            with contextlib.suppress(Exception):
                self.cluster.pool.submit(self.cluster.leases.release)

    async def __aexit__(self, *exc: object) -> None:
        assert self.cluster.local is not None
        try:
            with contextlib.suppress(Exception):  # a closed semaphore (the job ended): nothing to give back
                await asyncio.shield(self.cluster.call(self.cluster.leases.release))
        finally:
            self.cluster.local.release()
