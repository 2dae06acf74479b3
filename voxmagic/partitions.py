"""One partition of a Dask job (:mod:`voxmagic.dask`): what one task does on a worker — its sources
prepared there and sent under the run's cluster-wide limits — and the Parquet dataset it writes to.

**The dataset** (:class:`ParquetStore`), at any fsspec path (a folder, ``s3://``, ``gs://``, ...):
one file per partition, written by the worker that ran it the moment it finishes, of its
*answered* rows — the columns of :func:`voxmagic.transcribe` plus ``key`` (sha256 of the audio's
content digest and the request parameters) and ``run`` — never a failure, so a rerun retries
what failed and skips what is here. Its name is fixed by the run and
the partition (``part-<run>-<partition>.parquet``): a partition redone after its worker died
overwrites its own file and never adds a second copy. A file is written under a ``_``-prefixed
name (which readers skip) and then moved into place, so a reader never sees half of one. Every
file has the same schema (:func:`schema`).

**The task** (:func:`run_partition`): the partition's sources prepared on the worker and sent
within the run's limits (:mod:`voxmagic.cluster_limits`: the cluster-wide ``Semaphore``, the
budget, the stop event, progress). pyarrow, fsspec and distributed load when used.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import audio as _audio
from .batch import PIPELINE, Batch
from .batch_run import CACHE_GONE, send_chunk
from .cluster_limits import Gate, Primitives, profiler_paused
from .errors import CacheGone, ConfigError
from .frames import KINDS, TRANSCRIPT_COLUMNS, table
from .loop import LOOP
from .preparing import chunk_stream, why
from .prices import ensure_prices
from .results import format_usd
from .runner import label, map_bounded, planned
from .stitch import stitch, summary

#: What every file holds, in this order.
COLUMNS = [*TRANSCRIPT_COLUMNS, "trimmed_s", "key", "run"]


def schema() -> Any:
    """The Arrow schema of every file: counts int64, seconds and dollars float64, ``cached`` a
    bool, everything else a string."""
    import pyarrow as pa

    kinds = {"Int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    return pa.schema([(name, kinds.get(KINDS.get(name, ""), pa.string())) for name in COLUMNS])


class ParquetStore:
    """The dataset at ``url``; only the url travels to workers (the filesystem is opened where used)."""

    def __init__(self, url: str):
        self.url = str(url)

    def __repr__(self) -> str:
        return f"ParquetStore({self.url!r})"

    def _fs(self) -> tuple[Any, str]:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.url)
        return fs, root.rstrip("/")

    def create(self) -> None:
        fs, root = self._fs()
        try:
            fs.makedirs(root, exist_ok=True)
        except OSError as exc:  # before anything is sent
            raise ConfigError(f"output={self.url!r}: cannot make that folder ({exc.strerror or exc})") from None

    def _read(self, columns: list[str] | None = None, keys: list[str] | None = None, path: str | None = None) -> Any:
        """The rows (of ``path`` only, when given) as an Arrow table; empty when there is none."""
        import pyarrow.dataset as ds

        fs, root = self._fs()
        target = path or root
        if not fs.exists(target):
            return schema().empty_table().select(columns or COLUMNS)
        data = ds.dataset(target, filesystem=fs, format="parquet", schema=schema())
        where = ds.field("key").isin(keys) if keys is not None else None
        return data.to_table(columns=columns, filter=where)

    def answered(self) -> dict[str, float]:
        """``key`` → seconds of audio, for every source answered in any earlier run."""
        t = self._read(["key", "duration_s"])
        return dict(zip(t.column("key").to_pylist(), t.column("duration_s").to_pylist(), strict=True))

    def rows(self, keys: list[str]) -> dict[str, dict]:
        """The stored row of each of ``keys`` (the last one written, should there be two)."""
        if not keys:
            return {}
        return {row["key"]: row for row in self._read(keys=keys).to_pylist()}

    def partition_rows(self, run: str, partition: int) -> dict[str, dict]:
        """What an earlier attempt of this partition wrote (its worker died after writing), by key."""
        fs, root = self._fs()
        return {row["key"]: row for row in self._read(path=f"{root}/{_name(run, partition)}").to_pylist()}

    def write(self, run: str, partition: int, rows: list[dict]) -> int:
        """Store the answered rows (each with its ``key``) of one partition; how many were written."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        kept = [dict(r, run=run) for r in rows if r.get("key") and not r.get("error")]
        if not kept:
            return 0
        frame = pd.DataFrame(table(kept)).reindex(columns=COLUMNS)
        frame["key"], frame["run"] = [r["key"] for r in kept], run
        frame["trimmed_s"] = [r.get("trimmed_s") for r in kept]
        data = pa.Table.from_pandas(frame, schema=schema(), preserve_index=False)
        fs, root = self._fs()
        fs.makedirs(root, exist_ok=True)
        final = f"{root}/{_name(run, partition)}"
        temporary = f"{root}/_writing-{uuid.uuid4().hex}-{_name(run, partition)}"
        with fs.open(temporary, "wb") as f:
            pq.write_table(data, f)
        fs.mv(temporary, final)
        return len(kept)


