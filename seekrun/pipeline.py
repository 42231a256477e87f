"""Decorators for Python nodes in .py files under the node paths.

    from seekrun.pipeline import transform

    @transform(name="customer_value", inputs=["transform.customer_360"])
    def customer_value(ctx):
        return ctx.ref("transform.customer_360").filter("completed_orders > 0")

seekrun finds these by reading the file's syntax tree at parse time (the file is never
imported during ``parse``), so every decorator argument must be a literal: strings,
numbers, lists and dicts.  At import time the decorators only attach their arguments to
the function (as ``fn.__seekrun__``) and return the function unchanged.

At run time the function is called with a context:

- ``ctx.ref("kind.name")``: an input's table as a DuckDB relation (``ctx.ref(0)`` is the first input);
- ``ctx.con``: the DuckDB cursor the node runs on (``ctx.con.sql(...)``);
- ``ctx.params``: the node's ``params``; ``ctx.config``: its whole config.

It returns a DuckDB relation, a pandas or polars DataFrame, or a pyarrow Table.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["transform", "source", "feature_group", "model", "DECORATOR_KINDS"]

# decorator name -> node kind
DECORATOR_KINDS = {"transform": "transform", "source": "source", "feature_group": "feature_group",
                   "model": "model", "second_order_aggregation": "second_order_aggregation"}


def _decorator(kind: str):
    def decorator(name: Any = None, **config: Any) -> Any:
        if callable(name) and not config:  # used bare: @transform
            fn = name
            fn.__seekrun__ = {"kind": kind, "name": fn.__name__}
            return fn

        def attach(fn: Callable) -> Callable:
            fn.__seekrun__ = {"kind": kind, "name": name or fn.__name__, **config}
            return fn

        return attach

    decorator.__name__ = kind
    decorator.__qualname__ = kind
    decorator.__doc__ = (f"Mark a function as a {kind} node: "
                         f"@{kind}(name=..., inputs=[...], tags=[...], description=..., params={{...}}).")
    return decorator


transform = _decorator("transform")
source = _decorator("source")
feature_group = _decorator("feature_group")
model = _decorator("model")
