"""The DataFrames voxmagic returns, as a person reads them: columns in reading order (the text
first, identifiers last), one dtype per kind (nullable integers, None for empty text), and a
:class:`Table` that shows long text left-aligned and wrapped — never cut — in a notebook and at
a terminal's width, while staying a plain pandas DataFrame for everything else.

Also the compact views of ``%voxtral_cost`` and ``%voxtral_history`` (:func:`compact`).
"""

from __future__ import annotations

import functools
import html
import shutil
import textwrap
from collections.abc import Iterator
from typing import Any

from .moments import mmss
from .results import format_usd

# One row per source in a transcription table: what a person reads first, identifiers last.
TRANSCRIPT_COLUMNS = (
    "source text duration_s cost_usd error prompt_tokens completion_tokens latency_s attempts chunks cached "
    "finish_reason audio_format generation_id audio_sha256"
).split()
# With segments=True: one row per timed segment, on its source's timeline (see voxmagic.timeline);
# a table of them (or rows of it) is itself an audio source.
SEGMENT_COLUMNS = (
    "source start end speaker text cost_usd error chunk cached finish_reason audio_format generation_id audio_sha256"
).split()
# Column kinds by name (any other is text): counts as nullable Int64 (<NA> in a failed row), floats,
# a bool; text is ``object`` with None as its one empty marker: falsy (``if row.error:`` works, where
# NaN is true and pd.NA raises), seen by ``isna()``, null in JSON, the same in pandas 2 and 3.
KINDS = {
    **dict.fromkeys(["prompt_tokens", "completion_tokens", "audio_tokens", "attempts", "chunks", "chunk"], "Int64"),
    **dict.fromkeys(
        [
            "duration_s",
            "trimmed_s",
            "cost_usd",
            "latency_s",
            "start_s",
            "end_s",
            "start",
            "end",
            "audio_seconds",
            "ttft_s",
        ],
        "float64",
    ),
    "cached": "bool",
}


def tidy(df: Any, columns: Any) -> Any:
    """``columns`` of ``df`` converted in place to their kind (:data:`KINDS`; text otherwise)."""
    for name in columns:
        col, kind = df[name], KINDS.get(name, "text")
        if kind == "text":
            df[name] = col.astype(object).where(col.notna(), None)
        elif kind == "bool":
            df[name] = col.eq(1).astype(bool)
        else:
            df[name] = col.astype(kind)
    return df


def table(
    rows: list[dict], *, segments: bool = False, structured: bool = False, schema: Any = None, tools: bool = False
) -> Any:
    """Rows as a :func:`Table <as_table>` in the documented column order. With ``structured``,
    each parsed JSON answer becomes columns before ``text`` (nested fields flattened with dots:
    ``speaker.name``; a field named like a standard column gets ``answer.`` in front), and the
    object itself (a pydantic instance when a model was given) is in the last column, ``parsed``;
    a row whose answer did not parse has None there and says why in ``error``. The columns of a
    JSON ``schema`` (the request's ``response_format``) are there even when no answer parsed."""
    import pandas as pd

    columns = SEGMENT_COLUMNS if segments else TRANSCRIPT_COLUMNS
    if not segments and any(r.get("trimmed_s") is not None for r in rows):  # silence was trimmed
        columns = [*columns[:3], "trimmed_s", *columns[3:]]
    if tools or any(r.get("tool_calls") for r in rows):  # tools offered: [{id, name, arguments}] per row (or None)
        at = columns.index("text") + 1
        columns = [*columns[:at], "tool_calls", *columns[at:]]
    df = tidy(pd.DataFrame(rows, columns=columns), columns)
    if not structured:
        return as_table(df)
    parsed = [r.get("parsed") for r in rows]
    plain = [p.model_dump(mode="json") if p is not None and hasattr(p, "model_dump") else p for p in parsed]
    fields = pd.json_normalize([p if isinstance(p, dict) else {} for p in plain])
    fields = fields.reindex(columns=list(dict.fromkeys([*schema_columns(schema), *fields.columns])))
    fields.index = df.index
    fields.columns = [f"answer.{c}" if c in df.columns or c == "parsed" else c for c in fields.columns]
    strings = [c for c in fields.columns if pd.api.types.is_string_dtype(fields[c].dtype)]
    fields[strings] = fields[strings].astype(object).where(fields[strings].notna(), None)
    df["parsed"] = pd.Series(parsed, index=df.index, dtype=object)
    df["error"] = pd.Series([r.get("error") or r.get("parse_error") for r in rows], index=df.index, dtype=object)
    at = columns.index("text")
    return as_table(pd.concat([df.iloc[:, :at], fields, df.iloc[:, at:]], axis=1))


