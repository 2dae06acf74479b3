"""Client CPU per clip, voxmagic ÷ a hand-written peer, for each input format; and the batch's wall.

    python benchmarks/client_cpu.py [--clips 200] [--latency 0.3] [--concurrency 8] [--repeat 5]
                                    [--formats flac,wav,m4a,mp3]

Inputs: ``clips`` 1-second files of speech-like sound per format — FLAC, WAV (16-bit) and M4A
(AAC) at 44.1 kHz stereo, and a compact 16 kHz mono MP3 (~28 kbit/s, which voxmagic uploads as
it is); made once and cached (see ``_common``).

- A, voxmagic: ``voxmagic.transcribe(paths, concurrency=8, cache=False)``: it reads each file,
  hashes it (the cache key), decodes non-compact audio to 16 kHz mono with its exact duration and
  encodes it as MP3 at 32 kbit/s, sends, and writes its history (a fresh file per run).
- B, the peer: ``openai.AsyncOpenAI`` and an ``asyncio.Semaphore(8)`` around
  ``chat.completions.create``, sending each file's bytes as they are (base64 in an
  ``input_audio`` part, the format from the suffix), read inside the timed run.

CPU = ``time.process_time()`` of this process around the batch (the server runs in its own
process, so it is not counted): both sides' worker threads, event loop, JSON and HTTP. Per format,
A B A B … ``repeat`` pairs, the server answering at once (latency 0): the figure is
median(A) / median(B), with each pair's ratio for the range. Then the same pairs with the server
answering after ``latency`` seconds (as in ``batch.py``): wall(A) / wall(B), where decoding and
encoding overlap the network wait as they would against a real provider. Last, an ``info`` row:
the CPU of encoding one clip as MP3 alone (``voxmagic.codec.encode``), over the peer's whole CPU
per clip — the part of a non-compact input's cost that faster reading cannot remove.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import time
import urllib.request
from pathlib import Path

from _common import CACHE, Row, _atomic, local_server, median, report, runs, temp_history

CPU_TARGET = 2.0
WALL_TARGET = 1.05
FORMATS = ("flac", "wav", "m4a", "mp3")
NAMES = {"flac": "FLAC 44.1 kHz stereo", "wav": "WAV 44.1 kHz stereo 16-bit", "m4a": "M4A (AAC) 44.1 kHz stereo",
         "mp3": "compact MP3 16 kHz mono"}


def clips(fmt: str, n: int) -> list[str]:
    """``n`` 1-second clips in ``fmt`` (cached): a different speech-like second each."""
    import numpy as np

    from voxmagic.testing.synth import speechlike, write_audio

    paths = []
    for i in range(n):
        path = CACHE / "client_cpu" / fmt / f"clip{i:03d}.{fmt}"
        if not path.exists():
            tmp = _atomic(path)
            if fmt == "mp3":
                write_audio(tmp, speechlike(1.0, 16_000, seed=i), 16_000)
            else:
                mono = speechlike(1.0, 44_100, seed=i)[0]
                write_audio(tmp, np.stack([mono, np.roll(mono, 37) * 0.9]), 44_100)
            tmp.replace(path)
        paths.append(str(path))
    return paths


async def peer(client, paths: list[str], concurrency: int, prompt: str, model: str) -> list:
    """The hand-written client: each file's bytes as they are, ``concurrency`` requests at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(path: str):
        async with gate:
            data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
            content = [{"type": "text", "text": prompt},
                       {"type": "input_audio", "input_audio": {"data": data, "format": Path(path).suffix[1:]}}]
            return await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": content}], temperature=0.0)

    return await asyncio.gather(*(one(p) for p in paths))


