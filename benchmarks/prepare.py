"""Audio preparation speed, in multiples of real time (audio seconds / seconds taken): the wall
time a user waits, and the CPU time of every thread, each beside FFmpeg's command line.

    python benchmarks/prepare.py [--repeat 5]

The peer is FFmpeg's command line doing the same job (``-threads 1 -ac 1 -ar 16000 -b:a 32k
-compression_level 7``) when ``ffmpeg`` is installed: its wall time around the subprocess and its
CPU time from the children's rusage. (FFmpeg 5's CLI decodes, filters and encodes in one thread;
neither its MP3 decoder nor libmp3lame uses codec threads.)

Input: a 10-minute 44.1 kHz stereo 128 kbit/s MP3 (cached; a music-rate file, not a compact voice
memo, which voxmagic would upload as it is). Timed with ``time.perf_counter()`` (wall) and
``time.process_time()`` (every thread of this process: LAME encodes on a thread of its own while
the calling thread decodes, see ``voxmagic.lame`` and ``voxmagic.segment.pieces``). On this shared
machine the same call varies by up to 40% from minute to minute, hence the best and the median of
``repeat``, all measurements interleaved round by round:

- total: ``voxmagic.segment.prepare_chunks(voxmagic.as_source(path), "mp3", 1500)``, what a
  transcription does (check whether the file can go as it is, decode, downmix, resample to
  16 kHz mono, encode MP3 at 32 kbit/s);
- the parts, one after the other: decode + downmix + resample (``as_source(path).decode()``; an
  MP3 of 1.5 to 30 minutes is decoded on two threads, ``voxmagic.mp3_threads``) and encode
  (``voxmagic.audio.encode(pcm, fmt)``) for mp3, and for flac and ogg (Opus) for comparison.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable

from _common import Row, report, speech_mp3, temp_history

TARGET = 300.0


def ffmpeg(path: object) -> tuple[float, float]:
    """(wall, CPU) seconds of the peer: FFmpeg's CLI doing the same job — decode, 16 kHz mono,
    libmp3lame at 32 kbit/s with ``-compression_level 7`` (voxmagic's setting)."""
    import resource

    before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-threads", "1", "-i", str(path), "-ac", "1", "-ar", "16000",
                    "-b:a", "32k", "-compression_level", "7", "-f", "mp3", "-y", "/dev/null"], check=True)
    wall, after = time.perf_counter() - wall, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def timed(jobs: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[tuple[float, float, object]]]:
    """Per job, ``repeat`` (wall, process CPU, result) triples. Jobs run round-robin, so each sees
    the machine's load of the same moments."""
    runs: dict[str, list[tuple[float, float, object]]] = {name: [] for name in jobs}
    for _ in range(repeat):
        for name, fn in jobs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            result = fn()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu, result))
    return runs


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = speech_mp3(10)
    import voxmagic
    from voxmagic.audio import encode
    from voxmagic.segment import prepare_chunks

    source = voxmagic.as_source(str(path))
    pcm = source.decode()
    seconds = pcm.duration_s
    jobs: dict[str, Callable[[], object]] = {
        "total": lambda: prepare_chunks(source, "mp3", 1500), "decode": source.decode,
        **{fmt: (lambda fmt=fmt: encode(pcm, fmt)) for fmt in ("mp3", "flac", "ogg")},
    }  # fmt: skip
    if shutil.which("ffmpeg"):
        jobs["ffmpeg"] = lambda: ffmpeg(path)
    runs = timed(jobs, args.repeat)
    for _, _, chunks in runs["total"]:
        assert len(chunks) == 1 and abs(chunks[0].duration_s - seconds) < 1e-6, chunks  # type: ignore[arg-type]
    if "ffmpeg" in runs:  # its own figures, not those of the Python around it
        runs["ffmpeg"] = [(*result, None) for _, _, result in runs["ffmpeg"]]  # type: ignore[misc]

    def x(name: str, which: int, pick: Callable = min) -> float:
        """Multiples of real time: the best (or median) wall (0) or CPU (1) time of a job."""
        return seconds / pick(run[which] for run in runs[name])

    def both(name: str, which: int) -> str:
        return f"{x(name, which):.0f}× (median {x(name, which, statistics.median):.0f}×)"

    peer = "ffmpeg" in runs
    print(f"{path.name}: {seconds:.1f} s of 44.1 kHz stereo 128 kbit/s MP3; best and median of {args.repeat}")
    print(f"  prepare_chunks(..., 'mp3')   wall {both('total', 0):>20}   CPU, every thread {both('total', 1)}")
    if peer:
        print(f"  peer: ffmpeg CLI, one thread  wall {both('ffmpeg', 0):>20}   CPU {both('ffmpeg', 1)}")
    print(f"  decode+downmix+resample      CPU {x('decode', 1):5.0f}×")
    for fmt in ("mp3", "flac", "ogg"):
        both_cpu = 1 / (1 / x("decode", 1) + 1 / x(fmt, 1))
        print(f"  encode {fmt:<5}                CPU {x(fmt, 1):5.0f}×   decode, then encode: {both_cpu:4.0f}×")
    wall = x("total", 0)
    ok = wall >= TARGET and (not peer or wall >= x("ffmpeg", 0))
    beside = lambda which: f"; ffmpeg CLI {both('ffmpeg', which)}" if peer else "; no ffmpeg CLI to compare"  # noqa: E731
    rows = [
        Row(f"prepare: 10-min 44.1 kHz stereo MP3 → 16 kHz mono MP3, wall: what a user waits (best of {args.repeat})",
            f"≥ {TARGET:.0f}× and ≥ FFmpeg's CLI", f"{both('total', 0)}{beside(0)}", ok),
        Row("prepare: same, CPU of every thread (decoding on two threads, LAME on a third)", "comparison",
            f"{both('total', 1)}{beside(1)} (decode+resample {x('decode', 1):.0f}×, "
            f"MP3 encode {x('mp3', 1):.0f}×)", None),
    ]  # fmt: skip
    for fmt in ("flac", "ogg"):
        rows.append(Row(f"prepare: same, {fmt} encoding instead (decode, then encode; CPU)", "comparison",
                        f"{1 / (1 / x('decode', 1) + 1 / x(fmt, 1)):.0f}× (encode alone {x(fmt, 1):.0f}×)", None))
    return rows


if __name__ == "__main__":
    with temp_history():  # nothing here sends, but nothing may touch the user's history either
        report(main())
