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
- ``ctx.params``: the node's ``params``; ``ctx.config``: its whole config;
- ``ctx.duckdb``: a DuckDB connection of the node's own, in memory, as Seeknal's is (``register``
  a frame on it, then ``sql`` / ``execute``); it does not see the project database;
- ``ctx.target_dir``: the project's target/ folder; ``ctx.features(entity, ["fg.feature", ...])``:
  Seeknal's feature lookup across the named feature groups (inputs of the node).

Without ``inputs=``, the inputs are the node ids of the literal ``ctx.ref("kind.name")`` calls
in the function.  In a file written for Seeknal (``from seeknal.pipeline import ...``),
``ctx.ref`` returns a pandas DataFrame, as Seeknal's does.

It returns a DuckDB relation, a pandas or polars DataFrame, or a pyarrow Table.

Seeknal's spellings work too (``from seeknal.pipeline import transform``, ``@materialize``,
``Materialization(offline=OfflineConfig(...))``): see seekrun/engines/seeknal_shim/.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

# decorator name -> node kind (the parser keeps the same dict: seekrun/parser/python_nodes.py)
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


for _name, _kind in DECORATOR_KINDS.items():
    globals()[_name] = _decorator(_kind)
transform = globals()["transform"]
source = globals()["source"]
feature_group = globals()["feature_group"]
model = globals()["model"]


def materialize(type: str = "iceberg", connection: Optional[str] = None, table: str = "", mode: Optional[str] = None,
                **options: Any) -> Callable:
    """Add a materialization target to a node (stackable, as in Seeknal): kept in the node's
    config as ``materializations``; seekrun writes the node's table, not these targets."""
    def attach(fn: Callable) -> Callable:
        entry = {"type": type, "table": table, "mode": mode or ("append" if type == "iceberg" else "full"),
                 **({"connection": connection} if connection is not None else {}), **options}
        fn.__dict__.setdefault("_seeknal_materializations", []).append(entry)
        return fn

    return attach


# Config objects for decorator arguments, read by the parser as the dicts they stand for.
@dataclass
class OfflineConfig:
    format: str = "parquet"
    partition_by: Optional[list] = None


@dataclass
class OnlineConfig:
    enabled: bool = True
    ttl_seconds: Optional[int] = None


@dataclass
class IcebergTable:
    namespace: str
    name: str
    catalog: str = "atlas"


@dataclass
class Materialization:
    offline: Optional[OfflineConfig] = None
    online: Optional[OnlineConfig] = None
    table: Optional[IcebergTable] = None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        from seekrun.parser.python_api import to_dict

        parts = {k: to_dict(k, asdict(v)) for k, v in (("offline", self.offline), ("online", self.online),
                                                       ("table", self.table)) if v is not None}
        return to_dict("materialization", parts)


@dataclass
class MaterializationConfig:
    enabled: Optional[bool] = None
    table: Optional[str] = None
    mode: Optional[str] = None
    create_table: Optional[bool] = None
    unique_keys: Optional[list] = None
    partition_by: Optional[list] = None
    max_batch_bytes: Optional[int] = None
    when_matched_update_if: Optional[str] = None
    compare_columns: Optional[list] = None
    when_not_matched: Optional[str] = None

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {k: v for k, v in asdict(self).items() if v is not None}


__all__ = [*DECORATOR_KINDS, "materialize", "Materialization", "OfflineConfig", "OnlineConfig", "IcebergTable",
           "MaterializationConfig", "DECORATOR_KINDS"]
