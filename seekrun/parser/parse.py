"""Parse a project: read node files, validate, check the graph, hash, build the manifest.

Every problem is collected; parse_project raises one ProjectError holding all of them.
"""
from __future__ import annotations

import difflib
import glob as globmod
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from seekrun import __version__
from seekrun.errors import Diagnostic, ProjectError
from seekrun.hashing import FileHashCache, hash_obj, hash_parts
from seekrun.manifest import MANIFEST_VERSION, Manifest
from seekrun.parser.graph import find_cycles
from seekrun.parser.models import KIND_MODELS, KINDS, METADATA_KEYS, SQL_KEYS, NodeBase
from seekrun.parser.sql import analyse
from seekrun.parser.yaml_load import Document, decode, line_of, load_documents
from seekrun.project import Project, find_project

FILE_FORMATS = {"csv", "parquet", "json", "jsonl", "excel", "sqlite"}
# Bumped when seekrun changes how a kind is built, so old builds are not trusted.
ENGINE_VERSION = {"source": 1, "transform": 1}


@dataclass
class Spec:
    node_id: str
    kind: str
    name: str
    rel: str
    doc: Document
    config: dict
    model: NodeBase
    inputs: list[str] = field(default_factory=list)
    compiled_sql: str | None = None
    canonical_sql: str | None = None
    data_files: list[str] = field(default_factory=list)
    data_hash: str | None = None


@dataclass
class ParseResult:
    project: Project
    manifest: Manifest
    warnings: list[Diagnostic]
    file_cache: FileHashCache
    notes: list[str] = field(default_factory=list)  # verbose-only remarks


def suggest(word: str, choices) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def parse_project(project_dir: Path | str = ".", *, strict: bool = False,
                  file_cache: FileHashCache | None = None) -> ParseResult:
    project = find_project(project_dir)
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    notes: list[str] = []
    specs: dict[str, Spec] = {}
    yml_files, _py_files = project.node_files()
    for path in yml_files:
        rel = project.rel(path)
        try:
            for spec in _read_file(path, rel, errors, warnings, notes):
                other = specs.get(spec.node_id)
                if other is not None:
                    errors.append(Diagnostic(rel, spec.doc.line,
                        f"duplicate node id '{spec.node_id}': also defined in {other.rel}:{other.doc.line}; "
                        "rename one of them"))
                    continue
                specs[spec.node_id] = spec
        except ProjectError as exc:
            errors.extend(exc.diagnostics)
    _check_graph(specs, errors)
    if file_cache is None:
        file_cache = FileHashCache(project.state_dir / "file_hashes.json")
    _check_sources(project, specs, errors, warnings, file_cache)
    if strict:
        errors.extend(Diagnostic(w.path, w.line, w.message + " (error under --strict)") for w in warnings
                      if w.message.startswith("unknown key"))
    if errors:
        raise ProjectError(errors)
    manifest = _build_manifest(project, specs)
    return ParseResult(project, manifest, sorted(warnings), file_cache, notes)


def _read_file(path: Path, rel: str, errors, warnings, notes) -> list[Spec]:
    raw = path.read_bytes()
    text = decode(raw, rel)
    if not text.strip():
        raise ProjectError([Diagnostic(rel, 1, "file is empty: add a node definition or delete the file")])
    docs = load_documents(text, rel)
    out: list[Spec] = []
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
        if "kind" not in data and "name" not in data:
            notes.append(f"{rel}:{doc.line}: not a node (no 'kind'), ignored")
            continue
        kind = data.get("kind")
        if kind is None:
            errors.append(Diagnostic(rel, doc.line, "node is missing 'kind': add e.g. 'kind: transform'"))
            continue
        if not isinstance(kind, str) or kind not in KIND_MODELS:
            errors.append(Diagnostic(rel, line_of(doc.node, ("kind",)),
                f"unknown kind '{kind}'{suggest(str(kind), KINDS)}: use one of {', '.join(sorted(KINDS))}"))
            continue
        if data.get("name") is None:
            errors.append(Diagnostic(rel, doc.line, f"{kind} node is missing 'name': add 'name: <identifier>'"))
            continue
        spec = _validate(kind, data, doc, rel, errors, warnings)
        if spec is not None:
            out.append(spec)
    return out


