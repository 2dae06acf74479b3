"""Rerunning a 100-file batch from the cache: wall time, cost, and that nothing was sent.

    python benchmarks/rerun.py [--files 100] [--repeat 3]

The first ``voxmagic.transcribe(clips)`` (local server in its own process, 300 ms per answer)
fills a temporary history/cache file; the same call is then timed ``repeat`` times in the same
process (a notebook cell run again), median reported. Each rerun must have every row
``cached``, cost $0, and leave the server's request count unchanged. For information, the same
rerun is also timed in a fresh Python process (a new kernel the next day): the
``transcribe`` call alone, and with ``import voxmagic`` (pandas, PyAV, httpx load then).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from _common import Row, local_server, median, memo_clips, report, runs, temp_history

TARGET_S = 1.0
FRESH = """
import json, sys, time
started = time.perf_counter()
import voxmagic
imported = time.perf_counter()
df = voxmagic.transcribe(json.loads(sys.argv[1]), base_url=sys.argv[2], api_key="bench")
done = time.perf_counter()
print(json.dumps({"call": done - imported, "with_import": done - started, "cached": bool(df["cached"].all()),
                  "cost": float(df["cost_usd"].sum())}))
"""


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clips = memo_clips(args.files)
    with temp_history(), local_server(latency=0.3) as server:
        import voxmagic

        options = {"base_url": server.base_url, "api_key": "bench"}
        first = voxmagic.transcribe(clips, **options)
        assert first["error"].isna().all() and not first["cached"].any()
        sent = len(server.requests())
        walls, costs, all_cached = [], [], True
        for _ in range(args.repeat):
            started = time.perf_counter()
            again = voxmagic.transcribe(clips, **options)
            walls.append(time.perf_counter() - started)
            costs.append(float(again["cost_usd"].sum()))
            all_cached &= bool(again["cached"].all()) and again["error"].isna().all()
        fresh = json.loads(subprocess.run([sys.executable, "-c", FRESH, json.dumps(clips), server.base_url],
                                          capture_output=True, text=True, check=True).stdout)
        resent = len(server.requests()) - sent
    wall, cost = median(walls), max(costs)
    print(f"first run ${first['cost_usd'].sum():.6f}, {sent} requests sent")
    print(f"reruns {runs(walls)} s, median {wall:.3f} s; cost ${cost:.6f}; all rows cached: {all_cached}; "
          f"requests sent by the reruns: {resent}")
    print(f"fresh process: the call {fresh['call']:.3f} s, with import voxmagic {fresh['with_import']:.3f} s, "
          f"all cached {fresh['cached']}, cost ${fresh['cost']:.6f}")
    ok = wall < TARGET_S and cost == 0 and all_cached and fresh["cached"] and resent == 0
    return [Row(f"rerun: {args.files}-file batch from the cache (same process; median of {args.repeat})",
                f"< {TARGET_S:g} s, $0", f"{wall:.3f} s, ${cost:.2f}, all cached: {all_cached}, "
                f"{resent} sent (fresh process {fresh['call']:.2f} s)", ok)]


if __name__ == "__main__":
    report(main())
