"""Run every benchmark, each in its own subprocess, and print one markdown table of the figures.

    python benchmarks/run_all.py [name ...]

Each script's own output is passed through as it runs; its result rows (the ``| figure | ... |``
lines it prints last) are collected into the final table, with how long each script took. A
script that fails gets a row saying so. Exit status 0 even when a target is missed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import HEADER

HERE = Path(__file__).parent
SCRIPTS = [
    "batch", "baseline", "widgets", "prepare", "memory", "upload_size", "rerun", "locked_history", "load_ext", "vad",
    "long_audio", "client_cpu", "first_token", "dask_scale",
]


def run(name: str) -> tuple[list[str], float]:
    """Run one script, echoing its output; its table rows and its wall time."""
    print(f"\n## {name}\n", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py")], cwd=HERE, stdout=subprocess.PIPE,
                            text=True, bufsize=1)
    rows, in_table = [], False
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.startswith(HEADER):
            in_table = True
        elif in_table and line.startswith("| ") and not line.startswith("|---"):
            rows.append(line.rstrip("\n"))
    seconds = time.perf_counter() - started
    if proc.wait() != 0 or not rows:
        rows.append(f"| {name} | — | failed (exit code {proc.returncode}) | ERROR |")
    return rows, seconds


def main() -> None:
    names = sys.argv[1:] or SCRIPTS
    started = time.perf_counter()
    rows, times = [], []
    for name in names:
        script_rows, seconds = run(name)
        rows += script_rows
        times.append(f"{name} {seconds:.0f} s")
    total = time.perf_counter() - started
    print(f"\n## Results\n\n{HEADER}\n|---|---|---|---|")
    print("\n".join(rows))
    print(f"\ntotal {total:.0f} s ({', '.join(times)})")


if __name__ == "__main__":
    main()
