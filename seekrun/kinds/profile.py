"""profile: long-format statistics of the node's first input, in table "profile"."<name>".

One row per (column_name, metric, value, detail), all VARCHAR so numbers, dates and text
share one column (cast ``value`` to compare: ``CAST(value AS DOUBLE)``).  The rows are
Seeknal's, with the same values (DuckDB's own text for every number), in Seeknal's order;
what seekrun adds are extra rows (marked *extra* below) after Seeknal's rows of the same
column, never in their place:

- ``_table_`` / ``row_count``: the number of rows.
- every profiled column: ``null_count`` (``0`` for an empty table, where Seeknal gives
  NULL); ``null_percent`` (0..100; ``0.0`` for an empty table); ``distinct_count``
  (non-NULL values).
- numeric columns: ``min``, ``max``, ``avg``, ``sum`` (as a DOUBLE), ``stddev`` (sample),
  ``p25``, ``p50``, ``p75`` (DuckDB's ``approx_quantile``, as in Seeknal: exact on small
  tables, approximate on large ones).
- DATE and TIMESTAMP columns: ``min``, ``max``, ``freshness_hours`` (hours from ``max`` to
  the time of the build; naive timestamps and dates read as UTC), plus ``_table_`` /
  ``profiled_at`` (*extra*: that time, UTC, so a ``profile_check`` on freshness_hours can
  measure it again against now).
- text, boolean and other columns: one ``top_values`` row, value NULL, detail a JSON list of
  ``{"value", "count", "percent"}`` (percent of the non-NULL rows, 2 decimals), most
  frequent first, at most ``max_top_values`` (default 5).  Ties are ordered by value (in
  Seeknal their order is arbitrary).  *extra* for text and boolean columns: ``min``, ``max``.
- BLOB columns: null_count and null_percent only (*extra*: distinct_count).
- *extra*, every column but BLOBs: up to ``max_top_values`` ``top_value`` rows: value =
  the value as text, detail = its count, most frequent first, ties by value.  NULLs are
  never top values (see null_count).

``profile.columns`` limits (and orders) the columns profiled; a listed column that is
not in the input is skipped with a warning, as in Seeknal.  Without it every column is
profiled in table order.  ``max_top_values: 0`` (which Seeknal refuses) leaves out both
kinds of top values.
"""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

from seekrun.errors import suggest

from seekrun.kinds.base import BuildContext, BuildResult, build_config, quote_ident

ENGINE_VERSION = 2  # 2: Seeknal's rows (top_values, sum, p25..p75, freshness_hours), DuckDB's number text

PROFILE_KEYS = ("columns", "params")
PARAMS = ("max_top_values",)
DEFAULT_TOP = 5
TABLE_COLUMN = "_table_"
PROFILED_AT = "profiled_at"
_NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
                      r"|FLOAT|DOUBLE|REAL|DECIMAL(\(\d+,\s*\d+\))?)$")
TIME_TYPES = frozenset({"DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_S",
                        "TIMESTAMP_MS", "TIMESTAMP_NS"})
BINARY_TYPES = frozenset({"BLOB", "BYTEA"})


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


def category(duckdb_type: str) -> str:
    """numeric, time, binary or text (everything else, booleans included), as Seeknal sorts them."""
    upper = duckdb_type.upper()
    if _NUMERIC.match(upper):
        return "numeric"
    if upper in TIME_TYPES:
        return "time"
    if upper in BINARY_TYPES:
        return "binary"
    return "text"


QUANTILES = ("0.25", "0.5", "0.75")


def aggregates(q: str, typ: str) -> tuple[list[str], list[str]]:
    """One column's statistics as DuckDB SQL aggregates, the same on every engine (on Spark this
    SQL transpiled): the metric names, and the expressions of count(*), the NULL count, the
    distinct count, then one for each metric."""
    kind = category(typ)
    exprs = ["count(*)", f"count(*) - count({q})", f"count(DISTINCT {q})"]
    if kind == "numeric":
        # a BIGINT's sum, exact and never overflowing on every engine (Spark's sum of a BIGINT is a
        # BIGINT; a narrower integer's sum cannot overflow one)
        total = f"CAST({q} AS DECIMAL(38, 0))" if typ.upper() == "BIGINT" else q
        # a DECIMAL's mean is a DOUBLE, as DuckDB's avg() gives it (Spark's avg() would be a DECIMAL)
        mean = (f"CAST(sum({q}) AS DOUBLE) / nullif(count({q}), 0)" if typ.upper().startswith("DECIMAL")
                else f"avg({q})")
        return (["min", "max", "avg", "sum", "stddev", "p25", "p50", "p75"],
                exprs + [f"min({q})", f"max({q})", mean, f"CAST(sum({total}) AS DOUBLE)", f"stddev_samp({q})",
                         *(f"approx_quantile({q}, {p})" for p in QUANTILES)])
    if kind in ("time", "text"):
        return ["min", "max"], exprs + [f"min({q})", f"max({q})"]
    return [], exprs


