"""A history file locked by another process must not stall the streams: event-loop lag and batch
wall time while a 16-wide streaming batch runs, with the file free and with it locked.

    python benchmarks/locked_history.py [--clips 16] [--concurrency 16] [--repeat 3]

voxmagic runs every request on one background event loop (``voxmagic.loop.LOOP``) and every SQLite
call of its history/cache on a thread of its own (``voxmagic.runner.in_store``). A write that finds
the file locked waits ``storage.LOCK_WAIT_S`` (5 s), then history and cache are off for the
session, with one warning line. This script checks that the wait happens off the loop.

The local server (its own process) answers after 300 ms and streams each transcript at 50 tokens/s,
25 words per second of audio: the 1.0–2.8 s voice memos stream for 0.5–1.4 s, so the first answers
are written (and, when the file is locked, the first write starts waiting) while the rest still
stream. ``voxmagic.transcribe(clips, concurrency=16, stream=True, cache=False)`` runs with
``VOXMAGIC_HISTORY`` on a fresh file that already has its tables (another kernel's history):

- **free**: nothing else has the file open;
- **locked**: another process (``python -c`` with ``sqlite3``) holds ``BEGIN EXCLUSIVE`` on it for
  the whole batch.

Meanwhile a ticker coroutine on voxmagic's loop sleeps 10 ms again and again and records how late
each wake-up is (lag); only wake-ups during the ``transcribe`` call count. Figures per case:
batch wall time, max and p99 lag, the slowest request's own latency (first byte sent to last
token, measured on the loop), rows with text, history rows written, warning lines. Free and
locked runs alternate, ``repeat`` times each; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import Row, local_server, median, memo_clips, report, runs, temp_history

LAG_LIMIT_MS = 50.0
TICK_S = 0.010
SERVER = {"latency": 0.3, "token_rate": 50, "words_per_second": 25}
LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(path: Path, seconds: float = 120.0) -> subprocess.Popen:
    """Another process holding ``BEGIN EXCLUSIVE`` on ``path`` until it is killed."""
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(path), str(seconds)], stdout=subprocess.PIPE,
                              text=True)
    if locker.stdout.readline().strip() != "locked":
        locker.kill()
        raise RuntimeError("the locking process did not get its lock")
    return locker


class Ticker:
    """On voxmagic's loop: sleep ``TICK_S`` over and over; (wake-up time, lateness) of each."""

    def __init__(self) -> None:
        self.ticks: list[tuple[float, float]] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            before = time.perf_counter()
            await asyncio.sleep(TICK_S)
            woke = time.perf_counter()
            self.ticks.append((woke, max(0.0, woke - before - TICK_S)))

    def lags(self, start: float, end: float) -> list[float]:
        return [lag for woke, lag in self.ticks if start <= woke <= end]


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


def history_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM requests").fetchone()[0]