def schema_columns(response_format: Any) -> list[str]:
    """The columns a JSON schema's answers flatten to (a nested object's fields as ``a.b``)."""
    schema = ((response_format or {}).get("json_schema") or {}).get("schema") or {}
    defs = schema.get("$defs", {})

    def walk(node: dict, prefix: str) -> Iterator[str]:
        if "$ref" in node:  # pydantic puts nested models in $defs
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        if node.get("properties"):
            for name, sub in node["properties"].items():
                yield from walk(sub, f"{prefix}{name}.")
        elif prefix:
            yield prefix[:-1]

    return list(walk(schema, ""))


def local_times(seconds: Any) -> Any:
    """Unix times (a pandas Series) as timezone-aware datetimes in the machine's local zone."""
    from datetime import datetime

    import pandas as pd

    return pd.to_datetime(seconds, unit="s", utc=True).dt.tz_convert(datetime.now().astimezone().tzinfo)


# -- tables that show their text whole ------------------------------------------------------------


def as_table(df: Any, caption: str = "") -> Any:
    """``df`` as a :class:`Table`: a real DataFrame whose display (HTML and text) shows every text
    whole — left-aligned, wrapped at spaces, never cut — money as :func:`format_usd` and times to
    the second. What is computed from it (``df[["source", "text"]]``, a filter) stays a Table and
    shows the same way as long as it has text to show; otherwise pandas' own display is used."""
    table = _table_class()(df)
    table.caption = caption
    return table


@functools.cache
def _table_class() -> type:
    """Made on first use, so that importing voxmagic does not import pandas; reachable for pickle
    as ``voxmagic.frames.Table`` through the module's ``__getattr__``."""
    import pandas as pd

    class Table(pd.DataFrame):
        caption = ""  # a line under this table only (not carried to what is computed from it)

        @property
        def _constructor(self) -> Any:
            return Table

        def _repr_html_(self) -> str | None:
            return table_html(self) if _has_text(self) else pd.DataFrame(self)._repr_html_()

        def __repr__(self) -> str:
            return table_text(self) if _has_text(self) else repr(pd.DataFrame(self))

    Table.__module__, Table.__qualname__, Table.__doc__ = __name__, "Table", as_table.__doc__
    return Table


def _has_text(df: Any) -> bool:
    """Worth showing our way: a column of words (``text``, an answer field), not only numbers."""
    return any(str(c) == "text" or (t.kind == "O" and df[c].map(type).eq(str).any()) for c, t in df.dtypes.items())


def __getattr__(name: str) -> Any:
    if name == "Table":
        return _table_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _cell(name: str, value: Any) -> str:
    """One value as shown: empty when missing, times to the second, money in one format."""
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return ""
    if hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if name.endswith("_usd"):
            return format_usd(float(value))
        if name in ("start", "end"):
            return mmss(float(value))
        if isinstance(value, float):
            return f"{value:.2f}" if name.endswith(("_s", "seconds")) else f"{value:.6g}"
    return str(value)


