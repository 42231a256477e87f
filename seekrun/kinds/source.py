"""source: data files (csv, parquet, json, jsonl) loaded as a table, with reader params;
database sources (postgresql, ...) are in seekrun/engines/db_sources.py.

Before a run, each source that will run is checked: a missing or empty file, a CSV
whose header does not match its rows (DuckDB would silently read the header as data)
or a parquet/JSON file DuckDB cannot read is refused with exit 2 before anything runs.
"""
from __future__ import annotations

import csv
import os
import io
import re
from pathlib import Path

from seekrun.kinds import db_source_spec
from seekrun.kinds.base import (BadInput, BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config,
                                 sql_literal)

ENGINE_VERSION = 1
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
READERS = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json", "jsonl": "read_json"}


def prepare(rec: dict, built: dict, pc) -> None:
    """Reader params become named arguments of DuckDB's reader: their names must be plain
    identifiers (values are always passed as quoted literals)."""
    if db_source_spec.is_database(built.get("source")):
        return db_source_spec.prepare(rec, built, pc)
    if built.get("source") not in READERS and not rec.get("python"):  # a format seekrun has no reader for
        pc.not_executable = (f"source format '{built.get('source')}' is not supported yet "
                             f"(supported: {', '.join(sorted(READERS))})")
        return
    if not rec.get("python") and (not isinstance(built.get("table"), str) or not built["table"].strip()):
        pc.error(("table",), f"field 'table': a {built.get('source')} source reads a file: add "
                             "'table: <file path or glob>'")
        return
    if built.get("connection") is not None:
        pc.error(("connection",), f"a {built.get('source')} source reads a file: 'connection' is for database "
                                  "sources (source: postgresql)")
    params = built.get("params") or {}
    if not isinstance(params, dict):
        pc.error(("params",), "params must be a mapping of reader options, e.g. {header: true}")
        return
    bad = False
    for key in params:
        if not isinstance(key, str) or not _PARAM_NAME.match(key):
            pc.error(("params", key), f"reader param '{key}' is not a valid option name: use letters, digits and _")
            bad = True
    if not bad and params:  # checked against DuckDB's own list at parse time (parser/reader_check.py)
        rec["reader_check"] = {"format": built.get("source"), "params": params,
                               "lines": {k: pc.line(("params", k)) for k in params}}


def select_sql(node: dict, root: Path, fill=lambda text: text) -> str:
    """The reader query. ``fill`` puts env_var() values into string params before quoting."""
    return reader_query(node, root, fill)[0]


def read_files(node: dict) -> list[str]:
    """The files it reads: those found at parse, and those a task writes during the run."""
    fed = node.get("fed_files")
    return sorted({*node.get("data_files", ()), *fed}) if fed else list(node.get("data_files") or [])


def reader_query(node: dict, root: Path, fill=lambda text: text) -> tuple[str, dict, int | None]:
    """(the reader query, the params it uses, the CSV header's number of fields or None).
    CSV is read strictly (see seekrun/engines/csvfiles.py)."""
    cfg = build_config(node)
    fmt = cfg.get("source")
    reader = READERS.get(fmt)
    if reader is None:
        raise UnsupportedNode(f"{node['id']}: source format '{fmt}' is not supported yet "
                              f"(supported: {', '.join(sorted(READERS))})")
    files = [str(root / f) for f in read_files(node)]
    if not files:
        raise NodeFailure(f"{node['id']}: source data file '{cfg.get('table')}' not found")
    for f in node.get("fed_files") or ():  # written by a task during this run
        if not os.path.isfile(root / f):
            raise NodeFailure(f"{node['id']}: source data file '{f}' not found (the task that writes it did "
                              "not leave it there)")
    from seekrun.parser.templating import map_strings

    # every string, nested ones too (types: {col: ...}, a list of nullstr values)
    params = map_strings(dict(cfg.get("params") or {}), lambda path, text: fill(text))
    if fmt == "jsonl":
        params.setdefault("format", "newline_delimited")
    width = None
    if fmt == "csv":
        from seekrun.engines.csvfiles import strict_params

        try:
            params, width = strict_params(params, Path(files[0]))
        except OSError as exc:
            raise NodeFailure(f"{node['id']}: cannot read {read_files(node)[0]}: {exc.strerror or exc}") from None
    args = [sql_literal(files)] + [f"{k} = {sql_literal(v)}" for k, v in sorted(params.items())]
    return f"SELECT * FROM {reader}({', '.join(args)})", params, width


