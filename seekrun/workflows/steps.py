"""Dagu steps into seekrun node definitions: the same node records as YAML nodes.

Step fields (as in the seed documents): ``name``, ``command``, ``script``, ``shell``, ``depends``,
``output``, ``params``, ``env``, ``dir``, ``preconditions``, ``continueOn`` (``failure``,
``skipped``, ``exitCode``, ``markSuccess``), ``retryPolicy`` (``limit``, ``intervalSec``,
``exitCode``, ``backoff``, ``maxIntervalSec``), ``timeoutSec``, ``parallel`` (a list, ``${VAR}``,
or ``{items, maxConcurrent}``), and ``run:`` / ``executor: dag`` with ``command:`` (a child
DAG).  seekrun's own node keys (``files``, ``outputs``, ``pool``, ``foreach``...) are accepted
as they are.  A step is node ``task.<name>`` (``dag.<name>`` for a child DAG).
"""
from __future__ import annotations

from seekrun.errors import suggest

RENAMED = {"timeoutSec": "timeout", "workingDir": "dir", "dir": "dir"}
DAGU_ONLY = ("depends", "continueOn", "retryPolicy", "parallel", "executor", "run", "timeoutSec", "workingDir")


def kind_of(step: dict) -> str:
    executor = step.get("executor")
    if isinstance(executor, dict):
        executor = executor.get("type")
    return "dag" if executor == "dag" or step.get("run") is not None else "task"


def executor_problem(step: dict) -> str | None:
    executor = step.get("executor")
    kind = executor.get("type") if isinstance(executor, dict) else executor
    if kind in (None, "dag", "shell", "command", "local"):
        return None
    return (f"executor '{kind}' is not one seekrun runs (it runs commands here, and child DAGs with "
            "executor: dag): run it from a command, e.g. docker run ... or ssh ...")


def _env(value, problems: list, path: tuple) -> dict | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and all(isinstance(v, dict) and len(v) == 1 for v in value):
        return {str(k): v for item in value for k, v in item.items()}
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return dict(v.split("=", 1) for v in value)
    problems.append((path, "env must be a mapping or a list of one-key mappings (- NAME: value)"))
    return None


def translate(step: dict, ids: dict[str, str], local: set[str], previous: str | None,
              problems: list) -> dict:
    """One step as a node definition; problems as (key path, message)."""
    name = step.get("name")
    kind = kind_of(step)
    why = executor_problem(step)
    if why:
        problems.append((("executor",), why))
    node: dict = {"kind": kind, "name": name}
    for key, value in step.items():
        if key in ("name", "depends", "executor", "command", "run", "continueOn", "retryPolicy", "parallel",
                   "env", "preconditions") or key in RENAMED:
            continue
        node[key] = value
    for key, new in RENAMED.items():
        if key in step:
            node[new] = step[key]
    if kind == "dag":
        target = step.get("run") if step.get("run") is not None else step.get("command")
        if not isinstance(target, str) or not target.strip():
            problems.append((("run" if "run" in step else "command",),
                             "a child DAG step names its DAG: 'run: file.yaml' (or executor: dag with command:)"))
            target = ""
        if target.strip() in local:
            target = f"#{target.strip()}"  # a local DAG: a document of this file (load.py puts the file in)
        node["run"] = target
    elif step.get("command") is not None:
        if step.get("script") is not None:
            node["shell"] = step["command"]  # Dagu: command is the script's interpreter
        else:
            node["command"] = step["command"]
    env = _env(step.get("env"), problems, ("env",))
    if env is not None:
        node["env"] = env
    if step.get("preconditions") is not None:
        pres = step["preconditions"]
        node["preconditions"] = [{"condition": p} if isinstance(p, str) else p for p in pres] \
            if isinstance(pres, list) else pres
    depends = step.get("depends")
    if isinstance(depends, str):
        depends = [depends]
    if depends is None:
        depends = [previous] if previous else []
    elif not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
        problems.append((("depends",), "depends names steps: a step name or a list of them"))
        depends = []
    refs = []
    for i, dep in enumerate(depends):
        if dep in ids:
            refs.append(ids[dep])
        else:
            problems.append((("depends", i) if isinstance(step.get("depends"), list) else ("depends",),
                             f"depends on '{dep}', which is not a step of this workflow"
                             f"{suggest(dep, list(ids))}: the steps are {', '.join(ids) or 'none'}"))
    if refs:
        node["depends_on"] = [*(node.get("depends_on") or []), *refs]
    _continue_on(step.get("continueOn"), node, problems)
    _retry(step.get("retryPolicy"), node, problems)
    _parallel(step.get("parallel"), node, problems)
    return node


def _continue_on(value, node: dict, problems: list) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append((("continueOn",), "continueOn must be a mapping, e.g. {failure: true}"))
        return
    out: dict = {}
    for key, v in value.items():
        if key in ("failure", "skipped"):
            out[key] = v
        elif key == "exitCode":
            out["exit_codes"] = v
        elif key == "markSuccess":
            out["mark_success"] = v
        elif key in ("output",):
            problems.append((("continueOn", key), "continueOn.output (matching the output text) is not "
                             "supported: use exitCode, or a precondition on the next step"))
        else:
            problems.append((("continueOn", key), f"continueOn has no key '{key}': use failure, skipped, "
                             "exitCode or markSuccess"))
    node["continue_on"] = out


def _retry(value, node: dict, problems: list) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append((("retryPolicy",), "retryPolicy must be a mapping, e.g. {limit: 3, intervalSec: 10}"))
        return
    keys = {"limit": "limit", "intervalSec": "interval", "exitCode": "exit_codes", "backoff": "backoff",
            "maxIntervalSec": "max_interval"}
    out: dict = {}
    for key, v in value.items():
        if key not in keys:
            problems.append((("retryPolicy", key), f"retryPolicy has no key '{key}': use "
                             f"{', '.join(keys)}"))
            continue
        if key == "backoff" and v is True:
            v = 2.0
        elif key == "backoff" and v is False:
            v = 1.0
        out[keys[key]] = v
    node["retry"] = out


def _parallel(value, node: dict, problems: list) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        bad = sorted(set(value) - {"items", "maxConcurrent"})
        if bad:
            problems.append((("parallel", bad[0]), f"parallel has no key '{bad[0]}': use items and maxConcurrent"))
            return
        if "items" not in value:
            problems.append((("parallel",), "parallel needs items: a list, or ${VAR} holding one"))
            return
        items = value["items"]
        if "maxConcurrent" in value:
            n = value["maxConcurrent"]
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                problems.append((("parallel", "maxConcurrent"),
                                 f"parallel.maxConcurrent must be a positive integer, not {n!r}"))
                return
            node["max_concurrent"] = n
    else:
        items = value
    if not (isinstance(items, str) or (isinstance(items, list) and all(
            isinstance(i, (str, int, float)) and not isinstance(i, bool) or
            (isinstance(i, dict) and all(not isinstance(v, (list, dict)) for v in i.values())) for i in items))):
        problems.append((("parallel",), "parallel takes a list of items (words, numbers, or flat mappings), "
                         "${VAR} holding a JSON list or words, or {items: ..., maxConcurrent: N}"))
        return
    node["foreach"] = items
