"""A file source on Spark: Spark reads the files, and DuckDB's reading of them is the contract.

- DuckDB says what the table is: its columns and their types come from DESCRIBE of the very
  reader query a DuckDB build runs (its sniffer, on the files' first rows), and for CSV the
  dialect (sniff_csv: delimiter, quote, header, date and timestamp formats).
- Spark then reads every row with that schema, and fails on one that does not fit it
  (``mode: FAILFAST``) where DuckDB's strict reader fails too; a CSV failure is explained by
  naming the first bad line, as on DuckDB.
- Parquet is read as it is (its types are in the file). JSON is read with DuckDB's schema.
- Reader params with no Spark equivalent are refused, naming them: build such a source on DuckDB.
  So is what Spark would read otherwise: another null string than the empty field (Spark reads an
  empty field as NULL whatever it is told), a two-digit year (%y: 19xx or 20xx), and key=value
  folders in the files' paths (DuckDB reads them as columns). A quoted field holding a line break
  fails on Spark (it splits files between tasks by lines).
"""
from __future__ import annotations

import re

from seekrun.kinds.base import BuildResult, NodeFailure, build_config

CSV_PARAMS = {"header", "delim", "sep", "delimiter", "quote", "escape", "dateformat", "timestampformat"}
JSON_PARAMS = {"format"}
# (%y is not here: DuckDB reads 69-99 as 19xx, Java's yy as 20xx)
_STRFTIME = {"Y": "yyyy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
             "f": "SSSSSS", "g": "SSS", "p": "a", "b": "MMM", "B": "MMMM", "a": "EEE", "A": "EEEE", "j": "DDD",
             "z": "XX", "-m": "M", "-d": "d", "-H": "H", "-I": "h", "-M": "m", "-S": "s"}
_TOKEN = re.compile(r"%(-?[A-Za-z%])")


def read(node: dict, ctx) -> BuildResult:
    from seekrun.kinds.source import read_files, reader_query

    cfg = build_config(node)
    fmt = cfg.get("source")
    given = {str(k).lower(): v for k, v in (cfg.get("params") or {}).items()}
    allowed = {"csv": CSV_PARAMS, "json": JSON_PARAMS, "jsonl": JSON_PARAMS}.get(fmt, set())
    extra = sorted(k for k in given if k not in allowed)
    if extra:
        raise NodeFailure(f"{node['id']}: reader param{'s' if len(extra) > 1 else ''} {', '.join(extra)} "
                          f"{'have' if len(extra) > 1 else 'has'} no Spark equivalent: build this source on "
                          "DuckDB (remove engine: spark)")
    sql, params, width = reader_query(node, ctx.root, ctx.value)
    files = [str(ctx.root / f) for f in read_files(node)]
    con = ctx.formatter().con
    try:
        columns = [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}").fetchall()]
    except Exception as exc:
        if fmt != "csv":
            raise NodeFailure(ctx.redact(f"{node['id']}: {str(exc).strip().splitlines()[0]}")) from None
        from seekrun.kinds.source import csv_failure

        raise NodeFailure(ctx.redact(csv_failure(node, con, ctx.root, params, width, exc))) from None
    _no_hive_columns(node, con, sql, columns)
    if width is not None:
        from seekrun.kinds.source import width_problem

        problem = width_problem(node, len(columns), width, params)
        if problem:
            raise NodeFailure(problem)
    reader = ctx.spark.read
    if fmt == "parquet":
        frame = reader.parquet(*files)
    elif fmt == "csv":
        frame = reader.options(**_csv_options(node, con, files[0], params)) \
            .schema(_schema(node, columns)).csv(files)
    else:
        array = params.get("format") == "array" or (params.get("format") != "newline_delimited" and _is_array(files[0]))
        frame = reader.options(mode="FAILFAST", multiLine=str(array).lower()) \
            .schema(_schema(node, columns)).json(files)
    try:
        rows = ctx._save(frame)
    except NodeFailure as exc:
        if fmt == "csv":
            from seekrun.engines.csvfiles import explain
            from seekrun.kinds.base import sql_literal
            from seekrun.kinds.source import csv_failure

            if explain(con, [(str(ctx.root / f), f) for f in read_files(node)], params, width, sql_literal):
                raise NodeFailure(ctx.redact(csv_failure(node, con, ctx.root, params, width, exc))) from None
            raise NodeFailure(ctx.redact(f"{node['id']}: Spark cannot read the CSV files as DuckDB does ({exc}): "
                                         "every file needs the first one's header, in its order; or build this "
                                         "source on DuckDB (remove engine: spark)")) from None
        raise
    return BuildResult(rows)


