"""The node of a table fan-out: the union of its instances (seekrun/parser/instances.py).

Not a kind: a node of any kind that fans out is built by this module (``node["gather"]`` lists
its instances, in item order).  Its table is ``UNION ALL BY NAME`` of theirs, so instances whose
columns differ in order (or in presence) still line up by name.  A kind without a table has
nothing to gather.  No instances: an empty table, with the columns the node's SQL gives with NULL
for the item when that SQL runs, else one column ``ITEM``.
"""
from __future__ import annotations

from seekrun.kinds.base import BuildContext, BuildResult


def build(node: dict, ctx: BuildContext) -> BuildResult:
    from seekrun.kinds import executor

    if not getattr(executor(node["kind"]), "HAS_TABLE", True):
        return BuildResult()
    ids = node["gather"]
    if ids:
        return BuildResult(ctx.materialize_union(ids))
    empty = node.get("empty_sql")
    if empty is not None and not ctx.describes(f"SELECT * FROM (\n{empty}\n) LIMIT 0"):
        empty = None
    if empty is None:
        ctx.warn(f"{node['id']} fans out over no items: its table is empty, with one column, ITEM")
        return BuildResult(ctx.materialize('SELECT CAST(NULL AS VARCHAR) AS "ITEM" WHERE false'))
    return BuildResult(ctx.materialize(f"SELECT * FROM (\n{empty}\n) LIMIT 0"))
