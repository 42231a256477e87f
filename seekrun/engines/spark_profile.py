"""A profile's statistics on Spark. Spark computes each column's aggregates (one job per column,
and one for its top values); an in-memory DuckDB turns the values it returns into text, by
the same casts a DuckDB build uses. So every value reads as it would from DuckDB ("2.5",
"1e+20", "2024-03-01 10:00:00"), and the JSON of top_values is DuckDB's own.

What differs, by design of the two engines (the tolerances the cross-engine tests allow):
- p25, p50, p75 are approximate on both: DuckDB's approx_quantile (a t-digest) can interpolate
  between values; Spark's percentile_approx (accuracy 10,000) returns one of the column's values.
  Each is within its algorithm's rank error of the exact quantile, so they can differ.
- avg, sum and stddev of floating-point columns are summed in a different order: equal to
  about 15 significant digits, not always to the last one.
- Timestamps carry microseconds on Spark (a TIMESTAMP_NS column is profiled to the microsecond).
- Nested columns (lists, structs, maps) are refused: profile them on DuckDB.
"""
from __future__ import annotations

from seekrun.kinds.base import NodeFailure
from seekrun.kinds.profile import category

_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
_INTEGERS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT"}


class Formatter:
    """DuckDB, in memory, as the writer of a profile's text."""

    def __init__(self):
        import duckdb

        self.con = duckdb.connect()

    def one(self, select: list[str], params: list) -> tuple:
        return self.con.execute(f"SELECT {', '.join(select)}", params).fetchone()

    def close(self) -> None:
        self.con.close()


def _value(typ: str) -> str:
    """A parameter, as a value of the column's DuckDB type (timestamps arrive as epoch microseconds)."""
    upper = typ.upper()
    if upper in _TIMESTAMPS:
        naive = "make_timestamp(CAST(? AS BIGINT))"
        return f"({naive} AT TIME ZONE 'UTC')" if "ZONE" in upper or upper == "TIMESTAMPTZ" else naive
    return f"CAST(? AS {typ})"


def _spark_value(q: str, typ: str) -> str:
    return f"unix_micros(CAST({q} AS TIMESTAMP))" if typ.upper() in _TIMESTAMPS else q


def column_rows(ctx, source: str, name: str, typ: str, top: int, now: float) -> list[tuple]:
    """The same rows as seekrun.kinds.profile.column_rows, computed by Spark."""
    kind = category(typ)
    if kind == "text" and typ.upper() not in ("VARCHAR", "BOOLEAN"):
        raise NodeFailure(f"{ctx.node['id']}: column {name} ({typ}) cannot be profiled on Spark yet: leave it out "
                          "with profile.columns, or build this profile with engine: duckdb")
    q = "`" + name.replace("`", "``") + "`"
    v = _spark_value(q, typ)
    aggs = ["count(*)", f"count(*) - count({q})", f"count(DISTINCT {q})"]
    metrics: list[str] = []
    if kind == "numeric":
        metrics = ["min", "max", "avg", "sum", "stddev", "p25", "p50", "p75"]
        total_of = f"CAST({q} AS DECIMAL(38, 0))" if typ.upper() in _INTEGERS else q  # (never overflows)
        mean = f"avg(CAST({q} AS DOUBLE))" if typ.upper().startswith("DECIMAL") else f"avg({q})"  # (a DOUBLE,
        aggs += [f"min({q})", f"max({q})", mean, f"sum({total_of})", f"stddev_samp({q})",   # as DuckDB's)
                 *(f"percentile_approx({q}, {p}, 10000)" for p in ("0.25", "0.5", "0.75"))]
    elif kind == "time":
        metrics = ["min", "max", "freshness_hours"]
        aggs += [f"min({v})", f"max({v})"]
    elif kind == "text":
        metrics = ["min", "max"]
        aggs += [f"min({q})", f"max({q})"]
    total, nulls, distinct, *values = _collect(ctx, f"SELECT {', '.join(aggs)} FROM {source}")[0]
    fmt = ctx.formatter()
    select = ["CAST(CASE WHEN t = 0 THEN 0 ELSE 100.0 * n / t END AS VARCHAR) FROM (SELECT CAST(? AS BIGINT) AS t, "
              "CAST(? AS HUGEINT) AS n)"]
    percent = fmt.one(select, [total, nulls])[0]
    rows = [(name, "null_count", str(nulls), None), (name, "null_percent", percent, None)]
    rows.append((name, "distinct_count", str(distinct), None))  # (binary columns too: seekrun's extra)
    if kind == "binary":
        return rows
    if kind == "numeric":
        kinds = [typ, typ, "DOUBLE", "DOUBLE", "DOUBLE", typ, typ, typ]
        text = fmt.one([f"CAST({_value(t)} AS VARCHAR)" for t in kinds], values)
    elif kind == "time":
        text = fmt.one([f"CAST({_value(typ)} AS VARCHAR)", f"CAST({_value(typ)} AS VARCHAR)",
                        f"CAST((CAST(? AS DOUBLE) - epoch({_value(typ)})) / 3600.0 AS VARCHAR)"],
                       [values[0], values[1], now, values[1]])
    else:
        text = fmt.one([f"CAST({_value(typ)} AS VARCHAR)"] * 2, values)
    stats = list(zip(metrics, text))
    groups = []
    if top:
        groups = _collect(ctx, f"SELECT {v} AS val, count(*) AS cnt FROM {source} WHERE {q} IS NOT NULL "
                               f"GROUP BY {q} ORDER BY cnt DESC, {q} LIMIT {int(top)}")
    if kind == "text" and top:
        rows.append((name, "top_values", None, _top_values(fmt, typ, groups, total - nulls)))
    rows += [(name, m, t, None) for m, t in stats]
    if groups:
        shown = fmt.one([f"CAST({_value(typ)} AS VARCHAR)" for _ in groups], [g[0] for g in groups])
        rows += [(name, "top_value", s, str(g[1])) for s, g in zip(shown, groups)]
    return rows


def _top_values(fmt: Formatter, typ: str, groups: list[tuple], non_null: int) -> str | None:
    """Seeknal's top_values detail, written by DuckDB's json_object and list, as on DuckDB."""
    if not groups:
        return None
    one = f"({_value(typ)}, CAST(? AS BIGINT))"
    rows = f"(VALUES {', '.join([one] * len(groups))}) AS g(val, cnt)"
    sql = (f"CAST(list(json_object('value', CAST(val AS VARCHAR), 'count', cnt, 'percent', round(pct, 2)) "
           f"ORDER BY cnt DESC, val) AS VARCHAR) FROM (SELECT val, cnt, 100.0 * cnt / CAST(? AS HUGEINT) AS pct "
           f"FROM {rows})")
    return fmt.one([sql], [non_null, *(x for g in groups for x in g)])[0]


def _collect(ctx, sql: str) -> list[tuple]:
    try:
        return [tuple(r) for r in ctx.spark.sql(sql).collect()]
    except Exception as exc:
        from seekrun.engines.spark_context import _message

        raise NodeFailure(ctx.redact(_message(exc))) from None
