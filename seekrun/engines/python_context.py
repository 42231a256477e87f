"""The context a Python node's function is called with (``ctx``): seekrun's names and Seeknal's."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from seekrun.kinds.base import BuildContext, build_config, table_name


def _with_env(value: Any, ctx: BuildContext) -> Any:
    """The config with env_var() values put in (remembered by ctx, so messages are redacted)."""
    from seekrun.parser.templating import map_strings

    return map_strings(value, lambda path, text: ctx.value(text) if "{{" in text else text)


def input_id(node, inputs: list[str], node_id: str) -> str:
    """The input ctx.ref() names: an id, an index, or "input_N" (either engine's context)."""
    if isinstance(node, str) and node.startswith("input_") and node[6:].isdigit():
        node = int(node[6:])
    if isinstance(node, int) and not isinstance(node, bool):
        if not 0 <= node < len(inputs):
            raise IndexError(f"ctx.ref({node}): {node_id} has {len(inputs)} input(s)")
        node = inputs[node]
    if not isinstance(node, str):
        raise TypeError(f"ctx.ref() takes a node id such as 'transform.orders', not {type(node).__name__}")
    if node not in inputs:
        declared = ", ".join(inputs) or "none"
        raise ValueError(f"ctx.ref('{node}'): not an input of {node_id} (declared: {declared}); "
                         "add it to the node's inputs")
    return node


class PythonContext:
    """What a Python node's function gets: ``ref``, ``con``, ``duckdb``, ``params``, ``config``,
    ``target_dir`` and ``features`` (Seeknal's names as well as seekrun's).

    In a file written for Seeknal (``from seeknal.pipeline import ...``) ``ctx.ref`` returns a
    pandas DataFrame, as Seeknal's does; in a seekrun file, a DuckDB relation on ``ctx.con``."""

    def __init__(self, ctx: BuildContext, seeknal: bool = False):
        self._ctx = ctx
        self._seeknal = seeknal
        self._scratch = None
        self.node_id: str = ctx.node["id"]
        self.node_kind: str = ctx.node["kind"]
        self.inputs: list[str] = list(ctx.node.get("inputs") or [])
        self.config: dict = _with_env(build_config(ctx.node), ctx)
        self.params: dict = dict(self.config.get("params") or {})
        self.node_meta: dict = self.config
        self.con = ctx.cur
        self.project_path: Path = Path(ctx.root)
        self.target_dir: Path = Path(getattr(ctx, "target_dir", None) or Path(ctx.root) / "target")

    def ref(self, node: str | int):
        """An input's table: ctx.ref("transform.orders"), ctx.ref(0) or ctx.ref("input_0").  A
        DuckDB relation, or a pandas DataFrame in a file written for Seeknal."""
        node = input_id(node, self.inputs, self.node_id)
        rel = self.con.table(table_name(node))
        if not self._seeknal:
            return rel
        df = rel.df()
        upstream = self._ctx.nodes.get(node) or {}
        if upstream.get("kind") == "feature_group" and not upstream.get("python"):
            # Seeknal gives a YAML feature group's rows as a FeatureFrame (entity, keys, event time)
            from seeknal.pipeline.feature_frame import FeatureFrame

            from seekrun.engines.seeknal_features import entity_of

            name, keys, event_col = entity_of(upstream)
            df = FeatureFrame(df=df, entity_name=name, join_keys=keys, event_time_col=event_col)
        return df

    def sql(self, query: str):
        """A DuckDB relation from SQL on the node's cursor (same as ctx.con.sql)."""
        return self.con.sql(query)

    @property
    def duckdb(self):
        """A DuckDB connection of the node's own, in memory, as Seeknal's ctx.duckdb is:
        ``register`` frames on it, ``sql`` / ``execute`` on them (DuckDB also finds a frame by
        its variable name).  Opened on first use, closed after the node; it never sees or
        changes the project database (that is ctx.con)."""
        if self._scratch is None:
            self._scratch = self._ctx.duckdb.connect(":memory:")
        return self._scratch

    def get_param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def features(self, entity_name: str, feature_list: list[str], as_of: str | None = None, spine: Any = None,
                 date_col: str | None = None, keep_cols: list[str] | None = None):
        """Seeknal's feature retrieval: "fg_name.feature" columns of the entity's feature groups
        (inputs of this node), as a pandas DataFrame of join keys, event_time and
        ``fg_name__feature`` columns; ``as_of`` keeps each key's latest row at or before it,
        ``spine`` (with ``date_col``) joins each spine row to the features as they were then."""
        from seekrun.engines.seeknal_features import features

        return features(self, entity_name, feature_list, as_of, spine, date_col, keep_cols)

    def _store_output(self, node_id: str, df: Any) -> None:
        """Seeknal's decorators call this with the result (a real installed Seeknal): seekrun
        stores the returned table itself."""
        return None

    def close(self) -> None:
        if self._scratch is not None:
            try:
                self._scratch.close()
            finally:
                self._scratch = None

    def __repr__(self) -> str:
        return f"<seekrun context for {self.node_id}>"
