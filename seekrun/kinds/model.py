"""model: Seeknal trains ML models here; seekrun runs a model as a Python node.

It needs ``python: path/to/file.py:function`` (or a ``@model`` decorated function in a .py
file under the node paths): the function gets the context (``ctx.ref``, ``ctx.con``,
``ctx.params``, ``ctx.config`` with e.g. ``training``) and returns the model's output
table.  A model without ``python`` parses, and is not executable: parse warns, run skips it
(and what reads it) and builds the rest.
"""
from __future__ import annotations

from seekrun.kinds import python_spec
from seekrun.kinds.base import BuildContext, BuildResult, UnsupportedNode

HANDLES_PYTHON = True  # delegates to python_node itself when node["python"] is set
ENGINE_VERSION = 1


def prepare(rec: dict, built: dict, pc) -> None:
    if rec.get("python"):
        python_spec.prepare(rec, built, pc)
    else:  # Seeknal trains it from 'training:' itself; seekrun runs a model only as Python
        pc.not_executable = ("a model without 'python' is trained by Seeknal itself; seekrun runs a model only "
                             "as Python: add 'python: path/to/file.py:function' (ctx in, output table out)")


def _require_python(node: dict) -> None:
    if not node.get("python"):
        raise UnsupportedNode(
            f"{node['id']}: kind 'model' runs as a Python node in seekrun and this one has no 'python': "
            "add 'python: path/to/file.py:function' (a function taking ctx and returning the output table), "
            "or remove the node")


def check(node: dict, ctx: BuildContext) -> str | None:
    _require_python(node)
    from seekrun.engines import python_node

    return python_node.check(node, ctx)


def build(node: dict, ctx: BuildContext) -> BuildResult:
    _require_python(node)
    from seekrun.engines import python_node

    return python_node.build(node, ctx)
