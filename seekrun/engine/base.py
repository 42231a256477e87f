"""The executor interface: what the runner needs from an engine, and per-kind SQL builders.

Adding a kind means adding a builder here (or in its own module); the scheduler and the
rebuilder never change.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class NodeFailure(Exception):
    """A node could not be built; the message is shown to the user as is."""


class UnsupportedNode(Exception):
    """The project asks for something this seekrun cannot run (exit 2)."""


@dataclass
class BuildContext:
    root: Path  # project root, for data files


class Engine(Protocol):
    def existing_outputs(self) -> set[str]: ...
    def check(self, node: dict) -> str | None: ...
    def build(self, node: dict, ctx: BuildContext) -> int | None: ...
    def drop(self, node_id: str) -> None: ...
    def interrupt(self) -> None: ...
    def close(self) -> None: ...


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_name(node_id: str) -> str:
    kind, _, name = node_id.partition(".")
    return f"{quote_ident(kind)}.{quote_ident(name)}"


def sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_literal(str(k))}: {sql_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"


READERS = {"csv": "read_csv", "parquet": "read_parquet", "json": "read_json", "jsonl": "read_json"}


def build_config(node: dict) -> dict:
    """The config with seeknal/common templates rendered (env_var placeholders stay)."""
    return node.get("build_config") or node["config"]


def source_select(node: dict, root: Path) -> str:
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


def node_select(node: dict, root: Path) -> str:
    kind = node["kind"]
    if kind == "source":
        return source_select(node, root)
    if kind == "transform" and node.get("compiled_sql"):
        return node["compiled_sql"]
    raise UnsupportedNode(f"{node['id']}: kind '{kind}' cannot run yet in this seekrun version")