def _name(run: str, partition: int) -> str:
    return f"part-{run}-{partition:05d}.parquet"


@dataclass(frozen=True)
class Job:
    """What every partition of one run shares (it travels to the workers with each task)."""

    run: str
    batch: Batch
    parameters: str  # digest of the request parameters: half of every row's key
    concurrency: int
    budget: float | None
    store: ParquetStore
    client_pid: int = field(default_factory=os.getpid)  # made on the client: a worker in its process shares its session

    def name(self, what: str) -> str:
        return f"voxmagic-{self.run}-{what}"

    def key(self, content_digest: str) -> str:
        return hashlib.sha256(f"{content_digest}|{self.parameters}".encode()).hexdigest()


def parameters_digest(batch: Batch) -> str:
    """What makes two answers about the same audio interchangeable: model, endpoint, instruction,
    sampling, upload format, chunking (streaming aside)."""
    s = batch.settings
    what = (s.model, s.base_url, s.effective_dialect, s.transcription_model, batch.prompt, batch.system,
            batch.endpoint, batch.language, batch.diarize, batch.vocabulary, batch.audio_format,
            batch.max_chunk_s, PIPELINE, replace(batch.params, stream=True))  # fmt: skip
    return hashlib.sha256(repr(what).encode()).hexdigest()


# -- on a worker ------------------------------------------------------------------------------------


def run_partition(job: Job, number: int, items: list[tuple[int, Any]], done: dict[str, float]) -> list:
    """One Dask task: ``(index, key, rows)`` per source (rows None: already in the dataset). Its
    answered rows are in the dataset before it returns — also when it is stopped. A worker in the
    client's own process (``LocalCluster(processes=False)``) keeps the session's history, and its
    requests are in the session's ledger already (their rows say ``ledgered``)."""
    from distributed import get_worker

    worker = get_worker()
    here = os.getpid() == job.client_pid  # LocalCluster(processes=False): the session's own ledger and history
    if not here:
        _own_history(worker.local_directory)
    own = job.store.partition_rows(job.run, number)  # an earlier attempt's (its worker died after writing)
    cluster = Primitives(job, worker)
    finished: list[tuple[int, str | None, list[dict] | None]] = []
    try:
        with profiler_paused(worker):
            LOOP.run(_partition_async(job, cluster, items, done, own, finished))
    finally:
        cluster.close()
        job.store.write(job.run, number, [r for _, _, rows in finished for r in rows or []])
    marked = [(i, key, [dict(r, ledgered=True) for r in rows] if here and rows else rows) for i, key, rows in finished]
    return sorted(marked, key=lambda f: f[0])  # ledgered: already in the session's ledger, by send()


_HISTORY = threading.Lock()


