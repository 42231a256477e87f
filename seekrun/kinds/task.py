"""task: a step that is a program (a shell command, an inline script, a Python script).

```yaml
kind: task
name: extract_sales
command: ./bin/extract.sh --day ${DAY} --out data/staged/sales.csv   # or script: / python:
files: [bin/extract.sh, config/*.yaml]    # what it reads (globs): content-hashed, stat first
outputs: [data/staged/sales.csv]          # what it writes
env: {REGION: eu}
params: {DAY: "2026-01-01"}
output: SALES_FILE                        # its stdout, trimmed, as a value for what reads it
```

It runs when something it reads changed (its spec, its files, an input's output), when an
output is missing or not what it last wrote, after a failure, or always when it declares
nothing it reads or writes (it cannot be proven unchanged).  Its output hash is the content
of what it wrote and printed (``content_output``), so a rerun that writes the same bytes
leaves its dependents cached (early cutoff).

Parse time (``prepare``): one of command/script/python, ``${NAME}`` names resolvable, outputs
and dir inside the project.  Run time (``build``): seekrun/kinds/task_run.py.
"""
from __future__ import annotations

import os
import re

from seekrun import values

ENGINE_VERSION = 1
HAS_TABLE = False
HANDLES_PYTHON = True  # python: is a script to run, not a function returning a table
CONTEXT_VARS = ("SEEKRUN_PROJECT_DIR", "SEEKRUN_TARGET_DIR", "SEEKRUN_NODE", "SEEKRUN_RUN_ID")
# what Dagu gives a step: the run's own values, filled in when it runs (never hashed: the run id changes)
DAG_VARS = ("DAG_NAME", "DAG_RUN_ID", "DAG_RUN_STEP_NAME", "DAG_RUN_LOG_FILE", "DAG_RUN_OUTPUT_FILE")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
ALWAYS_UNDECLARED = "declares no inputs or outputs"


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                           for v in value)


