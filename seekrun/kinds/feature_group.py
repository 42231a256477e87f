"""feature_group: a feature table keyed by an entity's join keys.

Build steps (all inside the engine's one DuckDB transaction, so the last good table
survives any failure):

1. run the node's SQL (``transform``; or its Python function, into a staging table; with
   neither, the first input as it is, as Seeknal does),
2. check that the join keys (and the event time column) exist, then cast the declared
   ``features`` dtypes and keep ``join keys + event_time_col + features`` in that order
   (``features: null`` keeps every column, uncast, in the SQL's order),
3. check that no join key is NULL and that the keys are unique per event time (or per
   key when there is no event time column); a violation names some duplicate keys,
4. with ``materialization.offline`` (``true``, or a mapping without ``enabled: false``) write
   ``target/feature_store/<name>.parquet``, or with ``offline.partition_by`` a partitioned
   folder ``target/feature_store/<name>/`` (temp copy, put in place after the commit: see
   offline_store.py).

Seeknal shorthands are accepted: ``entity: customer`` (join key ``customer_id``),
``offline: true``, and ``features`` as a list of column names.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, datetime
from pathlib import Path
from typing import Any

from seekrun.kinds.base import (BuildContext, BuildResult, PrepareContext, UnsupportedNode,
                                 build_config, quote_ident, table_name)

HANDLES_PYTHON = True  # delegates to python_node itself when node["python"] is set
ENGINE_VERSION = 1
FEATURE_STORE = Path("target") / "feature_store"
OFFLINE_FORMATS = ("parquet",)
MAX_EXAMPLES = 5

# Python-style dtype names (as Seeknal projects write them) mean 64-bit types; anything
# else is handed to DuckDB's CAST as written (DOUBLE, DECIMAL(10,2), DATE, VARCHAR[] ...).
DTYPE_ALIASES = {"int": "BIGINT", "long": "BIGINT", "float": "DOUBLE", "str": "VARCHAR", "string": "VARCHAR",
                 "bool": "BOOLEAN", "datetime": "TIMESTAMP"}
_DTYPE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ,()\[\]]*$")


# ---- config, normalised (parse time and run time read the same thing) ----------------------
@dataclass
class Spec:
    join_keys: list[str]
    event_time_col: str | None
    offline: bool
    offline_format: str
    online: bool
    features: list[tuple[str, str | None]] | None  # (column, DuckDB type or None), in order
    offline_partition_by: list[str] | None = None  # a Hive-partitioned folder (offline_store.py)


def _entity_keys(entity: Any) -> list:
    if isinstance(entity, str):
        return [f"{entity}_id"]
    if isinstance(entity, dict):
        keys = entity.get("join_keys")
        return list(keys) if isinstance(keys, list) else ([keys] if keys else [])
    return []


def _offline(mat: dict) -> tuple[bool, str]:
    from seekrun.kinds.offline_store import offline_of

    return offline_of(mat)[:2]


def _enabled(value: Any) -> bool:
    return bool(value.get("enabled", False)) if isinstance(value, dict) else bool(value)


def dtype_sql(dtype: Any) -> str | None:
    if dtype is None:
        return None
    text = str(dtype).strip()
    return DTYPE_ALIASES.get(text.lower(), text)


def spec_of(cfg: dict, order: list | None = None) -> Spec:
    """order: the feature names in the order the YAML mapping gave them (recorded at parse time
    as the node's ``feature_order``: a mapping read back from seekrun's JSON files has its keys
    sorted, and the order of ``features`` is the order of the output columns)."""
    mat = cfg.get("materialization") or {}
    offline, fmt = _offline(mat)
    feats = cfg.get("features")
    features: list[tuple[str, str | None]] | None
    if feats is None:
        features = None
    elif isinstance(feats, list):
        features = [(str(c), None) for c in feats]
    else:
        items = list(feats.items())
        if order:
            rank = {str(c): i for i, c in enumerate(order)}
            items.sort(key=lambda kv: rank.get(str(kv[0]), len(rank)))
        features = [(str(c), dtype_sql((v or {}).get("dtype") if isinstance(v, dict) else None))
                    for c, v in items]
    from seekrun.kinds.offline_store import offline_of

    return Spec([str(k) for k in _entity_keys(cfg.get("entity"))], mat.get("event_time_col"), offline, fmt,
                _enabled(mat.get("online")), features, offline_of(mat)[2] if offline else None)


def parquet_rel(name: str, partition_by: list[str] | None = None) -> str:
    from seekrun.kinds.offline_store import output_rel

    return output_rel(name, partition_by)


# ---- parse time ------------------------------------------------------------------------------
def rename_instance(rec: dict, old: str, new: str) -> None:
    """A fan-out instance (seekrun/parser/instances.py): its offline file is its own."""
    if rec.get("output_files"):
        partitioned = not rec["output_files"][0].endswith(".parquet")
        rec["output_files"] = [parquet_rel(new, ["_"] if partitioned else None)]


def prepare(rec: dict, built: dict, pc: PrepareContext) -> None:
    if rec.get("python"):
        if built.get("transform") is not None:
            pc.error(("python",), "has both 'transform' SQL and 'python': keep only one of them")
            return
        from seekrun.kinds import python_spec

        python_spec.prepare(rec, built, pc)
    elif built.get("transform") is None and built.get("inputs"):  # as Seeknal: the first input, as it is
        rec["compiled_sql"] = f"SELECT * FROM {table_name(rec['inputs'][0])}"
    entity = built.get("entity")
    keys = _entity_keys(entity)
    key_path = ("entity",) if isinstance(entity, str) else ("entity", "join_keys")
    if not keys:
        pc.error(key_path, "entity.join_keys is empty: list the column(s) that identify an entity")
    for i, k in enumerate(keys):
        if not isinstance(k, str) or not k.strip():
            pc.error(("entity", "join_keys", i), f"join key {k!r} must be a column name")
    dupes = sorted({str(k) for k in keys if keys.count(k) > 1})
    if dupes:
        pc.error(key_path, f"join key(s) listed twice: {', '.join(dupes)}")
    mat = built.get("materialization") or {}
    etc = mat.get("event_time_col")
    if etc is not None and (not isinstance(etc, str) or not etc.strip()):
        pc.error(("materialization", "event_time_col"), "event_time_col must be a column name")
    elif etc is not None and etc in keys:
        pc.error(("materialization", "event_time_col"),
                 f"event_time_col '{etc}' is also a join key: keys are unique per (join keys, event time)")
    feats = built.get("features")
    if feats is not None:
        if len(feats) == 0:
            pc.error(("features",), "features is empty: list the feature columns, "
                                    "or write 'features: null' to keep every column")
        items = feats.items() if isinstance(feats, dict) else ((c, None) for c in feats)
        for col, val in items:
            if not isinstance(col, str) or not col.strip():
                pc.error(("features",), f"feature name {col!r} must be a column name")
                continue
            dtype = val.get("dtype") if isinstance(val, dict) else None
            if dtype is not None and (not isinstance(dtype, str) or not _DTYPE_RE.match(dtype.strip())):
                pc.error(("features", col, "dtype"),
                         f"feature '{col}': dtype {dtype!r} is not a type name (e.g. DOUBLE, BIGINT, "
                         "VARCHAR, DATE, DECIMAL(10,2))")
            elif dtype is not None and (dtype.count("(") != dtype.count(")") or dtype.count("[") != dtype.count("]")):
                pc.error(("features", col, "dtype"),
                         f"feature '{col}': dtype {dtype!r} has unbalanced brackets (inside a YAML {{...}} "
                         "mapping, quote a type with a comma: 'DECIMAL(10,2)')")
    spec = spec_of(built)
    if isinstance(feats, dict):
        rec["feature_order"] = [c for c, _ in spec.features or []]
    casts = {d for _, d in spec.features or [] if d}
    if casts:  # type names checked by DuckDB at parse time (parser/sql_check.py)
        rec["type_checks"] = [{"type": d, "line": pc.line(("features", c, "dtype")),
                               "what": f"feature '{c}': dtype"} for c, d in spec.features or [] if d]
    # What the build depends on, in order (the config's own hash sorts mapping keys, but the
    # order of `features` is the order of the output columns).  Entity name and online
    # settings are not used by seekrun, so editing them reruns nothing.
    pc.fields["entity"] = {"join_keys": spec.join_keys}
    from seekrun.kinds.offline_store import check_config

    check_config(mat if isinstance(mat, dict) else {}, pc.error)
    offline = {"enabled": True, "format": spec.offline_format}
    if spec.offline_partition_by:
        offline["partition_by"] = spec.offline_partition_by
    pc.fields["materialization"] = {
        "event_time_col": spec.event_time_col,
        "offline": offline if spec.offline else {"enabled": False},
    }
    pc.fields["features"] = None if spec.features is None else [list(f) for f in spec.features]
    if spec.offline and spec.offline_format not in OFFLINE_FORMATS:  # (else refused at run time)
        pc.error(("materialization", "offline", "format"), f"offline format '{spec.offline_format}' is not "
                 f"supported (supported: {', '.join(OFFLINE_FORMATS)})")
    if spec.offline:
        rec["output_files"] = [parquet_rel(rec["name"], spec.offline_partition_by)]


def output_files(node: dict, root: Path) -> list[Path]:
    return [root / p for p in node.get("output_files") or []]


# ---- run time --------------------------------------------------------------------------------
def check(node: dict, ctx: BuildContext) -> str | None:
    spec = spec_of(build_config(node), node.get("feature_order"))
    if spec.offline and spec.offline_format not in OFFLINE_FORMATS:
        raise UnsupportedNode(f"{node['id']}: offline format '{spec.offline_format}' is not supported "
                              f"(supported: {', '.join(OFFLINE_FORMATS)})")
    if node.get("python"):
        from seekrun.engines import python_node

        return python_node.check(node, ctx)
    return node.get("compiled_sql")


@dataclass
class _StagingContext(BuildContext):
    """A BuildContext whose table is a staging table (a Python function's output lands there)."""
    staging: str = ""

    @property
    def table(self) -> str:
        return self.staging


def build(node: dict, ctx: BuildContext) -> BuildResult:
    spec = spec_of(build_config(node), node.get("feature_order"))
    staging = None
    try:
        if node.get("python"):
            from seekrun.engines import python_node

            staging = f"{quote_ident(node['kind'])}.{quote_ident('__seekrun_staging_' + node['name'])}"
            sctx = _StagingContext(**{f.name: getattr(ctx, f.name) for f in fields(BuildContext)},
                                   staging=staging)
            python_node.build(node, sctx)
            source = f"SELECT * FROM {staging}"
        else:
            source = node["compiled_sql"]
        rows = _build_checked(node, ctx, spec, source)
    finally:
        if staging is not None:
            try:
                ctx.cur.execute(f"DROP TABLE IF EXISTS {staging}")
            except Exception:  # e.g. interrupted: the build's own error is the one to report
                pass
    return BuildResult(rows)


def _columns(ctx: BuildContext, source: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in ctx.execute(f"DESCRIBE SELECT * FROM (\n{source}\n) AS seekrun_fg").fetchall()]


def _select_list(node: dict, ctx: BuildContext, spec: Spec, columns: list[tuple[str, str]]) -> list[str]:
    """The output columns (with casts), after checking every named column exists."""
    actual = {name.lower(): name for name, _ in columns}
    listing = ", ".join(name for name, _ in columns)

    def find(col: str, what: str) -> str:
        if col.lower() not in actual:
            ctx.fail(f"{node['id']}: {what} '{col}' is not a column of the feature group's SQL result "
                     f"(columns: {listing})")
        return actual[col.lower()]

    keys = [find(k, "join key") for k in spec.join_keys]
    etc = find(spec.event_time_col, "event_time_col") if spec.event_time_col else None
    if spec.features is None:
        return [quote_ident(name) for name, _ in columns]
    casts = {find(col, "feature").lower(): dtype for col, dtype in spec.features}
    for col, dtype in spec.features:
        if dtype and not ctx.valid_type(dtype):  # a type and nothing else goes into the CAST
            ctx.fail(f"{node['id']}: feature '{col}': dtype {dtype!r} is not a DuckDB type")
    types = {name.lower(): typ.upper() for name, typ in columns}
    order = [*keys, *([etc] if etc else []), *(actual[c.lower()] for c, _ in spec.features)]
    out, seen = [], set()
    for name in order:
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        out.append(_cast(quote_ident(name), casts.get(name.lower()), types.get(name.lower(), "")))
    return out


_INTEGER_TYPES = frozenset({"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                            "UINTEGER", "UBIGINT", "INT", "INT1", "INT2", "INT4", "INT8", "LONG", "SHORT"})


def _cast(q: str, dtype: str | None, has: str) -> str:
    """A feature column as its dtype: no cast to the type it has; an integer to a wider one by
    round() (the value unchanged: so no engine reads it as a lossy cast of a fraction)."""
    if not dtype or dtype.upper() == has:
        return q
    if dtype.upper() in _INTEGER_TYPES and has in _INTEGER_TYPES:
        return f"CAST(round({q}) AS {dtype}) AS {q}"
    return f"CAST({q} AS {dtype}) AS {q}"


def _fmt(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (date, datetime)):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    return str(value)


def _check_keys(node: dict, ctx: BuildContext, spec: Spec, table: str, columns: list[tuple[str, str]]) -> None:
    actual = {name.lower(): name for name, _ in columns}
    keys = [actual[k.lower()] for k in spec.join_keys]
    group = keys + ([actual[spec.event_time_col.lower()]] if spec.event_time_col else [])
    qkeys, qgroup = [quote_ident(k) for k in keys], [quote_ident(c) for c in group]
    nulls = ctx.execute(f"SELECT count(*) FROM {table} WHERE "
                        + " OR ".join(f"{k} IS NULL" for k in qkeys)).fetchone()[0]
    if nulls:
        ctx.fail(f"{node['id']}: {nulls} row(s) have a NULL join key ({', '.join(keys)}): "
                 "every feature row must name its entity")
    cols = ", ".join(qgroup)
    dupes = ctx.execute(
        f"SELECT {cols}, n, count(*) OVER () AS seekrun_groups, sum(n) OVER () AS seekrun_rows FROM "
        f"(SELECT {cols}, count(*) AS n FROM {table} GROUP BY {cols} HAVING count(*) > 1) AS d "
        f"ORDER BY n DESC, {cols} LIMIT {MAX_EXAMPLES}").fetchall()
    if not dupes:
        return
    width = len(group)
    n_groups, n_rows = dupes[0][width + 1], dupes[0][width + 2]
    per = f"per ({', '.join(group)})" if spec.event_time_col else f"per ({', '.join(keys)})"
    examples = "; ".join(", ".join(f"{c}={_fmt(v)}" for c, v in zip(group, row[:width])) + f" ({row[width]} rows)"
                         for row in dupes)
    more = f"; and {n_groups - len(dupes)} more" if n_groups > len(dupes) else ""
    ctx.fail(f"{node['id']}: join keys are not unique {per}: {n_groups} duplicate key(s) "
             f"covering {n_rows} rows: {examples}{more}")


def _build_checked(node: dict, ctx: BuildContext, spec: Spec, source: str) -> int | None:
    columns = _columns(ctx, source)
    select = _select_list(node, ctx, spec, columns)
    sep = ",\n    "
    rows = ctx.materialize(f"SELECT\n    {sep.join(select)}\nFROM (\n{source}\n) AS seekrun_src")
    _check_keys(node, ctx, spec, ctx.table, columns)
    # The engine runs the build in one transaction; the offline file (or folder) is put in
    # place only after the commit (after_commit), and a failed build removes its temp copy.
    from seekrun.kinds import offline_store

    if spec.offline:
        offline_store.write(node, ctx, spec.offline_partition_by)
    elif (ctx.root / parquet_rel(node["name"])).exists():  # offline turned off: a stale file goes
        final = ctx.root / parquet_rel(node["name"])
        ctx.after_commit.append(lambda: final.unlink(missing_ok=True))
    if spec.online:
        ctx.warn(f"{node['id']}: materialization.online is not supported by seekrun (ignored)")
    return rows