def top_sql(q: str, source: str, top: int, total: bool = False) -> str:
    """A column's most frequent values and their counts, most frequent first, ties by value
    (ordered by position: a column named like an alias must not change the order); with
    `total`, a third column: the count of its non-NULL rows (a window over the groups, no
    second scan)."""
    extra = ", sum(count(*)) OVER () AS total" if total else ""
    return (f"SELECT {q} AS val, count(*) AS cnt{extra} FROM {source} WHERE {q} IS NOT NULL "
            f"GROUP BY {q} ORDER BY 2 DESC, 1 LIMIT {int(top)}")


def _top_values_sql(q: str, source: str, top: int) -> str:
    """Seeknal's top_values detail: a JSON list, most frequent first (ties by value here), each
    value's percent of the non-NULL rows."""
    return ("SELECT CAST(list(json_object('value', CAST(val AS VARCHAR), 'count', cnt, 'percent', "
            "round(100.0 * cnt / total, 2)) ORDER BY cnt DESC, val) AS VARCHAR) "
            f"FROM ({top_sql(q, source, top, total=True)})")


def column_rows(ctx: BuildContext, source: str, name: str, typ: str, top: int, now: float) -> list[tuple]:
    """The profile rows of one column (one query for its aggregates: DuckDB reads just that
    column, and many count(DISTINCT) aggregates in one query are much slower than one each)."""
    q = quote_ident(name)
    kind = category(typ)
    metrics, exprs = aggregates(q, typ)
    nulls = exprs[1]
    select = [nulls, f"CAST(CASE WHEN count(*) = 0 THEN 0 ELSE 100.0 * ({nulls}) / count(*) END AS VARCHAR)",
              exprs[2], *(f"CAST({e} AS VARCHAR)" for e in exprs[3:])]
    params = None
    if kind == "time":
        metrics = [*metrics, "freshness_hours"]
        select.append(f"CAST((CAST(? AS DOUBLE) - epoch(max({q}))) / 3600.0 AS VARCHAR)")
        params = [now]
    nulls, percent, distinct, *values = ctx.execute(f"SELECT {', '.join(select)} FROM {source}", params).fetchone()
    rows = [(name, "null_count", str(nulls), None), (name, "null_percent", percent, None)]
    if kind == "binary":
        return rows + [(name, "distinct_count", str(distinct), None)]  # extra (Seeknal: nulls only)
    rows.append((name, "distinct_count", str(distinct), None))
    stats = list(zip(metrics, values))
    if kind == "text" and top:
        rows.append((name, "top_values", None, ctx.execute(_top_values_sql(q, source, top)).fetchone()[0]))
    rows += [(name, m, v, None) for m, v in stats]  # (text: min, max are extra)
    if top:  # extra: one row per top value
        for value, count in ctx.execute(f"SELECT CAST(val AS VARCHAR) AS shown, cnt FROM ({top_sql(q, source, top)}) "
                                        "ORDER BY cnt DESC, val").fetchall():
            rows.append((name, "top_value", value, str(count)))
    return rows


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
    now = time.time()
    total = ctx.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    rows: list[tuple] = [(TABLE_COLUMN, "row_count", str(total), None)]
    for name, typ in columns:
        rows += ctx.profile_column(source, name, typ, top, now)
    if any(m == "freshness_hours" for _, m, _, _ in rows):
        stamp = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="microseconds")
        rows.append((TABLE_COLUMN, PROFILED_AT, stamp, None))
    ctx.write_rows([("column_name", "VARCHAR"), ("metric", "VARCHAR"), ("value", "VARCHAR"), ("detail", "VARCHAR")],
                   rows)
    return BuildResult(len(rows))
