"""Subtitle files on disk: ``<stem>.srt`` / ``.vtt`` per source in a folder, never overwriting a
file voxmagic did not write. Which source owns which name is kept in ``.voxmagic-subtitles.json``
in the folder, since the subtitle files themselves have nowhere to say it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from .moments import base_label

INDEX = ".voxmagic-subtitles.json"  # which source each file in a save() directory came from
FORMATS = ("srt", "vtt")


def save(
    source: str, render: Callable[[str], str], directory: str | Path, formats: str | Sequence[str] = ("srt",)
) -> list[Path]:
    """Write ``<stem>.srt`` (and/or ``.vtt``: ``render(ext)`` gives the text) for ``source`` into
    ``directory`` (created); returns the paths. A rerun overwrites the files this source wrote
    before; another source with the same stem (``a/talk.mp3`` after ``b/talk.mp3``) gets
    ``talk-2.srt``."""
    formats = [formats] if isinstance(formats, str) else list(formats)
    exts = [str(f).lower().lstrip(".") for f in formats]
    if not exts or any(e not in FORMATS for e in exts):
        raise ValueError(f"formats must be among {FORMATS}, not {formats!r}")
    folder = Path(directory).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    index_path = folder / INDEX
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        index = index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        index = {}
    stem, me = _stem(source), _owner(source)

    def free(name: str) -> bool:
        owner = index.get(name)
        return owner == me or (owner is None and not (folder / name).exists())

    n = 1
    while not all(free(f"{stem}{'' if n == 1 else f'-{n}'}.{e}") for e in exts):
        n += 1
    paths = []
    for ext in exts:
        path = folder / f"{stem}{'' if n == 1 else f'-{n}'}.{ext}"
        path.write_text(render(ext), encoding="utf-8")
        index[path.name] = me
        paths.append(path)
    index_path.write_text(json.dumps(index, indent=1, ensure_ascii=False), encoding="utf-8")
    return paths


def _is_url(source: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*://", source, re.I) is not None


def _owner(label: str) -> str:
    """Who a saved file belongs to: the URL, or the absolute path (``talk.mp3`` and
    ``./talk.mp3`` are one source), with the moment the label names (a moment is not the file)."""
    source = base_label(label)
    if _is_url(source) or source.startswith("<"):
        return label
    return str(Path(source).expanduser().resolve()) + label[len(source) :]


def _stem(label: str) -> str:
    """A file name for a source: its file's stem (a URL's last path part), safe on any system; a
    moment's (``talk.mp3 [0:10–1:02:03.5]``) adds its times (``talk_0m10s-1h02m03.5s``)."""
    source, moment = base_label(label), label[len(base_label(label)) :].strip(" []")
    if moment:
        times = "-".join(re.sub(r"^(?:(\d+):)?(\d+):([\d.]+)$", _hms, t) for t in moment.split("–"))
        return _stem(source) + "_" + re.sub(r"[^\w.-]+", "_", times)
    if _is_url(source):
        parts = urlsplit(source)
        name = parts.path.rstrip("/").rsplit("/", 1)[-1]
        stem = Path(name).stem if name else parts.netloc  # a site's root: its host name
    else:
        stem = Path(source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]).stem
    stem = re.sub(r"[^\w.-]+", "_", stem).strip("._-")[:100]
    return stem or "audio"


def _hms(m: re.Match) -> str:
    return (f"{m[1]}h" if m[1] else "") + f"{m[2]}m{m[3]}s"
