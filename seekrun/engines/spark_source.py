"""A file source on Spark: Spark reads the files, and DuckDB's reading of them is the contract.

- DuckDB says what the table is: its columns and their types come from DESCRIBE of the very
  reader query a DuckDB build runs (its sniffer, on the files' first rows), and for CSV the
  dialect (sniff_csv: delimiter, quote, header, date and timestamp formats).
- Spark then reads every row with that schema, and fails on one that does not fit it
  (``mode: FAILFAST``) where DuckDB's strict reader fails too; a CSV failure is explained by
  naming the first bad line, as on DuckDB.
- Parquet is read as it is (its types are in the file). JSON is read with DuckDB's schema.
- Reader params with no Spark equivalent are refused, naming them: build such a source on DuckDB.
  A quoted field holding a line break is read only with ``params: {multiline: true}`` on Spark
  (Spark cannot split such a file between tasks).
"""
from __future__ import annotations

import re

from seekrun.kinds.base import BuildResult, NodeFailure, build_config

CSV_PARAMS = {"header", "delim", "sep", "delimiter", "quote", "escape", "nullstr", "dateformat", "timestampformat",
              "multiline"}
JSON_PARAMS = {"format", "multiline"}
_STRFTIME = {"Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
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
    multiline = bool(given.pop("multiline", False))
    if multiline:  # (not a DuckDB param)
        node = {**node, "built_config": {**cfg, "params": {k: v for k, v in (cfg.get("params") or {}).items()
                                                          if str(k).lower() != "multiline"}}}
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
    if width is not None:
        from seekrun.kinds.source import width_problem

        problem = width_problem(node, len(columns), width, params)
        if problem:
            raise NodeFailure(problem)
    reader = ctx.spark.read
    if fmt == "parquet":
        frame = reader.parquet(*files)
    elif fmt == "csv":
        frame = reader.options(**_csv_options(node, con, files[0], params, multiline)) \
            .schema(_schema(node, columns)).csv(files)
    else:
        array = params.get("format") == "array" or (params.get("format") != "newline_delimited" and _is_array(files[0]))
        frame = reader.options(mode="FAILFAST", multiLine=str(array or multiline).lower()) \
            .schema(_schema(node, columns)).json(files)
    try:
        rows = ctx._save(frame)
    except NodeFailure as exc:
        if fmt == "csv":
            from seekrun.kinds.source import csv_failure

            raise NodeFailure(ctx.redact(csv_failure(node, con, ctx.root, params, width, exc))) from None
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
                              "source on DuckDB (remove engine: spark), or read the column as text "
                              "(params: {types: {...: VARCHAR}})")
        spark = "TIMESTAMP_NTZ" if dtype.this == exp.DataType.Type.TIMESTAMP else dtype.sql(dialect="spark")
        out.append("`" + name.replace("`", "``") + "` " + spark)
    return ", ".join(out)


def _csv_options(node: dict, con, first: str, params: dict, multiline: bool) -> dict:
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
               "escape": escape or quote or "\\", "nullValue": str(params.get("nullstr") or ""),
               "multiLine": str(multiline).lower(), "ignoreLeadingWhiteSpace": "false",
               "ignoreTrailingWhiteSpace": "false", "enforceSchema": "true"}
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
