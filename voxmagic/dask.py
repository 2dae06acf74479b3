"""Transcribe an archive on a Dask cluster: ``voxmagic.transcribe(files, dask=client)`` and
``%voxtral_transcribe ... --dask`` (``pip install "voxmagic[dask]"``).

The sources are cut into partitions, one Dask task each (``voxmagic-transcribe-<run>-<n>``); the
worker that runs one prepares its audio on its own cores and sends it with voxmagic's usual
batch machinery (:mod:`voxmagic.preparing`, :func:`voxmagic.batch_run.send_chunk`). Nothing here
coordinates by itself; Dask's own primitives do, all named after the run:

- **one limit for the cluster** — a ``distributed.Semaphore`` with ``concurrency`` leases: every
  request holds one from just before it is sent until its answer is in, so the server never
  sees more in flight, whichever workers send. Retries and ``Retry-After`` waits happen inside
  the request, as everywhere in voxmagic. The leases of a worker that dies are freed by the
  scheduler after ``distributed.scheduler.locks.lease-timeout`` (30 s by default).
- **one budget** (``max_cost``, or what is left of the session budget) — a ``distributed.Variable``
  holding what is spent and reserved, read and written under a ``distributed.Lock``. Before a
  request goes out its upper-bound estimate is reserved; once a reservation would pass the budget
  the job stops sending (those sources get an error row) and the answer's real cost replaces the
  reservation. A Variable under a Lock was chosen over an actor (actors die with their worker)
  and over reporting costs to the client afterwards (which lets requests in flight overshoot).
- **durable rows** — each partition writes its answered rows to a Parquet dataset at any fsspec
  path (:mod:`voxmagic.parquet_store`) when it finishes; a rerun reads the dataset's keys
  (sha256 of the audio's content digest and the request parameters) and skips those sources.
  The dataset is the cluster's history and cache: workers keep no SQLite history the notebook
  could read (theirs goes to each worker's Dask scratch directory) and read or write no cache;
  the notebook's session ledger gets a line per request (``%voxtral_cost``).
- **progress** — workers publish each source's start and end with ``Worker.log_event`` under the
  run's topic; the client receives them with ``Client.subscribe_topic`` and the usual batch view
  counts them (done, in flight, failed, cost, ETA).
- **stopping** — a ``distributed.Event`` that the client sets when it is interrupted; every running
  partition watches it, stops sending and keeps what it had finished.

A worker killed mid-job: the scheduler runs its partitions again elsewhere; a partition that had
already written its file finds it and sends nothing again, one that had not is sent again, and
its file name (fixed by run and partition) means the dataset never holds a row twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from . import limits
from .batch import Batch
from .cost import LedgerEntry
from .errors import ConfigError
from .frames import table
from .partitions import Job, ParquetStore, parameters_digest, run_partition
from .results import format_usd
from .runner import Caching, label, ledger
from .stitch import summary

INSTALL = "pip install 'voxmagic[dask]'"
NO_CLIENT = (
    "no dask.distributed Client is active; create one with `from dask.distributed import Client; client = Client()`"
)
DEFAULT_OUTPUT = "voxmagic-transcripts"  # or $VOXMAGIC_DASK_OUTPUT; any fsspec path
MAX_PARTITION = 64  # sources per task at most: a crash loses at most this much work in flight


def _distributed(what: str) -> Any:
    try:
        import distributed
    except ImportError:
        raise ConfigError(f"{what} needs Dask: {INSTALL}") from None
    return distributed


def on_cluster(dask: Any, options: dict[str, Any] | None = None, what: str = "dask=") -> Cluster:
    """The cluster of ``dask`` (a ``distributed.Client``, or True for the active one), with the
    keywords only a cluster takes (``output``, ``partition_size``) taken out of ``options``."""
    options = options if options is not None else {}
    what = what if what.startswith("--") else f"dask={dask!r}"
    distributed = _distributed(what)
    client = dask if isinstance(dask, distributed.Client) else None
    if client is None and dask is not True:
        raise ConfigError(f"{what}: give a dask.distributed Client, or True for the active one")
    if client is None:
        try:
            client = distributed.default_client()
        except ValueError:
            raise ConfigError(f"{what}: {NO_CLIENT}") from None
    if client.status != "running":
        raise ConfigError(f"{what}: the Client is {client.status}; {NO_CLIENT}")
    output = options.pop("output", None) or os.environ.get("VOXMAGIC_DASK_OUTPUT") or DEFAULT_OUTPUT
    size = options.pop("partition_size", None)
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise ConfigError(f"partition_size={size!r}: use a whole number of sources per task, at least 1")
    return Cluster(client, output if "://" in str(output) else os.path.abspath(output), size)


@dataclass
class Cluster:
    """A Dask client and where its jobs keep their rows."""

    client: Any
    output: str
    partition_size: int | None = None

    async def table(self, items: list, batch: Batch, concurrency: int, max_cost: float | None, segments: bool,
                    on_result: Callable[[int, dict], None] | None = None) -> Any:  # fmt: skip
        """:func:`voxmagic.transcribe`'s DataFrame, from the cluster."""
        report = (lambda i, rows: on_result(i, rows[0])) if on_result else None
        rows = await self.run(items, batch, concurrency=concurrency, max_cost=max_cost, segments=segments,
                              on_result=report)  # fmt: skip
        return table(rows)

    async def run(self, items: list, batch: Batch, *, concurrency: int = limits.DEFAULT_CONCURRENCY,
                  max_cost: float | None = None, segments: bool = False,
                  on_result: Callable[[int, list[dict]], None] | None = None,
                  on_start: Callable[[int], None] | None = None,
                  on_stopped: Callable[[int, list[dict]], None] | None = None,
                  on_chunk: Callable[[int, list[dict]], None] | None = None) -> list[dict]:  # fmt: skip
        """Rows in input order, one per source, as :func:`voxmagic.batch_run.run` gives them; the
        callbacks run on voxmagic's loop as the cluster reports each source's start and end (a
        stopped job's answered rows are in its dataset: ``on_stopped`` is not called; a source is
        one task, so ``on_chunk`` is not either)."""
        concurrency = limits.check("concurrency", concurrency)
        limits.check("max_cost", max_cost)
        if segments or batch.structured:
            raise ConfigError("on a Dask cluster voxmagic gives one transcript per source: segments, subtitles and "
                              "a response_format/--schema are not supported there yet")  # fmt: skip
        batch = replace(batch.check(), caching=Caching(read=False, write=False))  # the dataset is the cache
        budgets = [b for b in (max_cost, ledger.remaining_usd) if b is not None]
        job = Job(_run_id(), batch, parameters_digest(batch), concurrency, min(budgets) if budgets else None,
                  ParquetStore(self.output))  # fmt: skip
        labels = [label(item) for item in items]
        reports = _Reports(asyncio.get_running_loop(), on_start, on_result)
        done = await asyncio.to_thread(_prepare, job)
        futures, parts = await asyncio.to_thread(self._submit, job, list(enumerate(items)), done, reports)
        try:
            results = await asyncio.to_thread(_collect, futures)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(_distributed("--dask").Event(job.name("stop"), self.client).set))
            raise
        finally:
            await asyncio.shield(asyncio.to_thread(self._finish, job, futures))
        rows = await asyncio.to_thread(_assemble, job, parts, results, labels, done)
        _to_ledger([r for r in rows if not r.pop("ledgered", False)], batch.settings.model)
        for index, row in enumerate(rows):
            reports.finished(index, [row])
        return rows

    def _submit(self, job: Job, items: list[tuple[int, Any]], done: dict[str, float], reports: _Reports) -> Any:
        """The run's primitives made, its topic subscribed, its partitions submitted (blocking)."""
        distributed = _distributed("--dask")
        threads = sum(self.client.nthreads().values()) or 1
        size = self.partition_size or min(MAX_PARTITION, max(1, math.ceil(len(items) / (8 * threads))))
        parts = [items[i : i + size] for i in range(0, len(items), size)]
        distributed.Semaphore(
            job.concurrency, job.name("in-flight"), self.client.scheduler, self.client.loop
        ).register()
        distributed.Event(job.name("stop"), self.client).clear()
        if job.budget is not None:
            distributed.Variable(job.name("budget"), self.client).set({"spent": 0.0, "stopped": False})
        self.client.subscribe_topic(job.name("progress"), reports.event)
        print(f"dask: {len(items)} files in {len(parts)} partitions on {len(self.client.nthreads())} workers "
              f"({threads} threads), at most {job.concurrency} requests in flight"
              f"{f', budget {format_usd(job.budget)}' if job.budget is not None else ''} · rows → {job.store.url} · "
              f"dashboard {self.client.dashboard_link}", flush=True)  # fmt: skip
        [known] = self.client.scatter([done], broadcast=True)
        futures = [self.client.submit(run_partition, job, n, part, known, key=f"voxmagic-transcribe-{job.run}-{n:05d}")
                   for n, part in enumerate(parts)]  # fmt: skip
        return futures, parts

    def _leases(self, job: Job) -> Any:
        """The run's limit on requests in flight, as the client holds it."""
        semaphore = _distributed("--dask").Semaphore
        return semaphore(job.concurrency, job.name("in-flight"), self.client.scheduler, self.client.loop)

    def _finish(self, job: Job, futures: list) -> None:
        distributed = _distributed("--dask")
        with contextlib.suppress(Exception):
            self.client.unsubscribe_topic(job.name("progress"))
        with contextlib.suppress(Exception):
            self.client.cancel([f for f in futures if not f.done()])
        with contextlib.suppress(Exception):  # the job is over: partitions' stop watchers return now,
            distributed.Event(job.name("stop"), self.client).set()  # not as their waits are cut off by a close
        with contextlib.suppress(Exception):
            distributed.Semaphore(
                job.concurrency, job.name("in-flight"), self.client.scheduler, self.client.loop
            ).close()
        if job.budget is not None:
            with contextlib.suppress(Exception):
                distributed.Variable(job.name("budget"), self.client).delete()


