"""Database sources: ``source: postgresql`` (and the other database kinds Seeknal lists).

A PostgreSQL source reads a table (``table: schema.name``, the schema defaulting to the
connection's ``schema``, else ``public``) or a query (``params.query``, one SELECT or WITH),
through psycopg 3 into Arrow batches and from there into its DuckDB table (the ``postgres``
extra: ``pip install 'seekrun[postgres]'``).

The connection, lowest precedence first: the profile's ``source_defaults.postgresql``, the
named profile connection (``params.connection`` as in Seeknal, or ``connection: <name>``),
an inline ``connection: {host: ..., ...}`` mapping, then the connection keys in ``params``.
Profiles are found by seekrun/profiles.py.  Secrets go through ``{{ env_var('X') }}`` in the
node, or ``${X}`` / ``{{ env_var('X') }}`` in the profile: they are filled in only here, at run
time, and registered for redaction (seekrun/profiles.py says what else is); every message of
check() and build() goes through redaction.

A database cannot be stat'ed, so the node is re-read on every run (the record's ``reread``
flag, which the rebuilder honours without knowing why); the hash of what was read is its
output hash, so unchanged data leaves what is built from it cached.

The other database kinds parse, and are reported "not executable by seekrun".
"""
from __future__ import annotations

import re
from pathlib import Path

from seekrun.engine.base import BadInput, BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config

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
        return  # the user's own function reads the database (seekrun/engine/python_node.py)
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
def connection_config(node: dict, root: Path, fill=lambda text: text) -> tuple[dict, str]:
    """(libpq keyword arguments, the schema for a bare table name). ``fill`` puts the node's
    env_var() values in. Raises BadInput for an unusable connection (missing profile...)."""
    from seekrun import profiles

    cfg = build_config(node)
    fmt = cfg.get("source")
    params = dict(cfg.get("params") or {})
    conn = cfg.get("connection")
    if isinstance(params.get("connection"), str):
        params["connection"] = fill(params["connection"])
    if isinstance(conn, str):
        conn = fill(conn)
    try:
        layers: list[dict] = []
        defaults = profiles.source_defaults(root, fmt)
        name = params.get("connection") or (conn if isinstance(conn, str) else None) or defaults.get("connection")
        layers.append({k: v for k, v in defaults.items() if k != "connection"})
        if name:
            profile = profiles.connection(root, str(name))
            written = str(profile.get("type", "postgresql"))
            kind = written.lower()
            if profiles.ALIASES.get(kind, kind) != "postgresql":  # as written: it is what redaction knows
                raise BadInput(f"connection '{name}' is of type '{written}', not postgresql")
            layers.append(profile)
        # Seeknal fills ${VAR} / $VAR in a node's own connection values too
        for inline, label in ((conn, "connection"), (params, "params")):
            if isinstance(inline, dict):
                layers.append(profiles.resolve({k: v for k, v in inline.items() if k in CONNECTION_KEYS
                                                or k == "schema"}, f"{node['file']}: {node['id']} {label}", fill))
    except profiles.ProfileError as exc:
        raise BadInput(str(exc)) from None
    out: dict = dict(DEFAULTS)
    schema = "public"
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if key in CONNECTION_KEYS:
                out[CONNECTION_KEYS[key]] = value
            elif key == "schema":
                schema = str(value)
    if out.get("password"):
        profiles.register_value(str(out["password"]))
    return {k: str(v) for k, v in out.items()}, schema


def where(conninfo: dict) -> str:
    return f"PostgreSQL at {conninfo.get('host')}:{conninfo.get('port')}/{conninfo.get('dbname')}"


def read_plan(node: dict, root: Path, fill=lambda text: text, sql_fill=lambda text: text
              ) -> tuple[dict, str | None, tuple | None]:
    """(libpq arguments, the query (env_var() values in as SQL data) or None, (schema, table)
    for a table or None)."""
    conninfo, schema = connection_config(node, root, fill)
    cfg = build_config(node)
    query = (cfg.get("params") or {}).get("query")
    if query is not None:
        return conninfo, sql_fill(query), None
    parts = str(cfg.get("table")).split(".")
    return conninfo, None, (parts[0], parts[1]) if len(parts) == 2 else (schema, parts[0])


def _driver():
    try:
        from seekrun.engine import pg_read
    except ImportError as exc:
        missing = getattr(exc, "name", None) or "psycopg"
        raise BadInput(f"reading PostgreSQL needs the '{missing}' package: pip install 'seekrun[postgres]'") from None
    return pg_read


def _refuse_other(node: dict) -> None:
    fmt = build_config(node).get("source")
    if fmt in NOT_EXECUTABLE:  # reported at parse; a run skips the node before it gets here
        raise UnsupportedNode(f"{node['id']}: not executable by seekrun: {NOT_EXECUTABLE[fmt]}")


def check(node: dict, ctx: BuildContext) -> None:
    """Before anything runs: the driver is there, the connection resolves and connects, and the
    table or query exists (described, not read). Every message is redacted (the connection's
    secrets: a ${VAR} value may show in any of them)."""
    try:
        _check(node, ctx)
    except UnsupportedNode as exc:
        raise UnsupportedNode(ctx.redact(str(exc))) from None
    except (BadInput, NodeFailure) as exc:  # NodeFailure: an env_var() that is not set
        raise BadInput(ctx.redact(str(exc))) from None


def _check(node: dict, ctx: BuildContext) -> None:
    _refuse_other(node)
    pg_read = _driver()
    conninfo, query, table = read_plan(node, ctx.root, ctx.value, ctx.sql)
    try:
        pg_read.describe(conninfo, query, table)
    except pg_read.ReadError as exc:
        raise BadInput(str(exc)) from None


def build(node: dict, ctx: BuildContext) -> BuildResult:
    try:
        _refuse_other(node)
        pg_read = _driver()
        conninfo, query, table = read_plan(node, ctx.root, ctx.value, ctx.sql)
    except UnsupportedNode as exc:
        raise UnsupportedNode(ctx.redact(str(exc))) from None
    except (BadInput, NodeFailure) as exc:
        raise NodeFailure(ctx.redact(str(exc))) from None
    try:
        rows, digest = pg_read.load(conninfo, query, table, ctx)
    except pg_read.ReadError as exc:
        ctx.fail(str(exc))
    except NodeFailure as exc:  # ctx.execute's own are redacted already: once more costs nothing
        raise NodeFailure(ctx.redact(str(exc))) from None
    return BuildResult(rows, data_hash=digest)