def _validate(kind: str, data: dict, doc: Document, rel: str, errors, warnings) -> Spec | None:
    from pydantic import ValidationError

    model_cls = KIND_MODELS[kind]
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        label = f"{kind} '{data.get('name')}'"
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if p != "ref" or len(err["loc"]) == 1)
            where = ".".join(str(p) for p in err["loc"])
            msg = err["msg"]
            if err["loc"] == ("name",) and err["type"] == "string_pattern_mismatch":
                msg = (f"name '{data.get('name')}' cannot be a table name: "
                       "use letters, digits and '_', not starting with a digit")
                errors.append(Diagnostic(rel, line_of(doc.node, ("name",)), msg))
                continue
            errors.append(Diagnostic(rel, line_of(doc.node, loc), f"{label}: field '{where}': {msg}"))
        return None
    for key in (model.model_extra or {}):
        warnings.append(Diagnostic(rel, line_of(doc.node, (key,)),
            f"unknown key '{key}' in {kind}.{model.name} (kept in config, not used by seekrun)", "warning"))
    spec = Spec(f"{kind}.{model.name}", kind, model.name, rel, doc, data, model)
    spec.inputs = [r.ref for r in [*model.inputs, *model.depends_on]]
    return spec


def _check_graph(specs: dict[str, Spec], errors: list[Diagnostic]) -> None:
    known = set(specs)
    for spec in specs.values():
        seen: set[str] = set()
        key = "inputs" if spec.model.inputs else "depends_on"
        for i, ref in enumerate(spec.inputs):
            line = line_of(spec.doc.node, (key, i))
            if ref in seen:
                errors.append(Diagnostic(spec.rel, line, f"{spec.node_id}: input '{ref}' is listed twice"))
            seen.add(ref)
            if ref not in known:
                errors.append(Diagnostic(spec.rel, line,
                    f"{spec.node_id}: ref '{ref}' does not exist{suggest(ref, known)}"))
        sql_key = SQL_KEYS.get(spec.kind)
        sql = spec.config.get(sql_key) if sql_key else None
        if sql_key and sql is None and spec.model.python is None:
            errors.append(Diagnostic(spec.rel, spec.doc.line,
                f"{spec.node_id} has no SQL: add '{sql_key}: SELECT ...' (or 'python: file.py:function')"))
        if sql_key and isinstance(sql, str):
            _check_sql(spec, sql, sql_key, known, errors)
    for cycle in find_cycles({nid: [r for r in s.inputs if r in known] for nid, s in specs.items()}):
        first = specs[cycle[0]]
        key = "inputs" if first.model.inputs else "depends_on"
        errors.append(Diagnostic(first.rel, line_of(first.doc.node, (key,)),
            f"dependency cycle: {' -> '.join(cycle)}: remove one of these refs"))


def _check_sql(spec: Spec, sql: str, sql_key: str, known: set[str], errors: list[Diagnostic]) -> None:
    line = line_of(spec.doc.node, (sql_key,))
    result = analyse(sql, spec.inputs, KINDS, known)
    for problem in result.problems:
        errors.append(Diagnostic(spec.rel, line, f"{spec.node_id}: {problem}"))
    for bad in dict.fromkeys(result.bad_inputs):
        errors.append(Diagnostic(spec.rel, line,
            f"{spec.node_id}: {bad} is out of range: the node declares {len(spec.inputs)} input(s)"
            + (f" (input_0..input_{len(spec.inputs) - 1})" if spec.inputs else "")))
    reported: set[str] = set()
    for ref in result.refs:
        if ref.node_id in spec.inputs or ref.node_id in reported:
            continue
        reported.add(ref.node_id)
        if ref.node_id in known:
            errors.append(Diagnostic(spec.rel, line,
                f"{spec.node_id}: SQL uses '{ref.node_id}' but it is not declared in inputs: "
                f"add '- ref: {ref.node_id}' to inputs"))
        else:
            errors.append(Diagnostic(spec.rel, line,
                f"{spec.node_id}: SQL refers to '{ref.node_id}', which does not exist{suggest(ref.node_id, known)}"))
    spec.compiled_sql = result.executable
    spec.canonical_sql = result.canonical


