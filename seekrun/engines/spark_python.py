"""A Python node on Spark (``engine: spark`` on the node itself): its function gets a context
whose ``ref()`` is a Spark DataFrame of the input (read from the input's Parquet, as a Spark
SQL node reads it), ``sql()`` runs Spark SQL, and ``spark`` is the session. It returns a Spark
DataFrame (or a pandas DataFrame, which Spark takes), written as the node's new table version
with build-then-switch, like any Spark node's.

A project's default ``engine: spark`` leaves Python nodes on DuckDB: a function written against
DuckDB relations would not run on DataFrames, so the node says so itself."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from seekrun.kinds.base import BuildContext, NodeFailure, build_config


class SparkPythonContext:
    """``ref``, ``sql``, ``spark``, ``params``, ``config``, ``inputs``, ``node_id``,
    ``project_path``, ``target_dir``: the names a DuckDB Python node's context has, on Spark."""

    def __init__(self, ctx: BuildContext, seeknal: bool = False):
        from seekrun.engines.python_context import _with_env

        self._ctx = ctx
        self.spark = ctx.spark
        self.node_id: str = ctx.node["id"]
        self.node_kind: str = ctx.node["kind"]
        self.inputs: list[str] = list(ctx.node.get("inputs") or [])
        self.config: dict = _with_env(build_config(ctx.node), ctx)
        self.params: dict = dict(self.config.get("params") or {})
        self.node_meta: dict = self.config
        self.project_path: Path = Path(ctx.root)
        self.target_dir: Path = Path(getattr(ctx, "target_dir", None) or Path(ctx.root) / "target")

    def ref(self, node: str | int):
        """An input's table as a Spark DataFrame: ctx.ref("transform.orders"), ctx.ref(0)."""
        from seekrun.engines.python_context import input_id

        from seekrun.engines.spark_store import table_ref

        return self.spark.table(table_ref(input_id(node, self.inputs, self.node_id)))

    def sql(self, query: str):
        """A Spark DataFrame from Spark SQL (inputs by name: `transform`.`orders`)."""
        return self.spark.sql(query)

    def get_param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    @property
    def con(self):
        raise AttributeError(f"{self.node_id} runs on Spark: there is no DuckDB connection; use ctx.ref(), "
                             "ctx.sql() or ctx.spark")

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<seekrun Spark context for {self.node_id}>"


def frame(result: Any, ctx: BuildContext, func: str):
    """The function's result as a Spark DataFrame (a pandas one is handed to Spark)."""
    top = (type(result).__module__ or "").split(".")[0]
    if top == "pyspark" and hasattr(result, "write") and hasattr(result, "schema"):
        return result
    if top == "pandas":
        try:
            return ctx.spark.createDataFrame(result)
        except Exception as exc:
            raise NodeFailure(ctx.redact(f"{func}() returned a pandas DataFrame Spark cannot take: "
                                         f"{' '.join(str(exc).split())[:300]}")) from None
    what = "None (no return statement?)" if result is None else f"a {type(result).__module__}.{type(result).__qualname__}"
    raise NodeFailure(f"{func}() returned {what}: on Spark, return a Spark DataFrame (e.g. ctx.ref(0).where(...)) "
                      "or a pandas DataFrame")