def _run_id() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"


def _prepare(job: Job) -> dict[str, float]:
    """The dataset's folder made; the keys of what earlier runs answered (with their seconds)."""
    job.store.create()
    return job.store.answered()


def _collect(futures: list) -> dict[str, Any]:
    """Each partition's result, or its exception, by task key, as they finish (blocking)."""
    from distributed import as_completed

    out: dict[str, Any] = {}
    loop = futures[0].client.loop if futures else None  # the job's client, not the default one
    for future in as_completed(futures, loop=loop):
        try:
            out[future.key] = future.result()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - that partition's sources get error rows
            out[future.key] = exc
    return out


def _assemble(job: Job, parts: list, results: dict[str, Any], labels: list[str], done: dict[str, float]) -> list:
    """Rows in input order: what the partitions sent, and for sources already in the dataset its
    stored row (marked cached: this run paid nothing for it)."""
    found: dict[int, tuple[str | None, list[dict] | None]] = {}
    for n, part in enumerate(parts):
        result = results.get(f"voxmagic-transcribe-{job.run}-{n:05d}")
        for index, _ in part:
            if isinstance(result, BaseException) or result is None:
                why_not = f"{type(result).__name__}: {result}" if result is not None else "cancelled"
                found[index] = (None, [{"error": f"its partition failed on the cluster ({why_not})"}])
        for index, key, rows in result if isinstance(result, list) else []:
            found[index] = (key, rows)
    stored = job.store.rows([k for k, rows in found.values() if rows is None and k])
    out = []
    for index, name in enumerate(labels):
        key, rows = found.get(index, (None, [{"error": "not run"}]))
        if rows is None:
            row = stored.get(key or "")
            rows = [dict(row, cached=True, cost_usd=0.0)] if row else [{"error": "its stored row has disappeared"}]
        out.append(dict(rows[0], source=name))
    return out


