"""Batch throughput: voxmagic's wall time for a batch / the ideal, against the local server.

    python benchmarks/batch.py [--clips 200] [--latency 0.3] [--concurrency 16] [--repeat 3]

The server runs in its own process and answers each request ``latency`` seconds after it arrives.
The ideal, ⌈clips / concurrency⌉ × latency, is what a client with no overhead of its own could
do. Clips are voice memos (16 kHz mono MP3, uploaded as they are). After a warm-up (imports,
thread pool, connections), ``voxmagic.transcribe(clips, concurrency=16)`` is timed ``repeat``
times, each run with a fresh, empty history file so that it takes the default path (cache
lookup, decode, send, record) and really sends; the figure is the median wall / ideal.
"""

from __future__ import annotations

import math
import os
import time

from _common import (
    Row,
    batch_arguments,
    local_server,
    median,
    memo_clips,
    report,
    runs,
    temp_history,
)

TARGET = 1.10


def main() -> list[Row]:
    args = batch_arguments(__doc__, repeat=3)
    clips, warm = memo_clips(args.clips), memo_clips(4, prefix="warm")
    with temp_history() as work, local_server(latency=args.latency) as server:
        import voxmagic

        options = {"base_url": server.base_url, "api_key": "bench", "concurrency": args.concurrency}
        voxmagic.transcribe(warm, **options)
        walls = []
        for i in range(args.repeat):
            os.environ["VOXMAGIC_HISTORY"] = str(work / f"history{i}.db")  # empty: nothing cached
            started = time.perf_counter()
            df = voxmagic.transcribe(clips, **options)
            walls.append(time.perf_counter() - started)
            if df["error"].notna().any() or df["cached"].any():
                raise SystemExit(f"run {i}: errors or cached rows:\n{df[['source', 'error', 'cached']]}")
    ideal = math.ceil(args.clips / args.concurrency) * args.latency
    ratio = median(walls) / ideal
    print(f"{args.clips} clips, server latency {args.latency} s, concurrency {args.concurrency}")
    print(f"wall per run {runs(walls, '{:.2f}')} s; ideal {ideal:.2f} s; median wall/ideal {ratio:.3f}")
    return [Row(f"batch: wall / ideal ({args.clips} clips, {args.latency * 1000:.0f} ms, "
                f"concurrency {args.concurrency}; median of {args.repeat})", f"≤ {TARGET:.2f}",
                f"{ratio:.3f} ({median(walls):.2f} s / {ideal:.2f} s)", ratio <= TARGET)]


if __name__ == "__main__":
    report(main())