def prepare(rec: dict, built: dict, pc) -> None:
    how = [k for k in ("command", "script", "python") if built.get(k) not in (None, "", [])]
    if len(how) != 1:
        pc.error((how[1],) if len(how) > 1 else (), "a task runs exactly one of 'command' (a string for /bin/sh, "
                 "or a list run as argv), 'script' (an inline script) or 'python' (a .py file): "
                 + (f"it has {' and '.join(how)}: keep one" if how else "add one"))
        return
    mode = how[0]
    cmd = built[mode]
    from seekrun.parser import fanout

    spread, bad = fanout.spec(built)  # foreach / matrix: instances of this task (seekrun/fanout.py)
    for path, message in bad:
        pc.error(path, message)
    if bad:
        return
    if mode == "command" and not (isinstance(cmd, str) or (_strings(cmd) and cmd)):
        pc.error(("command",), "command must be a string (run by /bin/sh -c) or a list of strings (argv)")
        return
    if mode != "command" and not isinstance(cmd, str):
        pc.error((mode,), f"{mode} must be a string")
        return
    env = built.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and _NAME.match(k) for k in env) \
            or not all(isinstance(v, (str, int, float, bool)) for v in env.values()):
        pc.error(("env",), "env must map variable names (letters, digits, _) to strings")
        return
    params = built.get("params") or {}
    if not isinstance(params, dict):
        pc.error(("params",), "params must be a mapping of names to values")
        return
    ok = True
    task = {"mode": mode, "shell": built.get("shell") or "sh", "env": {k: values.as_text(v) for k, v in env.items()},
            "params": {str(k): values.as_text(v) for k, v in params.items()}}
    if built.get("shell") is not None and mode != "script":
        pc.error(("shell",), "shell is for 'script': a command string always runs in /bin/sh")
        ok = False
    elif not isinstance(task["shell"], str) or not _split(task["shell"]):
        pc.error(("shell",), "shell must name a program, e.g. bash or 'bash -e'")
        ok = False
    always = built.get("always")
    if always not in (None, True, False):
        pc.error(("always",), "always must be true or false")
        ok = False
    # ${NAME}: params, then env; the rest (an upstream task's value or status, ${inputs.N}, the
    # environment) is resolved for the whole project on every parse (parser/tasks.py), and
    # filled in at run time
    late: dict[str, dict] = {}

    def check(path: tuple, text: str) -> None:
        for name, has_default in values.names(text):
            if fanout.known(spread, name):
                continue  # ${ITEM}, ${ITEM.field}, ${ITEM_INDEX}, ${matrix.key}: each instance has them
            if name.split(".")[0] not in task["params"] and name.split(".")[0] not in task["env"]:
                entry = late.setdefault(name, {"path": list(path), "default": True})
                entry["default"] = entry["default"] and has_default

    texts: list[tuple[tuple, str]] = []
    if mode == "command" and isinstance(cmd, list):
        texts += [(("command", i), str(c)) for i, c in enumerate(cmd)]
    elif mode != "python":
        texts.append(((mode,), str(cmd)))
    texts += [(("env", k), v) for k, v in task["env"].items()]
    pres = built.get("preconditions")  # they see the values the command sees
    texts += [(("preconditions", i), pre["condition"]) for i, pre in enumerate(pres if isinstance(pres, list) else [])
              if isinstance(pre, dict) and isinstance(pre.get("condition"), str)]
    for path, text in texts:
        check(path, text)
    if spread is not None:
        from seekrun.kinds.task_fanout import prepare as prepare_fanout

        if not prepare_fanout(rec, built, task, spread, late, pc):
            return
    task["argv"] = [str(c) for c in cmd] if mode == "command" and isinstance(cmd, list) else None
    task["text"] = None if task["argv"] is not None else str(cmd)
    outputs = built.get("outputs") or []
    if not _strings(outputs):
        pc.error(("outputs",), "outputs must be a list of file paths")
        return
    files = built.get("files") or []
    if not _strings(files):
        pc.error(("files",), "files must be a list of file paths or globs (e.g. config/*.yaml)")
        return
    where = built.get("dir")
    if where is not None and not isinstance(where, str):
        pc.error(("dir",), "dir must be a folder path")
        return
    # dir and outputs are known at parse; a value they take from the environment is looked up
    # again on every parse (parser/tasks.py), so a changed variable is never a stale path
    task["dir_raw"], task["outputs_raw"] = where, [str(o) for o in outputs]
    if spread is not None:  # the paths that name the item are each instance's
        from seekrun.kinds.task_fanout import split_paths

        if not split_paths(task, spread, pc):
            return
    inst = task.get("instance") or {}
    task["path_env"] = sorted({n.split(".")[0] for t in [task["dir_raw"] or "", inst.get("dir") or "",
                                                        *task["outputs_raw"], *inst.get("outputs", ())]
                               for n, _ in values.names(t) if not fanout.known(spread, n)}
                              - set(task["params"]) - set(task["env"]))
    task["dir"], out_files, problems = resolve_paths(task, pc.root)
    # a name nothing gives yet may be a run param (--param): the whole-project pass looks again
    problems = [p for p in problems if not p[1].startswith("'${")]
    for path, message in problems:
        pc.error(path, message)
    ok = ok and not problems
    name = built.get("output")
    if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
        pc.error(("output",), "output names the value the task prints: a name such as SALES_FILE")
        ok = False
    if mode == "python":
        ok = _python_file(rec, task, str(cmd), pc) and ok
    if not ok:
        return
    task["files"] = [str(f) for f in files]
    task["output"] = name
    task["late"] = late
    task["passed"] = [i["ref"] if isinstance(i, dict) else str(i) for i in built.get("inputs") or []
                      if isinstance(i, (dict, str))]
    rec["task_lines"] = {k: pc.line((k,)) for k in ("command", "script", "python", "env", "dir", "outputs",
                                                    "files", "output", "foreach", "matrix") if k in built}
    rec["task"] = task
    rec["output_files"] = out_files
    rec["output_lines"] = {f: pc.line(("outputs", i)) for i, f in enumerate(out_files)}
    rec["content_output"] = True  # its output hash is what it wrote and printed
    rec["process_outputs"] = True  # its command writes its outputs: seekrun never writes there itself
    if always is True:
        rec["always"] = "set by always: true"
    # hashed as what they mean: the order of files and outputs, ./ and always: false change nothing
    pc.fields.update(files=sorted({os.path.normpath(str(f)) for f in files}),
                     outputs=sorted({os.path.normpath(str(o)) for o in outputs}), always=always is True)
    # declares something it reads or writes (values it takes from upstream tasks count too: the
    # whole project decides that, parser/tasks.py)
    task["declares"] = bool(files or task["passed"] or out_files or name or mode == "python" or task["params"]
                            or (task.get("instance") or {}).get("outputs"))  # a fan-out's, known when it runs


