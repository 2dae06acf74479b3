"""Transcription on a Dask cluster (voxmagic.dask): a LocalCluster of two worker processes against the
local server, which counts the requests it answers at once."""
from __future__ import annotations

import logging

import os
import signal
import sys
import threading
import time

import pytest

distributed = pytest.importorskip("distributed", reason="dask is not installed: pip install 'voxmagic[dask]'")

import dask  # noqa: E402
import pandas as pd  # noqa: E402
from conftest import run  # noqa: E402

import voxmagic  # noqa: E402
from voxmagic.errors import ConfigError  # noqa: E402
from voxmagic.testing.synth import tone_file  # noqa: E402

CAP = 4
# a job that stalls fails in 2 minutes rather than the suite's 5 (see benchmarks/README.md, dask_scale)
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """200 distinct short clips (0.3–0.7 s, 16 kHz mono WAV: each is re-encoded to MP3 on a worker)."""
    folder = tmp_path_factory.mktemp("clips")
    return [str(tone_file(folder / f"clip{i:03d}.wav", 0.3 + (i % 5) * 0.1, rate=16_000, channels=1,
                          freq=150.0 + 3 * i)) for i in range(200)]  # fmt: skip


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each; a dead worker's leases are freed after 2 s."""
    settings = {"distributed.scheduler.locks.lease-timeout": "2s",
                "distributed.scheduler.locks.lease-validation-interval": "0.2s"}  # fmt: skip
    with dask.config.set(settings), distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0"
    ) as cluster, distributed.Client(cluster) as c:
        yield c


def opts(server, tmp_path, **more):
    return {"base_url": server.base_url, "api_key": "test-key", "output": str(tmp_path / "rows"), **more}


def stored(tmp_path):
    return pd.read_parquet(tmp_path / "rows")


def sent_audio(server):
    return [r.audio[0].sha256 for r in server.requests if r.audio]


# --- what the user is told (before any cluster exists: no Client is active) -----------------------


def test_no_active_client_is_one_clear_line(shell, tmp_path):
    assert distributed.client._get_global_client() is None
    tone_file(tmp_path / "a.wav", 0.5)
    out, err = run(shell, "%voxtral_transcribe a.wav --dask -o df")
    assert "--dask: no dask.distributed Client is active; create one with `from dask.distributed import Client; " \
           "client = Client()`" in err and "Traceback" not in err and "df" not in shell.user_ns
    with pytest.raises(ConfigError, match=r"^dask=True: no dask.distributed Client is active"):
        voxmagic.transcribe(str(tmp_path / "a.wav"), dask=True)


