"""ctx.features(): Seeknal's feature retrieval across an entity's feature groups.

Seeknal consolidates an entity's feature groups (LEFT JOINs on join keys and event_time, the
alphabetically first group as the base) and selects "fg.feature" from it as columns named
``fg__feature``.  seekrun does the same over the feature groups the call names, which are the
node's inputs (inferred from a literal ctx.features(...) call, or listed in inputs=), so the
node reruns when one of them changes.  The result is a pandas DataFrame, as in Seeknal.
"""
from __future__ import annotations

from typing import Any

from seekrun.kinds.base import quote_ident, sql_literal, table_name


def entity_of(node: dict) -> tuple[str | None, list[str], str]:
    cfg = node.get("build_config") or node["config"]
    ent = cfg.get("entity")
    if isinstance(ent, str):
        name, keys = ent, [f"{ent}_id"]
    elif isinstance(ent, dict):
        name, keys = ent.get("name"), list(ent.get("join_keys") or [])
    else:
        name, keys = None, []
    mat = cfg.get("materialization") if isinstance(cfg.get("materialization"), dict) else {}
    return name, keys, mat.get("event_time_col") or "event_time"


def features(pctx, entity_name: str, feature_list: list[str], as_of: str | None, spine: Any,
             date_col: str | None, keep_cols: list[str] | None):
    if isinstance(feature_list, str) or not feature_list:
        raise ValueError("ctx.features(entity, feature_list): feature_list is a list such as ['fg_name.feature']")
    wanted: dict[str, list[str]] = {}
    for ref in feature_list:
        if not isinstance(ref, str) or "." not in ref:
            raise ValueError(f"Invalid feature reference '{ref}'. Expected format: 'fg_name.feature_name'")
        fg, feat = ref.split(".", 1)
        wanted.setdefault(fg, []).append(feat)
    nodes = pctx._ctx.nodes
    keys: list[str] | None = None
    fgs = []
    for fg in sorted(wanted):
        nid = f"feature_group.{fg}"
        if nid not in pctx.inputs:
            raise ValueError(f"ctx.features(): {nid} is not an input of {pctx.node_id}: add it to inputs=[...] "
                             "(or name it in a literal ctx.features call)")
        name, fg_keys, event_col = entity_of(nodes.get(nid) or {"config": {}})
        if name != entity_name:
            raise ValueError(f"ctx.features('{entity_name}', ...): {nid} is a feature group of entity "
                             f"'{name}', not '{entity_name}'")
        if keys is not None and fg_keys != keys:
            raise ValueError(f"ctx.features(): {nid} joins on {fg_keys}, the others on {keys}")
        keys = fg_keys
        fgs.append((fg, nid, event_col))
    q = quote_ident
    base, _, base_event = fgs[0]
    sel = [f"{q('b')}.{q(k)}" for k in keys] + [f"{q('b')}.{q(base_event)} AS event_time"]
    joins = []
    for i, (fg, nid, event_col) in enumerate(fgs):
        alias = "b" if i == 0 else f"j{i}"
        if i:
            on = " AND ".join([f"b.{q(k)} = {alias}.{q(k)}" for k in keys]
                              + [f"b.{q(base_event)} = {alias}.{q(event_col)}"])
            joins.append(f"LEFT JOIN {table_name(nid)} AS {alias} ON {on}")
        sel += [f"{alias}.{q(f)} AS {q(f'{fg}__{f}')}" for f in wanted[fg]]
    consolidated = f"SELECT {', '.join(sel)} FROM {table_name(fgs[0][1])} AS b {' '.join(joins)}"
    con = pctx.con
    if spine is not None:
        return _pit(con, consolidated, keys, spine, date_col, keep_cols)
    if as_of:
        part = ", ".join(q(k) for k in keys)
        query = (f"SELECT * EXCLUDE (_rn) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY "
                 f"event_time DESC) AS _rn FROM ({consolidated}) WHERE event_time <= CAST({sql_literal(as_of)} "
                 "AS TIMESTAMP)) WHERE _rn = 1")
    else:
        query = consolidated
    return con.sql(query).df()


def _pit(con, consolidated: str, keys: list[str], spine: Any, date_col: str | None, keep_cols):
    import threading

    if date_col is None:
        raise ValueError("date_col is required when using spine for PIT join")
    q = quote_ident
    name = f"__seekrun_spine_{threading.get_ident()}"
    con.register(name, spine)
    try:
        spine_cols = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {q(name)}").fetchall()]
        on = " AND ".join([f"s.{q(k)} = f.{q(k)}" for k in keys]
                          + [f"f.event_time <= CAST(s.{q(date_col)} AS TIMESTAMP)"])
        part = ", ".join([f"s.{q(k)}" for k in keys] + [f"s.{q(date_col)}"])
        feats = f"f.* EXCLUDE ({', '.join(q(c) for c in [*keys, 'event_time'])})"
        query = (f"SELECT * EXCLUDE (_rn) FROM (SELECT s.*, {feats}, ROW_NUMBER() OVER (PARTITION BY {part} "
                 f"ORDER BY f.event_time DESC) AS _rn FROM {q(name)} AS s LEFT JOIN ({consolidated}) AS f ON {on}) "
                 "WHERE _rn = 1 OR _rn IS NULL")
        out = con.sql(query).df()
    finally:
        try:
            con.unregister(name)
        except Exception:
            pass
    if keep_cols:
        keep = set(keep_cols) | set(keys) | {date_col}
        out = out[[c for c in out.columns if c in keep or c not in spine_cols]]
    return out
