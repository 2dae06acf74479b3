"""voxmagic against a hand-written client: wall(voxmagic) / wall(openai.AsyncOpenAI + Semaphore).

    python benchmarks/baseline.py [--clips 200] [--latency 0.3] [--concurrency 16] [--repeat 5]

Both send the same 200 requests to the same local server (its own process, ``latency`` seconds
per answer), 16 at a time:

- A, voxmagic: ``voxmagic.transcribe(paths, concurrency=16, cache=False)`` — timed from the file
  paths, so it reads, fingerprints and checks each clip, and writes its history.
- B, baseline: ``openai.AsyncOpenAI(base_url=..., api_key=...)`` and ``asyncio.Semaphore(16)``
  around ``chat.completions.create`` — given the base64 audio ready-made (not timed).

"Same requests": the model, ``voxmagic.transcription_prompt()``, ``temperature=0``, the
``max_tokens`` voxmagic derives from each clip's duration (``transcript_token_bound``), the bytes
``voxmagic.audio.prepare(path)`` uploads, non-streaming. Before timing, one untimed run of each
is compared in the server's request log (bodies with audio replaced by size, plus the audio's
sha256). Then A B A B ... (``repeat`` pairs); the figure is median(A) / median(B).
"""

from __future__ import annotations

import asyncio
import math
import time

from _common import (
    Row,
    batch_arguments,
    local_server,
    median,
    memo_clips,
    report,
    runs,
    temp_history,
)

TARGET = 1.00


def baseline_requests(paths: list[str]) -> list[dict]:
    """The keyword arguments of ``chat.completions.create`` for each clip, as voxmagic would send."""
    import voxmagic
    import voxmagic.audio
    from voxmagic.cost import transcript_token_bound
    from voxmagic.providers import DEFAULT_MODEL

    prompt = voxmagic.transcription_prompt()
    out = []
    for path in paths:
        clip = voxmagic.audio.prepare(path)
        content = [{"type": "text", "text": prompt},
                   {"type": "input_audio", "input_audio": {"data": clip.base64(), "format": clip.format}}]
        out.append({"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": content}],
                    "temperature": 0.0, "max_tokens": transcript_token_bound(clip.duration_s), "stream": False})
    return out


async def run_baseline(client, requests: list[dict], concurrency: int) -> list:
    gate = asyncio.Semaphore(concurrency)

    async def one(kwargs: dict):
        async with gate:
            return await client.chat.completions.create(**kwargs)

    return await asyncio.gather(*(one(r) for r in requests))


def logged(server) -> dict[str, dict]:
    """The server's log keyed by audio sha256: the body (audio elided) and whether it succeeded."""
    out = {}
    for rec in server.requests():
        assert rec["status"] == 200 and rec["completed"], rec
        out[rec["audio"][0]["sha256"]] = rec["body"]
    return out


def main() -> list[Row]:
    args = batch_arguments(__doc__, repeat=5)
    paths = memo_clips(args.clips)
    with temp_history(), local_server(latency=args.latency) as server:
        import openai

        import voxmagic

        requests = baseline_requests(paths)
        loop = asyncio.new_event_loop()
        client = openai.AsyncOpenAI(base_url=server.base_url, api_key="bench")
        options = {"base_url": server.base_url, "api_key": "bench", "concurrency": args.concurrency, "cache": False}

        def a() -> float:
            started = time.perf_counter()
            df = voxmagic.transcribe(paths, **options)
            wall = time.perf_counter() - started
            assert df["error"].isna().all() and not df["cached"].any(), df[["source", "error", "cached"]]
            return wall

        def b() -> float:
            started = time.perf_counter()
            answers = loop.run_until_complete(run_baseline(client, requests, args.concurrency))
            wall = time.perf_counter() - started
            assert len(answers) == len(requests) and all(r.choices[0].message.content for r in answers)
            return wall

        try:
            server.reset()
            a()  # warm-up, and the requests voxmagic sends
            sent_a = logged(server)
            server.reset()
            b()
            sent_b = logged(server)
            server.reset()
            same = sent_a == sent_b and len(sent_a) == args.clips
            print(f"the server got {len(sent_a)} and {len(sent_b)} requests; identical bodies and audio "
                  f"(by sha256): {same}")
            if not same:
                digest = next(iter(sent_a))
                print(f"voxmagic: {sent_a[digest]}\nbaseline: {sent_b.get(digest)}")
            walls_a, walls_b = [], []
            for _ in range(args.repeat):
                walls_a.append(a())
                walls_b.append(b())
        finally:
            loop.run_until_complete(client.close())
            loop.close()
    ratio = median(walls_a) / median(walls_b)
    print(f"voxmagic {runs(walls_a, '{:.2f}')} s, baseline {runs(walls_b, '{:.2f}')} s (A B A B ...)")
    pairs = [x / y for x, y in zip(walls_a, walls_b)]
    print(f"pairwise ratios {runs(pairs)}; ratio of medians {ratio:.3f}")
    ideal = math.ceil(args.clips / args.concurrency) * args.latency
    print(f"over the ideal {ideal:.2f} s: voxmagic +{median(walls_a) - ideal:.3f} s, "
          f"baseline +{median(walls_b) - ideal:.3f} s")
    measured = (f"{ratio:.3f} ({median(walls_a):.2f} s / {median(walls_b):.2f} s; "
                f"pairs {min(pairs):.3f}–{max(pairs):.3f})")
    return [Row(f"baseline: voxmagic / openai+Semaphore (same {args.clips} requests; ratio of medians, "
                f"A B ×{args.repeat})", f"≤ {TARGET:.2f}" + ("" if same else " (requests differ!)"), measured,
                ratio <= TARGET and same)]


if __name__ == "__main__":
    report(main())
