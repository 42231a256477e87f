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

from pathlib import Path

from seekrun.kinds.base import BadInput, BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config
from seekrun.kinds.db_source_spec import CONNECTION_KEYS, DEFAULTS, NOT_EXECUTABLE


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
        from seekrun.engines import pg_read
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
