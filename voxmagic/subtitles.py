"""Subtitles from timed transcripts: readable cues, written as SRT or WebVTT.

A transcript comes back in timed pieces — chunks of audio cut at pauses (``transcribe(...,
segments=True)``) or a provider's segments — that may hold several sentences each. On screen a
cue should be short (two lines of 42 characters) and last long enough to read, so a long piece
is split at sentence ends, then commas, then word boundaries, and its time span is shared among
the cues in proportion to their characters. Nothing here needs more than the standard library.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .moments import on_one_stretch, on_source
from .subtitle_files import save

# Without timed segments from the provider, subtitles come from chunks this long (cut at pauses):
# one request each, and audio is billed in 30 s windows anyway, so shorter would cost more.
CUE_CHUNK_S = 30.0
MAX_CHARS = 84  # two lines of 42: the usual limit for a subtitle (BBC, Netflix guidelines)
LINE_CHARS = 42
MIN_CUE_S = 0.5  # shorter than this and nobody can read the cue

# Where a long text may be cut, best first: after a sentence end (also before a closing quote or
# bracket), after a clause mark, at any space. Splitting consumes the whitespace only.
_BREAKS = (
    re.compile(r"(?:(?<=[.!?…।])|(?<=[.!?…।][\"'”’»)\]]))\s+"),
    re.compile(r"(?<=[,;:—–])\s+"),
    re.compile(r"\s+"),
)


@dataclass(frozen=True)
class Cue:
    """One subtitle: seconds from the start of the source, what is said, and who says it when
    the transcript labelled speakers (``speaker_2``)."""

    start_s: float
    end_s: float
    text: str
    speaker: str | None = None

    @property
    def voice(self) -> str | None:
        return voice(self.speaker)


def voice(speaker: str | None) -> str | None:
    """A speaker label as a person reads it: ``speaker_2`` → ``Speaker 2``."""
    if not speaker:
        return None
    head, _, number = speaker.rpartition("_")
    return f"{head.capitalize()} {number}" if head and number.isdigit() else speaker


def split_text(text: str, max_chars: int = MAX_CHARS, line_chars: int = LINE_CHARS) -> list[str]:
    """``text`` as cue texts of at most ``max_chars`` that wrap into two lines of ``line_chars``.

    Whitespace is collapsed, so the pieces joined with spaces give back the text. Cuts go at
    sentence ends first, then clause marks, then spaces; neighbouring pieces are packed into as
    few cues as possible, of even length. A single word too long for a cue stays whole.
    """

    def fits(piece: str) -> bool:  # short enough, and a space where two lines can part
        n = len(piece)
        return n <= max_chars and (n <= line_chars or piece.find(" ", n - line_chars - 1, line_chars + 1) >= 0)

    def split(piece: str, level: int) -> list[str]:
        if fits(piece) or level == len(_BREAKS):
            return [piece]
        parts = [p for p in _BREAKS[level].split(piece) if p]
        if len(parts) == 1:
            return split(piece, level + 1)
        return [cue for group in _pack(parts, fits, max_chars) for cue in split(group, level + 1)]

    text = " ".join(str(text).split())
    return split(text, 0) if text else []


def _pack(parts: list[str], fits: Any, max_chars: int) -> list[str]:
    """Neighbouring parts joined into the fewest groups that fit and, among those, the most even
    (least sum of squared lengths), so that a long sentence does not end in a 5-letter cue.
    A part that does not fit alone is a group of its own, to be cut further."""
    # best[i]: (groups, cost, where the last group starts) for the first i parts
    best: list[tuple[int, int, int]] = [(0, 0, 0)]
    for i in range(1, len(parts) + 1):
        choice, group = None, parts[i - 1]
        for j in range(i - 1, -1, -1):
            if j < i - 1:
                group = parts[j] + " " + group
                if len(group) > max_chars:
                    break
            if j == i - 1 or fits(group):
                candidate = (best[j][0] + 1, best[j][1] + len(group) ** 2, j)
                if choice is None or candidate[:2] < choice[:2]:
                    choice = candidate
        assert choice is not None  # j = i - 1 is always a candidate
        best.append(choice)
    groups, i = [], len(parts)
    while i:
        j = best[i][2]
        groups.append(" ".join(parts[j:i]))
        i = j
    return groups[::-1]


def _lines(text: str, width: int = LINE_CHARS) -> list[str]:
    """A cue's text as lines of at most ``width``: two balanced lines when they fit (easier to
    read than a full line over a short one), else greedy wrapping; a longer word stays whole."""
    text = " ".join(text.split())
    if len(text) <= width:
        return [text] if text else []
    n = len(text)
    parts = [i for i, ch in enumerate(text) if ch == " " and n - width - 1 <= i <= width]
    if parts:
        cut = min(parts, key=lambda i: max(i, n - i - 1))
        return [text[:cut], text[cut + 1 :]]
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


def _durations(weights: list[int], span: float, minimum: float = MIN_CUE_S) -> list[float]:
    """``span`` shared in proportion to ``weights``, with at least ``minimum`` each when the span
    is long enough for all: those that would be shorter get the minimum, the others share the rest."""
    total = sum(weights) or 1
    if span <= minimum * len(weights):
        return [span * w / total for w in weights]
    short: set[int] = set()
    while True:
        free = span - minimum * len(short)
        rest = sum(w for i, w in enumerate(weights) if i not in short) or 1
        out = [minimum if i in short else free * w / rest for i, w in enumerate(weights)]
        newly = {i for i, d in enumerate(out) if i not in short and d < minimum}
        if not newly:
            return out
        short |= newly


def _timed(
    text: Any, start_s: float, end_s: float, max_chars: int, line_chars: int, speaker: str | None = None
) -> list[Cue]:
    """Cues for one timed piece of text, tiling its span exactly, in order."""
    pieces = split_text(text, max_chars, line_chars)
    if not pieces:
        return []
    span = max(0.0, end_s - start_s)
    cues, at = [], start_s
    for i, (piece, d) in enumerate(zip(pieces, _durations([len(p) for p in pieces], span), strict=True)):
        end = end_s if i == len(pieces) - 1 else at + d
        cues.append(Cue(at, end, piece, speaker))
        at = end
    return cues


def _segment_cues(
    segments: Iterable[dict], offset_s: float, max_chars: int, line_chars: int, spans: Spans = ()
) -> list[Cue]:
    """Cues for timed pieces given in seconds from ``offset_s`` — or, from a clip with silence cut
    out, on the clip that held these ``spans`` of its file."""
    cues: list[Cue] = []
    for i, seg in enumerate(segments):
        start, end = _time(seg, "start_s", "start"), _time(seg, "end_s", "end")
        if start is None or end is None:
            raise ValueError(f"segment {i} has no start or end time: {seg!r}")
        text = "" if _missing(seg.get("text")) else seg.get("text")
        a, b = (
            (on_source(spans, start, after_cut=True), on_source(spans, end))
            if spans
            else (offset_s + start, offset_s + end)
        )
        cues += _timed(text, a, b, max_chars, line_chars, seg.get("speaker"))
    return cues


Spans = tuple[tuple[float, float], ...]


def _spans(row: dict) -> Spans:
    """The stretches of its file a chunk row's clip held (silence cut out), or none."""
    spans = row.get("spans")
    return tuple((float(a), float(b)) for a, b in spans) if isinstance(spans, (list, tuple)) and spans else ()


