"""The features of an ``aggregation`` node: checked at parse time, listed as output columns.

Per feature ``{name, column, basic, rolling, ratio, since}`` (``column`` defaults to
``name``), in this order, as Seeknal orders them:

- ``basic: [sum, ...]`` -> ``<name>_<agg>``;
- ``rolling: [{window: 7d, functions: [sum]}]`` (Seeknal's documented form) or
  ``rolling: [{window: [1, 7], aggs: [sum]}]``: each window (``7``, ``7d``, a list of them)
  is its own window of that many days -> ``<name>_<agg>_<N>d``;
- ``ratio: [{numerator: [7], denominator: [30], aggs: [sum]}]``: each numerator window
  against each denominator window (aggs default to sum) ->
  ``<name>_<agg>_ratio_<N>d_<M>d``, the numerator's aggregate divided by the denominator's
  (NULL when that is 0 or NULL);
- ``since: [{condition: "is_refund = 1", aggs: [count, sum]}]`` (aggs default to count;
  one mapping or a list) -> ``<name>_count_if`` (rows meeting the condition) and
  ``<name>_sum_if`` (the column's sum over them, 0 when none).

Aggregate names: sum, count (non-NULL values), avg (alias mean), min, max, stddev (sample;
alias std).  basic, rolling and since names use the canonical name (``mean`` gives
``_avg``), ratio names the name as written, lower-cased: as Seeknal 2.13 names them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from seekrun.errors import suggest

FUNCS = {"sum": "sum", "count": "count", "avg": "avg", "min": "min", "max": "max", "stddev": "stddev"}
ALIASES = {"mean": "avg", "std": "stddev"}
AGG_NAMES = sorted({*FUNCS, *ALIASES})
SINCE_AGGS = ("count", "sum")
FEATURE_KEYS = ("name", "column", "basic", "rolling", "ratio", "since", "description")
ROLLING_KEYS = ("window", "functions", "aggs")
RATIO_KEYS = ("numerator", "denominator", "aggs")
SINCE_KEYS = ("condition", "aggs")
MAX_WINDOW_DAYS = 365_250
_DAYS_RE = re.compile(r"^\s*(\d+)\s*[dD]\s*$")


@dataclass(frozen=True)
class Column:
    """One output column."""
    name: str
    path: tuple  # key path in the YAML, for messages
    how: str  # basic, rolling, ratio or since
    column: str  # the input column aggregated
    func: str  # SQL aggregate function
    days: int | None = None  # rolling window; ratio numerator window
    den_days: int | None = None  # ratio denominator window
    condition: str | None = None  # since


def canonical_agg(agg: Any) -> str | None:
    if not isinstance(agg, str):
        return None
    low = agg.strip().lower()
    low = ALIASES.get(low, low)
    return low if low in FUNCS else None


def days_of(value: Any) -> int | None:
    """7 or '7d' -> 7; anything else -> None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and (m := _DAYS_RE.match(value)):
        return int(m.group(1))
    return None


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else ([] if value is None else [value])


def rolling_aggs(roll: dict) -> list:
    return as_list(roll.get("functions") if roll.get("functions") is not None else roll.get("aggs"))


def since_specs(feat: dict) -> list:
    return as_list(feat.get("since"))


