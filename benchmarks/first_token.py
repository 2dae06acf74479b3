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

Beside them, the floor for this work in a fresh kernel: a hand-written cell (``PEER``) that does
the same with the same libraries and nothing else — PyAV decodes, soxr resamples to 16 kHz mono,
LAME encodes at voxmagic's setting, httpx streams the answer and prints its first token — run as
a fresh kernel's first cell and again as its second, timed the same way.
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
PEER = """
import base64, json, os
import av, httpx, lameenc, numpy as np, soxr
with av.open({clip!r}) as container:
    blocks = [frame.to_ndarray() for frame in container.decode(audio=0)]
    rate = container.streams.audio[0].sample_rate
mono = soxr.resample(np.concatenate(blocks, axis=1).mean(axis=0), rate, 16000)
encoder = lameenc.Encoder()
encoder.set_bit_rate(32); encoder.set_in_sample_rate(16000); encoder.set_channels(1); encoder.set_quality(7)
mp3 = encoder.encode((np.clip(mono, -1, 1) * 32767).astype(np.int16).tobytes()) + encoder.flush()
audio = {{"type": "input_audio", "input_audio": {{"data": base64.b64encode(mp3).decode(), "format": "mp3"}}}}
body = {{"model": "mistralai/voxtral-small-24b-2507", "stream": True,
        "messages": [{{"role": "user", "content": [{{"type": "text", "text": "Peer question"}}, audio]}}]}}
headers = {{"Authorization": "Bearer " + os.environ["OPENROUTER_API_KEY"]}}
with httpx.stream("POST", {url!r} + "/chat/completions", json=body, headers=headers, timeout=60) as response:
    for line in response.iter_lines():
        if line.startswith("data: {{"):
            choices = json.loads(line[6:])["choices"]
            piece = choices and choices[0]["delta"].get("content")
            if piece:
                print(piece, end="", flush=True)
"""


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


def one_peer(work: Path, server, clips: list[Path]) -> list[Cell]:
    """The hand-written cell as a fresh kernel's first cell, then as its second."""
    kernel = Kernel(work, {"OPENROUTER_API_KEY": "sk-or-bench"})
    try:
        cells = []
        for clip in clips:
            server.reset()
            sent = time.time()
            first = kernel.run(PEER.format(clip=str(clip), url=server.base_url))
            if first is None:
                raise SystemExit("the peer cell printed no answer text")
            cells.append(Cell(first - sent - LATENCY, server.requests()[0]["received_at"] - sent))
        return cells
    finally:
        kernel.close()


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kernels", type=int, default=3)
    args = parser.parse_args()
    clips = [speech_mp3(1), speech_mp3(1, name="speech_1min_seed2.mp3", seed=2)]
    compiled()
    cells: dict[str, list[Cell]] = {"run_all": [], "typed": [], "warm": [], "peer": [], "peer_warm": []}
    with temp_history() as work, local_server(latency=LATENCY, answer_tokens=40) as server:
        for i in range(args.kernels):  # interleaved: a Run All kernel, a typed one, the peer's
            for kind, pause in (("run_all", 0.0), ("typed", TYPED_PAUSE_S), ("peer", None)):
                if pause is None:
                    first, second = one_peer(work, server, clips)
                else:
                    first, second = one_kernel(work, server, clips, pause)
                cells[kind].append(first)
                cells["peer_warm" if pause is None else "warm"].append(second)
                print(f"kernel {i + 1} ({kind}): first cell +{first.overhead_s:.3f} s (before the request "
                      f"{first.before_s:.3f} s), warm cell +{second.overhead_s:.3f} s")
    rows = []
    for kind, name, target, peer in (
        ("run_all", "first %%voxtral cell of a fresh kernel, run at once after %load_ext (Run All)", FRESH_TARGET_S,
         "peer"),
        ("typed", f"same, run {TYPED_PAUSE_S:g} s after %load_ext (a cell typed or clicked)", FRESH_TARGET_S, None),
        ("warm", "a warm %%voxtral cell (second in its kernel)", WARM_TARGET_S, "peer_warm"),
    ):
        values = [c.overhead_s for c in cells[kind]]
        value, before = median(values), median([c.before_s for c in cells[kind]])
        print(f"{kind}: {runs(values)} s, median {value:.3f} s")
        beside = ""
        if peer:
            floor = [c.overhead_s for c in cells[peer]]
            print(f"{peer}: {runs(floor)} s, median {median(floor):.3f} s")
            beside = f"; the hand-written cell doing the same work {median(floor):.3f} s"
        rows.append(Row(f"first_token: {name}, 1-min 44.1 kHz stereo 128 kbit/s MP3: time to the first token "
                        f"minus the server's own (median of {len(values)})", f"≤ {target:g} s",
                        f"{value:.3f} s ({before:.3f} s before the request arrives{beside})", value <= target))
    return rows


if __name__ == "__main__":
    report(main())
