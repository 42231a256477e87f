"""profile_check at run time: thresholds on the metrics of a profile node's table.

The metric names are Seeknal's (row_count, null_count, null_percent, distinct_count, min,
max, avg, sum, stddev, p25, p50, p75, freshness_hours), so a rule written for Seeknal runs
as is.  ``freshness_hours`` is measured again when the check runs: the profile's value
(hours from the column's max to the profile's build) plus the hours since that build (its
``profiled_at`` row), so a profile that is not rebuilt (no new data) still gets older.  A
rule with such a check is re-run as time passes (see freshness_period).
"""
from __future__ import annotations

import time
from datetime import datetime

from seekrun.kinds.base import NodeFailure, table_name
from seekrun.kinds.rules.spec import TABLE_COLUMN, _number, matches

NUMERIC_ONLY = ("avg", "sum", "stddev", "p25", "p50", "p75")
FRESHNESS = "freshness_hours"
PROFILED_AT = "profiled_at"


def freshness_period(subchecks: list[dict]) -> int | None:
    """Seconds between re-checks of a rule whose profile checks test freshness_hours: the
    coarsest of a day, an hour, a minute and a second that is at most a tenth of the smallest
    positive threshold (24 hours: hourly); None without such a check."""
    from seekrun.kinds.rule import clock_period

    bounds = [b for sub in subchecks if sub.get("metric") == FRESHNESS
              for level in ("fail", "warn") if sub.get(level) for b in sub[level][1:3]
              if isinstance(b, (int, float)) and b > 0]
    if not any(sub.get("metric") == FRESHNESS for sub in subchecks):
        return None
    return clock_period(min(bounds) * 3600 if bounds else 3600)


def _missing(s: dict, profile_id: str, col: str, metric: str, stats: dict) -> NodeFailure:
    cols = sorted({c for c, m in stats if m == metric})
    why = ""
    if col in {c for c, _ in stats}:
        if metric in NUMERIC_ONLY:
            why = f" ({metric} is computed for numeric columns only)"
        elif metric == FRESHNESS:
            why = " (freshness_hours is computed for DATE and TIMESTAMP columns only)"
        elif metric in ("min", "max"):
            why = f" ({metric} is not computed for BLOB columns)"
    return NodeFailure(f"check '{s['label']}': {profile_id} has no {metric} for column '{col}'{why}"
                       + (f"; it has {metric} for: {', '.join(cols)}" if cols else ""))


def _fresh_now(raw: str, profiled_at: str | None, now: float) -> float | None:
    """freshness_hours as of now, from the profile's value and its build time."""
    value = _number(raw)
    if value is None:
        return None
    try:
        built = datetime.fromisoformat(profiled_at).timestamp() if profiled_at else None
    except ValueError:
        built = None
    return float(value) if built is None else float(value) + (now - built) / 3600.0


def profile_check(ctx, node, s, violated) -> list[tuple]:
    profile_id = node["inputs"][s["profile"]]
    stats = {}
    for col, metric, value in ctx.execute(
            f"SELECT column_name, metric, value FROM {table_name(profile_id)} "
            "WHERE metric NOT IN ('top_value', 'top_values')").fetchall():
        stats[(col, metric)] = value
    now = time.time()
    out = []
    for sub in s["checks"]:
        col, metric = sub["column"], sub["metric"]
        if (col, metric) not in stats:
            raise _missing(s, profile_id, col, metric, stats)
        raw = stats[(col, metric)]
        label = sub["name"] or metric
        shown_col = None if col == TABLE_COLUMN else col
        what = metric if col == TABLE_COLUMN else f"{metric} of {col}"
        if raw is None:
            level = "fail" if sub["fail"] else "warn"
            status = violated if level == "fail" else "warn"
            out.append((label, "profile_check", shown_col, status, 1,
                        f"{what} is NULL, which counts as meeting the {level} threshold '{sub[level][3]}'"))
            continue
        if metric == FRESHNESS:
            value = _fresh_now(raw, stats.get((TABLE_COLUMN, PROFILED_AT)), now)
            shown = None if value is None else f"{value:.2f} (measured now)"
        else:
            value, shown = _number(raw), raw
        if value is None:
            raise NodeFailure(f"check '{s['label']}': {what} in {profile_id} is {raw!r}, not a number: "
                              "thresholds compare numbers")
        if sub["fail"] and matches(sub["fail"][:3], float(value)):
            out.append((label, "profile_check", shown_col, violated, 1,
                        f"{what} = {shown}, which meets the fail threshold '{sub['fail'][3]}'"))
        elif sub["warn"] and matches(sub["warn"][:3], float(value)):
            out.append((label, "profile_check", shown_col, "warn", 1,
                        f"{what} = {shown}, which meets the warn threshold '{sub['warn'][3]}'"))
        else:
            limits = "; ".join(f"{lvl} if {sub[lvl][3]}" for lvl in ("fail", "warn") if sub[lvl])
            out.append((label, "profile_check", shown_col, "pass", 0, f"{what} = {shown} ({limits})"))
    return out