def output_columns(cfg: dict) -> list[Column]:
    """The feature columns, in output order (for a config that passed check_features)."""
    out: list[Column] = []
    for i, feat in enumerate(cfg.get("features") or []):
        name = feat.get("name")
        column = feat.get("column") or name
        for j, agg in enumerate(as_list(feat.get("basic"))):
            if (c := canonical_agg(agg)):
                out.append(Column(f"{name}_{c}", ("features", i, "basic", j), "basic", column, FUNCS[c]))
        for k, roll in enumerate(as_list(feat.get("rolling"))):
            for m, win in enumerate(as_list(roll.get("window"))):
                days = days_of(win)
                for agg in rolling_aggs(roll):
                    if (c := canonical_agg(agg)) and days is not None:
                        out.append(Column(f"{name}_{c}_{days}d", ("features", i, "rolling", k, "window", m),
                                          "rolling", column, FUNCS[c], days))
        for k, ratio in enumerate(as_list(feat.get("ratio"))):
            for num in as_list(ratio.get("numerator")):
                for den in as_list(ratio.get("denominator")):
                    for agg in as_list(ratio.get("aggs", ["sum"])):
                        c = canonical_agg(agg)
                        n, d = days_of(num), days_of(den)
                        if c and n is not None and d is not None:
                            out.append(Column(f"{name}_{agg.strip().lower()}_ratio_{n}d_{d}d",
                                              ("features", i, "ratio", k), "ratio", column, FUNCS[c], n, d))
        for k, since in enumerate(since_specs(feat)):
            for agg in as_list(since.get("aggs", ["count"])):
                c = canonical_agg(agg)
                if c in SINCE_AGGS:
                    out.append(Column(f"{name}_{c}_if", ("features", i, "since", k), "since", column, FUNCS[c],
                                      condition=str(since.get("condition")).strip()))
    return out


def check_features(feats: Any, error: Callable[[tuple, str], None]) -> None:
    """Every problem in ``features``, each at its key path."""
    if not isinstance(feats, list) or not feats:
        error(("features",), "features is empty: add e.g. '- {name: amount, column: amount, basic: [sum]}'")
        return
    for i, feat in enumerate(feats):
        where = f"features[{i}]"
        if not isinstance(feat, dict):
            error(("features", i), f"{where} must be a mapping such as {{name: amount, basic: [sum]}}")
            continue
        for key in feat:
            if key not in FEATURE_KEYS:
                error(("features", i, key), f"unknown key '{key}' in {where}: use {', '.join(FEATURE_KEYS)}")
        name = feat.get("name")
        if not isinstance(name, str) or not name.strip():
            error(("features", i, "name"), f"{where}.name must be a non-empty name")
        column = feat.get("column")
        if column is not None and (not isinstance(column, str) or not column.strip()):
            error(("features", i, "column"), f"{where}.column must be a column name")
        if not any(feat.get(k) for k in ("basic", "rolling", "ratio", "since")):
            error(("features", i), f"feature '{name}' has no aggregations: add 'basic: [sum, ...]', "
                                   "'rolling: [{window: 7d, functions: [sum]}]', 'ratio: ...' or 'since: ...'")
        _check_aggs(feat.get("basic"), ("features", i, "basic"), f"{where}.basic", error)
        for k, roll in enumerate(as_list(feat.get("rolling"))):
            _check_rolling(roll, ("features", i, "rolling", k), error)
        for k, ratio in enumerate(as_list(feat.get("ratio"))):
            _check_ratio(ratio, ("features", i, "ratio", k), error)
        for k, since in enumerate(since_specs(feat)):
            _check_since(since, ("features", i, "since", k), error)


