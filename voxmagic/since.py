"""What ``since=`` (``voxmagic.history``) and ``--since`` (``%voxtral_history``) accept, as Unix
seconds: the history's own clock."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from .errors import ConfigError

DAYS_BACK = {"today": 0, "yesterday": 1}


def timestamp(value: Any, label: str = "since=") -> float | None:
    """Unix seconds from a number, a datetime, a time as text ("2026-11-25 10:00", local time), a
    day ("today", "yesterday": from its midnight, local time) or a duration back from now ("90min",
    "2h", "1 day")."""
    if value is None or isinstance(value, (int, float)):
        return value
    import pandas as pd

    if isinstance(value, str):
        days = DAYS_BACK.get(value.strip().lower())
        if days is not None:  # pandas reads "today" as now
            midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
            return (midnight - timedelta(days=days)).timestamp()
        try:
            return time.time() - abs(pd.Timedelta(value).total_seconds())  # "-2h" is 2 hours back too
        except ValueError:
            pass
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        shown = f"{label}{value!r}" if label.endswith("=") else f"{label} {value}"
        raise ConfigError(
            f"{shown} is neither a time ('2026-11-25 10:00', 'today') nor a duration back from now ('2h')"
        ) from exc
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(datetime.now().astimezone().tzinfo)
    return stamp.timestamp()
