"""Prep-bound work on a Dask cluster: the same batch with 1 and with 2 worker processes.

    python benchmarks/dask_scale.py [--clips 1000] [--seconds 5] [--concurrency 16] [--repeat 2]

Input: ``clips`` distinct ``seconds``-long 44.1 kHz stereo 128 kbit/s MP3s (cached; each is a run
of MP3 packets copied out of one encoded minute at its own offset, so no two are alike). voxmagic
cannot upload those as they are: every clip is decoded, downmixed, resampled to 16 kHz mono and
re-encoded as MP3 at 32 kbit/s on the worker that sends it — preparation, not the network, is the
bound. The local server runs in its own process and answers at once (latency 0).

Each round: a ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`` for N = 1, then
2, warmed (every worker imports voxmagic and prepares a clip), then
``voxmagic.transcribe(clips, dask=client, concurrency=16, output=<empty folder>)`` timed from the
call to the DataFrame — partitioning, coordination through the scheduler, preparing, sending,
writing the Parquet dataset, reading it back. Every row must come back without error and
uncached. Figure: median wall with 1 worker / median wall with 2 (goal ≥ 1.7× on this 2-core
machine, where the server, the scheduler and the client share the same two cores). Also printed:
audio seconds prepared per wall second per worker, the input for the 10,000-hour arithmetic in
``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import CACHE, Row, _atomic, local_server, median, report, runs, speech_mp3, temp_history

TARGET = 1.7


def clips(n: int, seconds: float) -> list[str]:
    """``n`` distinct 44.1 kHz stereo MP3 clips of ``seconds`` each, remuxed from one cached minute."""
    import av

    folder = CACHE / f"dask_clips_{seconds:g}s"
    paths = [folder / f"clip{i:04d}.mp3" for i in range(n)]
    if all(p.exists() for p in paths):
        return [str(p) for p in paths]
    with av.open(str(speech_mp3(1))) as src:
        packets = [(bytes(p), p.duration) for p in src.demux(src.streams.audio[0]) if p.size]
        template = src.streams.audio[0]
        per_clip = round(seconds * 44_100 / 1152)
        for i, path in enumerate(paths):
            if path.exists():
                continue
            start = (i * 7) % (len(packets) - per_clip)  # its own stretch of the minute
            tmp = _atomic(path)
            with av.open(str(tmp), "w", format="mp3") as out:
                stream, pts = out.add_stream_from_template(template), 0
                for data, duration in packets[start : start + per_clip]:
                    packet = av.Packet(data)
                    packet.stream, packet.pts, packet.dts, packet.duration = stream, pts, pts, duration
                    pts += duration
                    out.mux(packet)
            tmp.replace(path)
    return [str(p) for p in paths]


def _warm(path: str) -> None:
    """On a worker: the imports and one preparation, so the timed run measures the work."""
    import voxmagic.partitions  # noqa: F401

    voxmagic.audio.prepare(path)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(workers: int, files: list[str], options: dict, server_pid: int) -> tuple[float, float, float]:
    """(wall, CPU seconds of the local server, of this process — the client and the scheduler)."""
    from dask.distributed import Client, LocalCluster

    import voxmagic

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.run(_warm, files[0])
        output = tempfile.mkdtemp(prefix="voxmagic-dask-bench-")
        server_cpu, own_cpu = cpu_seconds(server_pid), time.process_time()
        started = time.perf_counter()
        df = voxmagic.transcribe(files, dask=client, output=output, **options)
        wall = time.perf_counter() - started
        server_cpu, own_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - own_cpu
    if df["error"].notna().any() or df["cached"].any() or len(df) != len(files):
        raise SystemExit(f"{workers} workers: errors or cached rows:\n{df[['source', 'error', 'cached']]}")
    return wall, server_cpu, own_cpu


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    files = clips(args.clips, args.seconds)
    walls: dict[int, list[float]] = {1: [], 2: []}
    others: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
    with temp_history(), local_server(latency=0) as server:
        options = {"base_url": server.base_url, "api_key": "bench", "concurrency": args.concurrency}
        for _ in range(args.repeat):
            for workers in (1, 2):
                wall, server_cpu, own_cpu = timed(workers, files, options, server.proc.pid)
                walls[workers].append(wall)
                others[workers].append((server_cpu, own_cpu))
                print(f"{workers} worker(s): {wall:.2f} s; meanwhile the local server used {server_cpu:.1f} s of CPU, "
                      f"the client and scheduler {own_cpu:.1f} s", flush=True)
    one, two = median(walls[1]), median(walls[2])
    audio = args.clips * args.seconds
    print(f"{args.clips} clips × {args.seconds:g} s of 44.1 kHz stereo MP3; walls 1 worker "
          f"{runs(walls[1], '{:.2f}')} s, 2 workers {runs(walls[2], '{:.2f}')} s")  # fmt: skip
    print(f"audio prepared and sent per wall second: 1 worker {audio / one:.0f}× real time, "
          f"2 workers {audio / two:.0f}× ({audio / two / 2:.0f}× per worker)")
    return [
        Row(f"dask_scale: {args.clips:,} × {args.seconds:g}-s 44.1 kHz stereo MP3 clips (re-encoded), wall with 1 "
            f"worker / 2 workers, LocalCluster on 2 cores (median of {args.repeat})", f"≥ {TARGET}×",
            f"{one / two:.2f}× ({one:.1f} s / {two:.1f} s)", one / two >= TARGET),  # fmt: skip
        Row("dask_scale: audio prepared and sent per wall second, per worker (1 worker; 2 workers)", "—",
            f"{audio / one:.0f}×; {audio / two / 2:.0f}× real time", None),
        Row("dask_scale: CPU the local server and the client+scheduler used during a 2-worker run, of the "
            "2 cores × its wall", "—", f"{median([o[0] for o in others[2]]):.1f} s + {median([o[1] for o in others[2]]):.1f} s "
            f"of {2 * two:.1f} core-seconds", None),
    ]


if __name__ == "__main__":
    report(main())
