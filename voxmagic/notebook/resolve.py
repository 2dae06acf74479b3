"""From what a user typed to Python objects: audio items, ``{name}`` in prompts, named objects.

Every mistake becomes a :class:`~voxmagic.errors.ConfigError` whose message says what to type
instead; the magic layer shows it as one line.
"""

from __future__ import annotations

import glob
import os
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..audio import AudioSource, EncodedAudio, Unusable, as_list, as_source, is_array_pair, is_segments
from ..errors import AudioError, ConfigError
from ..files import AUDIO_SUFFIXES, did_you_mean, expand, is_url
from ..moments import Span, no_moments_yet


def audio_items(
    items: Sequence[str],
    namespace: Mapping[str, Any],
    *,
    sample_rate: int | None = None,
    span: Span | None = None,
    trim: bool = False,
) -> list[Any]:
    """Expand paths, globs, folders, URLs and variable names into audio sources, in order; with
    ``span`` (``--at``) only that moment of each, with ``trim`` (``--trim-silence``) without pauses."""
    out: list[Any] = []
    for item in items:
        out.extend(_one(item, namespace, sample_rate))
    if not out:
        raise ConfigError("no audio given: name a file, a glob such as clips/*.mp3, a folder, a URL or a variable")
    if span:
        no_moments_yet(out)
    return [_what_is_sent(x, span, trim) for x in out] if span or trim else out


def _what_is_sent(item: Any, span: Span | None, trim: bool) -> Any:
    try:
        source = as_source(item)
    except AudioError:
        return item  # unusable as it is: its own error row says why
    return (source.moments(span) if span else source).trimmed(trim)


def _one(item: str, ns: Mapping[str, Any], sample_rate: int | None) -> list[Any]:
    """A name typed on the line: a file, folder, glob or URL, else a variable; a typo is refused
    here (it could be either), while a missing file inside a variable is left to its error row."""
    path = Path(item).expanduser()
    if is_url(item) or path.exists():
        return expand(item)
    head = item.split(".")[0].split("[")[0]
    if head.isidentifier() and head in ns:
        return _from_variable(item, lookup(item, ns), sample_rate)
    if glob.has_magic(item):
        return expand(item)
    if item.startswith(("(", "[", "{")) or item.endswith(","):  # Python written on the line
        raise ConfigError(
            f"{item}: the line takes names, not Python expressions; put it in a variable first "
            "(clip = (samples, 16000)) and name the variable"
        )
    hint = did_you_mean(path, [n for n in ns if n.isidentifier() and not n.startswith("_")])
    if item.replace(".", "").isidentifier() and path.suffix.lower() not in AUDIO_SUFFIXES:
        raise ConfigError(f"{item} is neither a file nor a variable in the notebook{hint}")
    raise ConfigError(f"no such file: {item} (relative to {Path.cwd()}){hint}")


def _from_variable(name: str, value: Any, sample_rate: int | None) -> list[Any]:
    if isinstance(value, (AudioSource, EncodedAudio)):
        return [value]
    if is_segments(value):  # segment rows: only their moments, one clip per file
        return as_list(value)
    if isinstance(value, (str, os.PathLike)):  # as the Python API expands it: a missing file
        return expand(value)  # becomes that source's error row instead of refusing the whole call
    is_list = isinstance(value, (list, tuple)) and not is_array_pair(value)
    if is_list or type(value).__name__ in ("Series", "Index"):
        items = list(value.tolist() if hasattr(value, "tolist") else value)
        return [x for i, v in enumerate(items) for x in _from_variable(f"{name}[{i}]", v, sample_rate)]
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # a numpy array
        if not sample_rate:
            raise ConfigError(f"{name} is an array: give its sample rate with --sr (e.g. --sr 16000)")
        value = (value, sample_rate)
    if is_array_pair(value):
        try:
            return [as_source(value, label=name)]
        except AudioError as exc:
            return [Unusable(exc.source, exc.cause)]  # unusable samples: that source's error row, as in the Python API
    try:
        return [as_source(value, label=name)]
    except AudioError as exc:
        raise ConfigError(
            f"{name} is a {type(value).__name__}, not audio: pass a path, URL, bytes, "
            "a numpy array with --sr, or IPython.display.Audio"
        ) from exc


def lookup(name: str, ns: Mapping[str, Any], what: str = "") -> Any:
    """A variable, attribute (``df.path``) or item (``clips[0]``, ``d['k']``) from the namespace."""
    fmt = string.Formatter()
    try:
        value, _ = fmt.get_field(name, (), ns)
        return value
    except KeyError as exc:
        prefix = f"{what}: " if what else ""
        raise ConfigError(f"{prefix}no variable named {exc.args[0]} in the notebook") from None
    except (AttributeError, IndexError, ValueError, TypeError) as exc:
        hint = f"; a slice is not read here: put it in a variable first (part = {name})" if ":" in name else ""
        raise ConfigError(f"{what + ': ' if what else ''}cannot read {name} ({exc}){hint}") from None


def render_prompt(template: str, ns: Mapping[str, Any]) -> str:
    """Replace ``{name}`` (also ``{df.shape[0]}``, ``{x:.2f}``) from the namespace; ``{{`` escapes."""
    try:
        return string.Formatter().vformat(template, (), ns)
    except KeyError as exc:
        raise ConfigError(
            f"the prompt uses {{{exc.args[0]}}} but there is no variable "
            f"{exc.args[0]}; write {{{{ and }}}} for literal braces"
        ) from None
    except IndexError:
        raise ConfigError(
            "the prompt has an empty {} placeholder: put a variable name inside it, or write {{}} for literal braces"
        ) from None
    except (ValueError, AttributeError, TypeError) as exc:
        raise ConfigError(
            f"cannot fill the prompt's placeholders ({exc}); write {{{{ and }}}} for literal braces"
        ) from None
