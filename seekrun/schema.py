"""`seekrun schema`: the JSON Schema of a node file, generated from the pydantic models
(seekrun/parser/models.py), for editors (VS Code's YAML extension, any yaml-language-server).

Each document of a node file is one node: `kind` picks the kind's keys (an if/then per kind).
The models type their keys; KEY_DOCS describes them, and gives the shapes of the keys the
models leave open because their own checks give better messages (timeout, retry, ...). Keys
a kind does not know are allowed, as seekrun allows them (it warns; `--strict` refuses them).
"""
from __future__ import annotations

import json

_DURATION = {"anyOf": [{"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d)\s*)+$"},
                       {"type": "number", "exclusiveMinimum": 0}]}
_CONDITION = {"type": "object", "properties": {
    "condition": {"type": "string", "description": "A command or `${VAR}` text; compared with `expected`."},
    "expected": {"description": "The value `condition` must give (text, or re:REGEX)."},
    "negate": {"type": "boolean", "description": "Run only when the condition does not hold."},
    "sql": {"type": "string", "description": "A query over the node's inputs: true when it returns a true value."},
    "expr": {"type": "string", "description": "An expression over input tasks' exit_code, status and failed."}}}
# shapes of the keys the models take as Any (their checks, with lines and hints, are elsewhere)
SHAPES = {
    "timeout": _DURATION,
    "retry": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 100}, {"type": "object", "properties": {
        "limit": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Attempts after the first."},
        "interval": {**_DURATION, "description": "The first wait (default 0.2s)."},
        "backoff": {"anyOf": [{"type": "number"}, {"enum": ["exponential", "constant", "linear"]}],
                    "description": "A factor for each next wait, or exponential (2), constant (1), linear."},
        "max_interval": {**_DURATION, "description": "The longest wait (default 30s)."},
        "exit_codes": {"type": "array", "items": {"type": "integer"},
                       "description": "Retry only these exit codes (tasks)."}}}]},
    "preconditions": {"anyOf": [_CONDITION, {"type": "array", "items": _CONDITION}]},
    "continue_on": {"type": "object", "properties": {
        "failure": {"type": "boolean", "description": "Its dependents run even if it fails."},
        "skipped": {"type": "boolean", "description": "Its dependents run even if it is skipped."},
        "exit_codes": {"type": "array", "items": {"type": "integer"}, "description": "Only these exit codes."},
        "mark_success": {"type": "boolean", "description": "Show a covered failure as a success (with a warning)."}}},
    "run_always": {"type": "boolean"},
    "pool": {"type": "string"},
    "slots": {"type": "integer", "minimum": 1},
    "max_concurrent": {"type": "integer", "minimum": 1},
    "foreach": {"anyOf": [{"type": "array"}, {"type": "string"}]},
    "matrix": {"type": "object", "additionalProperties": {"anyOf": [{"type": "array"}, {"type": "string"}]}},
}
# (kind, key) first, then key: what each key means
KEY_DOCS = {
    "kind": "What the node is; decides its other keys.",
    "name": "The node's name: its table is \"kind\".\"name\" and its id kind.name.",
    "description": "What it is, for people (`seekrun docs`, `show`): never triggers a rebuild.",
    "owner": "Who answers for it: metadata, never triggers a rebuild.",
    "tags": "Labels for selecting (`-s tag:daily`): metadata, never trigger a rebuild.",
    "columns": "Column docs: name -> description (or {description, dtype}): metadata.",
    "inputs": "The nodes it reads: [{ref: kind.name}]; SQL names them ref('kind.name') or input_0...",
    "depends_on": "Nodes it waits for without reading them: [{ref: kind.name}].",
    "python": "path/to/file.py:function: a Python function builds it (the file's content is hashed).",
    "params": "Values for its SQL ({{ var('X') }}), its reader (sources) or its program (${X} in tasks).",
    "timeout": "Stop it after this long: 90s, 10m, 1h30m, or seconds. A run control: never hashed.",
    "retry": "Retry a failure: N attempts, or {limit, interval, backoff, max_interval, exit_codes}.",
    "preconditions": "Run only when these hold ({condition, expected}, {sql} or {expr}); else skipped.",
    "continue_on": "Let its dependents run after it fails or is skipped: {failure, skipped, exit_codes, mark_success}.",
    "run_always": "Run it every time, even when nothing it reads changed.",
    "pool": "A pool the project file declares under pools: it takes slots from it while it runs.",
    "slots": "How many of its pool's slots it takes (default 1).",
    "max_concurrent": "A fan-out's limit: at most this many instances at once.",
    "foreach": "Fan out: one instance per item (a list, or \"${VAR}\" holding a JSON list or words).",
    "matrix": "Fan out: one instance per combination of these lists.",
    "engine": "Where it is built: duckdb (the default) or spark (transforms, aggregations, rules; see Scaling out).",
    "dialect": "A transform's SQL dialect: duckdb (the default: transpiled for Spark) or spark (Spark SQL, engine: spark).",
    ("source", "source"): "The format or system read: csv, parquet, json, jsonl, postgresql, ...",
    ("source", "table"): "The file (or glob) read, relative to the project folder; or a database table.",
    ("source", "connection"): "A database source's connection: a profiles.yml name, or its keys.",
    "transform": "A SELECT over its inputs (DuckDB SQL).",
    "entity": "The entity: a name (customer means join key customer_id) or {name, join_keys}.",
    "materialization": "Where features go: {event_time_col, offline: {enabled, format}, online}.",
    ("feature_group", "features"): "Declared features: names, or name -> {dtype, description}; dtypes are cast.",
    "id_col": "The column aggregated per value (the entity id).",
    "feature_date_col": "The event date or timestamp column.",
    "application_date_col": "The date features are computed as of (equal to feature_date_col: one row per id and day).",
    "group_by": "Extra columns to aggregate by.",
    ("aggregation", "features"): "Features: [{name, column, basic, rolling, ratio, since}].",
    ("second_order_aggregation", "features"): "Features: name -> {basic | window | ratio | since, source_feature}.",
    ("second_order_aggregation", "source"): "The aggregated node (default: the first input).",
    "rule": "One check or a list: {type: null|range|uniqueness|freshness|sql_assertion|profile_check, ...}.",
    "profile": "What to profile: {columns, params}.",
    ("exposure", "type"): "file writes its input to `path`; the others are documented only.",
    "path": "Where a file exposure writes (under target/ or a folder in exposure_paths).",
    "format": "The file format: csv, parquet, json or jsonl (default: from the path).",
    "training": "A model node's training settings.",
    "output_columns": "A model node's output columns.",
    "model": "The node a semantic model describes: ref('kind.name').",
    "default_time_dimension": "The time dimension metrics are cut by.",
    "entities": "Its entities (keys): [{name, type, expr}].",
    "dimensions": "Its dimensions: [{name, type, expr, time_granularity}].",
    "measures": "Its measures: [{name, agg, expr}].",
    "joins": "Other semantic models it joins.",
    "metrics": "Metrics defined inline: each one a metric node.",
    ("metric", "type"): "simple, ratio, cumulative or derived.",
    "measure": "A simple or cumulative metric's measure.",
    "numerator": "A ratio metric's numerator measure.",
    "denominator": "A ratio metric's denominator measure.",
    "grain_to_date": "A cumulative metric's period to restart at (month, year, ...).",
    "expr": "A derived metric's expression over its inputs.",
    "filter": "A filter on the measure's rows.",
    ("metric", "inputs"): "A derived metric's metrics: [{metric, alias, offset}].",
    "aliases": "Other names for the metric.",
    "command": "The program: a string (run by /bin/sh -c) or a list (argv, no shell).",
    "script": "An inline script, run by `shell`.",
    "shell": "The interpreter of `script` (default sh).",
    "dir": "The folder it runs in (default: the project folder).",
    "files": "What it reads (globs): their content is hashed, so a change reruns it.",
    "outputs": "What it writes: a source reading one gets it as an input.",
    "env": "Environment variables for it (values hashed; {{ env_var('X') }} for secrets).",
    "output": "Keep its stdout (trimmed) as this value, for ${NAME} in later tasks.",
    "always": "Run it every time (its inputs cannot be seen).",
    ("dag", "run"): "The workflow file or seekrun project it runs.",
    ("dag", "params"): "The child's params: a mapping, \"K=V K2=V2\", or a list.",
}


