"""Python nodes: not implemented yet (issue 4)."""
from __future__ import annotations

from seekrun.engine.base import BuildContext, BuildResult, UnsupportedNode


def check(node: dict, ctx: BuildContext) -> str | None:
    raise UnsupportedNode(f"{node['id']}: Python nodes cannot run yet in this seekrun version")


def build(node: dict, ctx: BuildContext) -> BuildResult:
    raise UnsupportedNode(f"{node['id']}: Python nodes cannot run yet in this seekrun version")