def _layout(df: Any) -> tuple[list[str], list[str], dict[str, list[str]], set[str], str]:
    """What a display shows: row labels, column names, cells, the text columns, and a note on the
    rows left out (pandas' ``display.max_rows`` / ``min_rows``, as pandas itself does)."""
    import pandas as pd

    shown, note, most = df, "", pd.get_option("display.max_rows")
    if most and len(df) > most:
        half = max(1, (pd.get_option("display.min_rows") or most) // 2)
        shown, note = pd.concat([df.iloc[:half], df.iloc[-half:]]), f"{len(df) - 2 * half} rows in the middle left out"
    names = [str(c) for c in df.columns]
    cells = {n: [_cell(n, v) for v in shown.iloc[:, i].tolist()] for i, n in enumerate(names)}
    numeric = pd.api.types.is_numeric_dtype
    text = {n for i, n in enumerate(names) if not (numeric(df.iloc[:, i]) or df.dtypes.iloc[i].kind in "mM")}
    return [str(i) for i in shown.index], names, cells, text, note


_TEXT = "text-align:left;vertical-align:top;white-space:pre-wrap;word-break:normal;overflow-wrap:break-word"
HTML_COLUMNS = 8  # the columns an HTML table shows; the others are named under it (they are in the data)
_NUMBER = "text-align:right;vertical-align:top;white-space:nowrap"


def table_html(df: Any) -> str:
    """The table as HTML: text cells left-aligned and wrapped at spaces (inline styles beat the
    frontends' right-aligned, ``break-all`` defaults); the long ones get a readable width."""
    index, names, cells, text, note = _layout(df)
    names, hidden = names[:HTML_COLUMNS], names[HTML_COLUMNS:]
    longest = {n: max((len(s) for s in cells[n]), default=0) for n in names}
    main = _main_column(names, text, longest)

    def style(n: str) -> str:
        if n not in text:
            return _NUMBER
        if longest[n] <= 24:
            return _NUMBER.replace("right", "left")  # short labels: never broken
        return _TEXT + (";min-width:24em;max-width:60em" if n == main else ";min-width:10em;max-width:24em")

    styles = {n: style(n) for n in names}
    align = {n: "left" if n in text else "right" for n in names}
    head = "".join(f'<th style="text-align:{align[n]};white-space:nowrap">{html.escape(n)}</th>' for n in names)
    body = "".join(
        f'<tr><th style="vertical-align:top">{html.escape(label)}</th>'
        + "".join(f'<td style="{styles[n]}">{_wrappable(cells[n][r])}</td>' for n in names)
        + "</tr>"
        for r, label in enumerate(index)
    )
    more = f"not shown: {', '.join(hidden)} (in the data)" if hidden else ""
    size = f"{len(df)} rows × {len(names) + len(hidden)} columns"
    foot = "; ".join(x for x in (size, note, more, getattr(df, "caption", "")) if x)
    return (
        '<div class="mathjax_ignore tex2jax_ignore" style="overflow-x:auto">'
        '<table class="dataframe" style="table-layout:auto;margin-left:0">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<div style="color:var(--jp-ui-font-color2,#666);font-size:90%">{html.escape(foot)}</div></div>'
    )


def _wrappable(text: str) -> str:
    """Escaped, with a break opportunity after each ``/`` so that paths wrap between their parts."""
    return html.escape(text).replace("/", "/<wbr>")


IDENTIFIERS = ("generation_id", "audio_sha256", "cache_key", "id")  # never a table's main text


def _main_column(names: list[str], text: set[str], length: dict[str, int]) -> str | None:
    """The text column that gets the room: ``text``, else the longest of ``names`` that is not an
    identifier (an id is long, not worth the room), else the longest."""
    if "text" in text:
        return "text"
    candidates = [n for n in names if n in text]
    return max([n for n in candidates if n not in IDENTIFIERS] or candidates, key=length.__getitem__, default=None)


def _widths(names: list[str], natural: dict[str, int], text: set[str], room: int) -> dict[str, int]:
    """The columns that fit in ``room`` characters, in order up to the first that does not, with
    their widths: numbers at their natural width, other text columns from 12 characters up to a
    third of what is spare; ``text`` (or the longest text column) always, with what is left."""
    main = _main_column(names, text, natural)
    keep = min(natural[main], max(24, room * 2 // 5)) if main else 0
    # a failed row's reason is shown whatever else is left out: without it the row is just blank
    failed = "error" if "error" in text and "error" != main and natural["error"] > len("error") else None
    held = min(natural[failed], 12) + 2 if failed else 0
    widths: dict[str, int] = {}
    full = False
    for n in names:
        need = 0 if n == main else min(natural[n], max(12, len(n))) if n in text else natural[n]
        if n == failed:
            widths[n], held = need, 0
            continue
        full = full or sum(w + 2 for w in widths.values()) + need + 2 + keep + held > room
        if n == main or not full:
            widths[n] = need
    left = room - sum(w + 2 for w in widths.values())
    for n in widths:
        if n in text and n != main:
            extra = min(natural[n] - widths[n], max(0, (left - keep) // 3))
            widths[n] += extra
            left -= extra
    if main:
        widths[main] = max(8, min(natural[main], left))
    return widths


def table_text(df: Any, width: int | None = None) -> str:
    """The table as text ``width`` characters wide (the terminal's): text wrapped in its column,
    never cut; the columns that do not fit are named under it."""
    import pandas as pd

    width = width or shutil.get_terminal_size((pd.get_option("display.width") or 80, 24)).columns
    index, names, cells, text, note = _layout(df)
    natural = {n: max([len(n)] + [len(line) for s in cells[n] for line in s.splitlines()]) for n in names}
    label_w = max((len(s) for s in index), default=0)
    widths = _widths(names, natural, text, width - label_w)
    shown = [n for n in names if n in widths]

    def wrapped(n: str, s: str) -> list[str]:
        if n not in text:
            return [s.rjust(widths[n])]
        lines = [w for line in s.splitlines() for w in textwrap.wrap(line, widths[n], break_on_hyphens=False) or [""]]
        return [w.ljust(widths[n]) for w in lines or [""]]

    out = [("".ljust(label_w) + "".join("  " + (n.ljust if n in text else n.rjust)(widths[n]) for n in shown)).rstrip()]
    for r, label in enumerate(index):
        parts = {n: wrapped(n, cells[n][r]) for n in shown}
        for k in range(max(map(len, parts.values()), default=1)):
            row = "".join("  " + (p[k] if k < len(p) else " " * widths[n]) for n, p in parts.items())
            out.append(((label if k == 0 else "").ljust(label_w) + row).rstrip())
    hidden = [n for n in names if n not in widths]
    notes = "; ".join(x for x in (note, f"not shown: {', '.join(hidden)}" if hidden else "") if x)
    foot = [f"[{len(df)} rows × {len(names)} columns]", notes]
    caption = getattr(df, "caption", "")
    return "\n".join([*out, textwrap.fill(" ".join(x for x in foot if x), width), *([caption] if caption else [])])


# What %voxtral_history and %voxtral_cost show without --all: the cost first, then what a person
# reads; --all adds every other column after these.
HISTORY_COLUMNS = ["cost_usd", "time", "outcome", "sources", "prompt", "text", "error", "model", "audio_seconds"]
COST_COLUMNS = ["cost_usd", "time", "label", "outcome", "model", "audio_seconds"]


def compact(df: Any, columns: list[str], everything: bool, magic: str) -> Any:
    """A table of ``columns`` (those that exist), or with ``everything`` every column after them;
    a compact table says under it how to see the rest (``magic --all``)."""
    kept = [c for c in columns if c in df.columns]
    rest = [c for c in df.columns if c not in kept]
    note = "" if everything or not rest else f"{len(kept)} of {df.shape[1]} columns; {magic} --all shows every one"
    return as_table(df[kept + rest] if everything else df[kept], note)
