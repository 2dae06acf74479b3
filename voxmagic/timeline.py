"""A transcript on its source's timeline: one row per segment — ``source, start, end, speaker,
text`` — from the chunk rows a batch returns (``batch_run.run(..., segments=True)``).

A segment is a provider's timed piece (Mistral's and vLLM's transcriptions endpoints) or, where
there is none (chat), the chunk itself. Times are moved onto the source's own timeline (a moment's
too). A chunk's cost is shared among its segments by duration, so the costs still add up.

Speakers: a provider numbers them per request, in order of appearance, so the second chunk of a
long file may call ``speaker_1`` whoever speaks first in it. Diarized chunks therefore overlap
(:data:`voxmagic.batch.DIARIZE_OVERLAP_S`): each label of a chunk is tied to the label, already
settled, of the previous chunk's segment it overlaps most in time within the overlap; a voice
heard only after the overlap gets the next free number. Each side keeps the segments that start
on its side of the overlap's middle, so nothing is said twice.
"""

from __future__ import annotations

from .moments import TOUCH_S, base_label, on_one_stretch, on_source
from .subtitles import voice

# what a segment row carries over from its chunk's row
CARRIED = ("cached", "finish_reason", "audio_format", "generation_id", "audio_sha256", "parsed", "parse_error",
           "tool_calls")  # fmt: skip


def segment_rows(rows: list[dict]) -> list[dict]:
    """Chunk rows (in batch order; a source's rows start at chunk 0) as segment rows."""
    out: list[dict] = []
    for group in _by_source(rows):
        out += _source_segments(group)
    return out


def _by_source(rows: list[dict]) -> list[list[dict]]:
    groups: list[list[dict]] = []
    for row in rows:
        if row.get("chunk", 0) == 0 or not groups:
            groups.append([])
        groups[-1].append(row)
    return groups


def _source_segments(chunks: list[dict]) -> list[dict]:
    kept: list[dict] = []
    labels: dict[str, str] = {}  # a chunk's own label -> the source's label
    previous: dict | None = None
    for chunk in chunks:
        pieces = _pieces(chunk)
        if previous is not None and pieces and _overlapping(previous, chunk):
            middle = (chunk["start_s"] + previous["end_s"]) / 2
            labels = _tie(pieces, kept, previous["end_s"])
            kept = [s for s in kept if s["start"] < middle or s["chunk"] != previous.get("chunk")]
            before = [s for s in kept if s["chunk"] == previous.get("chunk")]
            pieces = [p for p in pieces if p["start"] >= middle and not _said_before(p, before)]
        else:  # back to back, or an untimed side: a chunk without segments is one piece, kept whole
            labels = _tie(pieces, [], 0.0)
        kept += [dict(p, speaker=labels.get(p["speaker"], p["speaker"])) for p in pieces]
        previous = chunk
    _share_cost(chunks, kept)
    return kept


def _overlapping(previous: dict, chunk: dict) -> bool:
    """Whether the two chunks share time that both have timed segments for. Chunk times are sums
    of floats (84.62 + 28.34 ends at 112.96000000000001 where the next starts at 112.96), so
    touching is not overlapping; and a chunk without segments is one piece of text, which
    trimming at the overlap's middle would drop whole."""
    return _timed(previous) and _timed(chunk) and overlaps(previous, chunk)


def overlaps(previous: dict, chunk: dict) -> bool:
    """Whether ``chunk`` starts before ``previous`` ends, by more than float noise (TOUCH_S)."""
    return bool(chunk.get("start_s", 0.0) < previous.get("end_s", 0.0) - TOUCH_S)


def _said_before(piece: dict, before: list[dict]) -> bool:
    """Most of ``piece`` is inside segments the previous chunk keeps: the two requests cut the
    overlap's speech at different places, and it would be said twice."""
    length = piece["end"] - piece["start"]
    covered = sum(max(0.0, min(piece["end"], s["end"]) - max(piece["start"], s["start"])) for s in before)
    return length > 0 and covered > length / 2


def _timed(chunk: dict) -> bool:
    return bool(chunk.get("segments")) and not chunk.get("error")


