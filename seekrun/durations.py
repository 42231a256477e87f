"""Durations as node files write them ("90s", "10m", "1h30m", "500ms", or a number of seconds)
and as messages show them.  Nothing here imports anything heavy."""
from __future__ import annotations

import re
from typing import Any

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

MAX_DURATION = 366 * 86400.0  # a year: longer is a typo (and overflows a timer)


def parse_duration(value: Any) -> float | None:
    """Seconds for "90s", "10m", "2h", "1h30m", "500ms" or a number; None if unparseable (or
    longer than a year)."""
    seconds = _seconds(value)
    return seconds if seconds is None or seconds <= MAX_DURATION else None


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value and value not in (float("inf"), float("-inf")) else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace(" ", "")
    if _DURATION.fullmatch(text):
        return sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    try:
        return float(text) if text and text.replace(".", "", 1).isdigit() else None
    except ValueError:
        return None


def format_duration(seconds: float) -> str:
    """A duration as messages say it: 90 -> "90s", 600 -> "10m", 5400 -> "1h30m", 0.5 -> "500ms"."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    if seconds < 120 and (seconds < 60 or seconds % 60):
        return f"{seconds:g}s"
    whole, parts = int(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    frac = seconds - int(seconds)
    if frac and parts and parts[-1].endswith("s"):
        parts[-1] = f"{float(parts[-1][:-1]) + frac:g}s"
    return "".join(parts) or f"{seconds:g}s"


def shown_duration(value: Any, seconds: float) -> str:
    """The duration as the user wrote it (a string), else normalised."""
    return value.strip() if isinstance(value, str) else format_duration(seconds)
