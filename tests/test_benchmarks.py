"""The benchmark scripts keep working (their figures are printed, not asserted; this one is
deterministic): the default upload is at least 10× smaller than 44.1 kHz stereo WAV."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def test_upload_size_benchmark_runs_and_meets_its_target(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCH / "upload_size.py")], cwd=BENCH, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "VOXMAGIC_BENCH_CACHE": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| upload_size")]
    assert rows and all(row.rstrip().endswith("| PASS |") for row in rows), proc.stdout