def configure(server, **config: float) -> None:
    req = urllib.request.Request(server.url + "/_control/config", data=json.dumps(config).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    urllib.request.urlopen(req).close()


class Sides:
    """A (voxmagic) and B (the peer) against one server: each call one batch, (cpu s, wall s)."""

    def __init__(self, server, work: Path, concurrency: int):
        import openai

        import voxmagic
        from voxmagic.providers import DEFAULT_MODEL

        self.server, self.work, self.concurrency, self.runs = server, work, concurrency, 0
        self.voxmagic, self.model, self.prompt = voxmagic, DEFAULT_MODEL, voxmagic.transcription_prompt()
        self.loop = asyncio.new_event_loop()
        self.client = openai.AsyncOpenAI(base_url=server.base_url, api_key="bench")

    def a(self, paths: list[str]) -> tuple[float, float]:
        self.runs += 1
        os.environ["VOXMAGIC_HISTORY"] = str(self.work / f"history{self.runs}.db")  # a fresh history
        cpu, wall = time.process_time(), time.perf_counter()
        df = self.voxmagic.transcribe(paths, base_url=self.server.base_url, api_key="bench",
                                      concurrency=self.concurrency, cache=False)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert df["error"].isna().all() and not df["cached"].any(), df[["source", "error", "cached"]]
        self.server.reset()
        return cpu, wall

    def b(self, paths: list[str]) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        answers = self.loop.run_until_complete(peer(self.client, paths, self.concurrency, self.prompt, self.model))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        assert len(answers) == len(paths) and all(r.choices[0].message.content for r in answers)
        self.server.reset()
        return cpu, wall

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


def pairs(sides: Sides, paths: list[str], repeat: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """A B A B …: ``repeat`` runs of each side, interleaved so that noise hits both alike."""
    runs_a, runs_b = [], []
    for _ in range(repeat):
        runs_a.append(sides.a(paths))
        runs_b.append(sides.b(paths))
    return runs_a, runs_b


def ratio_row(figure: str, a: list[float], b: list[float], target: float, unit: str, scale: float) -> Row:
    ratio = median(a) / median(b)
    each = [x / y for x, y in zip(a, b, strict=True)]
    print(f"  {figure}: voxmagic {runs([x * scale for x in a], '{:.2f}')} {unit}, "
          f"peer {runs([x * scale for x in b], '{:.2f}')} {unit}; pairs {runs(each, '{:.2f}')}")
    measured = (f"{ratio:.2f}× ({median(a) * scale:.2f} / {median(b) * scale:.2f} {unit}; "
                f"pairs {min(each):.2f}–{max(each):.2f})")
    return Row(figure, f"≤ {target:.2f}×", measured, ratio <= target)


def split_cores(sides: Sides, server, paths: list[str], repeat: int, name: str) -> list[Row]:
    """The CPU pairs again with the local server on the last core and every thread of this process
    on the others (info): a provider's server never shares the client's cores, and on this 2-core
    machine, voxmagic's threads (event loop, preparing, history) bounce between the cores the
    server keeps busy. Linux only; restored afterwards."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2:
        return []
    tasks = [int(t) for t in os.listdir("/proc/self/task")]
    try:
        os.sched_setaffinity(server.proc.pid, cores[-1:])
        for tid in tasks:  # threads started later inherit the affinity of the thread that starts them
            os.sched_setaffinity(tid, cores[:-1])
        runs_a, runs_b = pairs(sides, paths, repeat)
    finally:
        for tid in [*map(int, os.listdir("/proc/self/task")), server.proc.pid]:  # with threads started since
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:  # a thread that ended meanwhile
                pass
    n = len(paths)
    print(f"{name}, server on core {cores[-1]}, this process on {cores[:-1]}:")
    row = ratio_row(f"client CPU per clip, voxmagic / peer: {name}, the server on a core of its own "
                    f"(median, A B ×{repeat}; info)", [c / n for c, _ in runs_a], [c / n for c, _ in runs_b], 0,
                    "ms", 1e3)
    return [Row(row.figure, "comparison", row.measured, None)]


def encode_floor(n: int) -> float:
    """CPU seconds to encode one 1-second clip as voxmagic uploads it (16 kHz mono MP3, 32 kbit/s):
    what no change to reading and decoding can take away from a non-compact input."""
    import numpy as np

    from voxmagic.codec import PCM, encode
    from voxmagic.testing.synth import speechlike

    pcm = PCM((speechlike(1.0, 16_000)[0] * 32_000).astype(np.int16))
    encode(pcm)
    started = time.process_time()
    for _ in range(n):
        encode(pcm)
    return (time.process_time() - started) / n


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--formats", default=",".join(FORMATS))
    args = parser.parse_args()
    formats = args.formats.split(",")
    inputs = {fmt: clips(fmt, args.clips) for fmt in formats}
    rows: list[Row] = []
    peers: list[float] = []  # the peer's CPU per clip, per format
    with temp_history() as work, local_server(latency=0) as server:
        sides = Sides(server, work, args.concurrency)
        try:
            warm = inputs[formats[0]][:8]
            sides.a(warm), sides.b(warm)  # imports, threads, connections
            for fmt in formats:
                paths, n = inputs[fmt], args.clips
                configure(server, latency=0.0)
                runs_a, runs_b = pairs(sides, paths, args.repeat)
                print(f"{NAMES[fmt]}, {n} clips of 1 s, server latency 0, concurrency {args.concurrency}:")
                figure = f"client CPU per clip, voxmagic / peer: {NAMES[fmt]} (median, A B ×{args.repeat})"
                rows.append(ratio_row(figure, [c / n for c, _ in runs_a], [c / n for c, _ in runs_b], CPU_TARGET,
                                      "ms", 1e3))
                ratio_row("  (wall at latency 0, info)", [w for _, w in runs_a], [w for _, w in runs_b], 0, "s", 1)
                configure(server, latency=args.latency)
                runs_a, runs_b = pairs(sides, paths, args.repeat)
                print(f"{NAMES[fmt]}, server latency {args.latency} s:")
                rows.append(ratio_row(f"batch wall, voxmagic / peer: {NAMES[fmt]} ({n} clips, "
                                      f"{args.latency * 1000:.0f} ms, concurrency {args.concurrency}; median)",
                                      [w for _, w in runs_a], [w for _, w in runs_b], WALL_TARGET, "s", 1))
                peers.append(median([c / n for c, _ in runs_b]))
                configure(server, latency=0.0)
                rows.extend(split_cores(sides, server, paths, args.repeat, NAMES[fmt]))
        finally:
            sides.close()
    floor = median([encode_floor(50) for _ in range(3)])
    rows.append(Row("floor: encoding one 1-s clip as MP3 (libmp3lame, 16 kHz mono, 32 kbit/s) alone, ÷ the peer's "
                    "whole CPU per clip (median over formats)", "—",
                    f"{floor / median(peers):.2f}× ({floor * 1e3:.2f} / {median(peers) * 1e3:.2f} ms)", None))
    return rows


if __name__ == "__main__":
    report(main())
