"""``%load_ext voxmagic`` in a fresh Jupyter kernel: seconds, and which heavy modules it imports.

    python benchmarks/load_ext.py [--kernels 3]

Starts a real ipykernel (``jupyter_client.KernelManager``, this Python) ``kernels`` times; in
each, times ``get_ipython().run_line_magic('load_ext', 'voxmagic')`` with ``time.perf_counter``
inside the kernel, and lists which of numpy, pandas, av, httpx (and a few more) are in
``sys.modules`` before and after. The figure is the median over the fresh kernels. ``%load_ext``
then imports what the first call needs on a background thread (``voxmagic/warmup.py``), which is
held until the "after" list is taken (else that thread's first imports land in it within
microseconds): how long the background imports take, and what they imported, is printed too. voxmagic is compiled to bytecode first, as after
``pip install`` (this machine sets PYTHONDONTWRITEBYTECODE, which users don't).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
from pathlib import Path

from _common import Row, median, report, runs, temp_history

TARGET_S = 0.5
HEAVY = ["numpy", "pandas", "av", "httpx", "ipywidgets", "aiohttp", "tenacity", "sqlite3"]
CODE = f"""
import json, sys, time
heavy = {HEAVY!r}
before = [m for m in heavy if m in sys.modules]
t = time.perf_counter()
from voxmagic import warmup  # its start is held until the snapshot below: what load_ext itself imports
start, held = warmup.start, []
warmup.start = lambda *args, **kwargs: held.append((args, kwargs))
get_ipython().run_line_magic('load_ext', 'voxmagic'); dt = time.perf_counter() - t
after = [m for m in heavy if m in sys.modules]
warmup.start = start; start(*held[0][0], **held[0][1])
warmup.wait(); background = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "before": before, "after": after, "background": background,
                  "warmed": [m for m in heavy if m in sys.modules], "python": sys.executable}}))
"""


def in_fresh_kernel(code: str, work: Path) -> str:
    """Run ``code`` in a new kernel (talking over unix sockets in ``work``); its stdout."""
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(work / "kernel-ipc"),
                       connection_file=str(work / "kernel.json"))
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as users have it
    km.start_kernel(env={**plain, "IPYTHONDIR": str(work / "ipython"), "JUPYTER_RUNTIME_DIR": str(work),
                         "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        msg_id = kc.execute(code)
        out = []
        while True:
            try:
                msg = kc.get_iopub_msg(timeout=60)
            except queue.Empty:
                raise SystemExit("the kernel did not answer within 60 s") from None
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream" and content["name"] == "stdout":
                out.append(content["text"])
            elif kind == "error":
                raise SystemExit("\n".join(content["traceback"]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", type=int, default=3)
    args = parser.parse_args()
    from first_token import compiled

    compiled()
    seconds, loaded, background, warmed = [], set(), [], set()
    with temp_history() as work:
        for i in range(args.kernels):
            result = json.loads(in_fresh_kernel(CODE, work).strip().splitlines()[-1])
            seconds.append(result["seconds"])
            new = sorted(set(result["after"]) - set(result["before"]))
            loaded |= set(new)
            background.append(result["background"])
            warmed |= set(result["warmed"]) - set(result["before"])
            print(f"kernel {i + 1} ({result['python']}): load_ext {result['seconds']:.3f} s; heavy modules "
                  f"already loaded by the kernel {result['before']}; imported by load_ext: {new or 'none'}")
    value = median(seconds)
    print(f"load_ext {runs(seconds)} s, median {value:.3f} s; then in the background (voxmagic/warmup.py) "
          f"{', '.join(sorted(warmed))}: done {median(background):.2f} s after the call began (median)")
    return [Row(f"load_ext: %load_ext voxmagic in a fresh kernel (median of {args.kernels})", f"< {TARGET_S:g} s",
                f"{value:.3f} s; imports {', '.join(sorted(loaded)) or 'none of numpy/pandas/av/httpx'} (then "
                f"{', '.join(sorted(warmed))} in the background, done after {median(background):.2f} s)",
                value < TARGET_S)]


if __name__ == "__main__":
    report(main())