def _missing(value: Any) -> bool:
    """None, NaN, pandas' NA/NaT: what an empty DataFrame cell holds."""
    try:
        return value is None or bool(value != value)
    except (TypeError, ValueError):
        return True


def _time(item: dict, *keys: str) -> float | None:
    for key in keys:
        value = item.get(key)
        if value is not None and not _missing(value):
            return float(value)
    return None


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _timeline(cues: Iterable[Cue]) -> list[Cue]:
    """Cues with text, rounded to the millisecond, in time order, each at least 1 ms long and none
    overlapping: where two overlap, the earlier ends when the later starts (players show one cue
    at a time more reliably than two)."""
    timed = sorted(
        ((_ms(c.start_s), _ms(c.end_s), c.text, c.speaker) for c in cues if str(c.text).strip()),
        key=lambda c: (c[0], c[1]),
    )
    out: list[list] = []
    for start, end, text, speaker in timed:
        if out and start < out[-1][1]:
            if start > out[-1][0]:
                out[-1][1] = start
            else:
                start = out[-1][1]
        out.append([start, max(end, start + 1), text, speaker])
    return [Cue(s / 1000, e / 1000, t, who) for s, e, t, who in out]


def _clock(seconds: float, sep: str) -> str:
    ms = _ms(seconds)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