def _check_sources(project: Project, specs: dict[str, Spec], errors, warnings, cache: FileHashCache) -> None:
    root = str(project.root)
    for spec in specs.values():
        if spec.kind != "source" or spec.model.source not in FILE_FORMATS:
            continue
        table = spec.model.table
        line = line_of(spec.doc.node, ("table",))
        pattern = table if os.path.isabs(table) else os.path.join(root, table)
        if any(ch in table for ch in "*?["):
            matches = sorted(globmod.glob(pattern, recursive=True))
        else:
            matches = [pattern] if os.path.exists(pattern) else []
        resolved = os.path.realpath(os.path.normpath(pattern))
        candidates = matches or [resolved]
        outside = [m for m in candidates if not _within(os.path.realpath(m), root)]
        if outside:
            errors.append(Diagnostic(spec.rel, line,
                f"{spec.node_id}: table path '{table}' resolves outside the project directory: "
                "keep data files inside the project"))
            continue
        if not matches:
            warnings.append(Diagnostic(spec.rel, line,
                f"{spec.node_id}: source data file '{table}' not found (an error at run time)", "warning"))
            continue
        files = [m for m in matches if os.path.isfile(m)]
        parts: list[str | None] = []
        for m in files:
            relm = os.path.relpath(m, root).replace(os.sep, "/")
            spec.data_files.append(relm)
            parts += [relm, cache.hash(Path(m))]
        spec.data_hash = hash_parts(*parts) if files else None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def build_fields(spec: Spec) -> dict[str, Any]:
    """The build-relevant config: what the node's output depends on, canonicalised."""
    declared = type(spec.model).model_fields
    fields: dict[str, Any] = {}
    for key, value in spec.config.items():
        if key in METADATA_KEYS or key in ("inputs", "depends_on") or key not in declared:
            continue
        fields[key] = value
    sql_key = SQL_KEYS.get(spec.kind)
    if sql_key and spec.canonical_sql is not None:
        fields[sql_key] = spec.canonical_sql
    fields["inputs"] = spec.inputs
    fields["seekrun_engine"] = ENGINE_VERSION.get(spec.kind, 1)
    return fields


def _build_manifest(project: Project, specs: dict[str, Spec]) -> Manifest:
    nodes: dict[str, dict] = {}
    for nid in sorted(specs):
        spec = specs[nid]
        m = spec.model
        field_hashes = {k: hash_obj(v) for k, v in build_fields(spec).items()}
        node = {
            "id": nid, "name": spec.name, "kind": spec.kind, "description": m.description,
            "owner": m.owner, "tags": list(m.tags), "file": spec.rel, "line": spec.doc.line,
            "config": spec.config, "inputs": spec.inputs,
            "hashes": {"config": hash_obj(field_hashes), "fields": field_hashes},
        }
        if spec.compiled_sql is not None:
            node["compiled_sql"] = spec.compiled_sql
        if spec.kind == "source":
            node["data_files"] = spec.data_files
            node["hashes"]["data"] = spec.data_hash
        if m.model_extra:
            node["unknown_keys"] = sorted(m.model_extra)
        nodes[nid] = node
    metadata = {
        "manifest_version": MANIFEST_VERSION,
        "seekrun_version": __version__,
        "project_name": project.name,
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return Manifest(metadata, nodes)
