"""Reading PostgreSQL with psycopg 3 into Arrow batches, and from there into DuckDB.

Imported only when a PostgreSQL source is checked or built (ImportError: the ``postgres``
extra is not installed).  Column types follow DuckDB's own postgres scanner: integers, floats,
``numeric(p,s)`` as DECIMAL(p,s) (an unconstrained or wider numeric as DOUBLE), text types as
VARCHAR, date/time types as themselves (timestamptz in UTC), bytea as BLOB, one-dimensional
arrays of those as lists; anything else (json, uuid, inet, enums...) as its text.

The rows are fetched through a server-side cursor in fixed-size batches, in a read-only
transaction, and each batch is appended to the node's table in the build's transaction.  The
content hash is taken over the Arrow schema (column names and types), the row count and the sum
(as a 128-bit integer) of one 64-bit hash per row of the loaded table: independent of the order
the server returns rows in (an UPDATE that changes nothing, a VACUUM FULL), sensitive to the
multiset of rows (a duplicated row adds its hash again, where XOR would cancel it).
"""
from __future__ import annotations

import re
from decimal import Decimal

import psycopg
import pyarrow as pa
import xxhash
from psycopg import sql as pgsql
from psycopg.adapt import Loader
from psycopg.types.string import TextLoader

BATCH_ROWS = 50_000


class ReadError(Exception):
    """Shown to the user as is (after redaction)."""


_SCALARS = {16: pa.bool_(), 20: pa.int64(), 21: pa.int16(), 23: pa.int32(), 26: pa.uint32(),
            700: pa.float32(), 701: pa.float64(), 25: pa.string(), 1043: pa.string(), 1042: pa.string(),
            19: pa.string(), 18: pa.string(), 1082: pa.date32(), 1114: pa.timestamp("us"),
            1184: pa.timestamp("us", tz="UTC"), 1083: pa.time64("us"), 1186: pa.month_day_nano_interval(),
            17: pa.binary()}
_ARRAYS = {1000: 16, 1016: 20, 1005: 21, 1007: 23, 1021: 700, 1022: 701, 1009: 25, 1015: 1043,
           1014: 1042, 1182: 1082, 1115: 1114, 1185: 1184}
_NUMERIC = 1700


def arrow_type(column) -> pa.DataType:
    oid = column.type_code
    if oid == _NUMERIC:
        return _numeric(column.precision, column.scale)
    if oid in _SCALARS:
        return _SCALARS[oid]
    if oid in _ARRAYS:
        return pa.list_(_SCALARS[_ARRAYS[oid]])
    return pa.string()


def _numeric(precision, scale) -> pa.DataType:
    if precision and 0 < precision <= 38:
        return pa.decimal128(precision, scale or 0)
    return pa.float64()


_ISO_INTERVAL = re.compile(r"P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)W)?(?:(-?\d+)D)?"
                           r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?[\d.]+)S)?)?\Z")


class _IntervalLoader(Loader):
    """An interval as (months, days, nanoseconds), as DuckDB keeps it (psycopg's own timedelta
    would turn a month into 30 days). The session's IntervalStyle is iso_8601."""

    def load(self, data):
        text = bytes(data).decode()
        m = _ISO_INTERVAL.match(text)
        if m is None:
            raise psycopg.DataError(f"unexpected interval {text!r}")
        y, mo, w, d, h, mi, sec = m.groups()
        nanos = (int(h or 0) * 3600 + int(mi or 0) * 60) * 10**9 + int(Decimal(sec or 0) * 10**9)
        return pa.MonthDayNano([int(y or 0) * 12 + int(mo or 0), int(w or 0) * 7 + int(d or 0), nanos])


def _text_loaders(conn) -> None:
    """Types with no column type of their own above come back as their text."""
    mapped = set(_SCALARS) | set(_ARRAYS) | {_NUMERIC}
    for info in psycopg.postgres.types:
        for oid in (info.oid, getattr(info, "array_oid", 0)):
            if oid and oid not in mapped:
                conn.adapters.register_loader(oid, TextLoader)
    conn.adapters.register_loader(1186, _IntervalLoader)


def _connect(conninfo: dict):
    from seekrun.engines.db_sources import where

    try:
        conn = psycopg.connect(**conninfo)
    except psycopg.Error as exc:
        raise ReadError(f"cannot connect to {where(conninfo)} as {conninfo.get('user')}: {_first(exc)}: "
                        "check the connection (profiles.yml or the node's params) and that the server runs") from None
    conn.read_only = True
    _text_loaders(conn)
    return conn


def _first(exc: Exception) -> str:
    """The server's (or libpq's) own first line, without the query it quotes."""
    diag = getattr(exc, "diag", None)
    text = getattr(diag, "message_primary", None) or next((ln for ln in str(exc).splitlines() if ln.strip()), "")
    text = " ".join(text.split())
    if text.startswith("connection failed: "):
        text = text[len("connection failed: "):]
    return text[:300] or exc.__class__.__name__


