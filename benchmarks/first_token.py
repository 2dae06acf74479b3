"""What ``%%voxtral`` adds to the time to the first token, in a real kernel: the first cell of a
fresh kernel and a warm one.

    python benchmarks/first_token.py [--kernels 3]

Each of ``kernels`` fresh ipykernels (``jupyter_client``, this Python) runs ``%load_ext voxmagic``,
then ``%%voxtral CLIP --no-cache`` with a question, twice, on two different one-minute 44.1 kHz
stereo 128 kbit/s MP3s (music-rate files, as a phone or a browser export them). The local server
(its own process) sends its first token ``LATENCY`` s after a request arrives, the way a provider's
time to first token runs: that is the server's own share. Everything else is voxmagic's:

    overhead = (first answer text on the kernel's iopub channel − execute_request sent) − LATENCY

"first answer text" is the first widget message carrying text (the live view is an anywidget,
as in JupyterLab) or a stdout stream, timed by this process as it arrives; the server's log says
when the request arrived, which splits the overhead into before the request (imports, reading,
preparing, base64, the connection) and after it. The cells are measured one after the other in
the same kernel; figures are medians over the kernels. The first cell is run twice over: at once
after ``%load_ext`` (Run All) and ``TYPED_PAUSE_S`` later, as when a person types or clicks the
next cell — ``%load_ext`` starts importing what the first call needs in the background
(``voxmagic/warmup.py``). ``%load_ext`` itself is
``benchmarks/load_ext.py``'s row. voxmagic is compiled to bytecode first and the kernels may use
it, as after ``pip install`` (this machine sets PYTHONDONTWRITEBYTECODE, which users don't).
"""

from __future__ import annotations

import argparse
import os
import queue
import time
from dataclasses import dataclass
from pathlib import Path

from _common import Row, local_server, median, report, runs, speech_mp3, temp_history

LATENCY = 0.5
FRESH_TARGET_S, WARM_TARGET_S = 0.6, 0.25
TYPED_PAUSE_S = 1.0
QUESTION = "What is said?"


@dataclass
class Cell:
    overhead_s: float  # first text − sent − LATENCY
    before_s: float  # request arrival − sent


class Kernel:
    """A fresh ipykernel talking over unix sockets in ``work``."""

    def __init__(self, work: Path, env: dict[str, str]):
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3", transport="ipc", ip=str(work / "kernel-ipc"),
                                connection_file=str(work / "kernel.json"))
        plain = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as users have it
        self.km.start_kernel(env={**plain, **env, "IPYTHONDIR": str(work / "ipython"),
                                  "JUPYTER_RUNTIME_DIR": str(work), "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)

    def run(self, code: str) -> float | None:
        """Run ``code``; the ``time.time()`` at which its first answer text arrived (None: no text)."""
        msg_id, first = self.kc.execute(code), None
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=120)
            except queue.Empty:
                raise SystemExit("the kernel did not answer within 120 s") from None
            now = time.time()
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "error":
                raise SystemExit("\n".join(content["traceback"]))
            if first is None and carries_text(kind, content):
                first = now
            if kind == "status" and content["execution_state"] == "idle":
                return first

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def compiled() -> None:
    """voxmagic's modules compiled to bytecode, as ``pip install`` leaves them: this machine sets
    PYTHONDONTWRITEBYTECODE, which would make every fresh kernel compile them again (~0.1 s)."""
    import compileall

    import voxmagic

    compileall.compile_dir(str(Path(voxmagic.__file__).parent), quiet=1)


def carries_text(kind: str, content: dict) -> bool:
    """A live view's update with answer text ("add"/"text" of live_text.py), or printed text."""
    if kind == "comm_msg":
        data = content.get("data", {})
        custom = data.get("content", {}) if data.get("method") == "custom" else {}
        return bool(custom.get("add") or custom.get("text"))
    return kind == "stream" and content.get("name") == "stdout" and QUESTION not in content["text"]


def one_kernel(work: Path, server, clips: list[Path], pause_s: float) -> list[Cell]:
    env = {"OPENROUTER_API_KEY": "sk-or-bench", "VOXMAGIC_BASE_URL": server.base_url}
    kernel = Kernel(work, env)
    try:
        kernel.run("%load_ext voxmagic")
        time.sleep(pause_s)
        cells = []
        for clip in clips:
            server.reset()
            sent = time.time()
            first = kernel.run(f"%%voxtral {clip} --no-cache\n{QUESTION}")
            if first is None:
                raise SystemExit("no answer text reached the kernel's iopub channel")
            arrived = server.requests()[0]["received_at"]
            cells.append(Cell(first - sent - LATENCY, arrived - sent))
        return cells
    finally:
        kernel.close()


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", type=int, default=3)
    args = parser.parse_args()
    clips = [speech_mp3(1), speech_mp3(1, name="speech_1min_seed2.mp3", seed=2)]
    compiled()
    cells: dict[str, list[Cell]] = {"run_all": [], "typed": [], "warm": []}
    with temp_history() as work, local_server(latency=LATENCY, answer_tokens=40) as server:
        for i in range(args.kernels):  # interleaved: a Run All kernel, then a typed one
            for kind, pause in (("run_all", 0.0), ("typed", TYPED_PAUSE_S)):
                first, second = one_kernel(work, server, clips, pause)
                cells[kind].append(first)
                cells["warm"].append(second)
                print(f"kernel {i + 1} ({kind}): first cell +{first.overhead_s:.3f} s (before the request "
                      f"{first.before_s:.3f} s), warm cell +{second.overhead_s:.3f} s")
    rows = []
    for kind, name, target in (
        ("run_all", "first %%voxtral cell of a fresh kernel, run at once after %load_ext (Run All)", FRESH_TARGET_S),
        ("typed", f"same, run {TYPED_PAUSE_S:g} s after %load_ext (a cell typed or clicked)", FRESH_TARGET_S),
        ("warm", "a warm %%voxtral cell (second in its kernel)", WARM_TARGET_S),
    ):
        values = [c.overhead_s for c in cells[kind]]
        value, before = median(values), median([c.before_s for c in cells[kind]])
        print(f"{kind}: {runs(values)} s, median {value:.3f} s")
        rows.append(Row(f"first_token: {name}, 1-min 44.1 kHz stereo 128 kbit/s MP3: time to the first token "
                        f"minus the server's own (median of {len(values)})", f"≤ {target:g} s",
                        f"{value:.3f} s ({before:.3f} s before the request arrives)", value <= target))
    return rows


if __name__ == "__main__":
    report(main())