def _to_ledger(rows: list[dict], model: str) -> None:
    """The session's tally: a line per request sent (or per stored answer, costing $0) by workers
    in other processes; an in-process worker's requests are in the session's ledger already."""
    for row in rows:
        if row.get("error") and row.get("cost_usd") is None:
            continue
        ledger.add(LedgerEntry(time.time(), row["source"], model, row.get("cost_usd"), row.get("prompt_tokens"),
                               row.get("completion_tokens"), row.get("duration_s") or 0.0, "reported",
                               row.get("generation_id"), "cached" if row.get("cached") else "answered"))  # fmt: skip


class _Reports:
    """Progress from the workers' events (client's thread) handed to voxmagic's loop, each source's
    start and end once — also when a partition is redone after its worker died."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_start: Any, on_result: Any):
        self.loop, self.on_start, self.on_result = loop, on_start, on_result
        self.started: set[int] = set()
        self.done: set[int] = set()

    def event(self, event: tuple[float, dict]) -> None:
        _, msg = event
        self.loop.call_soon_threadsafe(self._apply, msg)

    def _apply(self, msg: dict) -> None:
        for each in msg.get("batch", ()):  # a partition's progress of the last half second
            self._apply(each)
        if "start" in msg and msg["start"] not in self.started | self.done:
            self.started.add(msg["start"])
            if self.on_start:
                self.on_start(msg["start"])
        elif "done" in msg:
            self.finished(msg["done"], [msg["row"]])

    def finished(self, index: int, rows: list[dict]) -> None:
        if index not in self.done:
            self.done.add(index)
            if self.on_result:
                self.on_result(index, [summary(rows)])
