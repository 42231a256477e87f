"""The decorator API a node file uses, read from its syntax tree: which names are seekrun's or
Seeknal's decorators, and the literal value of a decorator argument.

Both spellings are read the same way:

    from seekrun.pipeline import transform              from seeknal.pipeline import transform
    import seekrun.pipeline as sp                       from seeknal.pipeline.decorators import materialize
    from seekrun import pipeline                        from seeknal.pipeline.materialization import OfflineConfig

A file that imports from ``seeknal.*`` follows Seeknal's decorator semantics
(python_nodes.py): keyword arguments outside a decorator's own signature go into ``params``,
and ``ctx.ref`` ids are added to ``inputs=``.  ``Materialization(...)``, ``OfflineConfig(...)``
and the other config objects are read as the dicts Seeknal turns them into (their
``to_dict()``), so they are literals here like any dict.
"""
from __future__ import annotations

import ast
from typing import Any

SEEKRUN_MODULE = "seekrun.pipeline"
SEEKNAL_MODULE = "seeknal.pipeline"
# modules whose decorators are node decorators: seekrun's, Seeknal's package and its submodule
DECORATOR_MODULES = (SEEKRUN_MODULE, SEEKNAL_MODULE, "seeknal.pipeline.decorators")
# config classes -> (fields in order, to_dict style), as Seeknal defines them
CONFIG_CLASSES = {
    "OfflineConfig": (("format", "partition_by"), "offline"),
    "OnlineConfig": (("enabled", "ttl_seconds"), "online"),
    "IcebergTable": (("namespace", "name", "catalog"), "table"),
    "Materialization": (("offline", "online", "table"), "materialization"),
    "MaterializationConfig": (("enabled", "table", "mode", "create_table", "unique_keys", "partition_by",
                               "max_batch_bytes", "when_matched_update_if", "compare_columns",
                               "when_not_matched"), "not_none"),
}
CLASS_MODULES = (SEEKRUN_MODULE, SEEKNAL_MODULE, "seeknal.pipeline.materialization",
                 "seeknal.pipeline.materialization_config")
# Seeknal's decorator signatures (seeknal/pipeline/decorators.py): any other keyword goes
# into params.  description and owner are metadata here whatever the decorator.
SEEKNAL_SIGNATURES = {
    "source": {"name", "source", "table", "columns", "tags", "materialization"},
    "transform": {"name", "sql", "inputs", "tags", "materialization"},
    "feature_group": {"name", "entity", "features", "inputs", "materialization", "tags"},
    "second_order_aggregation": {"name", "id_col", "feature_date_col", "features", "application_date_col",
                                 "tags", "materialization"},
}
SEEKNAL_TO_PARAMS = {"source": {"query", "connection"}}  # named, but Seeknal files them under params
META = {"description", "owner"}


class NotLiteral(ValueError):
    pass


