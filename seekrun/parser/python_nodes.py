"""Python nodes declared with decorators in .py files under the node paths.

    from seekrun.pipeline import transform          # or: import seekrun.pipeline as sp

    @transform(name="clv", inputs=["transform.customer_360"], tags=["daily"])
    def clv(ctx):
        return ctx.ref("transform.customer_360").filter("completed_orders > 0")

Found by reading the file's syntax tree at parse time; user code is never imported
during parse, so decorator arguments must be literals.  Each decorated function gives a
record of the same shape as a YAML node's (seekrun/parser/records.py), with
``python: "<file>:<function>"`` and the file as a live file: its content hash enters the
node's hash on every parse, so editing the function (or anything in its file) reruns the
node and its dependents.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from seekrun.errors import Diagnostic
from seekrun.hashing import hash_obj
from seekrun.parser.templating import env_refs_in

PIPELINE_MODULE = "seekrun.pipeline"
DECORATOR_KINDS = {"transform": "transform", "source": "source", "feature_group": "feature_group",
                   "model": "model", "second_order_aggregation": "second_order_aggregation"}  # same as seekrun.pipeline.DECORATOR_KINDS (not imported: light parse)
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOT_CONFIG = frozenset({"kind", "python"})  # set by seekrun, not by decorator arguments


def read_python_file(raw: bytes, rel: str, root: Path
                     ) -> tuple[list[dict], list[Diagnostic], list[Diagnostic], list[str]]:
    """Parse one .py file: (records, errors, warnings, notes)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return [], [Diagnostic(rel, 1, f"Python file is not UTF-8 (byte {exc.start}): save it as UTF-8")], [], []
    try:
        tree = ast.parse(text, filename=rel)
    except SyntaxError as exc:
        return [], [Diagnostic(rel, exc.lineno or 1, f"Python syntax error: {exc.msg}")], [], []
    except ValueError as exc:  # e.g. null bytes
        return [], [Diagnostic(rel, 1, f"Python file cannot be read: {exc}")], [], []
    names, modules = _pipeline_imports(tree)
    if not names and not modules:
        return [], [], [], [f"{rel}: no {PIPELINE_MODULE} decorators, not a node file (ignored)"]
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    records: list[dict] = []
    top = {id(s) for s in tree.body}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        found = [(d, k) for d in fn.decorator_list if (k := _decorator_kind(d, names, modules))]
        if not found:
            continue
        dec, kind = found[0]
        label = f"@{_dotted(dec.func if isinstance(dec, ast.Call) else dec)}"
        if isinstance(fn, ast.ClassDef):
            errors.append(Diagnostic(rel, dec.lineno, f"{label} decorates class {fn.name}: decorate a function"))
            continue
        if len(found) > 1:
            errors.append(Diagnostic(rel, found[1][0].lineno,
                f"{fn.name} has more than one seekrun decorator: keep one (a function is one node)"))
            continue
        if isinstance(fn, ast.AsyncFunctionDef):
            errors.append(Diagnostic(rel, dec.lineno, f"{label}: {fn.name} is async: make it a plain function"))
            continue
        if id(fn) not in top:
            errors.append(Diagnostic(rel, dec.lineno,
                f"{label}: {fn.name} is not at the top level of the file: move it there"))
            continue
        rec = _record(kind, fn, dec, label, rel, root, errors, warnings)
        if rec is not None:
            records.append(rec)
    if records:  # helper modules this file imports from the project are part of every node's hash
        from seekrun.parser.imports import local_imports

        watch: set[str] = set()
        helpers = local_imports(tree, Path(root) / rel, root, watch)
        for rec in records:
            rec["live_files"] = [rel, *helpers]
            rec["live_watch"] = sorted(watch)
    if not records and not errors:
        return [], [], warnings, [f"{rel}: imports {PIPELINE_MODULE} but declares no node"]
    return records, errors, warnings, []


def _dotted(expr: ast.expr) -> str | None:
    parts = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    parts.append(expr.id)
    return ".".join(reversed(parts))


