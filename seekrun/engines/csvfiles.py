"""Strict CSV loading: a ragged file fails its node with the line number, never a guess.

DuckDB's dialect sniffer, given a file whose rows do not all have the header's number of
fields, settles for whatever dialect fits best: one VARCHAR column holding whole lines, or
only the rows after the last odd one.  So seekrun decides the delimiter itself (from the
header line, unless the node's params give one), asks DuckDB to read with the header and
strict rows, checks the table has the header's columns, and when DuckDB cannot read the
file that way, reads it once more as plain text columns to name the first bad line.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

CANDIDATES = ",;\t|"
DELIM_KEYS = ("delim", "sep", "delimiter")


def given_delimiter(params: dict):
    """The delimiter the node's params give (under any of its names), or None."""
    return next((params[k] for k in DELIM_KEYS if params.get(k) is not None), None)

_LINE_ERROR = re.compile(r"CSV Error on Line: (\d+)\s*\n\s*Original Line: (.*?)\n\s*Expected Number of Columns: "
                         r"(\d+) Found: (\d+)", re.S)


def head_lines(path: Path, params: dict | None = None, n: int = 3) -> list[str]:
    """The first n lines that DuckDB reads as header and rows: after the node's `skip` lines,
    without blank lines and lines starting with its `comment` character."""
    params = params or {}
    skip = params.get("skip") if isinstance(params.get("skip"), int) and not isinstance(params.get("skip"), bool) else 0
    comment = params.get("comment") if isinstance(params.get("comment"), str) and params.get("comment") else None
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    lines = head.decode("utf-8-sig", "replace").splitlines()[max(0, skip):]
    return [ln for ln in lines if ln.strip() and not (comment and ln.lstrip().startswith(comment))][:n]


EXTRA_COLUMNS = ("filename", "hive_partitioning", "union_by_name", "file_row_number")  # params that add columns


def delimiter(lines: list[str]) -> str:
    """The candidate that splits the header into the most fields (and, when there is a first
    row, as many as the header): ties go to ','."""
    if not lines:
        return ","

    def fields(line: str, d: str) -> int:
        return len(next(csv.reader(io.StringIO(line), delimiter=d), []))

    def score(d: str):
        n = fields(lines[0], d)
        agrees = len(lines) < 2 or fields(lines[1], d) == n
        return (agrees and n > 1, n, d == ",")

    return max(CANDIDATES, key=score)


def header_fields(lines: list[str], delim: str) -> list[str]:
    return next(csv.reader(io.StringIO(lines[0] if lines else ""), delimiter=delim), [])


def strict_params(params: dict, first_file: Path) -> tuple[dict, int | None]:
    """The reader params with seekrun's strict defaults added (the node's own win), and the
    number of columns the file's header has (None without a header)."""
    out = dict(params)
    lines = head_lines(first_file, params)
    delim = given_delimiter(params)
    if delim is None:
        delim = delimiter(lines)
        out["delim"] = delim
    delim = str(delim)
    header = params.get("header", True)
    out.setdefault("header", True)
    out.setdefault("skip", 0)
    out.setdefault("strict_mode", True)
    out.setdefault("null_padding", False)
    out.setdefault("ignore_errors", False)
    width = len(header_fields(lines, delim)) if lines and len(delim) == 1 else None
    return out, (width if header is not False else None)


def explain(con, files: list[tuple[str, str]], params: dict, width: int | None, literal) -> str | None:
    """Read the files again with every column as text and strict rows, to name the first bad
    line: "line 5 has 2 fields where the header has 3: '4,3'"; None if that read passes."""
    if not width:
        return None
    given = given_delimiter(params)
    delim = "," if given is None else str(given)
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width)) + "}"
    for path, rel in files:
        try:
            con.execute(f"SELECT count(*) FROM read_csv({literal(path)}, auto_detect = false, "
                        f"delim = {literal(delim)}, header = {literal(bool(params.get('header', True)))}, "
                        f"skip = {int(params.get('skip') or 0)}, columns = {columns}, strict_mode = true, "
                        "null_padding = false)").fetchall()
        except Exception as exc:  # duckdb.Error: the strict read names the line
            m = _LINE_ERROR.search(str(exc))
            if m:
                line, text, want, found = m.groups()
                shown = text if len(text) <= 80 else text[:77] + "..."
                return f"line {line} of {rel} has {found} field(s) where the header has {want}: {shown!r}"
            return str(exc).strip().splitlines()[0]
    return None
