"""Every bounded value in one table, checked where it enters: a magic's options, ``%config`` and
the Python API all refuse the same values with the same one line naming the bound.

Without it, ``--chunk-minutes -1`` sent 1,600 billed requests for a 0.1 s clip and
``--concurrency 0`` silently ran at 8. A leaf (only :mod:`voxmagic.errors`), cheap to import
when the extension loads.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

# Defaults of the options that are neither connection settings nor request parameters (those are
# owned by voxmagic.settings.Settings and voxmagic.chat.Params).
DEFAULT_CONCURRENCY = 8
DEFAULT_CHUNK_MINUTES = 25.0
DEFAULT_TOOL_ROUNDS = 5
DEFAULT_UPDATES_PER_SECOND = 10.0
DEFAULT_PLAYER_MAX_SECONDS = 30.0
DEFAULT_RECORDING_SECONDS = 300.0  # a recording stops by itself after this long (5 minutes)


@dataclass(frozen=True)
class Bound:
    """A closed (or, with ``lo_open``, half-open) interval; ``whole`` for integers; ``zero`` when 0
    means "off" although it lies outside the interval (``chunk_minutes = 0``: never cut)."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    whole: bool = False
    zero: str | None = None  # what 0 means, when it is allowed outside the interval
    unit: str = ""

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        unit = f" {self.unit}" if self.unit else ""
        if self.lo is not None and self.hi is not None:
            rng = f"{kind} from {self.lo:g} to {self.hi:g}{unit}"
            if self.lo_open:
                rng = f"{kind} above {self.lo:g} and at most {self.hi:g}{unit}"
        elif self.lo is not None:
            rng = f"{kind} {'above' if self.lo_open else 'of at least'} {self.lo:g}{unit}"
        else:
            rng = kind
        return rng + (f", or 0 ({self.zero})" if self.zero else "")

    def holds(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):  # numpy's too
            return False
        value = float(value)
        if self.whole and value != int(value):
            return False
        if self.zero and value == 0:
            return True
        if self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo)):
            return False
        return self.hi is None or value <= self.hi


BOUNDS: dict[str, Bound] = {
    # request parameters (chat completions)
    "max_tokens": Bound(1, whole=True),
    "temperature": Bound(0, 2),
    "top_p": Bound(0, 1, lo_open=True),
    "frequency_penalty": Bound(-2, 2),
    "presence_penalty": Bound(-2, 2),
    "seed": Bound(whole=True),
    # how much work runs, and for how much money
    "concurrency": Bound(1, 64, whole=True),
    "max_cost": Bound(0, lo_open=True, unit="USD"),
    "budget": Bound(0, lo_open=True, unit="USD"),
    # a chunk must fit Voxtral's context (about 40 minutes); shorter than 30 s wastes the 30-second
    # windows audio is counted in, and sends a request per few words
    "chunk_minutes": Bound(0.5, 40, zero="never cut"),
    "max_chunk_s": Bound(30, 2400, zero="never cut", unit="seconds"),
    "max_tool_rounds": Bound(1, 50, whole=True),
    # connection
    "max_attempts": Bound(1, 20, whole=True),
    "backoff": Bound(0, 60, unit="seconds"),
    "timeout": Bound(0, 3600, lo_open=True, unit="seconds"),
    "read_timeout": Bound(0, 3600, lo_open=True, unit="seconds"),
    "rate_limit_patience": Bound(0, 86_400, unit="seconds"),
    "download_timeout": Bound(0, 86_400, lo_open=True, unit="seconds"),
    # audio and display
    "sample_rate": Bound(1_000, 768_000, whole=True, unit="Hz"),
    "updates_per_second": Bound(0, 30, lo_open=True),
    "player_max_seconds": Bound(0, 3600, unit="seconds"),
    "max_seconds": Bound(1, 3600, unit="seconds"),  # a recording's length (%voxtral_record)
    "last": Bound(1, whole=True),  # history(last=N): the newest N requests
}


def check(name: str, value: Any, label: str | None = None) -> Any:
    """``value`` when it is within ``name``'s bound (None passes: unset); else a ConfigError whose
    one line names the value as the user wrote it (``label``: ``--concurrency``,
    ``VoxtralMagics.concurrency``; default ``name=``) and the bound."""
    if value is None:
        return None
    bound = BOUNDS[name]
    if not bound.holds(value):
        option = isinstance(value, float) and (label or "").startswith("--")  # typed 3, read as 3.0
        typed = repr(value).removesuffix(".0") if option else repr(value)
        shown = f"{label} {typed}" if label else f"{name}={value!r}"
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        raise ConfigError(f"{shown} is {'out of range' if number else 'not a number'}: use {bound.describe()}")
    return int(value) if bound.whole else float(value) if not isinstance(value, (int, float)) else value


def check_all(values: dict[str, Any], label: Any = None) -> None:
    """Check every entry of ``values`` that has a bound; ``label(name)`` names it for the user."""
    for name, value in values.items():
        if name in BOUNDS:
            check(name, value, label(name) if label else None)


def text(name: str, value: Any, what: str = "it", *, required: bool = False) -> Any:
    """``value`` when it is text (or None, unless ``required``: then blank text is refused too, a
    question of nothing would be sent and billed); else one line, ``prompt=5: give the question as text``."""
    if (value is not None or required) and (not isinstance(value, str) or (required and not value.strip())):
        raise ConfigError(f"{name}={value!r:.40}: give {what} as text")
    return value


def flag(name: str, value: Any) -> bool:
    """``value`` as a bool when it is one (Python's or numpy's, known by name: numpy is not
    imported here); else one line, ``segments='yes': use True or False``."""
    numpy_bool = type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")  # 2.x, 1.x
    if not isinstance(value, bool) and not numpy_bool:
        raise ConfigError(f"{name}={value!r:.40}: use True or False")
    return bool(value)