def _statement(query: str | None, table: tuple | None):
    if query is not None:
        return pgsql.SQL(query.strip().rstrip(";").rstrip())  # the user's own SELECT, run read-only
    return pgsql.SQL("SELECT * FROM {}").format(pgsql.Identifier(*table))


def _label(query, table) -> str:
    return "the query (params.query)" if query is not None else f"table {'.'.join(table)}"


def describe(conninfo: dict, query: str | None, table: tuple | None) -> list[tuple[str, str]]:
    """The columns (name, Arrow type) the source will have; ReadError if it cannot be read."""
    with _connect(conninfo) as conn:
        try:
            cur = conn.execute(pgsql.SQL("SELECT * FROM ({}\n) AS q LIMIT 0").format(_statement(query, table)))
        except psycopg.Error as exc:
            raise ReadError(f"cannot read {_label(query, table)} from {_where(conninfo)}: {_first(exc)}") from None
        return [(c.name, str(arrow_type(c))) for c in cur.description or []]


def _where(conninfo: dict) -> str:
    from seekrun.engines.db_sources import where

    return where(conninfo)


def load(conninfo: dict, query: str | None, table: tuple | None, ctx) -> tuple[int, str]:
    """Read everything into the node's table (in the build's transaction): (rows, content hash)."""
    rows = 0
    with _connect(conninfo) as conn:
        try:
            conn.execute("SET TIME ZONE 'UTC'")
            conn.execute("SET IntervalStyle = 'iso_8601'")
            with conn.cursor(name="seekrun_read") as cur:
                cur.itersize = BATCH_ROWS
                cur.execute(_statement(query, table))
                columns = cur.description or []
                names = [c.name for c in columns]
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    raise ReadError(f"{_label(query, table)} has more than one column named "
                                    f"{', '.join(dupes)}: give each column its own name (AS ...)")
                schema = pa.schema([pa.field(c.name, arrow_type(c)) for c in columns])
                first = True
                while True:
                    batch_rows = cur.fetchmany(BATCH_ROWS)
                    if not batch_rows and not first:
                        break
                    batch = _batch(schema, batch_rows, _label(query, table))
                    _append(ctx, batch, first)
                    rows += batch.num_rows
                    first = False
                    if len(batch_rows) < BATCH_ROWS:
                        break
        except psycopg.Error as exc:
            raise ReadError(f"cannot read {_label(query, table)} from {_where(conninfo)}: {_first(exc)}") from None
    return rows, content_hash(ctx, schema)


HASH_VERSION = b"seekrun-pg-content-v2"


def _hashed(field: pa.Field) -> str:
    """One column as handed to DuckDB's hash(): as itself, except where hash() would equate values
    that differ (it hashes 0.0 and -0.0 alike, and an interval of 1 month like one of 30 days):
    those by their text."""
    from seekrun.kinds.base import quote_ident

    col, t = quote_ident(field.name), field.type
    if pa.types.is_floating(t) or pa.types.is_interval(t):
        return f"{col}::VARCHAR"
    if pa.types.is_list(t) and (pa.types.is_floating(t.value_type) or pa.types.is_interval(t.value_type)):
        return f"list_transform({col}, lambda x: x::VARCHAR)"
    return col


def content_hash(ctx, schema: pa.Schema) -> str:
    """The hash of the node's table as loaded: schema, row count, sum of per-row hashes."""
    h = xxhash.xxh3_128()
    h.update(HASH_VERSION)
    h.update(schema.serialize().to_pybytes())
    if len(schema):
        row = ctx.execute(f"SELECT count(*), coalesce(sum(hash({', '.join(map(_hashed, schema))})::HUGEINT), 0) "
                          f"FROM {ctx.table}").fetchone()
        h.update(f"{int(row[0])}:{int(row[1])}".encode())
    return h.hexdigest()


def _batch(schema: pa.Schema, rows: list, label: str) -> pa.RecordBatch:
    arrays = []
    for i, field in enumerate(schema):
        values = [r[i] for r in rows]
        if pa.types.is_floating(field.type):  # an unconstrained numeric comes as Decimal
            values = [v if v is None or isinstance(v, float) else float(v) for v in values]
        try:
            arrays.append(pa.array(values, type=field.type))
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise ReadError(f"column {field.name} of {label} cannot be read as {field.type} ({_first(exc)}): "
                            "cast it in a query (params.query: SELECT ..., col::text AS col ...)") from None
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _append(ctx, batch: pa.RecordBatch, first: bool) -> None:
    import uuid

    cur, view = ctx.cur, f"_seekrun_pg_{uuid.uuid4().hex}"
    cur.register(view, pa.Table.from_batches([batch], schema=batch.schema))
    try:
        if first:
            ctx.materialize(f"SELECT * FROM {view}")
        else:
            ctx.execute(f"INSERT INTO {ctx.table} SELECT * FROM {view}")
    finally:
        cur.unregister(view)
