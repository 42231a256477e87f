"""Per-file parsing into plain node records (JSON-able, so they can be cached by file stat).

A record holds everything the cross-node checks and the manifest need: config,
inputs with their line numbers, SQL analysis and the build-field hashes.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from seekrun.errors import Diagnostic, ProjectError, suggest
from seekrun.hashing import hash_obj
from seekrun.controls import CONTROL_KEYS, parse_controls
from seekrun.parser.kinds import KINDS, METADATA_KEYS, SQL_KEYS
from seekrun.parser.sql import analyse
from seekrun.parser.templating import iter_strings, render_config
from seekrun.fsutil import too_deep
from seekrun.parser.yaml_load import (MAX_DEPTH, Document, decode, line_of, load_documents, source_map,
                                     text_start)


def read_file(raw: bytes, rel: str, common: dict | None = None, root: Path | None = None
              ) -> tuple[list[dict], list[Diagnostic], list[Diagnostic], list[str]]:
    """Parse one node file: (records, errors, warnings, notes)."""
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    notes: list[str] = []
    records: list[dict] = []
    text = None
    try:
        text = decode(raw, rel)
        if not text.strip():
            raise ProjectError([Diagnostic(rel, 1, "file is empty: add a node definition or delete the file")])
        docs = load_documents(text, rel)
    except ProjectError as exc:
        if text is not None and text.strip() and not _KIND_LINE.search(text):
            # Not a node whatever it holds (a node needs 'kind'): Seeknal skips such files too, and
            # Ask projects' question/SQL pairs often hold an unquoted ': ' that YAML refuses.
            d = exc.diagnostics[0]
            return [], [], [], [f"{rel}:{d.line or 1}: {NOT_YAML} ({d.message.rsplit(': ', 1)[0]})"]
        return [], list(exc.diagnostics), [], []
    if not any(d.data is not None for d in docs):
        warnings.append(Diagnostic(rel, 1, "file holds no YAML document (only comments)", "warning"))
    templated = "{{" in text
    for doc in docs:  # each document on its own: a bad one never drops the file's other nodes
        if doc.data is None:
            continue
        doc_errors: list[Diagnostic] = []
        rec = _document(doc, rel, doc_errors, warnings, notes, common, root, templated)
        if rec is not None:
            records.append(rec)
        elif doc_errors:  # the node this document meant to define, for the graph checks' messages
            meant = _meant_id(doc.data)
            errors.extend(replace(d, node=meant) for d in doc_errors)
            continue
        errors.extend(doc_errors)
    return records, errors, warnings, notes


NOT_A_NODE = "not a node (no 'kind'), ignored"
NOT_YAML = "not valid YAML, and no 'kind:' line: not a node, ignored"
_KIND_LINE = re.compile(r"""^[ \t-]*["']?kind["']?[ \t]*:""", re.M)


def _document(doc: Document, rel: str, errors, warnings, notes, common, root, templated) -> dict | None:
    """One YAML document: its node record, or None (an error, or a document that is not a node)."""
    data = doc.data
    if not isinstance(data, dict):
        if isinstance(data, list) and any(isinstance(d, dict) and "kind" in d for d in data):
            errors.append(Diagnostic(rel, doc.line, "a node must be a mapping with 'kind' and 'name', not a list: "
                                                    "write each node as its own document, separated by '---'"))
        else:  # e.g. a list of question/SQL pairs beside the nodes (Seeknal Ask projects)
            notes.append(f"{rel}:{doc.line}: {NOT_A_NODE}")
        return None
    if too_deep(data):
        errors.append(Diagnostic(rel, doc.line, f"this node's config nests more than {MAX_DEPTH} levels deep: "
                                                "flatten it"))
        return None
    if "kind" not in data and isinstance(data.get("steps"), list):  # a workflow file beside the nodes
        notes.append(f"{rel}:{doc.line}: a workflow (steps:), not a node: run by a kind: dag node, or by "
                     f"seekrun run {rel}")
        return None
    if "kind" not in data:
        shape = node_shape(data)
        if shape is None:  # Seeknal ignores such documents too (sql_pairs/, tests/ of Ask projects)
            notes.append(f"{rel}:{doc.line}: {NOT_A_NODE}")
            return None
        kind, key = shape
        hint = f"add 'kind: {kind}'" if key not in GENERIC_KEYS else f"add its kind, e.g. 'kind: {kind}'"
        errors.append(Diagnostic(rel, doc.line, f"node '{data['name']}' is missing 'kind' (it has '{key}', so it is "
                                                f"not just data): {hint}"))
        return None
    kind = data.get("kind")
    if kind is None:
        errors.append(Diagnostic(rel, line_of(doc.node, ("kind",)), "node is missing 'kind': add e.g. 'kind: transform'"))
        return None
    if not isinstance(kind, str) or kind not in KINDS:
        errors.append(Diagnostic(rel, line_of(doc.node, ("kind",)),
            f"unknown kind '{kind}'{suggest(str(kind), KINDS)}: use one of {', '.join(sorted(KINDS))}"))
        return None
    if data.get("name") is None:
        errors.append(Diagnostic(rel, doc.line, f"{kind} node is missing 'name': add 'name: <identifier>'"))
        return None
    return _record(kind, data, doc, rel, errors, warnings, common, root, templated)


# Keys that make a document without 'kind' a node all the same (it has a 'name' too), checked in
# this order, with the kind each suggests: such a document is an error, never silently ignored.
SHAPES = (("entity", "feature_group"), ("materialization", "feature_group"), ("id_col", "aggregation"),
          ("feature_date_col", "aggregation"), ("transform", "transform"), ("source", "source"),
          ("table", "source"), ("rule", "rule"), ("python", "transform"), ("inputs", "transform"),
          ("depends_on", "transform"))
GENERIC_KEYS = frozenset({"python", "inputs", "depends_on"})  # any kind has them: the kind is only a guess
SOURCE_FORMATS = frozenset({"csv", "parquet", "json", "jsonl", "excel", "sqlite", "postgresql", "iceberg"})


def node_shape(data: dict) -> tuple[str, str] | None:
    """(the kind it looks like, the key that says so) for a mapping without 'kind' that has a
    'name' and a key only nodes have; None for anything else (not a node)."""
    if not isinstance(data.get("name"), str):
        return None
    for key, kind in SHAPES:
        if key in data and (key != "source" or str(data[key]).lower() in SOURCE_FORMATS):
            return kind, key
    return None


def _meant_id(data) -> str | None:
    """'kind.name' (or just the name) of the node a failed document meant to define ('' when not
    known: it may have meant any node)."""
    if not isinstance(data, dict) or not isinstance(data.get("name"), (str, int)):
        return ""
    kind = data.get("kind")
    return f"{kind}.{data['name']}" if isinstance(kind, str) and kind in KINDS else str(data["name"])


def _record(kind: str, data: dict, doc: Document, rel: str, errors, warnings, common,
            root: Path | None, templated: bool = True) -> dict | None:
    from pydantic import ValidationError

    from seekrun.parser.models import KIND_MODELS

    try:
        model = KIND_MODELS[kind].model_validate(data)
    except ValidationError as exc:
        label = f"{kind} '{data.get('name')}'"
        for err in exc.errors(include_url=False):
            loc = err["loc"]
            if loc == ("name",) and err["type"] == "string_pattern_mismatch":
                errors.append(Diagnostic(rel, line_of(doc.node, loc),
                    f"name '{data.get('name')}' cannot be a table name: "
                    "use letters, digits and '_', not starting with a digit"))
                continue
            where = ".".join(str(p) for p in loc)
            errors.append(Diagnostic(rel, line_of(doc.node, loc), f"{label}: field '{where}': {err['msg']}"))
        return None
    node_id = f"{kind}.{model.name}"
    unknown = sorted(model.model_extra or {})
    use = "passed to the Python function as ctx.config" if model.python and kind != "task" else "not used by seekrun"
    for key in unknown:
        warnings.append(Diagnostic(rel, line_of(doc.node, (key,)),
            f"unknown key '{key}' in {node_id} (kept in config, {use})", "warning"))
    config = data  # plain JSON types already (the loader keeps dates as text)
    if templated:
        built, env_refs, runtime, problems = render_config(config, common)  # what is built: templates rendered
        if env_refs:  # (a Python node's config may hold them, for ctx.config; never its run controls)
            problems += [(path, "env_var() is filled in only in SQL, source params and Python nodes: "
                                "move this value there") for path in _env_outside_sql(kind, built)
                         if not model.python or kind == "task" or (path and path[0] in CONTROL_KEYS)]
    else:
        built, env_refs, runtime, problems = config, [], [], []
    for path, problem in problems:
        errors.append(Diagnostic(rel, line_of(doc.node, path), f"{node_id}: {problem}"))
    if problems:
        return None
    input_key = "inputs" if model.inputs else "depends_on"
    inputs = [r.ref for r in [*model.inputs, *model.depends_on]]
    controls, bad = parse_controls(built, inputs, KINDS)  # timeout, retry, preconditions... (not hashed)
    for path, problem in bad:
        errors.append(Diagnostic(rel, line_of(doc.node, path), f"{node_id}: {problem}"))
    if bad:
        return None
    rec: dict[str, Any] = {
        "id": node_id, "kind": kind, "name": model.name, "file": rel, "line": doc.line,
        "config": config, "description": model.description, "owner": model.owner, "tags": list(model.tags),
        "inputs": inputs, "input_lines": [line_of(doc.node, (input_key, i)) for i in range(len(inputs))],
        "inputs_line": line_of(doc.node, (input_key,)), "python": model.python, "unknown_keys": unknown,
        "env": [list(e) for e in env_refs],
    }
    rec.update(controls)
    if "pool" in controls:  # checked against the project's pools by parser/pools.py
        rec["pool_line"] = line_of(doc.node, ("pool",))
        rec["slots_line"] = line_of(doc.node, ("slots",)) if "slots" in config else rec["pool_line"]
    if runtime:
        rec["runtime"] = runtime  # {{ today }} etc.: filled in after the parse cache (parser/runvars.py)
    if kind not in ("task", "dag") and any(built.get(k) is not None for k in ("foreach", "matrix", "max_concurrent")):
        from seekrun.parser.instances import read_spread  # split into instance nodes after the cache

        spread, bad = read_spread(kind, built)
        for path, problem in bad:
            errors.append(Diagnostic(rel, line_of(doc.node, path), f"{node_id}: {problem}"))
        if bad:
            return None
        rec["spread"] = spread
    if templated and "var" in str(built):
        from seekrun.params import var_refs_in

        used = var_refs_in({k: v for k, v in built.items() if k not in ("foreach", "matrix")}
                           if rec.get("spread") else built)
        if used:
            rec["vars"] = used  # {{ var('DAY') }}: run params, filled in after the parse cache (seekrun/params.py)
    if kind == "source":
        table = built.get("table", model.table)
        rec.update(source_format=model.source, table=None if table is None else str(table),
                   table_line=line_of(doc.node, ("table",)))
    sql_key = SQL_KEYS.get(kind)
    canonical = None
    if sql_key:
        sql = built.get(sql_key)
        rec["sql_line"] = line_of(doc.node, (sql_key,))
        if sql is None and model.python is None and not (kind == "feature_group" and model.inputs):  # its 1st input
            errors.append(Diagnostic(rel, doc.line,
                f"{node_id} has no SQL: add '{sql_key}: SELECT ...' (or 'python: file.py:function')"))
            return None
        if isinstance(sql, str):
            spark_sql = config.get("dialect") == "spark"  # Spark SQL: refs in backticks, checked by sqlglot
            result = analyse(sql, inputs, KINDS, mark="`" if spark_sql else '"')
            own_line = text_start(doc.node, (sql_key,)) or rec["sql_line"]  # the SQL's, not its key's
            for problem in result.problems:
                errors.append(Diagnostic(rel, own_line, f"{node_id}: {problem}"))
            for bad in dict.fromkeys(result.bad_inputs):
                errors.append(Diagnostic(rel, rec["sql_line"],
                    f"{node_id}: {bad} is out of range: the node declares {len(inputs)} input(s)"
                    + (f" (input_0..input_{len(inputs) - 1})" if inputs else "")))
            rec["sql_refs"] = list(dict.fromkeys(r.node_id for r in result.refs))
            rec["sql_maybe_refs"] = list(dict.fromkeys(result.candidates))
            rec["compiled_sql"] = result.executable
            canonical = result.canonical if not spark_sql else sql  # Spark SQL: its own lexer's rules; hashed as written
            if not result.problems and not result.bad_inputs and not spark_sql:  # DuckDB's parse (parser/sql_check.py)
                src = source_map(doc, (sql_key,)) if sql == config.get(sql_key) else None
                rec["sql_checks"] = [sql_check_entry(result, sql, text_start(doc.node, (sql_key,)), inputs,
                                                     src=src)]
    rec["built_config"] = built if built is not config and built != config else None
    if "__seekrun_output_" in str(built):  # {{ output('NAME') }}: resolved for the whole project (parser/tasks.py)
        from seekrun.parser.templating import OUTPUT_MARKER

        rec["uses_outputs"] = sorted({m.group(1) for _, text in iter_strings(built)
                                      for m in OUTPUT_MARKER.finditer(text)})
    fields = _build_fields(kind, built, model, inputs, sql_key, canonical)
    if not run_prepare(kind, rec, built, fields, rel, errors, root, lambda path: line_of(doc.node, path),
                       lambda path: text_start(doc.node, path), None if built is not config else doc):
        return None
    rec["field_hashes"] = {k: hash_obj(v) for k, v in fields.items()}
    return rec


def sql_check_entry(result, original: str, line: int | None, inputs: list[str], label: str = "",
                    src: dict | None = None) -> dict:
    """What parser/sql_check.py needs to check one SQL text and point into the file (``src``:
    yaml_load.source_map, for a folded or multi-line quoted value)."""
    entry = {"sql": result.executable, "orig": original, "spans": result.spans, "lead": result.lead,
             "line": line, "inputs": list(inputs), "label": label}
    if src:
        entry["src"] = src
    return entry


def run_prepare(kind, rec, built, fields, rel, errors, root, line, text_line=None, doc=None) -> bool:
    """The kind's own parse-time checks and facts (seekrun/kinds/<kind>.py: prepare).
    ``line(key_path)`` gives the line of a key in the node's definition, ``text_line`` that of
    line 1 of a text value. With ``doc`` (the YAML document, when its values are the built
    ones), SQL the kind asks to check in a folded or multi-line value points into the file."""
    from seekrun.kinds.base import PrepareContext
    from seekrun.kinds import executor

    prepare = getattr(executor(kind), "prepare", None)
    if prepare is None:
        return True
    before = len(errors)
    asked: dict[int | None, tuple] = {}  # text start line -> key path (to find a checked SQL's value)

    def text_at(path: tuple) -> int | None:
        at = text_line(path) if text_line is not None else line(path)
        asked.setdefault(at, path)
        return at

    pc = PrepareContext(rec["id"], root or Path("."),
                        lambda path, msg: errors.append(Diagnostic(rel, line(path), f"{rec['id']}: {msg}")),
                        line=line, text_line=text_at)
    prepare(rec, built, pc)
    for chk in rec.get("sql_checks") or [] if doc is not None else []:
        path = asked.get(chk["line"])
        if "src" not in chk and path is not None and _value_at(built, path) == chk["orig"]:
            src = source_map(doc, path)
            if src:
                chk["src"] = src
    fields.update(pc.fields)
    if pc.not_executable:
        rec["not_executable"] = str(pc.not_executable)
    return len(errors) == before


def _value_at(data, path: tuple):
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _env_outside_sql(kind: str, built: dict) -> list[tuple]:
    """Key paths holding env_var() where seekrun would not fill the value in at run time."""
    return [path for path, text in iter_strings(built)
            if ("env_var(" in text or "env:" in text) and "{{" in text and not _env_allowed(kind, path)]


def _env_allowed(kind: str, path: tuple) -> bool:
    if SQL_KEYS.get(kind) and path == (SQL_KEYS[kind],):
        return True  # node SQL
    if kind == "source" and path[:1] in (("params",), ("connection",)):
        return True  # reader params, a database source's connection
    if kind == "task" and path[:1] in (("command",), ("script",), ("env",), ("params",)):
        return True  # filled in when the task runs, and redacted from what is shown
    return kind == "rule" and bool(path) and path[0] == "rule" and path[-1] == "sql"  # assertion SQL


def _build_fields(kind, config, model, inputs, sql_key, canonical) -> dict[str, Any]:
    """The build-relevant config, canonicalised: metadata, run controls (timeout, retry...: how to
    run it, not what it builds) and unknown keys never enter it."""
    declared = type(model).model_fields
    # a Python node's function can read any key (ctx.config), so every non-metadata key counts
    fields: dict[str, Any] = {k: v for k, v in config.items()
                              if k not in METADATA_KEYS and k not in CONTROL_KEYS and k not in ("inputs", "depends_on", "engine", "dialect")
                              and (k in declared or model.python)}
    if sql_key and canonical is not None:
        fields[sql_key] = canonical
    fields["inputs"] = inputs
    from seekrun.kinds import engine_version

    fields["seekrun_engine"] = engine_version(kind)  # bumped when seekrun builds a kind differently
    return fields
