"""A database source's spec, at parse time (``source: postgresql`` and the other database kinds
Seeknal lists): its connection keys and query checked, the node flagged ``reread``.  Reading the
database is seekrun/engines/db_sources.py's.
"""
from __future__ import annotations

import re

POSTGRES_FORMATS = frozenset({"postgresql", "postgres"})
NOT_EXECUTABLE = {
    "sqlite": "sqlite sources need DuckDB's sqlite extension, which this DuckDB cannot load",
    "iceberg": "iceberg sources need DuckDB's iceberg extension and a catalog, which this seekrun does not have",
    "hive": "hive sources are not supported by seekrun yet",
    "starrocks": "starrocks sources are not supported by seekrun yet",
    "bigquery": "bigquery sources are not supported by seekrun yet",
    "snowflake": "snowflake sources are not supported by seekrun yet",
    "redshift": "redshift sources are not supported by seekrun yet",
}
DATABASE_FORMATS = POSTGRES_FORMATS | frozenset(NOT_EXECUTABLE)
REREAD = "database source"  # the plan says "re-read (database source)"

# connection keys (in params, an inline connection, or a profile) -> libpq's names
CONNECTION_KEYS = {"host": "host", "port": "port", "database": "dbname", "dbname": "dbname", "user": "user",
                   "password": "password", "sslmode": "sslmode", "connect_timeout": "connect_timeout",
                   "keepalives": "keepalives", "keepalives_idle": "keepalives_idle",
                   "keepalives_interval": "keepalives_interval", "keepalives_count": "keepalives_count",
                   "application_name": "application_name"}
OTHER_PARAMS = {"connection", "schema", "query", "type"}
DEFAULTS = {"host": "localhost", "port": 5432, "dbname": "postgres", "user": "postgres", "sslmode": "prefer",
            "connect_timeout": 10}  # Seeknal's defaults
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*([A-Za-z]+)", re.S)


def is_database(fmt) -> bool:
    return fmt in DATABASE_FORMATS


def prepare(rec: dict, built: dict, pc) -> None:
    fmt = built.get("source")
    if rec.get("python"):
        return  # the user's own function reads the database (seekrun/engines/python_node.py)
    if fmt in NOT_EXECUTABLE:
        pc.not_executable = NOT_EXECUTABLE[fmt]
        return
    params = built.get("params") or {}
    if not isinstance(params, dict):
        pc.error(("params",), "params must be a mapping (connection keys, query)")
        return
    known = set(CONNECTION_KEYS) | OTHER_PARAMS
    for key in params:
        if key not in known:
            from seekrun.errors import suggest

            pc.error(("params", key), f"'{key}' is not a {fmt} source param{suggest(str(key), known)}: use "
                                      f"{', '.join(sorted(known))}")
    conn = built.get("connection")
    if isinstance(conn, dict):
        for key in conn:
            if key not in CONNECTION_KEYS and key not in ("schema", "type"):
                pc.error(("connection", key), f"'{key}' is not a connection key: use "
                                              f"{', '.join(sorted(CONNECTION_KEYS))} or schema")
    elif conn is not None and not isinstance(conn, str):
        pc.error(("connection",), "connection must be the name of a connection in profiles.yml, or a mapping "
                                  "of host, port, database, user, password")
    if params.get("connection") is not None and not isinstance(params.get("connection"), str):
        pc.error(("params", "connection"), "params.connection must be the name of a connection in profiles.yml")
    query, table = params.get("query"), built.get("table")
    if query is not None:
        word = _FIRST_WORD.match(query) if isinstance(query, str) else None
        if word is None or word.group(1).upper() not in ("SELECT", "WITH"):
            pc.error(("params", "query"), "params.query must be one read-only SELECT (or WITH ... SELECT) "
                                          "run on the database")
    elif not isinstance(table, str) or not table.strip():
        pc.error(("table",), f"a {fmt} source needs 'table: <schema>.<table>' (or params.query: SELECT ...)")
    elif len(table.split(".")) > 2:
        pc.error(("table",), f"table '{table}' must be <table> or <schema>.<table>")
    rec["reread"] = REREAD


# ---- run time --------------------------------------------------------------------------
