"""Peak memory (RSS) while preparing a 2-hour 44.1 kHz stereo 128 kbit/s MP3 for upload.

    python benchmarks/memory.py

Each measurement is a fresh Python subprocess; its peak RSS is the kernel's ``ru_maxrss`` for
that child (``os.wait4``; the same figure ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``
reports for the largest child, printed too), in KB on Linux. Linux carries the parent's peak
over into a child's ``ru_maxrss`` when the child execs, so this parent stays small (it generates
the input in another subprocess); each child also prints its own ``VmHWM`` as a cross-check.

- baseline: a subprocess that only imports voxmagic (with ``voxmagic.segment``), numpy and av;
- prepare: ``voxmagic.segment.prepare_chunks(voxmagic.as_source(path), "mp3", 1500)`` — decode,
  cut at pauses into ≤ 25-minute chunks, encode each — as ``voxmagic.transcribe`` does. One run
  (memory does not depend on machine load; it takes about a minute).

The 2-hour input is made once and cached at ``~/.cache/voxmagic-bench/two_hours.mp3`` (one
encoded minute, remuxed 120 times: seconds instead of the ~5 minutes of encoding it whole).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from _common import CACHE, Row, report, temp_history

TARGET_MB = 300.0
HWM = """
print("own VmHWM", [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0], "kB")
"""
BASELINE = "import voxmagic, voxmagic.segment, numpy, av" + HWM
PREPARE = """
import sys, time
import voxmagic
from voxmagic.segment import prepare_chunks
started = time.perf_counter()
chunks = prepare_chunks(voxmagic.as_source(sys.argv[1]), "mp3", 1500)
print(f"{len(chunks)} chunks, {sum(c.duration_s for c in chunks):.1f} s of audio, "
      f"{sum(len(c.data) for c in chunks):,} bytes of MP3, "
      f"cuts at {[round(c.start_s, 1) for c in chunks[1:]]} s, {time.perf_counter() - started:.1f} s wall")
""" + HWM
GENERATE = "import _common; _common.speech_mp3(120, 'two_hours.mp3')"


def peak_mb(code: str, *argv: str) -> float:
    """Run ``python -c code argv...``; the child's peak RSS in MB (10^6 bytes)."""
    proc = subprocess.Popen([sys.executable, "-c", code, *argv])
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"the subprocess failed with exit code {proc.returncode}")
    return usage.ru_maxrss * 1024 / 1e6


def main() -> list[Row]:
    path = CACHE / "two_hours.mp3"
    if not path.exists():  # in a subprocess, so that this process stays small (see above)
        print(f"generating {path} (once; about 10 s)")
        subprocess.run([sys.executable, "-c", GENERATE], cwd=Path(__file__).parent, check=True)
    print(f"input: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    base = peak_mb(BASELINE)
    peak = peak_mb(PREPARE, str(path))
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
    print(f"peak RSS: imports only {base:.0f} MB; prepare_chunks {peak:.0f} MB "
          f"(+{peak - base:.0f} MB over the imports); RUSAGE_CHILDREN max {children:.0f} MB")
    return [Row("memory: peak RSS preparing a 2-hour 44.1 kHz stereo MP3 (fresh process)",
                f"< {TARGET_MB:.0f} MB", f"{peak:.0f} MB (imports alone {base:.0f} MB)", peak < TARGET_MB)]


if __name__ == "__main__":
    with temp_history():  # the subprocesses inherit it: nothing may touch the user's history
        report(main())
