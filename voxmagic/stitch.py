"""A source's rows: the rows of its chunks stitched into one, regrouped per source, or summed for
a progress report. Plain dicts in, plain dicts out (the table's columns; see voxmagic.frames)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .timeline import has_speakers, overlaps, text_of


def stitch(source: str, rows: list[dict]) -> dict:
    """One row for a source from its chunks' rows, in order; a failed chunk keeps the others' text."""
    ok = [r for r in rows if not r.get("error")]
    where = [f"chunk {i + 1}/{len(rows)}{_span(r)}: " for i, r in enumerate(rows)]
    errors = [(w if len(rows) > 1 else "") + r["error"] for w, r in zip(where, rows, strict=True) if r.get("error")]

    def total(key: str, combine: Callable = sum) -> Any:
        values = [r.get(key) for r in ok if r.get(key) is not None]
        return combine(values) if values else None

    overlapping = _overlapping(rows)
    return {
        "source": source,
        "duration_s": _duration(rows),
        "text": (
            text_of(rows)
            if overlapping or has_speakers(ok)
            else " ".join(r["text"].strip() for r in ok if r.get("text"))
        )
        if ok
        else None,
        "prompt_tokens": total("prompt_tokens"),
        "completion_tokens": total("completion_tokens"),
        "cost_usd": total("cost_usd"),
        "trimmed_s": total("trimmed_s"),
        "latency_s": total("latency_s", max),  # chunks run together
        "error": "; ".join(errors) or None,
        "attempts": total("attempts"),
        "finish_reason": ok[-1].get("finish_reason") if ok else None,
        "audio_format": rows[0].get("audio_format"),
        "audio_sha256": ",".join(r["audio_sha256"] for r in rows if r.get("audio_sha256")),
        "generation_id": ",".join(r["generation_id"] for r in ok if r.get("generation_id")) or None,
        "cached": bool(ok) and all(r.get("cached") for r in ok),
        "chunks": len(rows),
        **({k: rows[0].get(k) for k in ("parsed", "parse_error")} if len(rows) == 1 else {}),
        **({"tool_calls": calls} if (calls := [c for r in ok for c in r.get("tool_calls") or ()]) else {}),
    }


def _span(row: dict) -> str:
    """`` (59-89 s)``; nothing for a row of no audio (what failed before it could be cut: ``8-8 s``)."""
    a, b = row.get("start_s", 0.0), row.get("end_s", 0.0)
    return f" ({a:.0f}-{b:.0f} s)" if b - a > 0.5 else ""


def per_source(rows: list[dict]) -> list[dict]:
    """The rows of ``segments=True`` back to one row per source, in order. A source's rows start
    at chunk 0 (a source that failed before it was cut has one row and no chunk), so the same
    file given twice stays two rows."""
    groups: list[list[dict]] = []
    for row in rows:
        if row.get("chunk", 0) == 0:
            groups.append([])
        groups[-1].append(row)
    return [stitch(group[0]["source"], group) if "start_s" in group[0] else group[0] for group in groups]


def _overlapping(rows: list[dict]) -> bool:
    return any(overlaps(a, b) for a, b in zip(rows, rows[1:], strict=False))


def _duration(rows: list[dict]) -> float:
    """The audio a source's chunks cover: overlapping chunks (a transcript's shared context) count
    the overlap once."""
    if _overlapping(rows) and "end_s" in rows[-1] and "start_s" in rows[0]:
        return float(rows[-1]["end_s"] - rows[0]["start_s"])
    return float(sum(r.get("duration_s") or 0 for r in rows))


def summary(rows: list[dict]) -> dict:
    """One source's rows (chunks, when ``segments``) summed up for progress reports."""
    errors = [r["error"] for r in rows if r.get("error")]
    duration = _duration(rows)
    return {
        "source": rows[0]["source"],
        "duration_s": duration,
        # how much of the source they account for, what its header's length is compared with: with
        # --trim-silence a chunk's duration_s counts only the speech sent, trimmed_s the pauses cut
        "reach_s": duration + float(sum(r.get("trimmed_s") or 0.0 for r in rows)),
        # a server that does not say (vLLM): unknown, not $0
        "cost_usd": None
        if any(r.get("cost_usd") is None and not r.get("error") for r in rows)
        else sum(r.get("cost_usd") or 0 for r in rows),
        "error": "; ".join(errors) or None,
        "cached": all(r.get("cached") for r in rows),
        "cut": sum(r.get("finish_reason") == "length" and not r.get("error") for r in rows),
    }
