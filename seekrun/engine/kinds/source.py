"""source: a data file (csv, parquet, json, jsonl) loaded as a table, with reader params."""
from __future__ import annotations

from pathlib import Path

from seekrun.engine.base import BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config, sql_literal

ENGINE_VERSION = 1
READERS = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json", "jsonl": "read_json"}


def select_sql(node: dict, root: Path) -> str:
    cfg = build_config(node)
    fmt = cfg.get("source")
    reader = READERS.get(fmt)
    if reader is None:
        raise UnsupportedNode(f"{node['id']}: source format '{fmt}' is not supported yet "
                              f"(supported: {', '.join(sorted(READERS))})")
    files = [str(root / f) for f in node.get("data_files") or []]
    if not files:
        raise NodeFailure(f"{node['id']}: source data file '{cfg.get('table')}' not found")
    params = dict(cfg.get("params") or {})
    if fmt == "jsonl":
        params.setdefault("format", "newline_delimited")
    args = [sql_literal(files)] + [f"{k} = {sql_literal(v)}" for k, v in sorted(params.items())]
    return f"SELECT * FROM {reader}({', '.join(args)})"


def check(node: dict, ctx: BuildContext) -> str | None:
    return select_sql(node, ctx.root)


def build(node: dict, ctx: BuildContext) -> BuildResult:
    return BuildResult(ctx.materialize(select_sql(node, ctx.root)))
