"""One module per node kind; imported lazily, so parsing never pulls in duckdb."""
from __future__ import annotations

import importlib
from types import ModuleType

from seekrun.parser.kinds import KINDS

_cache: dict[str, ModuleType] = {}


def executor(kind: str) -> ModuleType:
    mod = _cache.get(kind)
    if mod is None:
        if kind not in KINDS:
            raise KeyError(kind)
        mod = _cache[kind] = importlib.import_module(f"seekrun.kinds.{kind}")
    return mod


def engine_version(kind: str) -> int:
    return getattr(executor(kind), "ENGINE_VERSION", 1)
