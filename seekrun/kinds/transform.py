"""transform: a SELECT over its inputs (or a Python function, see python_node)."""
from __future__ import annotations

from seekrun.kinds.base import BuildContext, BuildResult

HANDLES_PYTHON = True  # delegates to python_node itself when node["python"] is set
ENGINE_VERSION = 1


def prepare(rec: dict, built: dict, pc) -> None:
    if rec.get("python"):
        if built.get("transform") is not None:
            pc.error(("python",), "has both 'transform' SQL and 'python': keep only one of them")
            return
        from seekrun.kinds import python_spec

        python_spec.prepare(rec, built, pc)


def check(node: dict, ctx: BuildContext) -> str | None:
    if node.get("python"):
        from seekrun.engines import python_node

        return python_node.check(node, ctx)
    return node.get("compiled_sql")


def build(node: dict, ctx: BuildContext) -> BuildResult:
    if node.get("python"):
        from seekrun.engines import python_node

        return python_node.build(node, ctx)
    return BuildResult(ctx.materialize(node["compiled_sql"]))