def node_schema() -> dict:
    from seekrun.parser.models import KIND_MODELS

    defs: dict[str, dict] = {}
    branches = []
    for kind, model in KIND_MODELS.items():
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        sub["properties"]["kind"] = {"const": kind, "description": KEY_DOCS["kind"]}
        for key, prop in sub["properties"].items():
            prop.pop("title", None)
            if key in ("inputs", "depends_on") and prop.get("items") == {"$ref": "#/$defs/InputRef"}:
                prop["items"] = {"anyOf": [{"$ref": "#/$defs/InputRef"}, {"type": "string"}]}  # [source.x] too
            if key in SHAPES and not any(t in prop for t in ("type", "anyOf", "$ref", "const", "enum")):
                prop.update(SHAPES[key])
            doc = KEY_DOCS.get((kind, key)) or KEY_DOCS.get(key)
            if doc and "description" not in prop:
                prop["description"] = doc
        sub.pop("title", None)
        sub["additionalProperties"] = True
        defs[f"{kind}_node"] = sub
        branches.append({"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                         "then": {"$ref": f"#/$defs/{kind}_node"}})
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "seekrun node file",
        "description": "One node per YAML document (several per file with ---). `seekrun schema` writes this.",
        "type": "object",
        "required": ["kind", "name"],
        "properties": {"kind": {"enum": sorted(KIND_MODELS), "description": KEY_DOCS["kind"]},
                       "name": {"type": "string", "description": KEY_DOCS["name"]}},
        "allOf": branches,
        "$defs": defs,
    }


def text() -> str:
    return json.dumps(node_schema(), indent=1, sort_keys=True) + "\n"
