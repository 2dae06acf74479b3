"""A transcript you can play: a table of timed segments where a click on a row plays that stretch
of its source, the row highlighted (front end: ``player.js``, an anywidget ES module, and
``player.css``; the data: :mod:`voxmagic.playback`). Each source's audio is sent once, as a small
Ogg/Opus preview in a binary buffer. Where no widget renders (terminal IPython, nbconvert) the
table shows as text and static HTML.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets as t

from ..playback import playable, shown

if TYPE_CHECKING:
    from ..codec import EncodedAudio
    from ..playback import Stretch

_HERE = files(__package__ or "voxmagic.notebook")


class TranscriptPlayer(anywidget.AnyWidget):
    """Segments of one or more sources as a table; clicking a row (or Enter/Space on it) plays the
    row's source from its start and pauses at its end. Build one with :meth:`from_segments`."""

    _esm = (_HERE / "player.js").read_text(encoding="utf-8")
    _css = (_HERE / "player.css").read_text(encoding="utf-8")
    sources = t.List(t.Dict(), help="per source: label, mime, audio (bytes or None), note, start (s)").tag(sync=True)
    rows = t.List(t.Dict(), help="per segment: source (index), start, end (s), speaker, text").tag(sync=True)
    playing = t.Int(-1, help="the row playing in the browser (-1: none); set by the front end").tag(sync=True)

    @classmethod
    def from_segments(
        cls,
        segments: Any,
        audio: Mapping[str, bytes | EncodedAudio | Stretch] | None = None,
        *,
        compress: bool = True,
        missing: str = "no audio given",
    ) -> TranscriptPlayer:
        """From segments (seconds on each source's timeline) and each source's audio by label
        (bytes of any container, EncodedAudio, or a :class:`voxmagic.playback.Stretch` of a file:
        only what its rows need). ``compress`` embeds a 12 kbit/s Opus preview,
        else the bytes as given; a source without audio (its note: ``missing``) or over
        :data:`voxmagic.playback.MAX_AUDIO_BYTES` is shown unplayable, with a note."""
        sources, rows = playable(segments, audio, compress=compress, missing=missing)
        return cls(sources=sources, rows=rows)

    def table(self) -> Any:
        """The rows as a :func:`voxmagic.frames.as_table` DataFrame: time, [source], [speaker], text."""
        import pandas as pd

        from ..frames import as_table

        data, caption = shown(self.sources, self.rows)
        return as_table(pd.DataFrame(data), caption)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict]:
        """The widget, plus the table as text and static HTML (no audio) for where it cannot render."""
        import pandas as pd

        from ..frames import table_html, table_text

        data, meta = super()._repr_mimebundle_(**kwargs) or ({}, {})
        table = self.table()
        with pd.option_context("display.max_rows", None):  # a transcript is shown whole
            data.update({"text/plain": table_text(table), "text/html": table_html(table)})
        return data, meta

    def __repr__(self) -> str:
        n = len(self.sources)
        return f"TranscriptPlayer({len(self.rows)} rows, {n} source{'s' * (n != 1)})"
