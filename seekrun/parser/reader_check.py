"""A source's reader params checked against DuckDB's own list, at parse time.

DuckDB lists every named parameter of read_csv / read_parquet / read_json with its type
(``duckdb_functions()``).  Each param must be one of them (a typo gets a suggestion), its
value must fit the type (a list where text is expected is refused here, not at run time),
delimiters must be 1 to 4 bytes, and a type name (``types:``, ``columns:``...) must be one
DuckDB knows.  Values holding env_var() placeholders are checked at run time instead.
"""
from __future__ import annotations

import re

from seekrun.errors import Diagnostic, suggest

READERS = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json", "jsonl": "read_json"}
DELIMITERS = ("delim", "sep", "separator", "delimiter")
SINGLE_CHARS = ("quote", "escape")
TYPE_PARAMS = ("types", "dtypes", "column_types", "columns")
_TYPE_TEXT = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ,()\[\]]*$")
_INTEGER = {"BIGINT", "UBIGINT", "INTEGER", "UINTEGER", "SMALLINT", "USMALLINT", "TINYINT", "UTINYINT"}


def _params_of(con, reader: str, cache: dict) -> dict[str, str]:
    if reader not in cache:
        rows = con.execute("SELECT parameters, parameter_types FROM duckdb_functions() WHERE function_name = ?",
                           [reader]).fetchall()
        found: dict[str, str] = {}
        for names, types in rows:
            for name, typ in zip(names, types):
                if name not in ("path", "paths"):
                    found.setdefault(name.lower(), str(typ))
        cache[reader] = found
    return cache[reader]


def _fits(value, typ: str) -> bool:
    if typ in ("ANY", "VARIANT"):
        return True
    if typ == "BOOLEAN":
        return isinstance(value, bool)
    if typ in _INTEGER:
        return isinstance(value, int) and not isinstance(value, bool) and (value >= 0 or not typ.startswith("U"))
    if typ in ("DOUBLE", "FLOAT"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ == "VARCHAR":
        return isinstance(value, str)
    if typ.endswith("[]"):
        return isinstance(value, list) and all(_fits(v, typ[:-2]) for v in value)
    return True


def _describe(typ: str) -> str:
    return {"BOOLEAN": "true or false", "VARCHAR": "text", "DOUBLE": "a number"}.get(
        typ, "a whole number" if typ in _INTEGER else "a list of text" if typ == "VARCHAR[]" else typ)


def _type_names(value) -> list[str]:
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, str)]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def check(con, rel: str, rec: dict, spec: dict, cache: dict, errors: list[Diagnostic]) -> None:
    reader = READERS.get(spec.get("format"))
    params = spec.get("params") or {}
    if reader is None or not isinstance(params, dict):
        return
    known = _params_of(con, reader, cache)
    lines = spec.get("lines") or {}
    nid = rec["id"]

    def err(key, message):
        errors.append(Diagnostic(rel, lines.get(key, rec.get("line")), f"{nid}: reader param '{key}': {message}"))

    for key, value in params.items():
        typ = known.get(str(key).lower())
        if typ is None:
            err(key, f"{reader}() has no such option{suggest(str(key).lower(), known)}: see DuckDB's {reader} options")
            continue
        if isinstance(value, str) and "{{" in value:
            continue  # an env_var() value: checked when it is known, at run time
        if value is None:
            continue
        if not _fits(value, typ):
            err(key, f"must be {_describe(typ)}, not {value!r}")
            continue
        if key in DELIMITERS and not 1 <= len(value.encode("utf-8")) <= 4:
            err(key, "a delimiter is 1 to 4 bytes, e.g. ',' or '\\t'")
        elif key in SINGLE_CHARS and len(value.encode("utf-8")) > 1:
            err(key, "must be one character (or empty)")
        elif key in TYPE_PARAMS:
            for name in _type_names(value):
                if "{{" in name:
                    continue
                why = type_problem(con, name)
                if why:
                    err(key, why)


def type_problem(con, name: str) -> str | None:
    """Why DuckDB does not know the type name, or None."""
    if not _TYPE_TEXT.match(name.strip()):
        return f"'{name}' is not a type name (e.g. INTEGER, DOUBLE, VARCHAR, DATE)"
    try:
        con.sqltype(name.strip())  # DuckDB's own type parser: a type name and nothing else
    except Exception as exc:  # duckdb.Error: not a type
        first = " ".join(str(exc).split())[:160]
        return f"'{name}' is not a type DuckDB knows ({first}): use e.g. INTEGER, DOUBLE, VARCHAR, DATE"
    return None


def check_types(con, rel: str, rec: dict, checks: list[dict], errors: list[Diagnostic]) -> None:
    """Type names a node casts to (a feature group's dtypes)."""
    for chk in checks:
        why = type_problem(con, chk["type"])
        if why:
            errors.append(Diagnostic(rel, chk.get("line") or rec.get("line"), f"{rec['id']}: {chk['what']}: {why}"))