def _schema(node: dict, columns: list[tuple[str, str]]) -> str:
    """Spark's DDL for DuckDB's columns (a naive TIMESTAMP is Spark's TIMESTAMP_NTZ)."""
    from sqlglot import exp

    from seekrun.parser.transpile import NO_SPARK_TYPE

    out = []
    for name, typ in columns:
        dtype = exp.DataType.build(typ, dialect="duckdb")
        if dtype.this.name in NO_SPARK_TYPE:
            raise NodeFailure(f"{node['id']}: column {name} is {typ}, which Spark has no type for: build this "
                              "source on DuckDB (remove engine: spark)")
        spark = "TIMESTAMP_NTZ" if dtype.this == exp.DataType.Type.TIMESTAMP else dtype.sql(dialect="spark")
        out.append("`" + name.replace("`", "``") + "` " + spark)
    return ", ".join(out)


def _no_hive_columns(node: dict, con, sql: str, columns: list[tuple[str, str]]) -> None:
    """DuckDB reads key=value folders in the files' paths as columns (hive partitioning, found
    by itself): Spark, given the files, would not have them."""
    plain = con.execute(f"DESCRIBE {sql[:-1]}, hive_partitioning = false)").fetchall()
    extra = [c for c, _ in columns if c not in {r[0] for r in plain}]
    if extra:
        raise NodeFailure(f"{node['id']}: DuckDB reads the key=value folder{'s' if len(extra) > 1 else ''} in the "
                          f"files' paths as column{'s' if len(extra) > 1 else ''} {', '.join(extra)}, which Spark "
                          "would not: build this source on DuckDB (remove engine: spark)")


def _csv_options(node: dict, con, first: str, params: dict) -> dict:
    from seekrun.kinds.base import sql_literal

    named = ", ".join(f"{k} = {sql_literal(v)}" for k, v in sorted(params.items()) if k in CSV_PARAMS | {"skip"})
    delim, quote, escape, header, skip, datefmt, tsfmt = con.execute(
        f"SELECT Delimiter, Quote, Escape, HasHeader, SkipRows, DateFormat, TimestampFormat FROM "
        f"sniff_csv({sql_literal(first)}{', ' + named if named else ''})").fetchone()
    if skip:
        raise NodeFailure(f"{node['id']}: DuckDB skips {skip} line(s) before this CSV's header, which Spark's "
                          "reader cannot: build this source on DuckDB (remove engine: spark)")
    quote = "" if quote == "(empty)" else quote
    escape = "" if escape == "(empty)" else escape
    options = {"sep": delim, "header": str(bool(header)).lower(), "mode": "FAILFAST", "quote": quote or "\u0000",
               "escape": escape or quote or "\\", "nullValue": "", "ignoreLeadingWhiteSpace": "false",
               "ignoreTrailingWhiteSpace": "false",
               # each file's header checked against DuckDB's columns (DuckDB matches files' columns by
               # name, Spark by position: a file whose header differs fails, never reads shifted)
               "enforceSchema": "false" if header else "true"}
    for key, value in (("dateFormat", datefmt), ("timestampFormat", tsfmt), ("timestampNTZFormat", tsfmt)):
        if value:
            options[key] = java_pattern(node, value)
    return options


def java_pattern(node: dict, strftime: str) -> str:
    """A DuckDB date format (strftime's tokens) as Spark's (Java's) pattern."""
    out, at = [], 0
    for m in _TOKEN.finditer(strftime):
        if m.start() > at:
            out.append(_literal(strftime[at:m.start()]))
        token = m.group(1)
        if token == "%":
            out.append("%")
        elif token in _STRFTIME:
            out.append(_STRFTIME[token])
        else:
            raise NodeFailure(f"{node['id']}: date format {strftime!r}: Spark reads no %{token}: build this source "
                              "on DuckDB (remove engine: spark)")
        at = m.end()
    if at < len(strftime):
        out.append(_literal(strftime[at:]))
    return "".join(out)


def _literal(text: str) -> str:
    return "".join(c if not c.isalpha() else f"'{c}'" for c in text.replace("'", "''"))


def _is_array(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"[")
