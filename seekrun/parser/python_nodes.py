"""Python nodes declared with decorators in .py files under the node paths.

    from seekrun.pipeline import transform          # or: import seekrun.pipeline as sp

    @transform(name="clv", inputs=["transform.customer_360"], tags=["daily"])
    def clv(ctx):
        return ctx.ref("transform.customer_360").filter("completed_orders > 0")

Found by reading the file's syntax tree at parse time; user code is never imported
during parse, so decorator arguments must be literals (or Materialization(...) /
OfflineConfig(...) objects of literals: seekrun/parser/python_api.py).  Each decorated
function gives a record of the same shape as a YAML node's (seekrun/parser/records.py),
with ``python: "<file>:<function>"`` and the file as a live file: its content hash enters
the node's hash on every parse, so editing the function (or anything in its file) reruns
the node and its dependents.

Files written for Seeknal (``from seeknal.pipeline import source, transform, ...``) are read
with Seeknal's rules:

- without ``inputs=``, the inputs are the literal ids of ``ctx.ref("kind.name")`` (and the
  feature groups of ``ctx.features(entity, ["fg.feature"])``) in the body, in order of use;
  a ``ctx.ref(x)`` with a computed id then is an error asking for ``inputs=`` (Seeknal adds
  literal ids to ``inputs=`` too; a seekrun file must declare them);
- keywords outside a decorator's signature go into ``params`` (``ctx.params``);
- ``@source(source="csv", table="data/x.csv")`` is a plain source node, hashed on its data
  file like a YAML source: its function is never run (a seekrun file's source with an empty
  body is read the same way);
- stacked ``@materialize(...)`` decorators make the ``materializations`` list;
- ``@feature_group(features={...})`` is a schema for documentation (Seeknal builds every
  returned column, uncast): kept in the config as ``feature_schema``, not applied.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from seekrun.errors import Diagnostic
from seekrun.hashing import hash_obj
from seekrun.parser.python_api import (META, SEEKNAL_MODULE, SEEKNAL_SIGNATURES, SEEKNAL_TO_PARAMS, Api, NotLiteral,
                                       context_calls, context_passed, dotted_name, empty_body, materialize_args)
from seekrun.parser.templating import env_refs_in, runtime_refs_in

PIPELINE_MODULE = "seekrun.pipeline"
DECORATOR_KINDS = {"transform": "transform", "source": "source", "feature_group": "feature_group",
                   "model": "model", "second_order_aggregation": "second_order_aggregation"}  # same as seekrun.pipeline.DECORATOR_KINDS (not imported: light parse)
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
NOT_CONFIG = frozenset({"kind", "python"})  # set by seekrun, not by decorator arguments
SCHEMA_KEY = "feature_schema"  # where a Seeknal file's @feature_group(features=...) is kept


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
    api = Api(tree, DECORATOR_KINDS)
    if not api.pipeline:
        return [], [], [], [f"{rel}: no {PIPELINE_MODULE} decorators, not a node file (ignored)"]
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    records: list[dict] = []
    top = {id(s) for s in tree.body}
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        marks = [(d, api.decorator(d)) for d in fn.decorator_list]
        found = [(d, m[1]) for d, m in marks if m and m[0] == "kind"]
        mats = [d for d, m in marks if m and m[0] == "materialize"]
        if not found:
            if mats:
                errors.append(Diagnostic(rel, mats[0].lineno, f"@materialize on {fn.name}: it adds a "
                    "materialization to a node: put it under @transform(...), @source(...) or @feature_group(...)"))
            continue
        dec, kind = found[0]
        label = f"@{dotted_name(dec.func if isinstance(dec, ast.Call) else dec)}"
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
        rec = _record(api, kind, fn, dec, mats, label, rel, root, errors, warnings)
        if rec is not None:
            records.append(rec)
    code_records = [r for r in records if r.get("python")]
    if code_records:  # helper modules this file imports from the project are part of every node's hash
        from seekrun.parser.imports import local_imports

        watch: set[str] = set()
        helpers = local_imports(tree, Path(root) / rel, root, watch)
        for rec in code_records:
            rec["live_files"] = [rel, *helpers]
            rec["live_watch"] = sorted(watch)
    if not records and not errors:
        module = SEEKNAL_MODULE if api.seeknal else PIPELINE_MODULE
        warnings.append(Diagnostic(rel, 1, f"imports {module} but declares no node seekrun can read: decorate "
                                           "top-level functions, e.g. @transform(name=...) on def f(ctx): ... "
                                           "(this file is not run)", "warning"))
    return records, errors, warnings, []


def _record(api: Api, kind: str, fn: ast.FunctionDef, dec: ast.expr, mats: list[ast.expr], label: str, rel: str,
            root: Path, errors: list[Diagnostic], warnings: list[Diagnostic]) -> dict | None:
    from seekrun.parser.kinds import METADATA_KEYS
    from seekrun.parser.models import KIND_MODELS

    before = len(errors)
    line = dec.lineno
    args, lines, values = _arguments(api, kind, dec, mats, label, rel, errors)
    if args is None:
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
    if tags is None:
        tags = []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        errors.append(Diagnostic(rel, lines["tags"], f"{node_id}: tags must be a list of strings"))
    if "params" in args and not isinstance(args["params"], dict):
        errors.append(Diagnostic(rel, lines["params"], f"{node_id}: params must be a dict"))
    # Seeknal runs no source function: the source is its decorator (source=, table=) alone.
    # A seekrun file's source with an empty body is read the same way.
    declarative = kind == "source" and (api.seeknal or empty_body(fn))
    if declarative:
        _source_args(api, fn, node_id, args, lines, line, rel, errors, warnings)
    given = "inputs" in args or "depends_on" in args
    input_key = "inputs" if "inputs" in args else "depends_on"
    raw_inputs = args.get(input_key, [])
    if raw_inputs is None:
        raw_inputs = []
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
    input_lines = _input_lines(values.get(input_key), inputs, lines.get(input_key, line))
    if declarative:
        pass
    elif not fn.args.args and not fn.args.posonlyargs and fn.args.vararg is None:
        errors.append(Diagnostic(rel, fn.lineno,
            f"{node_id}: {fn.name}() must take one argument, the context: def {fn.name}(ctx): ..."))
    else:
        _infer_refs(fn, node_id, inputs, input_lines, given, api.seeknal, rel, errors, warnings)
    for key in ("foreach", "matrix", "max_concurrent"):
        if key in args:  # (a YAML node splits into instances at parse: parser/instances.py)
            errors.append(Diagnostic(rel, lines.get(key, line), f"{node_id}: a decorated function does not fan out "
                                     f"('{key}='): declare the node in YAML, with python: {rel}:{fn.name} and {key}:"))
    if len(errors) > before:
        return None
    if api.seeknal and kind == "feature_group" and "features" in args:
        # Seeknal's features= on a Python feature group is a schema for documentation: it builds
        # every column the function returns, uncast.  Kept as such (metadata, never hashed).
        args[SCHEMA_KEY] = args.pop("features")
        lines[SCHEMA_KEY] = lines.pop("features")
    unknown = sorted(k for k in args if k not in known and k not in ("name", SCHEMA_KEY))
    for key in unknown:
        why = ("seekrun builds the node's table in its database and writes no materialization targets"
               if key in ("materialization", "materializations") else "not used by seekrun")
        warnings.append(Diagnostic(rel, lines[key], f"unknown key '{key}' in {node_id} (kept in config, {why})",
                                   "warning"))
    python = None if declarative else f"{rel}:{fn.name}"
    config: dict[str, Any] = {"kind": kind, "name": name, **{k: v for k, v in args.items() if k != "name"}}
    if python:
        config["python"] = python
    if "tags" in args:
        config["tags"] = tags
    rec: dict[str, Any] = {
        "id": node_id, "kind": kind, "name": name, "file": rel, "line": line,
        "config": config, "description": args.get("description"), "owner": args.get("owner"), "tags": list(tags),
        "inputs": inputs, "input_lines": input_lines,
        "inputs_line": lines.get(input_key, line), "python": python, "unknown_keys": unknown,
        # env_var() in an argument is filled in for ctx.config at run time, so its value is hashed
        # (a change reruns the node) and an unset variable is a parse error, as for YAML nodes
        "env": [list(e) for e in env_refs_in(config)], "live_files": [rel] if python else [],
    }
    if runtime_refs_in(config):  # {{ today }} etc. in an argument: filled in after the parse cache (runvars.py)
        rec["runtime"] = runtime_refs_in(config)
    from seekrun.params import var_refs_in

    if var_refs_in(config):  # {{ var('DAY') }}: run params, filled in after the parse cache (seekrun/params.py)
        rec["vars"] = var_refs_in(config)
    if kind == "source":  # parse.py's source checks expect these keys
        rec.update(source_format=args.get("source"), table=args.get("table") if declarative else None,
                   table_line=lines.get("table", line))
    rec["built_config"] = None
    from seekrun.controls import CONTROL_KEYS, parse_controls
    from seekrun.parser.kinds import KINDS

    controls, bad = parse_controls(config, inputs, KINDS)  # timeout, retry, preconditions... (not hashed)
    for path, problem in bad:
        errors.append(Diagnostic(rel, lines.get(path[0], line) if path else line, f"{node_id}: {problem}"))
    if bad:
        return None
    rec.update(controls)
    if "pool" in controls:  # checked against the project's pools by parser/pools.py
        rec["pool_line"] = lines.get("pool", line)
        rec["slots_line"] = lines.get("slots", rec["pool_line"])
    fields: dict[str, Any] = {k: v for k, v in config.items()
                              if k not in METADATA_KEYS and k not in CONTROL_KEYS
                              and k not in ("inputs", "depends_on", SCHEMA_KEY)
                              and (k in known or k == "python")}
    fields["inputs"] = inputs
    from seekrun.kinds import engine_version

    fields["seekrun_engine"] = engine_version(kind)
    from seekrun.parser.records import run_prepare

    def line_of_key(path: tuple) -> int:  # decorator keywords have their own lines
        key = path[0] if path else None
        return lines.get(key, line) if isinstance(key, str) else line

    if not run_prepare(kind, rec, config, fields, rel, errors, root, line_of_key):
        return None
    rec["field_hashes"] = {k: hash_obj(v) for k, v in fields.items()}
    return rec


def _arguments(api: Api, kind: str, dec: ast.expr, mats: list[ast.expr], label: str, rel: str,
               errors: list[Diagnostic]) -> tuple[dict | None, dict[str, int], dict[str, ast.expr]]:
    """The decorator's arguments as literals, with their lines and syntax nodes.  In a file
    written for Seeknal, keywords outside the decorator's signature go into params (as
    Seeknal files them); @materialize decorators make ``materializations``."""
    from seekrun.fsutil import too_deep
    from seekrun.parser.yaml_load import MAX_DEPTH

    before = len(errors)
    line = dec.lineno
    args: dict[str, Any] = {}
    lines: dict[str, int] = {}
    values: dict[str, ast.expr] = {}
    call_args = dec.args if isinstance(dec, ast.Call) else []
    call_kwargs = dec.keywords if isinstance(dec, ast.Call) else []
    if len(call_args) > 1:
        errors.append(Diagnostic(rel, line, f"{label}: pass arguments by keyword, e.g. {label}(name=..., inputs=[...])"))
        return None, lines, values
    pairs = [("name", call_args[0])] if call_args else []
    for kw in call_kwargs:
        if kw.arg is None:
            errors.append(Diagnostic(rel, kw.value.lineno,
                f"{label}(**...): seekrun reads decorator arguments without running the file: "
                "write each argument out as a literal"))
            continue
        pairs.append((kw.arg, kw.value))
    signature = SEEKNAL_SIGNATURES.get(kind) if api.seeknal else None
    extra: dict[str, Any] = {}
    for key, value in pairs:
        if key in args or key in extra:
            errors.append(Diagnostic(rel, value.lineno, f"{label}: argument '{key}' is given twice"))
            continue
        try:
            val = json.loads(json.dumps(api.literal(value), default=str))
            if too_deep(val, MAX_DEPTH - 1):
                errors.append(Diagnostic(rel, value.lineno, f"{label}({key}=...) nests more than {MAX_DEPTH} levels "
                                                            "deep: flatten it"))
                continue
        except (ValueError, TypeError, SyntaxError, RecursionError):
            errors.append(Diagnostic(rel, value.lineno,
                f"{label}({key}=...) must be a literal (string, number, list, dict, or a Materialization(...) / "
                "OfflineConfig(...) object of literals): seekrun reads it without running the file"))
            continue
        if signature is not None and key not in signature and key not in META and key != "params" \
                or key in SEEKNAL_TO_PARAMS.get(kind, ()) and signature is not None:
            extra[key] = val  # Seeknal: **params
            lines.setdefault("params", value.lineno)
            continue
        args[key], lines[key], values[key] = val, value.lineno, value
    if extra:
        base = args.get("params") if isinstance(args.get("params"), dict) else {}
        args["params"] = {**base, **extra}
    materializations = []
    for mat in reversed(mats):  # the one nearest the function is applied (and listed) first
        try:
            materializations.append(json.loads(json.dumps(materialize_args(api, mat), default=str)))
        except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
            why = str(exc) if isinstance(exc, NotLiteral) and exc.args and " " in str(exc) else \
                "its arguments must be literals"
            errors.append(Diagnostic(rel, mat.lineno, f"@materialize: {why}: seekrun reads it without running the file"))
    if materializations:
        args["materializations"] = [*(args.get("materializations") or []), *materializations]
        lines.setdefault("materializations", mats[0].lineno)
    return (args if len(errors) == before else None), lines, values


def _source_args(api: Api, fn: ast.FunctionDef, node_id: str, args: dict, lines: dict, line: int, rel: str,
                 errors: list[Diagnostic], warnings: list[Diagnostic]) -> None:
    """A declarative source: source= (Seeknal's default: csv) and table= make a source node
    like a YAML one, hashed on its data file; its function is never run."""
    if api.seeknal:
        args.setdefault("source", "csv")
    if not isinstance(args.get("source"), str):
        errors.append(Diagnostic(rel, lines.get("source", line),
            f"{node_id}: give the source's format, e.g. @source(name=..., source=\"csv\", table=\"data/x.csv\")"))
    if not isinstance(args.get("table"), str) or not args["table"].strip():
        errors.append(Diagnostic(rel, lines.get("table", line),
            f"{node_id}: give the source's data, e.g. @source(name=..., source=\"csv\", table=\"data/x.csv\")"))
    if api.seeknal and not empty_body(fn):
        warnings.append(Diagnostic(rel, fn.body[0].lineno,
            f"{node_id}: the body of a source function is not run (as in Seeknal): the source reads "
            f"{args.get('table')!r}", "warning"))


def _input_lines(seq: ast.expr | None, inputs: list[str], default: int) -> list[int]:
    if isinstance(seq, (ast.List, ast.Tuple)) and len(seq.elts) == len(inputs):
        return [e.lineno for e in seq.elts]
    return [default] * len(inputs)


def _infer_refs(fn: ast.FunctionDef, node_id: str, inputs: list[str], input_lines: list[int], given: bool,
                seeknal: bool, rel: str, errors: list[Diagnostic], warnings: list[Diagnostic]) -> None:
    """ctx.ref("kind.name") calls and the inputs.  Without inputs=, the literal ids are the
    inputs (in order of use); a ctx.ref whose id is computed cannot be known before the run, so
    inputs= is then required.  With inputs=, a literal id must be declared (in a file written
    for Seeknal it is added, as Seeknal does)."""
    params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]
    ctx_name = params[0] if params else (fn.args.vararg.arg if fn.args.vararg else "ctx")
    literal, dynamic = context_calls(fn, ctx_name)
    positional = [(ref, ln) for ref, ln in literal if ref.startswith("input_") and ref[6:].isdigit()]
    literal = [(ref, ln) for ref, ln in literal if (ref, ln) not in positional]
    passed = None if given else context_passed(fn, ctx_name)
    if passed is not None:
        warnings.append(Diagnostic(rel, passed[1],
            f"{node_id}: {fn.name}() hands {ctx_name} to {passed[0]}(): seekrun does not see the inputs it reads "
            f"there; if it calls {ctx_name}.ref, list the node's inputs in the decorator, inputs=[...]", "warning"))
    if not given:
        for text, ln in [*dynamic, *positional]:
            errors.append(Diagnostic(rel, ln,
                f"{node_id}: {text} names its input only at run time: list the node's inputs in the "
                f"decorator, inputs=[\"source.x\", ...]"))
    seen: set[str] = set(inputs)
    for ref, ln in literal:
        if ref in seen:
            continue
        seen.add(ref)
        if given and not seeknal:
            errors.append(Diagnostic(rel, ln, f"{node_id}: {ctx_name}.ref('{ref}') is not declared in inputs: "
                                              f"add '{ref}' to inputs=[...]"))
            continue
        inputs.append(ref)
        input_lines.append(ln)