def _where(path: tuple) -> str:
    """("features", 0, "basic", 1) -> "features[0].basic[1]"."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _check_aggs(aggs: Any, path: tuple, where: str, error, allowed: tuple | None = None) -> None:
    names = list(allowed) if allowed else AGG_NAMES
    for j, agg in enumerate(as_list(aggs)):
        c = canonical_agg(agg)
        if c is None or (allowed and c not in allowed):
            error((*path, j), f"unknown aggregation '{agg}' in {where}{suggest(str(agg).lower(), names)}: "
                              f"use one of {', '.join(names)}")


def _check_days(value: Any, path: tuple, where: str, error) -> None:
    days = days_of(value)
    if days is None or days < 1:
        error(path, f"{where}: {value!r} is not a number of days (a whole number >= 1, or e.g. 7d)")
    elif days > MAX_WINDOW_DAYS:
        error(path, f"{where}: {days} days is more than {MAX_WINDOW_DAYS} (1000 years): "
                    "give a window DuckDB's dates can hold")


def _mapping(spec: Any, path: tuple, keys: tuple, example: str, error) -> bool:
    where = _where(path)
    if not isinstance(spec, dict):
        error(path, f"{where} must be a mapping, e.g. {example}")
        return False
    for key in spec:
        if key not in keys:
            error((*path, key), f"unknown key '{key}' in {where}: use {', '.join(keys)}")
    return True


def _check_rolling(roll: Any, path: tuple, error) -> None:
    if not _mapping(roll, path, ROLLING_KEYS, "{window: 7d, functions: [sum]}", error):
        return
    where = _where(path)
    windows = as_list(roll.get("window"))
    if not windows:
        error((*path, "window"), f"{where}.window is empty: give days, e.g. 7d or [7, 30]")
    for m, win in enumerate(windows):
        _check_days(win, (*path, "window", m), f"{where}.window", error)
    if roll.get("functions") is not None and roll.get("aggs") is not None:
        error((*path, "aggs"), f"{where} has both functions and aggs: keep one (they mean the same)")
    key = "functions" if roll.get("functions") is not None else "aggs"
    if not rolling_aggs(roll):
        error(path, f"{where}.functions is empty: add e.g. 'functions: [sum]'")
    _check_aggs(roll.get(key), (*path, key), f"{where}.{key}", error)


def _check_ratio(ratio: Any, path: tuple, error) -> None:
    if not _mapping(ratio, path, RATIO_KEYS, "{numerator: [7], denominator: [30], aggs: [sum]}", error):
        return
    where = _where(path)
    for side in ("numerator", "denominator"):
        wins = as_list(ratio.get(side))
        if not wins:
            error((*path, side), f"{where}.{side} is missing: give its window(s) in days, e.g. [7]")
        for m, win in enumerate(wins):
            _check_days(win, (*path, side, m) if isinstance(ratio.get(side), list) else (*path, side),
                        f"{where}.{side}", error)
    if "aggs" in ratio and not as_list(ratio.get("aggs")):
        error((*path, "aggs"), f"{where}.aggs is empty: add e.g. 'aggs: [sum]' (or leave it out: sum)")
    _check_aggs(ratio.get("aggs"), (*path, "aggs"), f"{where}.aggs", error)


def _check_since(since: Any, path: tuple, error) -> None:
    if not _mapping(since, path, SINCE_KEYS, "{condition: \"is_refund = 1\", aggs: [count, sum]}", error):
        return
    where = _where(path)
    cond = since.get("condition")
    if not isinstance(cond, str) or not cond.strip():
        error((*path, "condition"), f"{where}.condition is missing: give a SQL condition on the input's "
                                    "columns, e.g. \"status = 'refund'\"")
    elif ";" in cond:
        error((*path, "condition"), f"{where}.condition must be one SQL condition (no ';')")
    if "aggs" in since and not as_list(since.get("aggs")):
        error((*path, "aggs"), f"{where}.aggs is empty: add e.g. 'aggs: [count]' (or leave it out: count)")
    _check_aggs(since.get("aggs"), (*path, "aggs"), f"{where}.aggs", error, SINCE_AGGS)


def check_conditions(rec: dict, conditions: list[tuple[tuple, str, str]], pc) -> None:
    """Each since condition (key path, SQL, what) through DuckDB's own parse at parse time
    (parser/sql_check.py), as node SQL is: a syntax error is reported on its line, and a table
    it reads must be a declared input."""
    from seekrun.parser.kinds import KINDS
    from seekrun.parser.records import sql_check_entry
    from seekrun.parser.sql import analyse

    for path, cond, what in conditions:
        text = f"SELECT 1 WHERE (\n{cond}\n)"
        result = analyse(text, rec["inputs"], KINDS)
        for problem in result.problems:
            pc.error(path, f"{what}: {problem}")
        if not result.problems and not result.bad_inputs:
            line = pc.line(path)
            rec.setdefault("sql_line", line)  # where a table it reads without declaring it is reported
            rec.setdefault("sql_checks", []).append(
                sql_check_entry(result, text, line - 1 if line else None, rec["inputs"], what))