def _pipeline_imports(tree: ast.Module) -> tuple[dict[str, str], set[str]]:
    """Local names of the decorators ({name: kind}) and of the seekrun.pipeline module."""
    names: dict[str, str] = {}
    modules: set[str] = set()
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.ImportFrom) and stmt.level == 0:
            if stmt.module == PIPELINE_MODULE:
                for alias in stmt.names:
                    if alias.name == "*":
                        names.update({k: v for k, v in DECORATOR_KINDS.items()})
                    elif alias.name in DECORATOR_KINDS:
                        names[alias.asname or alias.name] = DECORATOR_KINDS[alias.name]
            elif stmt.module == "seekrun":
                for alias in stmt.names:
                    if alias.name == "pipeline":
                        modules.add(alias.asname or "pipeline")
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.name == PIPELINE_MODULE:
                    modules.add(alias.asname or PIPELINE_MODULE)
    return names, modules


def _decorator_kind(dec: ast.expr, names: dict[str, str], modules: set[str]) -> str | None:
    dotted = _dotted(dec.func if isinstance(dec, ast.Call) else dec)
    if dotted is None:
        return None
    if dotted in names:
        return names[dotted]
    prefix, _, attr = dotted.rpartition(".")
    if prefix in modules and attr in DECORATOR_KINDS:
        return DECORATOR_KINDS[attr]
    return None


