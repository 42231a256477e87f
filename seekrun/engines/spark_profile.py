"""A profile's statistics on Spark. Spark runs the SQL a DuckDB build runs (seekrun.kinds.profile's
aggregates and top values, transpiled by sqlglot: one job per column, and one for its top
values); an in-memory DuckDB turns the values it returns into text, by the same casts a DuckDB
build uses. So every value reads as it would from DuckDB ("2.5", "1e+20", "2024-03-01
10:00:00"), and the JSON of top_values is DuckDB's own.

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

from seekrun.kinds.base import NodeFailure, quote_ident
from seekrun.kinds.profile import aggregates, category, top_sql

_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}


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


def _micros(value):
    """A timestamp read back from Spark (seekrun/engines/spark_context._collect) as epoch microseconds."""
    from datetime import datetime, timezone

    if not isinstance(value, datetime):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
    delta = aware - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def column_rows(ctx, source: str, name: str, typ: str, top: int, now: float) -> list[tuple]:
    """The same rows as seekrun.kinds.profile.column_rows, from the same SQL (its aggregates,
    transpiled for Spark by the context), written as text by DuckDB."""
    kind = category(typ)
    if kind == "text" and typ.upper() not in ("VARCHAR", "BOOLEAN"):
        raise NodeFailure(f"{ctx.node['id']}: column {name} ({typ}) cannot be profiled on Spark yet: leave it out "
                          "with profile.columns, or build this profile with engine: duckdb")
    q = quote_ident(name)
    metrics, exprs = aggregates(q, typ)
    total, nulls, distinct, *values = ctx.execute(f"SELECT {', '.join(exprs)} FROM {source}").fetchone()
    values = [_micros(v) for v in values]
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
        metrics = [*metrics, "freshness_hours"]
        text = fmt.one([f"CAST({_value(typ)} AS VARCHAR)", f"CAST({_value(typ)} AS VARCHAR)",
                        f"CAST((CAST(? AS DOUBLE) - epoch({_value(typ)})) / 3600.0 AS VARCHAR)"],
                       [values[0], values[1], now, values[1]])
    else:
        text = fmt.one([f"CAST({_value(typ)} AS VARCHAR)"] * 2, values)
    stats = list(zip(metrics, text))
    groups = []
    if top:
        groups = [(_micros(v), c) for v, c in ctx.execute(top_sql(q, source, top)).fetchall()]
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
