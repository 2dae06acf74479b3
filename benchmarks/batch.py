"""Batch throughput against the local server in its own process: wall / ideal, and a cached rerun.

    python benchmarks/batch.py [--clips 200] [--latency 0.3] [--concurrency 16]

The ideal is ⌈clips / concurrency⌉ × latency: what a client with no overhead of its own could do.
Clips are short voice memos (16 kHz mono MP3, as phones and voxmagic itself produce them).
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "voxmagic.testing.server", "--port", str(port),
                             "--latency", str(latency)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        raise RuntimeError(f"the local server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{port}/api/v1"


def make_clips(folder: Path, n: int) -> list[str]:
    from voxmagic.testing.synth import speechlike, write_audio

    return [str(write_audio(folder / f"memo{i:03d}.mp3", speechlike(1.0 + (i % 7) * 0.3, 16_000, seed=i),
                            16_000)) for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="voxmagic-bench-"))
    os.environ["VOXMAGIC_HISTORY"] = str(work / "history.db")
    import voxmagic

    clips = make_clips(work, args.clips)
    (work / "warm").mkdir()
    warm = make_clips(work / "warm", 4)
    server, base = start_server(args.latency)
    try:
        options = dict(base_url=base, api_key="bench", concurrency=args.concurrency)
        voxmagic.transcribe(warm, **options)  # imports, thread pool, connections, SQLite file
        ideal = math.ceil(args.clips / args.concurrency) * args.latency
        started = time.perf_counter()
        first = voxmagic.transcribe(clips, **options)
        wall = time.perf_counter() - started
        started = time.perf_counter()
        again = voxmagic.transcribe(clips, **options)
        rerun = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()
    assert first["error"].isna().all(), first["error"].dropna().head()
    print(f"{args.clips} clips, latency {args.latency} s, concurrency {args.concurrency}")
    print(f"first run   {wall:6.2f} s   ideal {ideal:.2f} s   wall/ideal {wall / ideal:.3f}")
    print(f"cached rerun {rerun:5.3f} s   cost ${again['cost_usd'].sum():.4f}   "
          f"all cached: {bool(again['cached'].all())}")


if __name__ == "__main__":
    main()