def _record(kind: str, fn: ast.FunctionDef, dec: ast.expr, label: str, rel: str, root: Path,
            errors: list[Diagnostic], warnings: list[Diagnostic]) -> dict | None:
    from seekrun.parser.kinds import METADATA_KEYS
    from seekrun.parser.models import KIND_MODELS

    before = len(errors)
    line = dec.lineno
    args: dict[str, Any] = {}
    lines: dict[str, int] = {}
    values: dict[str, ast.expr] = {}
    call_args = dec.args if isinstance(dec, ast.Call) else []
    call_kwargs = dec.keywords if isinstance(dec, ast.Call) else []
    if len(call_args) > 1:
        errors.append(Diagnostic(rel, line, f"{label}: pass arguments by keyword, e.g. {label}(name=..., inputs=[...])"))
        return None
    pairs = [("name", call_args[0])] if call_args else []
    for kw in call_kwargs:
        if kw.arg is None:
            errors.append(Diagnostic(rel, kw.value.lineno,
                f"{label}(**...): seekrun reads decorator arguments without running the file: "
                "write each argument out as a literal"))
            continue
        pairs.append((kw.arg, kw.value))
    for key, value in pairs:
        if key in args:
            errors.append(Diagnostic(rel, value.lineno, f"{label}: argument '{key}' is given twice"))
            continue
        try:
            args[key] = json.loads(json.dumps(ast.literal_eval(value), default=str))
            from seekrun.fsutil import too_deep
            from seekrun.parser.yaml_load import MAX_DEPTH

            if too_deep(args[key], MAX_DEPTH - 1):
                errors.append(Diagnostic(rel, value.lineno, f"{label}({key}=...) nests more than {MAX_DEPTH} levels "
                                                            "deep: flatten it"))
                continue
        except (ValueError, TypeError, SyntaxError, RecursionError):
            errors.append(Diagnostic(rel, value.lineno,
                f"{label}({key}=...) must be a literal (string, number, list, dict): seekrun reads it "
                "without running the file"))
            continue
        lines[key], values[key] = value.lineno, value
    if len(errors) > before:
        return None
    name = args.get("name", fn.name)
    if not isinstance(name, str) or not NAME_RE.match(name):
        errors.append(Diagnostic(rel, lines.get("name", line),
            f"{label}: name {name!r} cannot be a table name: use letters, digits and '_', not starting with a digit"))
        return None
    node_id = f"{kind}.{name}"
    model_cls = KIND_MODELS[kind]
    known = set(model_cls.model_fields) - NOT_CONFIG
    for key in sorted(NOT_CONFIG & set(args)):
        errors.append(Diagnostic(rel, lines[key], f"{node_id}: '{key}' is set by seekrun for decorated functions: "
                                                  "remove it"))
    for key in ("description", "owner"):
        if args.get(key) is not None and not isinstance(args[key], str):
            errors.append(Diagnostic(rel, lines[key], f"{node_id}: {key} must be a string"))
    tags = args.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append(Diagnostic(rel, lines["tags"], f"{node_id}: tags must be a list of strings"))
    if "params" in args and not isinstance(args["params"], dict):
        errors.append(Diagnostic(rel, lines["params"], f"{node_id}: params must be a dict"))
    input_key = "inputs" if "inputs" in args else "depends_on"
    raw_inputs = args.get(input_key, [])
    if isinstance(raw_inputs, str):
        raw_inputs = [raw_inputs]
    inputs: list[str] = []
    if not isinstance(raw_inputs, list):
        errors.append(Diagnostic(rel, lines[input_key], f"{node_id}: {input_key} must be a list of node ids"))
    else:
        for item in raw_inputs:
            ref = item.get("ref") if isinstance(item, dict) and set(item) == {"ref"} else item
            if not isinstance(ref, str):
                errors.append(Diagnostic(rel, lines[input_key],
                    f"{node_id}: {input_key} items must be node ids such as 'transform.orders', not {item!r}"))
                continue
            inputs.append(ref)
    if "inputs" in args and "depends_on" in args:
        errors.append(Diagnostic(rel, lines["depends_on"], f"{node_id}: give inputs or depends_on, not both"))
    if not fn.args.args and not fn.args.posonlyargs and fn.args.vararg is None:
        errors.append(Diagnostic(rel, fn.lineno,
            f"{node_id}: {fn.name}() must take one argument, the context: def {fn.name}(ctx): ..."))
    else:
        _check_refs(fn, node_id, inputs, rel, errors)
    if len(errors) > before:
        return None
    unknown = sorted(k for k in args if k not in known and k != "name")
    for key in unknown:
        warnings.append(Diagnostic(rel, lines[key],
            f"unknown key '{key}' in {node_id} (kept in config, not used by seekrun)", "warning"))
    seq = values.get(input_key)
    elts = seq.elts if isinstance(seq, (ast.List, ast.Tuple)) and len(seq.elts) == len(inputs) else None
    python = f"{rel}:{fn.name}"
    config: dict[str, Any] = {"kind": kind, "name": name, **{k: v for k, v in args.items() if k != "name"},
                              "python": python}
    if "tags" in args:
        config["tags"] = tags
    rec: dict[str, Any] = {
        "id": node_id, "kind": kind, "name": name, "file": rel, "line": line,
        "config": config, "description": args.get("description"), "owner": args.get("owner"), "tags": list(tags),
        "inputs": inputs,
        "input_lines": [e.lineno for e in elts] if elts is not None else [lines.get(input_key, line)] * len(inputs),
        "inputs_line": lines.get(input_key, line), "python": python, "unknown_keys": unknown,
        # env_var() in an argument is filled in for ctx.config at run time, so its value is hashed
        # (a change reruns the node) and an unset variable is a parse error, as for YAML nodes
        "env": [list(e) for e in env_refs_in(config)], "live_files": [rel],
    }
    if kind == "source":  # parse.py's source checks expect these keys
        rec.update(source_format=args.get("source"), table=None, table_line=line)
    rec["built_config"] = None
    fields: dict[str, Any] = {k: v for k, v in config.items()
                              if k not in METADATA_KEYS and k not in ("inputs", "depends_on")
                              and (k in known or k == "python")}
    fields["inputs"] = inputs
    from seekrun.engine.kinds import engine_version

    fields["seekrun_engine"] = engine_version(kind)
    from seekrun.parser.records import run_prepare

    def line_of_key(path: tuple) -> int:  # decorator keywords have their own lines
        key = path[0] if path else None
        return lines.get(key, line) if isinstance(key, str) else line

    if not run_prepare(kind, rec, config, fields, rel, errors, root, line_of_key):
        return None
    rec["field_hashes"] = {k: hash_obj(v) for k, v in fields.items()}
    return rec


def _check_refs(fn: ast.FunctionDef, node_id: str, inputs: list[str], rel: str, errors: list[Diagnostic]) -> None:
    """ctx.ref("kind.name") with a literal id must name a declared input (as SQL refs must)."""
    params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    if not params:
        return
    ctx_name = params[0]
    seen: set[str] = set()
    for call in ast.walk(fn):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "ref"
                and isinstance(call.func.value, ast.Name) and call.func.value.id == ctx_name
                and len(call.args) == 1 and isinstance(call.args[0], ast.Constant)
                and isinstance(call.args[0].value, str)):
            continue
        ref = call.args[0].value
        if ref in inputs or ref in seen or (ref.startswith("input_") and ref[6:].isdigit()):
            continue
        seen.add(ref)
        errors.append(Diagnostic(rel, call.lineno,
            f"{node_id}: {ctx_name}.ref('{ref}') is not declared in inputs: add '{ref}' to inputs=[...]"))
