"""A 2-hour MP3 through ``voxmagic.transcribe``: when the first request reaches the server, and the
whole call, pipelined (today) beside prepare-everything-then-send on one core (before).

    python benchmarks/long_audio.py [--repeat 1]

Input: the 2-hour 44.1 kHz stereo 128 kbit/s MP3 of ``memory.py`` (cached). The local server runs
in its own process (0.5 s to the first token, 200 tokens/s) and logs when each request arrived.

- pipelined: ``voxmagic.transcribe(path, cache=False)`` as a user calls it: each 25-minute chunk is
  sent as soon as it is encoded, and chunks are encoded in voxmagic's helper process while the next
  one is decoded (``voxmagic.preparing``);
- threads: the same, with each chunk encoded on a thread instead of the helper process (LAME,
  through lameenc, runs without the GIL);
- before: the same call as it ran when issue 16 was filed: every chunk prepared first, one after
  another on one core (the helper turned off, and a ``max_cost`` so that the batch is prepared
  whole and estimated before anything is sent), MP3 by PyAV's libmp3lame, then all chunks sent.

The two run alternately (``repeat`` rounds), so both see the machine's load of the same minutes;
medians are reported. Targets (issue 16): first request ≤ 15 s; whole call ≤ 0.6 × before.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager, nullcontext

from _common import Row, local_server, median, report, runs, speech_mp3, temp_history

FIRST_TARGET_S, WHOLE_TARGET = 15.0, 0.6


@contextmanager
def variant(name: str):
    """``before``: the flow (and encoder) of when issue 16 was filed — no helper process, the whole
    batch prepared before anything is sent, MP3 by PyAV's libmp3lame (lameenc hidden). ``threads``:
    today's flow with the encoding on a thread instead of the helper process (LAME runs without
    the GIL). ``pipelined``: today's flow as a user gets it."""
    import sys

    from voxmagic import preparing

    original, extra = preparing._worker, {}
    hidden = sys.modules.get("lameenc", None)
    if name in ("before", "threads"):
        preparing._worker = lambda: None
    if name == "before":
        sys.modules["lameenc"] = None  # type: ignore[assignment]  # `import lameenc` fails: PyAV encodes
        extra = {"max_cost": 1000.0}
    try:
        yield extra
    finally:
        preparing._worker = original
        if name == "before":
            if hidden is None:
                del sys.modules["lameenc"]
            else:
                sys.modules["lameenc"] = hidden


def one(path: str, server, name: str) -> tuple[float, float, int]:
    """(seconds to the first request's arrival, seconds for the whole call, chunks)."""
    import voxmagic

    server.reset()
    with variant(name) as extra:
        started = time.time()
        df = voxmagic.transcribe(path, base_url=server.base_url, api_key="bench", cache=False, **extra)
        wall = time.time() - started
    row = df.iloc[0]
    if row["error"] is not None:
        raise SystemExit(f"the call failed: {row['error']}")
    first = min(r["received_at"] for r in server.requests()) - started
    return first, wall, int(row["chunks"])


def main() -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    path = str(speech_mp3(120, "two_hours.mp3"))
    results: dict[str, list[tuple[float, float, int]]] = {"pipelined": [], "threads": [], "before": []}
    with temp_history(), local_server(latency=0.5, token_rate=200) as server:
        for _ in range(args.repeat):
            for name in results:
                results[name].append(one(path, server, name))
                first, wall, chunks = results[name][-1]
                print(f"{name}: first request after {first:.1f} s, whole call {wall:.1f} s, {chunks} chunks")
    first = {name: median([r[0] for r in rs]) for name, rs in results.items()}
    wall = {name: median([r[1] for r in rs]) for name, rs in results.items()}
    ratio = wall["pipelined"] / wall["before"]
    walls = runs([r[1] for r in results["pipelined"]], "{:.1f}")
    return [
        Row(f"long_audio: 2-hour MP3, first request reaches the server (median of {args.repeat})",
            f"≤ {FIRST_TARGET_S:g} s", f"{first['pipelined']:.1f} s (before: {first['before']:.1f} s)",
            first["pipelined"] <= FIRST_TARGET_S),
        Row(f"long_audio: 2-hour MP3, whole call pipelined / before (median of {args.repeat})",
            f"≤ {WHOLE_TARGET:g}", f"{ratio:.2f} ({wall['pipelined']:.1f} s [{walls}] / {wall['before']:.1f} s)",
            ratio <= WHOLE_TARGET),
        Row(f"long_audio: same, encoding on a thread instead of the helper process / helper process "
            f"(median of {args.repeat})", "comparison",
            f"{wall['threads'] / wall['pipelined']:.2f} ({wall['threads']:.1f} s / {wall['pipelined']:.1f} s; first "
            f"request {first['threads']:.1f} s)", None),
    ]


if __name__ == "__main__":
    report(main())