def test_without_dask_installed_it_says_how_to_install(shell, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails
    tone_file(tmp_path / "a.wav", 0.5)
    out, err = run(shell, "%voxtral_transcribe a.wav --dask")
    assert "--dask needs Dask: pip install 'voxmagic[dask]'" in err and "Traceback" not in err
    with pytest.raises(ConfigError, match=r"needs Dask: pip install 'voxmagic\[dask\]'"):
        voxmagic.transcribe(str(tmp_path / "a.wav"), dask=True)


# --- on the cluster ------------------------------------------------------------------------------


def _history_rows(dask_worker=None):
    return len(voxmagic.runner.store.history())


def test_200_clips_once_each_within_the_cluster_limit_and_a_rerun_sends_nothing(client, server, clips, tmp_path):
    server.configure(latency=0.05)
    reported: list[int] = []
    df = voxmagic.transcribe(clips, dask=client, concurrency=CAP, on_result=lambda i, row: reported.append(i),
                             **opts(server, tmp_path))  # fmt: skip
    assert list(df["source"]) == clips and df["error"].isna().all() and not df["cached"].any()
    assert df["text"].str.contains("Heard 1 clips").all() and sorted(reported) == list(range(200))
    # no lost or duplicated request or row; never more in flight than asked, across both workers
    audio = sent_audio(server)
    assert len(audio) == 200 and len(set(audio)) == 200
    assert 2 <= server.peak_in_flight <= CAP
    here = voxmagic.transcribe(clips[:2], base_url=server.base_url, api_key="test-key")
    assert list(df.columns) == list(here.columns)  # the same table as without Dask
    rows = stored(tmp_path)
    assert len(rows) == 200 and rows["key"].is_unique and sorted(rows["source"]) == sorted(clips)
    assert dict(zip(rows["source"], rows["text"], strict=True)) == dict(zip(df["source"], df["text"], strict=True))
    assert rows["cost_usd"].sum() == pytest.approx(df["cost_usd"].sum())
    per_worker = client.run(_history_rows)  # each worker's own scratch history, not the user's file
    assert len(per_worker) == 2 and all(n > 0 for n in per_worker.values()) and sum(per_worker.values()) == 200
    assert len(voxmagic.history()) == 2  # only the two requests made here, without Dask
    assert voxmagic.ledger.total_usd == pytest.approx(df["cost_usd"].sum() + here["cost_usd"].sum())

    before = server.request_count
    again = voxmagic.transcribe(clips, dask=client, concurrency=CAP, **opts(server, tmp_path))
    assert server.request_count == before  # everything came from the dataset
    assert again["cached"].all() and again["cost_usd"].sum() == 0 and list(again["text"]) == list(df["text"])
    assert len(stored(tmp_path)) == 200


def _profiling(dask_worker=None):
    return dask_worker.periodic_callbacks["profile"].is_running()


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the profiler deadlock (CPython gh-106883) is fixed there")
def test_the_workers_profiler_sleeps_while_a_job_runs_and_wakes_after(client, server, clips, tmp_path):
    """Its sys._current_frames() every 10 ms deadlocked PyAV's decoding on Python 3.11 (see
    cluster_limits.profiler_paused): stopped while partitions run, running again after."""
    server.configure(latency=0.3)
    assert all(client.run(_profiling).values())
    job = threading.Thread(target=voxmagic.transcribe, args=(clips[:40],),
                           kwargs=dict(dask=client, concurrency=CAP, **opts(server, tmp_path)))  # fmt: skip
    job.start()
    seen = set()
    while job.is_alive():
        if server.request_count:  # partitions are running on both workers
            seen |= set(client.run(_profiling).values())
        job.join(0.05)
    assert False in seen
    deadline = time.monotonic() + 5
    while not all(client.run(_profiling).values()) and time.monotonic() < deadline:
        job.join(0.05)
    assert all(client.run(_profiling).values())


def test_the_budget_stops_sending_and_nothing_past_it_is_sent(client, server, clips, tmp_path):
    server.configure(latency=0.02)
    budget = 0.002
    df = voxmagic.transcribe(clips[:100], dask=client, concurrency=2, max_cost=budget, **opts(server, tmp_path))
    spent = sum(r.cost for r in server.requests if r.cost is not None)
    answered, refused = df[df["error"].isna()], df[df["error"].notna()]
    assert spent <= budget and 0 < len(answered) < 100 and server.request_count == len(answered)
    assert refused["error"].str.contains(r"not sent: the job's budget of \$0.002000 is spent").all()
    assert len(stored(tmp_path)) == len(answered)  # a rerun with more budget sends only the rest
    rest = voxmagic.transcribe(clips[:100], dask=client, concurrency=2, **opts(server, tmp_path))
    assert rest["error"].isna().all() and server.request_count == 100 and rest["cached"].sum() == len(answered)


def test_the_magic_runs_on_the_active_client(client, shell, tmp_path, clips):
    shell.user_ns["files"] = clips[:6]
    out, err = run(shell, "%voxtral_transcribe files --dask --concurrency 2 -o df")
    assert err == "" and "dask: 6 files in" in out and "dashboard http://" in out
    df = shell.user_ns["df"]
    assert list(df["source"]) == clips[:6] and df["error"].isna().all()
    assert len(pd.read_parquet(tmp_path / "voxmagic-transcripts")) == 6  # the default dataset, in the working folder


def test_a_worker_killed_mid_job_has_its_partitions_redone_without_duplicates(client, server, clips, tmp_path):
    server.configure(latency=0.4)
    files, result = clips[:60], {}

    def transcribe():
        result["df"] = voxmagic.transcribe(files, dask=client, concurrency=CAP, partition_size=10,
                                           **opts(server, tmp_path))  # fmt: skip

    job = threading.Thread(target=transcribe)
    job.start()
    deadline = time.monotonic() + 60
    while server.request_count < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    busy = [w for w, keys in client.processing().items() if any("voxmagic-transcribe" in str(k) for k in keys)]
    assert busy, "no partition was running"
    (nanny,) = [n for n in client.cluster.workers.values() if n.worker_address == busy[0]]
    os.kill(nanny.process.process.pid, signal.SIGKILL)  # the worker process dies; its nanny starts another
    job.join(120)
    df = result["df"]
    assert list(df["source"]) == files and df["error"].isna().all()
    assert server.request_count > 60  # the killed worker's unfinished partition was sent again
    assert server.peak_in_flight <= CAP  # the dead worker's leases came back only after its requests had ended
    rows = stored(tmp_path)
    assert len(rows) == 60 and rows["key"].is_unique and sorted(rows["source"]) == sorted(files)
    client.wait_for_workers(2, timeout=60)


def test_an_in_process_cluster_counts_each_request_once_and_keeps_the_sessions_history(server, clips, tmp_path,
                                                                                     caplog):
    """With LocalCluster(processes=False) the workers share the notebook's process: every request
    was in the session's ledger twice (a $0.006 budget read as overspent after $0.0039), and the
    first partition moved the session's history to a worker's scratch folder. A client that is
    not the default one failed ("No clients found"); closing the cluster logged a traceback per
    partition whose stop watcher was still waiting."""
    history = voxmagic.runner.store.path
    calls, spent = voxmagic.ledger.calls, voxmagic.ledger.total_usd
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None
                                  ) as cluster, distributed.Client(cluster, set_as_default=False) as c:
        df = voxmagic.transcribe(clips[:6], dask=c, concurrency=2, **opts(server, tmp_path))
        with pytest.raises(voxmagic.ConfigError, match=r"^output='/proc/nope/x': cannot make that folder"):
            voxmagic.transcribe(clips[:1], dask=c, **{**opts(server, tmp_path), "output": "/proc/nope/x"})
    assert df["error"].isna().all() and server.request_count == 6
    assert voxmagic.ledger.calls - calls == 6
    assert voxmagic.ledger.total_usd - spent == pytest.approx(df["cost_usd"].sum())
    assert voxmagic.runner.store.path == history and len(voxmagic.history()) >= 6
    assert "ledgered" not in df.columns
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
