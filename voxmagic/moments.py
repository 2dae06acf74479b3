"""Moments of a recording, as people write them: ``12:30-14:00``, ``1:02:03-1:05:00``, ``90-120``,
``12:30-`` (to the end), ``-1:00`` (from the start); and back, ``m:ss``.

A moment sends only that slice of the audio — and is billed only for it. Plain parsing, no audio:
:mod:`voxmagic.audio` applies the spans.
"""

from __future__ import annotations

import math
import re

from .errors import ConfigError

Span = tuple[float, float | None]  # (start, end) in seconds on the source's timeline; None: to the end

_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d+)?)$")
GAP_S = 0.3  # silence put between the moments of one source sent as one clip


def parse_time(text: str) -> float:
    """Seconds from ``90``, ``90.5``, ``12:30`` (m:ss) or ``1:02:03`` (h:mm:ss)."""
    text = text.strip()
    match = _CLOCK.match(text)
    try:
        if match:
            hours, minutes, seconds = match.groups()
            if float(seconds) >= 60 or (hours and int(minutes) >= 60):
                raise ValueError(text)
            value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
        else:
            value = float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a time: write seconds (90), m:ss (12:30) or h:mm:ss (1:02:03)") from None
    if not math.isfinite(value):  # float() reads "nan" and "inf"
        raise ConfigError(f"{text!r} is not a time: write seconds (90), m:ss (12:30) or h:mm:ss (1:02:03)")
    if value < 0:
        raise ConfigError(f"{text!r} is not a time: it must be 0 or more")
    return value


def parse_span(text: str) -> Span:
    """``start-end`` with either end optional: ``12:30-14:00``, ``12:30-``, ``-1:00``."""
    start, dash, end = text.strip().partition("-")
    if not dash:
        raise ConfigError(f"--at {text}: write a moment as START-END, e.g. 12:30-14:00 (or 12:30- to the end)")
    return check_span(parse_time(start) if start.strip() else 0.0, parse_time(end) if end.strip() else None)


def check_span(start: float | None, end: float | None) -> Span:
    """A moment given as numbers (``start=``/``end=``): 0 ≤ start < end."""
    begin = 0.0 if start is None else float(start)
    for name, value in (("start", begin), ("end", end)):
        if value is not None and value < 0:
            raise ConfigError(f"{name}={value:g} is before the audio begins: times count seconds from its start")
    if end is not None and end <= begin:
        raise ConfigError(
            f"the moment {mmss(begin)}–{mmss(end)} is empty or reversed: the end must come after the start"
        )
    return begin, None if end is None else float(end)


def mmss(seconds: float | None, digits: int = 1) -> str:
    """``12:30``, ``1:02:03``, ``0:07.5`` for a fraction (to ``digits`` decimals: a moment's label
    keeps ``0:07.25`` as typed); ``end`` for None."""
    if seconds is None:
        return "end"
    scale = 10**digits
    whole, part = divmod(round(seconds * scale), scale)
    tail = f"{whole % 60:02d}" + (f".{part:0{digits}d}".rstrip("0") if part else "")
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{tail}" if whole >= 3600 else f"{whole // 60}:{tail}"


_DESCRIBED = re.compile(r" \[(\d+ moments|[\d:.]+–(?:[\d:.]+|end))\]$")


def base_label(label: str) -> str:
    """A source's name without the moments :func:`describe` added to it."""
    return _DESCRIBED.sub("", label)


def describe(spans: tuple[Span, ...]) -> str:
    """``[12:30–14:00]``, or ``[3 moments]`` for several."""
    if len(spans) == 1:
        start, end = spans[0]
        return f"[{mmss(start, 3)}–{mmss(end, 3)}]"
    return f"[{len(spans)} moments]"


TOUCH_S = 1e-3  # times closer than this are the same time (sums of floats), chunks back to back


def on_source(spans: tuple[tuple[float, float], ...], t: float, *, after_cut: bool = False) -> float:
    """Time ``t`` of a clip made of these stretches of its source (end to end) on the source's
    timeline. A time at a cut (where silence was taken out) is where the silence began, or with
    ``after_cut`` (a segment's start) where speech resumed."""
    clip = 0.0
    for a, b in spans:
        end = clip + (b - a)  # a sum of floats: a time at it may land a hair either side (TOUCH_S)
        if t < end - TOUCH_S or (t <= end + TOUCH_S and not after_cut):
            return a + min(b - a, max(0.0, t - clip))
        clip = end
    return spans[-1][1] + (t - clip)  # past the end (a provider's rounding): the same distance on


def sub_spans(spans: tuple[tuple[float, float], ...], a: float, b: float) -> tuple[tuple[float, float], ...]:
    """The stretches of the source that clip time [a, b) holds (empty for a clip without cuts)."""
    out, clip = [], 0.0
    for x, y in spans:
        lo, hi = max(a, clip), min(b, clip + (y - x))
        if hi > lo:
            out.append((x + lo - clip, x + hi - clip))
        clip += y - x
    return tuple(out)


def on_one_stretch(spans: tuple[tuple[float, float], ...], start: float, end: float) -> tuple[float, float]:
    """Clip times ``[start, end)`` as the file's, within one stretch: a range the join of two
    stretches falls in keeps its longer side (a subtitle cue never shows over silence cut out)."""
    joins, at = [], 0.0
    for a, b in spans[:-1]:
        at += b - a
        joins.append(at)
    bounds = [start, *(j for j in joins if start < j < end), end]
    lo, hi = max(zip(bounds, bounds[1:], strict=False), key=lambda p: p[1] - p[0])
    return on_source(spans, lo, after_cut=True), on_source(spans, hi)


def no_moments_yet(items: list) -> None:
    """Refuse one moment of each (``--at``, ``start=``/``end=``) for sources that already name
    their moments (a table of segments): one would silently replace the other."""
    if any(getattr(item, "spans", None) for item in items):  # an AudioSource of moments
        raise ConfigError(
            "--at (start=/end=) picks one moment of each file, and a table of segments already names its "
            "moments: filter the table instead (seg[seg.start < 60]), or give the file itself"
        )
