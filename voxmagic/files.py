"""From what a user typed to audio files: ``~``, globs (``**`` recursive), folders (every audio
file in them, sorted) and URLs — one rule for the magics and the Python API alike.

A literal path is passed on even when it does not exist: reading it then fails for that source
alone (an error row in a table). A folder without audio and a pattern that matches nothing are
mistakes in what was typed, and say so at once.
"""

from __future__ import annotations

import difflib
import glob
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

AUDIO_SUFFIXES = frozenset(
    {
        ".wav",
        ".mp3",
        ".flac",
        ".ogg",
        ".oga",
        ".opus",
        ".m4a",
        ".m4b",
        ".aac",
        ".webm",
        ".mp4",
        ".mkv",
        ".mka",
        ".mov",
        ".aiff",
        ".aif",
        ".wma",
        ".amr",
        ".3gp",
        ".caf",
    }
)


def is_url(item: str) -> bool:
    return item.startswith(("http://", "https://"))


def expand(item: str | os.PathLike) -> list[str]:
    """The files ``item`` names, in order: itself (a file, a URL, or a path that does not exist),
    the audio files of a folder, or a glob's matches."""
    text = os.fspath(item)
    if is_url(text):
        return [text]
    path = Path(text).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise ConfigError(
                f"the folder {text} holds no audio files (looked for {', '.join(sorted(AUDIO_SUFFIXES)[:6])}, ...)"
            )
        return [str(p) for p in files]
    if not path.exists() and glob.has_magic(text):
        matches = sorted(glob.glob(os.path.expanduser(text), recursive=True))
        if not matches:
            raise ConfigError(f"no files match {text} (relative to {Path.cwd()})")
        return matches
    return [text]


def did_you_mean(path: Path, names: Sequence[str] = ()) -> str:
    """``; did you mean meeting.m4a?`` for a path that does not exist: the closest file in its
    folder, by name or by stem ("meting" → meeting.m4a), or of ``names`` (a notebook's
    variables); "" when nothing is close."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        found = {key: str(path.parent / p.name) for p in folder.iterdir() for key in (p.name, p.stem)}
    except OSError:
        found = {}
    found.update({n: n for n in names})
    close = difflib.get_close_matches(path.name, list(found), 1, 0.75)
    return f"; did you mean {found[close[0]]}?" if close else ""


def expand_all(sources: list[Any]) -> list[Any]:
    """Every path-like item expanded in place; other sources (bytes, arrays, ...) as they are."""
    return [f for s in sources for f in (expand(s) if isinstance(s, (str, os.PathLike)) else [s])]
