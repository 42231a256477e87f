"""What each kind is, without importing pydantic (kept light for the warm, cached path)."""
from __future__ import annotations

KINDS = frozenset({"source", "transform", "feature_group", "aggregation", "rule", "profile", "exposure", "model",
                   "semantic_model", "metric", "second_order_aggregation", "task", "dag"})
METADATA_KEYS = frozenset({"kind", "name", "description", "owner", "tags", "columns"})
# Kinds whose output is a file, not a table (their executor modules say HAS_TABLE = False).
TABLELESS_KINDS = frozenset({"exposure", "semantic_model", "metric", "task", "dag"})
# Kinds whose output is a view (metric.<name>), dropped as a view when the node goes; a
# semantic_model only checks its expressions against its model's table and builds nothing.
VIEW_KINDS = frozenset({"metric"})

# Keys that hold SQL, per kind: they enter the hash in canonical form.
SQL_KEYS = {"transform": "transform", "feature_group": "transform"}

# Human names of build fields, for rerun reasons and diffs ("transform SQL").
FIELD_LABELS = {
    ("transform", "transform"): "transform SQL",
    ("feature_group", "transform"): "feature_group SQL",
    ("source", "table"): "source path",
    ("source", "source"): "source format",
    ("source", "params"): "reader params",
    ("aggregation", "generated_sql"): "generated SQL",
    ("metric", "generated_sql"): "metric SQL (its measures and their semantic model)",
    ("semantic_model", "model"): "semantic model's node",
    ("second_order_aggregation", "generated_sql"): "generated SQL",
    ("task", "fed_by"): "tasks writing its files",
    ("task", "consumes"): "which input task gives each value it uses",
    ("transform", "consumes"): "which input task gives each value it uses",
    ("source", "fed_by"): "tasks writing its files",
}


# Run-time values ({{ today }}...: parser/runvars.py): their field holds the value itself (not a
# secret), so a rerun reason can say "today changed (2026-11-30 -> 2026-12-01)".
RUNTIME_FIELDS = ("today", "run_date", "start_date", "end_date")


def value_change(key: str, old, new) -> str:
    return f"{key} changed ({old or 'unset'} -> {new or 'unset'})"


def field_label(kind: str, key: str) -> str:
    if key == "seekrun_engine":
        return "seekrun upgrade"
    if key == "env":
        return "environment variable value"
    if key == "code":
        return "Python code" if kind != "task" else "python script"
    if key == "env_plain":
        return "environment variable value"
    if key == "gather":
        return "fan-out items (the instances it gathers)"
    if key == "clock":
        return "time passed (freshness is measured against now)"
    return FIELD_LABELS.get((kind, key), key)
