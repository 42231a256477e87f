"""profile: long-format statistics of the node's first input, in table "profile"."<name>".

One row per (column_name, metric, value, detail), all VARCHAR so numbers, dates and text
share one column (cast ``value`` to compare: ``CAST(value AS DOUBLE)``):

- ``_table_`` / ``row_count``: the number of rows (``_table_`` as in Seeknal).
- per profiled column, in this order: ``null_count``; ``null_percent`` (0..100, NULL for
  an empty table); ``distinct_count`` (non-NULL values); ``min`` and ``max`` (the values
  as DuckDB prints them); for numeric columns only ``avg`` and ``stddev`` (sample
  standard deviation, NULL below two values); then up to ``max_top_values`` (default 5)
  ``top_value`` rows: value = the value as text, detail = its count, most frequent first,
  ties by value.  NULLs are not top values (see null_count).
- computed numbers (null_percent, avg, stddev) are rounded to 6 decimals and printed
  without trailing zeros ("2.5", "33.333333", "50"), so reruns give identical text.

``profile.columns`` limits (and orders) the columns profiled; a listed column that is
not in the input is skipped with a warning, as in Seeknal.  Without it every column is
profiled in table order.
"""
from __future__ import annotations

from seekrun.errors import suggest

import math
import re
from decimal import Decimal
from typing import Any

from seekrun.engine.base import BuildContext, BuildResult, build_config, quote_ident

ENGINE_VERSION = 1

PROFILE_KEYS = ("columns", "params")
PARAMS = ("max_top_values",)
DEFAULT_TOP = 5
TABLE_COLUMN = "_table_"
_NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
                      r"|FLOAT|DOUBLE|REAL|DECIMAL(\(\d+,\s*\d+\))?)$")


def prepare(rec: dict, built: dict, pc) -> None:
    if not rec["inputs"]:
        pc.error(("inputs",), "a profile needs an input to profile: add 'inputs: [- ref: kind.name]'")
    spec = built.get("profile")
    if spec is None:
        return
    if not isinstance(spec, dict):
        pc.error(("profile",), "profile must be a mapping such as {columns: [a, b], params: {max_top_values: 5}}")
        return
    for key in spec:
        if key not in PROFILE_KEYS:
            pc.error(("profile", key), f"unknown key '{key}' in profile{suggest(key, PROFILE_KEYS)}: "
                                       "use columns or params")
    cols = spec.get("columns")
    if cols is not None:
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c for c in cols):
            pc.error(("profile", "columns"), "columns must be a non-empty list of column names "
                                             "(leave it out to profile every column)")
        elif len(set(cols)) != len(cols):
            pc.error(("profile", "columns"), "a column is listed twice")
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        pc.error(("profile", "params"), "params must be a mapping such as {max_top_values: 5}")
        return
    for key in params:
        if key not in PARAMS:
            pc.error(("profile", "params", key), f"unknown profile param '{key}'{suggest(key, PARAMS)} "
                                                 f"(allowed: {', '.join(PARAMS)})")
    if "max_top_values" in params and top_values(params) is None:
        pc.error(("profile", "params", "max_top_values"),
                 f"max_top_values must be a whole number >= 0, not {params['max_top_values']!r}")


def top_values(params: dict) -> int | None:
    value = params.get("max_top_values", DEFAULT_TOP)
    if value is None:
        return DEFAULT_TOP
    if isinstance(value, str) and value.strip().isdigit():  # rendered from a {{ template }}
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def number_text(x: Any) -> str | None:
    """A computed number as stable text: 6 decimals at most, no trailing zeros."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    text = format(Decimal(repr(round(x, 6))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def build(node: dict, ctx: BuildContext) -> BuildResult:
    spec = build_config(node).get("profile") or {}
    top = top_values(spec.get("params") or {})
    top = DEFAULT_TOP if top is None else top
    source = ctx.input_table(0)
    described = [(r[0], r[1]) for r in ctx.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
    wanted = spec.get("columns")
    if wanted:
        by_lower = {name.lower(): (name, typ) for name, typ in described}
        missing = [c for c in wanted if c.lower() not in by_lower]
        if missing:
            ctx.warn(f"column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                     f"{'are' if len(missing) > 1 else 'is'} not in {node['inputs'][0]}: not profiled "
                     f"(columns: {', '.join(n for n, _ in described)})")
        columns = [by_lower[c.lower()] for c in wanted if c.lower() in by_lower]
    else:
        columns = described
    total = ctx.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    rows: list[tuple] = [(TABLE_COLUMN, "row_count", str(total), None)]
    for name, typ in columns:
        # one query per column: DuckDB reads just that column, and many count(DISTINCT)
        # aggregates in one query are much slower than one each
        q = quote_ident(name)
        numeric = bool(_NUMERIC.match(typ))
        extra = f", avg({q}), stddev_samp({q})" if numeric else ""
        non_null, distinct, lo, hi, *more = ctx.execute(
            f"SELECT count({q}), count(DISTINCT {q}), CAST(min({q}) AS VARCHAR), CAST(max({q}) AS VARCHAR)"
            f"{extra} FROM {source}").fetchone()
        nulls = total - non_null
        rows += [(name, "null_count", str(nulls), None),
                 (name, "null_percent", number_text(100.0 * nulls / total) if total else None, None),
                 (name, "distinct_count", str(distinct), None),
                 (name, "min", lo, None),
                 (name, "max", hi, None)]
        if numeric:
            rows += [(name, "avg", number_text(more[0]), None), (name, "stddev", number_text(more[1]), None)]
        if top:
            for value, count in ctx.execute(
                    f"SELECT CAST({q} AS VARCHAR), count(*) AS n FROM {source} WHERE {q} IS NOT NULL "
                    f"GROUP BY {q} ORDER BY n DESC, {q} LIMIT {int(top)}").fetchall():
                rows.append((name, "top_value", value, str(count)))
    values = ", ".join(["(?, ?, ?, ?)"] * len(rows))
    ctx.execute(
        f"CREATE OR REPLACE TABLE {ctx.table} AS\n"
        "SELECT CAST(c AS VARCHAR) AS column_name, CAST(m AS VARCHAR) AS metric, "
        "CAST(v AS VARCHAR) AS value, CAST(d AS VARCHAR) AS detail\n"
        f"FROM (VALUES {values}) AS p(c, m, v, d)",
        [x for row in rows for x in row])
    return BuildResult(len(rows))