def _check_csv(path: Path, rel: str, params: dict) -> None:
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    if not head.strip():
        raise BadInput(f"source data file '{rel}' is empty: add data or remove the source")
    if params.get("header") is False or params.get("auto_detect") is False:
        return
    from seekrun.engines.csvfiles import delimiter, given_delimiter, head_lines

    lines = head_lines(path, params)
    if len(lines) < 2:
        return  # a header alone (no rows) is a valid, empty table
    delim = given_delimiter(params) or delimiter(lines)
    if not isinstance(delim, str) or len(delim) != 1:
        return  # a multi-byte delimiter: DuckDB checks it as it reads
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delim))
    header, first = rows[0], rows[1]
    if len(header) != len(first):
        raise BadInput(f"bad CSV header in '{rel}': the header has {len(header)} column(s) but row 2 has "
                       f"{len(first)}: fix the header (or set params: {{header: false}})")
    names = [h.strip() for h in header]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise BadInput(f"bad CSV header in '{rel}': duplicate column name(s) {', '.join(dupes)}: "
                       "give every column a distinct name")
    if any(not n for n in names):
        raise BadInput(f"bad CSV header in '{rel}': a column has no name: name every column")


def check(node: dict, ctx: BuildContext) -> str | None:
    """Refuse unusable data before anything runs; return the SELECT for a syntax check."""
    cfg = build_config(node)
    from seekrun.engines import db_sources

    if db_source_spec.is_database(cfg.get("source")):
        return db_sources.check(node, ctx)
    if not node.get("data_files") and cfg.get("source") in READERS:
        raise BadInput(f"source data file '{cfg.get('table')}' not found: create it or fix 'table'")
    sql = select_sql(node, ctx.root, ctx.value)
    params = cfg.get("params") or {}
    for rel in node.get("data_files") or []:
        path = ctx.root / rel
        if cfg.get("source") == "csv":
            _check_csv(path, rel, params)
        elif path.stat().st_size == 0:
            raise BadInput(f"source data file '{rel}' is empty: add data or remove the source")
    if cfg.get("source") != "csv" and ctx.cur is not None:
        try:
            ctx.cur.execute(f"DESCRIBE {ctx.sql(sql)}")
        except ctx.duckdb.Error as exc:
            first = ctx.redact(str(exc)).strip().splitlines()[0]
            raise BadInput(f"cannot read source data for {node['id']}: {first}") from None
    return sql


def build(node: dict, ctx: BuildContext) -> BuildResult:
    from seekrun.engines import db_sources

    if db_source_spec.is_database(build_config(node).get("source")):
        return db_sources.build(node, ctx)
    return ctx.read_source(node)


def read_with_duckdb(node: dict, ctx: BuildContext) -> BuildResult:
    """A file source's table, read by DuckDB (strict CSV: see seekrun/engines/csvfiles.py)."""
    sql, params, width = reader_query(node, ctx.root, ctx.value)
    try:
        rows = ctx.materialize(sql)
    except NodeFailure as exc:
        if build_config(node).get("source") != "csv":
            raise
        con = ctx.cur.cursor()  # the build's transaction is aborted: look on a cursor of its own
        try:
            ctx.fail(csv_failure(node, con, ctx.root, params, width, exc))
        finally:
            con.close()
    if width is not None:
        problem = width_problem(node, len(ctx.execute(f"SELECT * FROM {ctx.table} LIMIT 0").description or []),
                                width, params)
        if problem:
            ctx.fail(problem)
    return BuildResult(rows)


def csv_failure(node: dict, con, root: Path, params: dict, width: int | None, exc: Exception) -> str:
    """Why DuckDB could not read the CSV files, naming the first bad line where it can."""
    from seekrun.engines.csvfiles import explain

    why = explain(con, [(str(root / f), f) for f in read_files(node)], params, width, sql_literal)
    return (f"cannot read the CSV data ({why or str(exc).strip().splitlines()[0]}): fix the file, "
            "or give the reader params that match it (delim, header, skip, quote)")


def width_problem(node: dict, got: int, width: int, params: dict) -> str | None:
    from seekrun.engines.csvfiles import EXTRA_COLUMNS

    if got < width or (got > width and not any(params.get(k) for k in EXTRA_COLUMNS)):
        return (f"the CSV header of {read_files(node)[0]} has {width} field(s) but DuckDB read {got} "
                "column(s): fix the file, or give the reader params that match it")
    return None