class Api:
    """What a file's imports make of its names: {local dotted name: full dotted name}."""

    def __init__(self, tree: ast.Module, decorator_kinds: dict[str, str]):
        self.kinds = decorator_kinds
        self.aliases: dict[str, str] = {}
        self.seeknal = False  # imports seeknal.pipeline (Seeknal's semantics)
        self.pipeline = False  # imports seeknal.pipeline or seekrun.pipeline at all
        for stmt in ast.walk(tree):
            if isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                mod = stmt.module
                if not _ours(mod) and mod not in ("seekrun", "seeknal"):
                    continue
                for alias in stmt.names:
                    if alias.name == "*":
                        self._mark(mod)
                        for name in self._exports(mod):
                            self.aliases[name] = f"{mod}.{name}"
                        continue
                    full = f"{mod}.{alias.name}"
                    if _ours(full) or _ours(mod):
                        self._mark(full)
                        self.aliases[alias.asname or alias.name] = full
            elif isinstance(stmt, ast.Import):
                for alias in stmt.names:
                    if not _ours(alias.name) and alias.name not in ("seeknal", "seekrun"):
                        continue
                    self._mark(alias.name)
                    if alias.asname:
                        self.aliases[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.aliases[top] = top

    def _mark(self, full: str) -> None:
        if _ours(full):
            self.pipeline = True
            self.seeknal = self.seeknal or full.startswith("seeknal.")

    def _exports(self, mod: str) -> list[str]:
        names = []
        if mod in DECORATOR_MODULES:
            names += [*self.kinds, "materialize"]
        if mod in CLASS_MODULES:
            names += list(CONFIG_CLASSES)
        return names

    def resolve(self, expr: ast.expr) -> str | None:
        """The full dotted name an expression like ``sp.transform`` stands for, if it is ours."""
        dotted = dotted_name(expr)
        if dotted is None:
            return None
        head, _, rest = dotted.partition(".")
        if head not in self.aliases:
            return None
        full = self.aliases[head] + (f".{rest}" if rest else "")
        return full if _ours(full) else None

    def decorator(self, dec: ast.expr) -> tuple[str, str] | None:
        """("kind", kind) for a node decorator, ("materialize", "") for @materialize, or None."""
        full = self.resolve(dec.func if isinstance(dec, ast.Call) else dec)
        if full is None:
            return None
        mod, _, attr = full.rpartition(".")
        if mod not in DECORATOR_MODULES:
            return None
        if attr in self.kinds:
            return "kind", self.kinds[attr]
        if attr == "materialize":
            return "materialize", ""
        return None

    def config_class(self, func: ast.expr) -> str | None:
        full = self.resolve(func)
        if full is None:
            return None
        mod, _, attr = full.rpartition(".")
        return attr if mod in CLASS_MODULES and attr in CONFIG_CLASSES else None

    def literal(self, node: ast.expr) -> Any:
        """A decorator argument's value: literals as ast.literal_eval reads them, and the config
        objects above as the dicts they stand for."""
        if isinstance(node, ast.Call):
            cls = self.config_class(node.func)
            if cls is None:
                raise NotLiteral("a call")
            return self._config(cls, node)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return [self.literal(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise NotLiteral("**")
            return {self.literal(k): self.literal(v) for k, v in zip(node.keys, node.values)}
        return ast.literal_eval(node)

    def _config(self, cls: str, call: ast.Call) -> dict:
        fields, style = CONFIG_CLASSES[cls]
        if len(call.args) > len(fields) or any(kw.arg is None for kw in call.keywords):
            raise NotLiteral(cls)
        values = dict(zip(fields, (self.literal(a) for a in call.args)))
        for kw in call.keywords:
            if kw.arg not in fields or kw.arg in values:
                raise NotLiteral(f"{cls}({kw.arg}=)")
            values[kw.arg] = self.literal(kw.value)
        return to_dict(style, values)


def to_dict(style: str, v: dict) -> dict:
    """What Seeknal's to_dict() makes of each config object (seeknal/pipeline/materialization.py)."""
    if style == "offline":
        out = {"format": v.get("format", "parquet")}
        if v.get("partition_by"):
            out["partition_by"] = v["partition_by"]
        return out
    if style == "online":
        out = {"enabled": v.get("enabled", True)}
        if v.get("ttl_seconds"):
            out["ttl_seconds"] = v["ttl_seconds"]
        return out
    if style == "table":
        return {"namespace": v.get("namespace"), "name": v.get("name"), "catalog": v.get("catalog", "atlas")}
    if style == "materialization":
        return {k: v[k] for k in ("offline", "online", "table") if v.get(k)}
    return {k: val for k, val in v.items() if val is not None}


def _ours(full: str) -> bool:
    return any(full == m or full.startswith(m + ".") for m in (SEEKRUN_MODULE, SEEKNAL_MODULE))


def dotted_name(expr: ast.expr) -> str | None:
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


def materialize_args(api: Api, dec: ast.expr) -> dict:
    """One @materialize(...) as the dict Seeknal appends to the node's ``materializations``."""
    if not isinstance(dec, ast.Call):
        raise NotLiteral("@materialize must be called: @materialize(type=..., table=...)")
    names = ("type", "connection", "table", "mode")
    if len(dec.args) > len(names) or any(kw.arg is None for kw in dec.keywords):
        raise NotLiteral("pass @materialize arguments by keyword")
    args = dict(zip(names, (api.literal(a) for a in dec.args)))
    for kw in dec.keywords:
        args[kw.arg] = api.literal(kw.value)
    kind = args.pop("type", "iceberg")
    out = {"type": kind, "table": args.pop("table", ""),
           "mode": args.pop("mode", None) or ("append" if kind == "iceberg" else "full")}
    out.update({k: v for k, v in args.items() if v is not None})
    return out


# ---- ctx.ref / ctx.features calls in a function body ----------------------------------------
def context_calls(fn: ast.FunctionDef, ctx_name: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """([(node id, line)] named by literal ctx.ref("kind.name") / ctx.features(entity, ["fg.f"])
    calls, in order; [(source text, line)] of calls whose node id is not a literal)."""
    literal: list[tuple[str, int]] = []
    dynamic: list[tuple[str, int]] = []
    for call in ast.walk(fn):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Name) and call.func.value.id == ctx_name):
            continue
        attr = call.func.attr
        if attr == "ref":
            arg = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "node_id"), None)
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                literal.append((arg.value, call.lineno))
            else:
                dynamic.append((_src(call), call.lineno))
        elif attr == "features":
            arg = call.args[1] if len(call.args) > 1 else next(
                (k.value for k in call.keywords if k.arg == "feature_list"), None)
            items = arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else None
            if items is None or not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in items):
                dynamic.append((_src(call), call.lineno))
                continue
            for e in items:
                fg = e.value.split(".", 1)[0]
                literal.append((f"feature_group.{fg}", call.lineno))
    literal.sort(key=lambda x: x[1])
    dynamic.sort(key=lambda x: x[1])
    return literal, dynamic


def context_passed(fn: ast.FunctionDef, ctx_name: str) -> tuple[str, int] | None:
    """The first call that is handed the context itself, e.g. ``helper(ctx)``: its ctx.ref calls
    are not seen here.  (name of the callee, line)"""
    for call in sorted((c for c in ast.walk(fn) if isinstance(c, ast.Call)), key=lambda c: c.lineno):
        values = [*call.args, *(k.value for k in call.keywords)]
        if any(isinstance(v, ast.Name) and v.id == ctx_name for v in values):
            return (dotted_name(call.func) or "a function"), call.lineno
    return None


def _src(call: ast.Call) -> str:
    try:
        text = ast.unparse(call)
    except Exception:  # pragma: no cover - unparse handles every parsed tree
        text = "ctx.ref(...)"
    return text if len(text) <= 60 else text[:57] + "..."


def empty_body(fn: ast.FunctionDef) -> bool:
    """Whether a function does nothing: a docstring, pass, ``...`` or ``return None`` only."""
    for stmt in fn.body:
        if isinstance(stmt, ast.Pass):
            continue
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # docstring or ...
        if isinstance(stmt, ast.Return) and (stmt.value is None or (isinstance(stmt.value, ast.Constant)
                                                                    and stmt.value.value is None)):
            continue
        return False
    return True
