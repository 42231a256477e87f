"""Per-file parsing into plain node records (JSON-able, so they can be cached by file stat).

A record holds everything the cross-node checks and the manifest need: config,
inputs with their line numbers, SQL analysis and the build-field hashes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from seekrun.errors import Diagnostic, ProjectError, suggest
from seekrun.hashing import hash_obj
from seekrun.parser.kinds import KINDS, METADATA_KEYS, SQL_KEYS
from seekrun.parser.sql import analyse
from seekrun.parser.templating import iter_strings, render_config
from seekrun.fsutil import too_deep
from seekrun.parser.yaml_load import MAX_DEPTH, Document, decode, line_of, load_documents, text_start


def read_file(raw: bytes, rel: str, common: dict | None = None, root: Path | None = None
              ) -> tuple[list[dict], list[Diagnostic], list[Diagnostic], list[str]]:
    """Parse one node file: (records, errors, warnings, notes)."""
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    notes: list[str] = []
    records: list[dict] = []
    try:
        text = decode(raw, rel)
        if not text.strip():
            raise ProjectError([Diagnostic(rel, 1, "file is empty: add a node definition or delete the file")])
        docs = load_documents(text, rel)
    except ProjectError as exc:
        return [], list(exc.diagnostics), [], []
    if not any(d.data is not None for d in docs):
        warnings.append(Diagnostic(rel, 1, "file holds no YAML document (only comments)", "warning"))
    for doc in docs:
        data = doc.data
        if data is None:
            continue
        if not isinstance(data, dict):
            errors.append(Diagnostic(rel, doc.line,
                f"a node must be a mapping with 'kind' and 'name', not a {type(data).__name__}"))
            continue
        if too_deep(data):
            errors.append(Diagnostic(rel, doc.line, f"this node's config nests more than {MAX_DEPTH} levels deep: "
                                                    "flatten it"))
            continue
        if "kind" not in data and "name" not in data:
            notes.append(f"{rel}:{doc.line}: not a node (no 'kind'), ignored")
            continue
        kind = data.get("kind")
        if kind is None:
            errors.append(Diagnostic(rel, doc.line, "node is missing 'kind': add e.g. 'kind: transform'"))
            continue
        if not isinstance(kind, str) or kind not in KINDS:
            errors.append(Diagnostic(rel, line_of(doc.node, ("kind",)),
                f"unknown kind '{kind}'{suggest(str(kind), KINDS)}: use one of {', '.join(sorted(KINDS))}"))
            continue
        if data.get("name") is None:
            errors.append(Diagnostic(rel, doc.line, f"{kind} node is missing 'name': add 'name: <identifier>'"))
            continue
        rec = _record(kind, data, doc, rel, errors, warnings, common, root, "{{" in text)
        if rec is not None:
            records.append(rec)
    return records, errors, warnings, notes


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
    use = "passed to the Python function as ctx.config" if model.python else "not used by seekrun"
    for key in unknown:
        warnings.append(Diagnostic(rel, line_of(doc.node, (key,)),
            f"unknown key '{key}' in {node_id} (kept in config, {use})", "warning"))
    config = data  # plain JSON types already (the loader keeps dates as text)
    if templated:
        built, env_refs, runtime, problems = render_config(config, common)  # what is built: templates rendered
        if env_refs and not model.python:
            problems += [(path, "env_var() is filled in only in SQL, source params and Python nodes: "
                                "move this value there") for path in _env_outside_sql(kind, built)]
    else:
        built, env_refs, runtime, problems = config, [], [], []
    for path, problem in problems:
        errors.append(Diagnostic(rel, line_of(doc.node, path), f"{node_id}: {problem}"))
    if problems:
        return None
    input_key = "inputs" if model.inputs else "depends_on"
    inputs = [r.ref for r in [*model.inputs, *model.depends_on]]
    rec: dict[str, Any] = {
        "id": node_id, "kind": kind, "name": model.name, "file": rel, "line": doc.line,
        "config": config, "description": model.description, "owner": model.owner, "tags": list(model.tags),
        "inputs": inputs, "input_lines": [line_of(doc.node, (input_key, i)) for i in range(len(inputs))],
        "inputs_line": line_of(doc.node, (input_key,)), "python": model.python, "unknown_keys": unknown,
        "env": [list(e) for e in env_refs],
    }
    if runtime:
        rec["runtime"] = runtime  # {{ today }} etc.: filled in after the parse cache (parser/runvars.py)
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
            result = analyse(sql, inputs, KINDS)
            for problem in result.problems:
                errors.append(Diagnostic(rel, rec["sql_line"], f"{node_id}: {problem}"))
            for bad in dict.fromkeys(result.bad_inputs):
                errors.append(Diagnostic(rel, rec["sql_line"],
                    f"{node_id}: {bad} is out of range: the node declares {len(inputs)} input(s)"
                    + (f" (input_0..input_{len(inputs) - 1})" if inputs else "")))
            rec["sql_refs"] = list(dict.fromkeys(r.node_id for r in result.refs))
            rec["sql_maybe_refs"] = list(dict.fromkeys(result.candidates))
            rec["compiled_sql"] = result.executable
            canonical = result.canonical
            if not result.problems and not result.bad_inputs:  # DuckDB's own parse (parser/sql_check.py)
                rec["sql_checks"] = [sql_check_entry(result, sql, text_start(doc.node, (sql_key,)), inputs)]
    rec["built_config"] = built if built is not config and built != config else None
    fields = _build_fields(kind, built, model, inputs, sql_key, canonical)
    if not run_prepare(kind, rec, built, fields, rel, errors, root, lambda path: line_of(doc.node, path),
                       lambda path: text_start(doc.node, path)):
        return None
    rec["field_hashes"] = {k: hash_obj(v) for k, v in fields.items()}
    return rec


def sql_check_entry(result, original: str, line: int | None, inputs: list[str], label: str = "") -> dict:
    """What parser/sql_check.py needs to check one SQL text and point into the file."""
    return {"sql": result.executable, "orig": original, "spans": result.spans, "lead": result.lead,
            "line": line, "inputs": list(inputs), "label": label}


def run_prepare(kind, rec, built, fields, rel, errors, root, line, text_line=None) -> bool:
    """The kind's own parse-time checks and facts (seekrun/engine/kinds/<kind>.py: prepare).
    ``line(key_path)`` gives the line of a key in the node's definition, ``text_line`` that of
    line 1 of a text value."""
    from seekrun.engine.base import PrepareContext
    from seekrun.engine.kinds import executor

    prepare = getattr(executor(kind), "prepare", None)
    if prepare is None:
        return True
    before = len(errors)
    pc = PrepareContext(rec["id"], root or Path("."),
                        lambda path, msg: errors.append(Diagnostic(rel, line(path), f"{rec['id']}: {msg}")),
                        line=line, text_line=text_line)
    prepare(rec, built, pc)
    fields.update(pc.fields)
    return len(errors) == before


def _env_outside_sql(kind: str, built: dict) -> list[tuple]:
    """Key paths holding env_var() where seekrun would not fill the value in at run time."""
    return [path for path, text in iter_strings(built)
            if ("env_var(" in text or "env:" in text) and "{{" in text and not _env_allowed(kind, path)]


def _env_allowed(kind: str, path: tuple) -> bool:
    if SQL_KEYS.get(kind) and path == (SQL_KEYS[kind],):
        return True  # node SQL
    if kind == "source" and path[:1] in (("params",), ("connection",)):
        return True  # reader params, a database source's connection
    return kind == "rule" and bool(path) and path[0] == "rule" and path[-1] == "sql"  # assertion SQL


def _build_fields(kind, config, model, inputs, sql_key, canonical) -> dict[str, Any]:
    """The build-relevant config, canonicalised: metadata and unknown keys never enter it."""
    declared = type(model).model_fields
    # a Python node's function can read any key (ctx.config), so every non-metadata key counts
    fields: dict[str, Any] = {k: v for k, v in config.items()
                              if k not in METADATA_KEYS and k not in ("inputs", "depends_on")
                              and (k in declared or model.python)}
    if sql_key and canonical is not None:
        fields[sql_key] = canonical
    fields["inputs"] = inputs
    from seekrun.engine.kinds import engine_version

    fields["seekrun_engine"] = engine_version(kind)  # bumped when seekrun builds a kind differently
    return fields