OWN_PROJECT_FILES = ("seekrun_project.yml", "seeknal_project.yml", "profiles.yml")


def resolve_paths(task: dict, root, scopes: tuple = ()) -> tuple[str | None, list[str], list[tuple[tuple, str]]]:
    """(dir, outputs, problems): the task's folder and outputs with their ${NAME} values in
    (params, env, ``scopes`` (run params, the project env), the environment), project-relative;
    problems as (key path, message)."""
    lookup = _parse_lookup(task, scopes)
    problems: list[tuple[tuple, str]] = []
    where = None
    if task.get("dir_raw") is not None:
        where = _expand_path(task["dir_raw"], ("dir",), lookup, root, problems)
        if where is None:
            problems.append((("dir",), f"dir '{task['dir_raw']}' is outside the project: run tasks in a folder "
                                       "inside it"))
    out_files: list[str] = []
    inst = task.get("instance") or {}
    if inst.get("static") is not None:  # a fan-out known now: every instance's outputs are the node's
        from seekrun.kinds.task_fanout import static_outputs

        out_files += static_outputs(task, root, problems)
    for i, out in enumerate(task["outputs_raw"]):
        rel = _expand_path(out, ("outputs", i), lookup, root, problems)
        if rel is False:
            continue
        if rel is None or rel in ("", "."):
            problems.append((("outputs", i), f"output '{out}' is outside the project: write inside the project "
                                             "folder"))
        elif any(ch in rel for ch in "*?["):
            problems.append((("outputs", i), f"output '{out}' is a glob: name each file the task writes"))
        elif rel in OWN_PROJECT_FILES or rel == ".git" or rel.startswith(".git/"):
            problems.append((("outputs", i), f"output '{out}' is the project's own file: write elsewhere"))
        else:
            out_files.append(rel)
    return (where if where is not False else None), sorted(dict.fromkeys(out_files)), problems


def _split(shell: str) -> list[str]:
    import shlex

    try:
        return shlex.split(shell)
    except ValueError:
        return []




def _expand_path(text, path: tuple, lookup, root, problems: list):
    """A path with its ${NAME} values in, made project-relative (None: outside the project;
    False: a problem was reported)."""
    if not isinstance(text, str):
        problems.append((path, f"{path[0]} must be a path"))
        return False
    try:
        return _inside(root, values.expand(text, lookup))
    except values.UnknownValue as exc:
        problems.append((path, f"'${{{exc.name}}}' in {path[0]} has no value: add it to params or env, or set "
                               f"the environment variable (write $${{{exc.name}}} for a literal)"))
        return False


def _parse_lookup(task: dict, scopes: tuple = ()):
    def lookup(name: str) -> str | None:
        for scope in (task["params"], task["env"], *scopes, os.environ):
            if name in scope:
                return scope[name]
        return None
    return lookup


def _inside(root, path: str) -> str | None:
    from seekrun.kinds.base import inside

    full = path if os.path.isabs(path) else os.path.join(str(root), path)
    if not inside(root, full):
        return None
    return os.path.relpath(os.path.realpath(full), os.path.realpath(root)).replace(os.sep, "/")


def _python_file(rec: dict, task: dict, file: str, pc) -> bool:
    """A python: script is code: its content and the project modules it imports are hashed."""
    import ast

    rel = _inside(pc.root, file)
    if rel is None:
        pc.error(("python",), f"python file '{file}' is outside the project directory: keep it inside the project")
        return False
    path = pc.root / rel
    if not path.is_file():
        pc.error(("python",), f"python file '{file}' not found (paths are relative to the project root)")
        return False
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except (SyntaxError, ValueError) as exc:
        pc.error(("python",), f"python file '{rel}' does not parse: {getattr(exc, 'msg', None) or exc}")
        return False
    from seekrun.parser.imports import local_imports

    watch: set[str] = set()
    rec["live_files"] = [rel, *local_imports(tree, path, pc.root, watch)]
    rec["live_watch"] = sorted(watch)
    rec["python"] = None  # not a Python node: the file is run as a script
    task["script"] = rel  # run by its path from the project folder, wherever dir: is
    return True


def build(node: dict, ctx):
    if node.get("fanout"):  # foreach / matrix: its instances (seekrun/fanout.py)
        from seekrun.fanout import build_task

        return build_task(node, ctx)
    from seekrun.kinds.task_run import build as run

    return run(node, ctx)


def check(node: dict, ctx) -> None:
    return None
