"""seekrun: an incremental build tool for Seeknal-format data pipelines on DuckDB.

The package is layered as parser -> manifest -> diff -> scheduler -> rebuilder ->
engine -> state.  Public names are imported lazily so that ``seekrun --help``
stays fast and never imports duckdb.
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "Manifest": "seekrun.manifest",
    "ManifestDiff": "seekrun.diff",
    "parse_project": "seekrun.parser.parse",
    "DAGRunner": "seekrun.runner",
    "ExecutionSummary": "seekrun.results",
    "NodeResult": "seekrun.results",
    "NodeStatus": "seekrun.results",
    "print_plan": "seekrun.output",
    "print_summary": "seekrun.output",
    "ProjectError": "seekrun.errors",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'seekrun' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