@dataclass(repr=False)
class Transcript:
    """One source's subtitles: cues in time order, as SRT, WebVTT, text or a DataFrame.

    The cues are put in order on creation (rounded to the millisecond, none overlapping), so
    whatever they came from, the files written are valid.
    """

    source: str
    cues: list[Cue] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cues = _timeline(self.cues)

    @classmethod
    def from_segments(
        cls,
        source: str,
        segments: Iterable[dict],
        offset_s: float = 0.0,
        *,
        max_chars: int = MAX_CHARS,
        line_chars: int = LINE_CHARS,
    ) -> Transcript:
        """From timed pieces (``Response.segments``: dicts with ``start_s, end_s, text``, or
        ``start, end, text`` as Mistral's and OpenAI's transcription APIs name them), in seconds
        from ``offset_s``; long pieces become several cues."""
        return cls(str(source), _segment_cues(segments, offset_s, max_chars, line_chars))

    @classmethod
    def from_rows(
        cls, source: str, rows: Iterable[dict], *, max_chars: int = MAX_CHARS, line_chars: int = LINE_CHARS
    ) -> Transcript:
        """From one source's rows of ``transcribe(..., segments=True)`` (dicts with ``start, end,
        speaker, text``; or a batch's chunk rows with ``start_s, end_s`` and the provider's
        ``segments``, relative to the chunk, which are finer and win). Failed rows (``error``) and
        empty ones are skipped; a row without a start starts at 0 and lasts ``duration_s``."""
        cues: list[Cue] = []
        for row in rows:
            error = row.get("error")
            if not _missing(error) and str(error).strip():
                continue
            start = _time(row, "start", "start_s") or 0.0
            segments, spans = row.get("segments"), _spans(row)
            if isinstance(segments, (list, tuple)) and segments:
                cues += _segment_cues(segments, start, max_chars, line_chars, spans)
                continue
            text = row.get("text")
            if _missing(text) or not str(text).strip():
                continue
            end = _time(row, "end", "end_s")
            if end is None:
                duration = _time(row, "duration_s")
                if duration is None:
                    raise ValueError(
                        f"a row of {source} has neither end_s nor duration_s; use transcribe(..., segments=True)"
                    )
                end = start + duration
            speaker = None if _missing(row.get("speaker")) else row.get("speaker")
            if spans:  # timed over the audio sent (silence cut out), then put back on the file's timeline
                clip = _timed(text, 0.0, sum(b - a for a, b in spans), max_chars, line_chars, speaker)
                cues += [Cue(*on_one_stretch(spans, c.start_s, c.end_s), c.text, c.speaker) for c in clip]
            else:
                cues += _timed(text, start, end, max_chars, line_chars, speaker)
        return cls(str(source), cues)

    @property
    def text(self) -> str:
        return " ".join(c.text for c in self.cues)

    @property
    def duration_s(self) -> float:
        return self.cues[-1].end_s if self.cues else 0.0

    def to_srt(self, line_chars: int = LINE_CHARS) -> str:
        """SubRip: numbered cues, ``HH:MM:SS,mmm``. Text is left as is (players read ``<i>`` and
        ``<b>`` as markup), except that ``-->`` — a timing line to parsers — becomes ``→``."""
        return "".join(
            f"{i}\n{_clock(c.start_s, ',')} --> {_clock(c.end_s, ',')}\n"
            + "\n".join(_lines((f"{c.voice}: " if c.voice else "") + c.text.replace("-->", "→"), line_chars))
            + "\n\n"
            for i, c in enumerate(self.cues, 1)
        )

    def to_vtt(self, line_chars: int = LINE_CHARS) -> str:
        """WebVTT: ``HH:MM:SS.mmm`` and text with ``&``, ``<``, ``>`` escaped, so that markup-like
        words stay words (and ``-->`` cannot end a cue); a labelled speaker as a voice span,
        ``<v Speaker 2>``."""

        def escape(line: str) -> str:
            return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

        return "WEBVTT\n\n" + "".join(
            f"{_clock(c.start_s, '.')} --> {_clock(c.end_s, '.')}\n"
            + (f"<v {escape(c.voice)}>" if c.voice else "")
            + "\n".join(escape(line) for line in _lines(c.text, line_chars))
            + "\n\n"
            for c in self.cues
        )

    def save(
        self, directory: str | Path, formats: str | Sequence[str] = ("srt",), *, name: str | None = None
    ) -> list[Path]:
        """Write ``<stem>.srt`` (and/or ``.vtt``) into ``directory`` (created); returns the paths.

        A rerun overwrites the files this source wrote before; another source with the same stem
        (``a/talk.mp3`` after ``b/talk.mp3``) gets ``talk-2.srt``, and files voxmagic did not write
        are never overwritten. Which source owns which name is kept in ``.voxmagic-subtitles.json``
        in the directory, since the subtitle files themselves have nowhere to say it. ``name``: the
        source as labelled, when it differs (a moment, ``talk.mp3 [0:10–0:20]``, is its own file:
        ``talk_0m10s-0m20s.srt``).
        """
        render = lambda ext: self.to_srt() if ext == "srt" else self.to_vtt()  # noqa: E731
        return save(name or self.source, render, directory, formats)

    def to_dataframe(self) -> Any:
        """The cues as a DataFrame with columns ``start_s, end_s, text``."""
        import pandas as pd

        return pd.DataFrame([(c.start_s, c.end_s, c.text) for c in self.cues], columns=["start_s", "end_s", "text"])

    def __len__(self) -> int:
        return len(self.cues)

    def __repr__(self) -> str:
        return f"Transcript({self.source!r}, {len(self.cues)} cues, {self.duration_s:.1f} s)"

    def preview(self, shown: int = 6) -> str:
        """A header and the first ``shown`` cues as SRT."""
        head = f"{self.source} · {len(self.cues)} cues · {_clock(self.duration_s, ',')}"
        body = Transcript(self.source, self.cues[:shown]).to_srt().rstrip("\n")
        more = f"\n… {len(self.cues) - shown} more cues" if len(self.cues) > shown else ""
        return f"{head}\n\n{body}{more}" if self.cues else f"{head} (no speech)"

    def __str__(self) -> str:
        return self.preview()

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(repr(self) if cycle else self.preview())


def transcripts(rows: Any, *, max_chars: int = MAX_CHARS, line_chars: int = LINE_CHARS) -> list[Transcript]:
    """One :class:`Transcript` per source of a ``transcribe(..., segments=True)`` table (or a list
    of row dicts), in the order sources first appear, each from its rows in time order. A source
    whose every chunk failed gets a transcript with no cues, so the list lines up with the sources."""
    records = rows.to_dict("records") if hasattr(rows, "to_dict") else list(rows)
    by_source: dict[str, list[dict]] = {}
    for row in records:
        by_source.setdefault(str(row.get("source")), []).append(row)
    return [
        Transcript.from_rows(
            source,
            sorted(group, key=lambda r: _time(r, "start", "start_s") or 0.0),
            max_chars=max_chars,
            line_chars=line_chars,
        )
        for source, group in by_source.items()
    ]
