"""What a transcript player needs, as plain data: each source once (label, mime, a small Ogg/Opus
preview of its audio, or a note why it cannot play, and where on its file's timeline that audio
starts) and one row per timed segment. The widget that shows it is
:class:`voxmagic.notebook.player.TranscriptPlayer`; this half needs no notebook."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from .codec import PREVIEW_BIT_RATE, EncodedAudio, container_blocks, preview, preview_of, probe_duration
from .errors import AudioError

MAX_AUDIO_BYTES = 4_000_000  # per source, as embedded: ~44 minutes of the 12 kbit/s Opus preview
MAX_PREVIEW_S = MAX_AUDIO_BYTES / (PREVIEW_BIT_RATE / 8)
_MAGIC = {b"OggS": "audio/ogg", b"fLaC": "audio/flac", b"RIFF": "audio/wav", b"ID3": "audio/mpeg"}


@dataclass(frozen=True)
class Stretch:
    """Only ``[start_s, end_s)`` of a file on disk: a moment's rows play it, decoded by seeking,
    without the whole recording being embedded (or decoded)."""

    path: str
    start_s: float
    end_s: float

    def preview(self, label: str) -> bytes:
        if self.end_s - self.start_s > MAX_PREVIEW_S:
            raise AudioError(
                label, _too_long(self.end_s - self.start_s, "its rows span", "play fewer moments at a time")
            )
        blocks = list(container_blocks(self.path, label, self.start_s, self.end_s))
        if not blocks:
            raise AudioError(label, f"has no audio at {clock(self.start_s)}")
        return preview_of(blocks)


def _too_long(seconds: float, what: str = "it is", advice: str = "a moment of it plays: --at") -> str:
    most = f"~{MAX_PREVIEW_S / 60:.0f} minutes" if MAX_PREVIEW_S >= 60 else clock(MAX_PREVIEW_S)
    return f"{what} {clock(seconds)}, more than the {most} a player holds ({advice})"


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour), with tenths when there are some (``0:04.4``): cut to
    the second, a 0.4-s segment read ``0:04–0:04``. Rounded half up, as the front end's twin."""
    tenths = max(0, math.floor(seconds * 10 + 0.5))
    s, tenth = divmod(tenths, 10)
    h, m = s // 3600, s // 60 % 60
    ss = f"{s % 60:02d}" + (f".{tenth}" if tenth else "")
    return f"{h}:{m:02d}:{ss}" if h else f"{m}:{ss}"


def playable(
    segments: Any,
    audio: Mapping[str, bytes | EncodedAudio | Stretch] | None = None,
    *,
    compress: bool = True,
    missing: str = "no audio given",
) -> tuple[list[dict], list[dict]]:
    """``(sources, rows)`` from segments (a DataFrame or dicts: ``source, start, end, text``
    [``speaker``], or ``start_s, end_s, speaker_id``) and each source's audio by label (a source
    without any is noted ``missing``). Audio that starts later than its file does (a
    :class:`Stretch`, an :class:`EncodedAudio` with a ``start_s``) is placed there."""
    records = segments.to_dict("records") if hasattr(segments, "to_dict") else list(segments)
    labels, rows = _rows(records)
    by_label = {str(k): v for k, v in (audio or {}).items()}
    return [_embed(label, by_label.get(label), compress, missing) for label in labels], rows


def shown(sources: list[dict], rows: list[dict]) -> tuple[dict[str, list[str]], str]:
    """The rows as table columns — time, [source], [speaker], text — and the table's caption."""
    labels = [s.get("label", "") for s in sources]
    data = {"time": [f"{clock(r['start'])}–{clock(r['end'])}" for r in rows]}
    if len(labels) > 1:
        data["source"] = [labels[r["source"]] for r in rows]
    if any(r.get("speaker") for r in rows):
        data["speaker"] = [r.get("speaker") or "" for r in rows]
    data["text"] = [r.get("text") or "" for r in rows]
    if len(labels) == 1:  # the one source's name, and its note after it
        return data, ": ".join([labels[0], *(s["note"] for s in sources if s.get("note"))])
    return data, "; ".join(f"{s.get('label')}: {s['note']}" for s in sources if s.get("note"))


def _rows(records: Iterable[dict]) -> tuple[list[str], list[dict]]:
    """Source labels in order of appearance, and one row per timed segment sorted by (source, start);
    rows without times (a failed chunk) are left out: there is nothing to play."""
    labels: dict[str, int] = {}
    rows = []
    for rec in records:
        start, end = _number(rec, "start", "start_s"), _number(rec, "end", "end_s")
        if start is None or end is None:
            continue
        source = labels.setdefault(_text(rec.get("source")), len(labels))
        speaker = _text(rec.get("speaker", rec.get("speaker_id")))
        failed = _text(rec.get("error"))  # a failed chunk keeps its place, with why: not an empty row
        text = _text(rec.get("text")) or (f"[failed: {failed}]" if failed else "")
        rows.append({"source": source, "start": start, "end": end, "speaker": speaker, "text": text})
    rows.sort(key=lambda r: (r["source"], r["start"]))
    return list(labels), rows


def _embed(label: str, audio: bytes | EncodedAudio | Stretch | None, compress: bool, missing: str) -> dict:
    """One source as the front end gets it: label, mime, the bytes once (or None and a note), and
    ``start``, the second of its file the bytes begin at."""
    entry: dict[str, Any] = {"label": label, "mime": "", "audio": None, "note": "", "start": 0.0}
    if audio is None:
        return dict(entry, note=missing)
    if isinstance(audio, Stretch):
        try:
            return _sized(dict(entry, mime="audio/ogg", start=audio.start_s), audio.preview(label))
        except AudioError as exc:
            return dict(entry, note=f"audio not embedded: {exc.cause}")
    clip = audio if isinstance(audio, EncodedAudio) else EncodedAudio(bytes(audio), "", 0.0, label)
    entry["start"] = clip.start_s
    try:
        if compress and (seconds := clip.duration_s or probe_duration(io.BytesIO(clip.data)) or 0) > MAX_PREVIEW_S:
            return dict(entry, note=f"audio not embedded: {_too_long(seconds)}")  # known before encoding it
        data = _preview_of(clip.data, clip.label) if compress else clip.data
    except AudioError as exc:
        return dict(entry, note=f"audio not playable: {exc}")
    mime = "audio/ogg" if compress else next((m for k, m in _MAGIC.items() if data.startswith(k)), "audio/mpeg")
    return _sized(dict(entry, mime=mime), data)


def _sized(entry: dict, data: bytes) -> dict:
    if len(data) > MAX_AUDIO_BYTES:
        return dict(entry, note=f"audio not embedded: {len(data) / 1e6:.1f} MB, over {MAX_AUDIO_BYTES / 1e6:.0f} MB")
    return dict(entry, audio=data)


@functools.lru_cache(maxsize=8)
def _preview_of(data: bytes, label: str) -> bytes:
    """Encoding a preview takes a while (~6 s per 10 minutes): a source shown again reuses it."""
    return preview(EncodedAudio(data, "", 0.0, label))


def _number(item: Mapping, *keys: str) -> float | None:
    """The first of ``keys`` holding a number (NaN is none)."""
    for value in map(item.get, keys):
        with suppress(TypeError, ValueError):
            if (x := float(value)) == x:  # type: ignore[arg-type]
                return x
    return None


def _text(value: Any) -> str:
    """A cell as text: None, NaN and pandas' NA are empty."""
    missing = value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType"
    return "" if missing else str(value)
