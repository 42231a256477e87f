"""Data diff for `seekrun diff --data`: how the tables of this build differ from another build's.

Both database files are attached READ_ONLY to one in-memory DuckDB connection and compared in
SQL (hash joins, EXCEPT ALL): only counts, column lists and at most `samples` rows per category
come back to Python. Nothing is ever written to either file.
"""
from __future__ import annotations

import math
from pathlib import Path

import duckdb

from seekrun.errors import Diagnostic, ProjectError

NEW, OLD = "seekrun_new", "seekrun_old"  # catalog aliases: always 3-part names, never a schema
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
            "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL")


def q(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def plain(value):
    """A sample value as JSON can hold it: None, bool, int, finite float and str stay; lists and
    structs are converted inside; anything else (dates, decimals, UUIDs, NaN) becomes str()."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def _empty(key: list[str] | None) -> dict:
    return {"rows_before": None, "rows_after": None, "missing": None, "columns_added": [],
            "columns_removed": [], "columns_retyped": [], "key": key, "rows_added": None,
            "rows_removed": None, "rows_changed": None,
            "samples": {"added": [], "removed": [], "changed": []}, "error": None}


def data_diff(new_db: Path, old_db: Path, tables: list[tuple[str, list[str] | None]],
              samples: int = 5) -> dict[str, dict]:
    """{node id: its data diff} for each (node id, key columns or None) in tables; new_db is this
    build's database, old_db the state's."""
    con = duckdb.connect(":memory:")
    try:
        for path, alias in ((new_db, NEW), (old_db, OLD)):
            try:
                literal = "'" + str(path).replace("'", "''") + "'"
                con.execute(f"ATTACH {literal} AS {alias} (READ_ONLY)")
            except duckdb.Error as exc:
                raise ProjectError([Diagnostic(str(path), None,
                                               f"cannot open {path}: {_line(exc)}")]) from None
        out = {}
        for node_id, key in tables:
            out[node_id] = _diff_one(con, node_id, list(key) if key else None, max(0, samples))
        return out
    finally:
        con.close()


def _columns(con, catalog: str, schema: str, table: str) -> list[tuple[str, str]]:
    """[(name, type)] in the table's (or view's) column order; [] when it is absent."""
    return con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? "
        "AND lower(schema_name) = lower(?) AND lower(table_name) = lower(?) ORDER BY column_index",
        [catalog, schema, table]).fetchall()


def _resolve(names: list[str], columns: list[str]) -> list[str | None]:
    """Each key name as the table spells it (exact, else case-insensitive), or None."""
    lower = {c.lower(): c for c in columns}
    return [n if n in columns else lower.get(n.lower()) for n in names]


def _comparable(expr: str, before: str, after: str) -> str:
    """expr as compared across sides: as itself, or as text when the two types are not both
    numeric (INTEGER 1 and DOUBLE 1.0 are the same value; DATE and VARCHAR are compared as text)."""
    if before == after or (before.startswith(_NUMERIC) and after.startswith(_NUMERIC)):
        return expr
    return f"CAST({expr} AS VARCHAR)"


def _diff_one(con, node_id: str, key: list[str] | None, samples: int) -> dict:
    result = _empty(key)
    schema, _, name = node_id.partition(".")
    new_t = f"{NEW}.{q(schema)}.{q(name)}"
    old_t = f"{OLD}.{q(schema)}.{q(name)}"
    new_cols = _columns(con, NEW, schema, name)
    old_cols = _columns(con, OLD, schema, name)
    try:
        if new_cols:
            result["rows_after"] = con.execute(f"SELECT count(*) FROM {new_t}").fetchone()[0]
        if old_cols:
            result["rows_before"] = con.execute(f"SELECT count(*) FROM {old_t}").fetchone()[0]
    except duckdb.Error as exc:
        result["error"] = f"cannot count the rows of {node_id}: {_line(exc)}"
        return result
    if not new_cols or not old_cols:
        result["missing"] = "both" if not new_cols and not old_cols else (
            "after" if not new_cols else "before")
        if result["missing"] == "both":
            result["error"] = f"{node_id} is in neither database"
        return result

    new_types, old_types = dict(new_cols), dict(old_cols)
    result["columns_added"] = [{"name": c, "type": t} for c, t in new_cols if c not in old_types]
    result["columns_removed"] = [{"name": c, "type": t} for c, t in old_cols if c not in new_types]
    result["columns_retyped"] = [{"name": c, "before": old_types[c], "after": t}
                                 for c, t in new_cols if c in old_types and old_types[c] != t]
    common = [c for c, _ in new_cols if c in old_types]
    try:
        if key is None:
            _no_key(con, result, node_id, new_t, old_t, common, new_types, old_types, samples)
        else:
            _keyed(con, result, node_id, new_t, old_t, key, common, new_types, old_types, samples)
    except duckdb.Error as exc:
        result["error"] = f"cannot compare the rows of {node_id}: {_line(exc)}"
    return result


def _line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _rows(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, map(plain, row))) for row in cursor.fetchall()]


def _no_key(con, result, node_id, new_t, old_t, common, new_types, old_types, samples) -> None:
    if not common:
        result["error"] = (f"{node_id} has no column in common with the state's: "
                           "its rows cannot be compared")
        return
    new_sel = ", ".join(f"{_comparable(q(c), old_types[c], new_types[c])} AS {q(c)}"
                        for c in common)
    old_sel = ", ".join(f"{_comparable(q(c), old_types[c], new_types[c])} AS {q(c)}"
                        for c in common)
    added = f"SELECT {new_sel} FROM {new_t} EXCEPT ALL SELECT {old_sel} FROM {old_t}"
    removed = f"SELECT {old_sel} FROM {old_t} EXCEPT ALL SELECT {new_sel} FROM {new_t}"
    for label, query in (("added", added), ("removed", removed)):
        result[f"rows_{label}"] = con.execute(f"SELECT count(*) FROM ({query})").fetchone()[0]
        if samples and result[f"rows_{label}"]:
            result["samples"][label] = _rows(con.execute(
                f"SELECT * FROM ({query}) ORDER BY ALL LIMIT {samples}"))


def _keyed(con, result, node_id, new_t, old_t, key, common, new_types, old_types,
           samples) -> None:
    new_key, old_key = _resolve(key, list(new_types)), _resolve(key, list(old_types))
    for side, resolved in (("new table", new_key), ("state's table", old_key)):
        absent = [k for k, r in zip(key, resolved) if r is None]
        if absent:
            what = (f"key column {absent[0]} is" if len(absent) == 1
                    else f"key columns {', '.join(absent)} are")
            result["error"] = f"{what} not in the {side} {node_id}: pass --key with its columns"
            return
    shown = ", ".join(key)
    for side, table, cols in (("new", new_t, new_key), ("state's", old_t, old_key)):
        group = ", ".join(q(c) for c in cols)
        dups = con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} GROUP BY {group} "
                           "HAVING count(*) > 1)").fetchone()[0]
        if dups:
            result["error"] = (f"key {shown} is not unique in the {side} {node_id} ({dups} "
                               f"duplicate key{'s' if dups != 1 else ''}): pass --key with "
                               "columns that identify a row")
            return
    on = " AND ".join(f"{_comparable('n.' + q(a), old_types[b], new_types[a])} IS NOT DISTINCT FROM "
                      f"{_comparable('o.' + q(b), old_types[b], new_types[a])}"
                      for a, b in zip(new_key, old_key))
    order_n = ", ".join(f"n.{q(c)}" for c in new_key)
    order_o = ", ".join(f"o.{q(c)}" for c in old_key)
    keyset = {c.lower() for c in new_key}
    values = [c for c in common if c.lower() not in keyset]
    diffs = [f"{_comparable('n.' + q(c), old_types[c], new_types[c])} IS DISTINCT FROM "
             f"{_comparable('o.' + q(c), old_types[c], new_types[c])}" for c in values]
    where = " OR ".join(f"({d})" for d in diffs) or "false"

    added = f"FROM {new_t} n ANTI JOIN {old_t} o ON {on}"
    removed = f"FROM {old_t} o ANTI JOIN {new_t} n ON {on}"
    changed = f"FROM {new_t} n JOIN {old_t} o ON {on} WHERE {where}"
    result["rows_added"] = con.execute(f"SELECT count(*) {added}").fetchone()[0]
    result["rows_removed"] = con.execute(f"SELECT count(*) {removed}").fetchone()[0]
    result["rows_changed"] = con.execute(f"SELECT count(*) {changed}").fetchone()[0]
    if not samples:
        return
    if result["rows_added"]:
        result["samples"]["added"] = _rows(con.execute(
            f"SELECT n.* {added} ORDER BY {order_n} LIMIT {samples}"))
    if result["rows_removed"]:
        result["samples"]["removed"] = _rows(con.execute(
            f"SELECT o.* {removed} ORDER BY {order_o} LIMIT {samples}"))
    if result["rows_changed"]:
        picks = [f"n.{q(c)}" for c in new_key]
        for c, d in zip(values, diffs):
            picks += [f"({d})", f"o.{q(c)}", f"n.{q(c)}"]
        rows = con.execute(f"SELECT {', '.join(picks)} {changed} ORDER BY {order_n} "
                           f"LIMIT {samples}").fetchall()
        n = len(new_key)
        for row in rows:
            entry = {"key": {k: plain(v) for k, v in zip(new_key, row[:n])}, "before": {},
                     "after": {}}
            for i, c in enumerate(values):
                differs, before, after = row[n + 3 * i: n + 3 * i + 3]
                if differs:
                    entry["before"][c] = plain(before)
                    entry["after"][c] = plain(after)
            result["samples"]["changed"].append(entry)
