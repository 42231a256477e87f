"""Seeknal's decorators, as seekrun reads them: they only attach their arguments to the
function (seekrun found them in the syntax tree already) and return it unchanged."""
from typing import Any, Callable

from seekrun.pipeline import DECORATOR_KINDS, materialize  # noqa: F401


def _decorator(kind: str):
    def decorator(name: Any = None, **config: Any) -> Any:
        def attach(fn: Callable) -> Callable:
            meta = {"kind": kind, "name": name or fn.__name__, **config, "api": "seeknal"}
            fn.__seekrun__ = meta
            fn.__dict__["_seeknal_node"] = meta
            return fn

        if callable(name) and not config:  # used bare
            fn, name = name, None
            return attach(fn)
        return attach

    decorator.__name__ = decorator.__qualname__ = kind
    return decorator


for _name, _kind in {**DECORATOR_KINDS, "second_order_aggregation": "second_order_aggregation"}.items():
    globals()[_name] = _decorator(_kind)


def get_registered_nodes() -> dict:
    return {}


def clear_registry() -> None:
    return None