def one_run(clips: list[str], options: dict, path: Path, locked: bool, warned: list[str]) -> dict:
    import voxmagic
    from voxmagic.loop import LOOP
    from voxmagic.storage import Store

    Store(path).history(last=1)  # the file exists with its tables, as another kernel's history would
    os.environ["VOXMAGIC_HISTORY"] = str(path)
    warned.clear()
    locker = hold_lock(path) if locked else None
    ticker = Ticker()
    ticking = LOOP.submit(ticker.run())
    try:
        time.sleep(0.05)  # the ticker is running before the batch starts
        started = time.perf_counter()
        df = voxmagic.transcribe(clips, stream=True, cache=False, **options)
        ended = time.perf_counter()
    finally:
        ticker.running = False
        ticking.result(timeout=5)
        if locker is not None:
            locker.kill()
            locker.wait()
    lags = ticker.lags(started, ended)
    with_text = int((df["error"].isna() & df["text"].fillna("").str.strip().ne("")).sum())
    return {"wall": ended - started, "max_lag": max(lags), "p99_lag": p99(lags), "ticks": len(lags),
            "slowest": float(df["latency_s"].max()), "with_text": with_text, "written": history_rows(path),
            "warnings": list(warned)}


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    clips, warm = memo_clips(args.clips), memo_clips(4, prefix="warm")
    with temp_history() as work, local_server(**SERVER) as server:
        import voxmagic
        from voxmagic import storage

        warned: list[str] = []

        storage.warn = warned.append  # storage's one way of telling the user: counted (one printed below)
        options = {"base_url": server.base_url, "api_key": "bench", "concurrency": args.concurrency}
        os.environ["VOXMAGIC_HISTORY"] = str(work / "warm.db")
        voxmagic.transcribe(warm, stream=True, cache=False, **options)  # imports, threads, connections
        results: dict[str, list[dict]] = {"free": [], "locked": []}
        for i in range(args.repeat):
            for case in results:
                r = one_run(clips, options, work / f"{case}{i}.db", case == "locked", warned)
                results[case].append(r)
                print(f"run {i + 1} {case:6}: wall {r['wall']:.2f} s, lag max {r['max_lag'] * 1000:.1f} ms "
                      f"p99 {r['p99_lag'] * 1000:.1f} ms ({r['ticks']} ticks), slowest request "
                      f"{r['slowest']:.2f} s, rows with text {r['with_text']}/{args.clips}, history rows "
                      f"{r['written']}, warning lines {len(r['warnings'])}", flush=True)

    def med(case: str, key: str) -> float:
        return median([r[key] for r in results[case]])

    free, locked = results["free"], results["locked"]
    wait = storage.LOCK_WAIT_S
    print(f"\n{args.clips} clips, concurrency {args.concurrency}, streaming; server {SERVER}; LOCK_WAIT_S {wait:g} s")
    for case in results:
        print(f"{case:6}: wall {runs([r['wall'] for r in results[case]], '{:.2f}')} s, "
              f"max lag {runs([r['max_lag'] * 1000 for r in results[case]], '{:.1f}')} ms, "
              f"p99 lag {runs([r['p99_lag'] * 1000 for r in results[case]], '{:.1f}')} ms, "
              f"slowest request {runs([r['slowest'] for r in results[case]], '{:.2f}')} s")
    if locked[0]["warnings"]:
        print(f"locked: the warning line: {locked[0]['warnings'][0]}")
    print(f"a write on the loop thread would have blocked the loop (every stream) for LOCK_WAIT_S = {wait:g} s")

    lag_ok = med("locked", "max_lag") * 1000 <= LAG_LIMIT_MS
    extra = med("locked", "wall") - med("free", "wall")
    slower = med("locked", "slowest") - med("free", "slowest")
    complete = all(r["with_text"] == args.clips for r in free + locked)
    told = (all(len(r["warnings"]) == 1 and "is locked by another process" in r["warnings"][0] for r in locked)
            and not any(r["warnings"] for r in free))
    written = all(r["written"] == args.clips for r in free) and not any(r["written"] for r in locked)
    n = f"median of {args.repeat}"
    return [
        Row(f"locked_history: event-loop lag while {args.clips} streams run and a write waits on another "
            f"process's lock (max, {n})", f"≤ {LAG_LIMIT_MS:g} ms",
            f"locked {med('locked', 'max_lag') * 1000:.1f} ms (p99 {med('locked', 'p99_lag') * 1000:.1f}); "
            f"free {med('free', 'max_lag') * 1000:.1f} ms (p99 {med('free', 'p99_lag') * 1000:.1f})", lag_ok),
        Row(f"locked_history: slowest request's latency, locked − free ({n})", "≤ 0.10 s",
            f"{slower:+.3f} s ({med('locked', 'slowest'):.2f} s vs {med('free', 'slowest'):.2f} s)",
            slower <= 0.10),
        Row(f"locked_history: batch wall, locked − free ({n})", f"≤ LOCK_WAIT_S ({wait:g} s)",
            f"{extra:.2f} s ({med('locked', 'wall'):.2f} s vs {med('free', 'wall'):.2f} s)", extra <= wait),
        Row("locked_history: rows with text; warning lines (locked / free); history rows (free / locked)",
            f"{args.clips}/{args.clips}; 1 / 0; {args.clips} / 0",
            f"{min(r['with_text'] for r in free + locked)}/{args.clips}; "
            f"{median([len(r['warnings']) for r in locked]):g} / {median([len(r['warnings']) for r in free]):g}; "
            f"{med('free', 'written'):g} / {med('locked', 'written'):g}", complete and told and written),
    ]


if __name__ == "__main__":
    report(main())