def _pieces(chunk: dict) -> list[dict]:
    """A chunk's segments on the source's timeline (the chunk itself when it has none)."""
    start = chunk.get("start_s") or 0.0
    end = chunk.get("end_s", start + (chunk.get("duration_s") or 0.0))
    base = {k: chunk.get(k) for k in CARRIED if k in chunk}
    base.update(source=base_label(str(chunk.get("source"))), chunk=chunk.get("chunk", 0), error=chunk.get("error"))
    found = chunk.get("segments") if not chunk.get("error") else None
    if not found:  # one piece; the stretches it held (silence cut out) time its subtitles on the speech
        held = {"spans": chunk["spans"]} if chunk.get("spans") else {}
        return [dict(base, start=start, end=end, speaker=None, text=chunk.get("text"), **held)]
    spans = chunk.get("spans") or ((start, end),)
    return [dict(base, **_placed(spans, s["start_s"], s["end_s"], bool(chunk.get("joined"))), speaker=s.get("speaker"),
                 text=s.get("text")) for s in found]  # fmt: skip


def _placed(spans: tuple[tuple[float, float], ...], a: float, b: float, joined: bool) -> dict[str, float]:
    """A segment's clip times on the source: across a cut of silence it spans the cut; across the
    join of two moments (audio never sent lies between) it keeps to the moment most of it is in."""
    if joined:
        a, b = on_one_stretch(spans, a, b)
        return {"start": a, "end": b}
    return {"start": on_source(spans, a, after_cut=True), "end": on_source(spans, b)}


def _tie(pieces: list[dict], before: list[dict], overlap_end: float) -> dict[str, str]:
    """This chunk's labels as the source's: by the most shared time with earlier segments within
    the overlap (ending at ``overlap_end``); the rest numbered after every label used so far."""
    shared: dict[str, dict[str, float]] = {}
    for p in pieces:
        if p["speaker"] is None or p["start"] >= overlap_end:
            continue
        for b in before:
            common = min(p["end"], b["end"], overlap_end) - max(p["start"], b["start"])
            if b["speaker"] is not None and common > 0:
                votes = shared.setdefault(p["speaker"], {})
                votes[b["speaker"]] = votes.get(b["speaker"], 0.0) + common
    labels = {own: max(votes, key=votes.__getitem__) for own, votes in shared.items()}
    used = {b["speaker"] for b in before if b["speaker"]} | set(labels.values())
    for p in pieces:
        own = p["speaker"]
        if own is not None and own not in labels:
            labels[own] = own if not before and own not in used else _next_label(used)
            used.add(labels[own])
    return labels


def _next_label(used: set[str]) -> str:
    n = 1
    while f"speaker_{n}" in used:
        n += 1
    return f"speaker_{n}"


def _share_cost(chunks: list[dict], kept: list[dict]) -> None:
    """Each chunk's cost over its kept segments, in proportion to their duration; a chunk none of
    whose segments was kept (all said by the chunk before it) adds its cost to the last segment
    kept before its end, so that the costs still add up."""
    orphans = []
    for chunk in chunks:
        mine = [s for s in kept if s["chunk"] == chunk.get("chunk", 0)]
        cost, total = chunk.get("cost_usd"), sum(max(0.0, s["end"] - s["start"]) for s in mine)
        if not mine and cost:
            orphans.append(chunk)
        for s in mine:
            share = (s["end"] - s["start"]) / total if total > 0 else 1 / len(mine)
            s["cost_usd"] = None if cost is None else cost * share
    for chunk in orphans:
        end = chunk.get("end_s", float("inf"))
        home = [s for s in kept if s["start"] < end] or kept[:1]
        if home:
            home[-1]["cost_usd"] = (home[-1].get("cost_usd") or 0.0) + chunk["cost_usd"]


def text_of(rows: list[dict]) -> str | None:
    """A source's whole text from its chunk rows, overlaps said once; with speakers, a line per
    turn: ``Speaker 1: …`` (consecutive segments of one speaker joined)."""
    numbered = [dict(r, chunk=i) for i, r in enumerate(rows)]
    said = [s for s in _source_segments(numbered) if s.get("text") and not s.get("error")]
    if not any(s["speaker"] for s in said):
        return " ".join(str(s["text"]).strip() for s in said) or None
    turns: list[tuple[str | None, list[str]]] = []
    for s in said:
        if not turns or turns[-1][0] != s["speaker"]:
            turns.append((s["speaker"], []))
        turns[-1][1].append(str(s["text"]).strip())
    return "\n".join(f"{voice(who) or 'Unknown'}: {' '.join(words)}" for who, words in turns)


def has_speakers(rows: list[dict]) -> bool:
    return any(s.get("speaker") for r in rows if not r.get("error") for s in r.get("segments") or ())
