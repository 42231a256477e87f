"""profile: not implemented yet (issue 4)."""
from __future__ import annotations

from seekrun.engine.base import BuildContext, BuildResult, UnsupportedNode

ENGINE_VERSION = 1


def check(node: dict, ctx: BuildContext) -> str | None:
    raise UnsupportedNode(f"{node['id']}: kind 'profile' cannot run yet in this seekrun version")


def build(node: dict, ctx: BuildContext) -> BuildResult:
    raise UnsupportedNode(f"{node['id']}: kind 'profile' cannot run yet in this seekrun version")