def _own_history(folder: str) -> None:
    """A worker's SQLite history goes to its own scratch folder, not the user's file (once per process)."""
    from .runner import store

    with _HISTORY:
        target = Path(folder) / "voxmagic-history.db"
        if store.path != target:
            store.use(target)


async def _partition_async(job: Job, cluster: Primitives, items: list, done: dict, own: dict, finished: list) -> None:
    await ensure_prices(job.batch.settings)
    cluster.start(asyncio.get_running_loop(), asyncio.current_task())
    cpu = asyncio.Semaphore(max(1, getattr(cluster.worker, "nthreads", 1)))  # the cores Dask gave this worker

    async def one(pair: tuple[int, Any]) -> None:
        index, item = pair
        key, rows = await _source(item, job, Gate(cluster, index), cpu, done, own)
        finished.append((index, key, rows))
        name = label(item)
        shown = rows or [{"source": name, "duration_s": done.get(key or ""), "cost_usd": 0.0, "cached": True}]
        cluster.emit({"done": index, "row": summary([dict(r, source=name) for r in shown])})

    await map_bounded(items, one, 2 * job.concurrency)


async def _source(item: Any, job: Job, gate: Gate, cpu: asyncio.Semaphore, done: dict, own: dict) -> tuple:
    """``(key, rows)`` for one source: None rows when the dataset has it already."""
    name = label(item)
    try:
        source = await _audio.fetched(_audio.as_source(item), timeout_s=job.batch.settings.download_timeout)
        digest = await asyncio.to_thread(source.content_digest)
    except Exception as exc:  # noqa: BLE001 - the source's error row (see preparing.why)
        return None, [{"source": name, "error": why(exc)}]
    key = job.key(digest) if digest else None
    if key in own:
        return key, [own[key]]
    if key in done:
        return key, None
    sending: list[asyncio.Future] = []
    failure = None
    try:
        async with cpu:
            async for clip in chunk_stream(source, job.batch):
                sending.append(asyncio.ensure_future(_chunk(clip, job, gate)))
    except Exception as exc:  # noqa: BLE001 - what was prepared before still goes out
        failure = why(exc)
    except BaseException:
        for task in sending:
            task.cancel()
        raise
    rows = [dict(r, source=name) for part in await asyncio.gather(*sending) for r in part]
    if failure is not None:
        end = rows[-1]["end_s"] if rows else 0.0
        rows.append({"source": name, "error": failure, "start_s": end, "end_s": end, "duration_s": 0.0})
    return key, [dict(stitch(name, rows), key=key)]


async def _chunk(clip: Any, job: Job, gate: Gate) -> list[dict]:
    """One chunk sent under the cluster's limit — and, with a budget, only if its estimate fits."""
    if job.budget is None:
        return await _sent(clip, job, gate)
    usd = planned(job.batch.request(clip)).estimate.usd
    if not await gate.cluster.call(gate.cluster.reserve, usd):
        spent = f"not sent: the job's budget of {format_usd(job.budget)} is spent"
        return [{"duration_s": clip.duration_s, "start_s": clip.start_s, "end_s": clip.end_s, "error": spent}]
    rows = await _sent(clip, job, gate)  # (cancelled: the reservation stays, as it may be billed)
    known = all(r.get("cost_usd") is not None or r.get("error") for r in rows)
    cost = sum(r.get("cost_usd") or 0.0 for r in rows) if known else usd
    await asyncio.shield(gate.cluster.call(gate.cluster.settle, cost - usd))
    return rows


async def _sent(clip: Any, job: Job, gate: Gate) -> list[dict]:
    """:func:`send_chunk`, with a cached answer gone before it was read as the chunk's error row."""
    try:
        return await send_chunk(clip, job.batch, gate)
    except CacheGone:
        return [{"duration_s": clip.duration_s, "start_s": clip.start_s, "end_s": clip.end_s, "error": CACHE_GONE}]
