"""Shared by the benchmark scripts: the local server in its own process, a temporary history file,
cached generated inputs, and the result rows every script prints.

Generated inputs are cached under ``~/.cache/voxmagic-bench`` (or ``$VOXMAGIC_BENCH_CACHE``), so
reruns do not synthesise them again: voice-memo clips, and long 44.1 kHz stereo 128 kbit/s MP3s
made by encoding one speech-like minute and copying its MP3 packets (a remux, no re-encoding),
which takes seconds where encoding two hours would take about five minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("VOXMAGIC_BENCH_CACHE") or Path.home() / ".cache" / "voxmagic-bench")
HEADER = "| figure | target | measured | result |"


# -- results ---------------------------------------------------------------------------------

@dataclass
class Row:
    """One line of the results table; ``ok`` None means there is no target (information only)."""

    figure: str
    target: str
    measured: str
    ok: bool | None

    @property
    def result(self) -> str:
        return "info" if self.ok is None else "PASS" if self.ok else "MISS"

    def line(self) -> str:
        return f"| {self.figure} | {self.target} | {self.measured} | {self.result} |"


def report(rows: Sequence[Row]) -> None:
    """Print the rows as a markdown table (``run_all.py`` collects these lines)."""
    print()
    print(HEADER)
    print("|---|---|---|---|")
    for row in rows:
        print(row.line())
    sys.stdout.flush()


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def runs(values: Sequence[float], fmt: str = "{:.3f}") -> str:
    """All runs, for the log: ``[4.01, 3.98, 4.12]``."""
    return "[" + ", ".join(fmt.format(v) for v in values) + "]"


# -- the local server ------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m voxmagic.testing.server`` in its own process on 127.0.0.1 (a free port)."""

    def __init__(self, **flags: float):
        self.port = free_port()
        argv = [sys.executable, "-m", "voxmagic.testing.server", "--port", str(self.port)]
        for name, value in flags.items():
            argv += [f"--{name.replace('_', '-')}", str(value)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "listening" not in line:
            self.stop()
            raise RuntimeError(f"the local server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = self.url + "/api/v1"

    def requests(self) -> list[dict]:
        """What the server received: one dict per request, audio replaced by its size and digest."""
        with urllib.request.urlopen(self.url + "/_control/requests") as resp:
            return json.load(resp)

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_control/reset", data=b"{}", method="POST")
        urllib.request.urlopen(req).close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


@contextmanager
def local_server(**flags: float) -> Iterator[Server]:
    server = Server(**flags)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def temp_history() -> Iterator[Path]:
    """A temporary directory whose ``history.db`` is voxmagic's history and cache; removed after."""
    work = Path(tempfile.mkdtemp(prefix="voxmagic-bench-"))
    old = os.environ.get("VOXMAGIC_HISTORY")
    os.environ["VOXMAGIC_HISTORY"] = str(work / "history.db")
    try:
        yield work
    finally:
        if old is None:
            os.environ.pop("VOXMAGIC_HISTORY", None)
        else:
            os.environ["VOXMAGIC_HISTORY"] = old
        shutil.rmtree(work, ignore_errors=True)


# -- cached inputs ---------------------------------------------------------------------------

def _atomic(path: Path) -> Path:
    """A temporary name beside ``path``; rename it to ``path`` once written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def memo_clips(n: int, prefix: str = "memo") -> list[str]:
    """``n`` voice memos of 1.0–2.8 s: 16 kHz mono MP3 at 24 kbit/s, which voxmagic uploads as they are."""
    from voxmagic.testing.synth import speechlike, write_audio

    seed0 = 0 if prefix == "memo" else 10_000
    paths = []
    for i in range(n):
        path = CACHE / "memos" / f"{prefix}{i:03d}.mp3"
        if not path.exists():
            tmp = _atomic(path)
            write_audio(tmp, speechlike(1.0 + (i % 7) * 0.3, 16_000, seed=seed0 + i), 16_000)
            tmp.replace(path)
        paths.append(str(path))
    return paths


def _one_minute(seed: int = 1) -> bytes:
    """One minute of speech-like sound as a 44.1 kHz stereo 128 kbit/s MP3 (about 3 s to encode)."""
    import io
    from fractions import Fraction

    import av
    import numpy as np

    from voxmagic.testing.synth import speechlike

    mono = speechlike(60.0, 44_100, seed=seed)[0]
    stereo = np.stack([mono, np.roll(mono, 37) * 0.9]).astype(np.float32)  # not quite the same channels
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=44_100, layout="stereo")
        stream.bit_rate = 128_000
        for start in range(0, stereo.shape[1], 44_100):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo[:, start:start + 44_100]),
                                               format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 44_100, start, Fraction(1, 44_100)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def speech_mp3(minutes: int, name: str | None = None, seed: int = 1) -> Path:
    """A ``minutes``-long 44.1 kHz stereo 128 kbit/s MP3 in the cache, made (once) by remuxing the
    packets of one encoded minute ``minutes`` times into one file with a proper Xing header."""
    import io

    import av

    path = CACHE / (name or f"speech_{minutes}min.mp3")
    if path.exists():
        return path
    minute = _one_minute(seed)
    tmp = _atomic(path)
    with av.open(str(tmp), "w", format="mp3") as out:
        stream, pts = None, 0
        for _ in range(minutes):
            with av.open(io.BytesIO(minute)) as src:
                template = src.streams.audio[0]
                if stream is None:
                    stream = out.add_stream_from_template(template)
                for packet in src.demux(template):
                    if not packet.size:
                        continue
                    duration = packet.duration
                    packet.stream, packet.pts, packet.dts = stream, pts, pts
                    pts += duration
                    out.mux(packet)
    tmp.replace(path)
    return path


def batch_arguments(doc: str | None, repeat: int) -> argparse.Namespace:
    """The command line of the batch-shaped benchmarks: clips, server latency, concurrency, repeats."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser.parse_args()
