"""Python Script Runner workflow files: a YAML document with a top-level ``tasks:`` mapping.

Read as seekrun/workflows/load.py reads a Dagu file (the same Project, the same state beside
the file); each task becomes a task node ``task.<name>`` (the scheduler learns nothing new):

- ``script``: a ``.py`` file runs with seekrun's interpreter, ``.sh`` with ``sh``, anything else
  as a program; paths are relative to the workflow file, and tasks run in its folder.
- ``depends_on`` -> ``depends_on``; ``timeout_minutes`` -> ``timeout``; ``retries``,
  ``retry_backoff`` (exponential, linear, constant) and ``retry_delay_ms`` -> ``retry``;
  ``environment`` -> ``env`` (``{{ env.NAME }}`` is ``env_var('NAME')``: a secret-safe value,
  ``{{ matrix.key }}`` the instance's value); ``run_always``; ``matrix`` (instances
  ``task.<name>[<value>]``) with ``parallelism`` as its ``max_concurrent``.
- ``condition`` / ``skip_if``: an expression over upstream tasks (seekrun/workflows/expr.py),
  a precondition ``{expr}`` (negated for skip_if), decided once those tasks are done; a task
  read by one is waited for.  A task with a ``condition`` on other tasks runs whatever they
  did (as ``run_always``): its condition decides.
- ``cpu_cores`` -> ``pool: cpu, slots: N`` when the workflow declares a pool named ``cpu``
  (``pools: {cpu: 8}``); ``memory_mb`` and ``disk_gb`` likewise with pools ``memory_mb`` and
  ``disk_gb`` (a task holds one pool: the first that applies).  Without such pools they are
  accepted hints, and nothing more.
- seekrun's own task keys (``files``, ``outputs``, ``pool``, ``slots``, ``continue_on``...) work
  too; a task that declares neither ``files`` nor ``outputs`` runs on every run.

Top level: ``name``, ``version``, ``description``, ``tasks``, ``notifications``
(``on_success`` / ``on_failure``: ``type: slack`` with ``webhook`` -> ``Project.notify``; email
and pagerduty are accepted and reported as unsupported, in one warning), and seekrun's
``max_active_nodes``, ``pools``, ``timeout``, ``params``, ``env``, ``dotenv``.  The seed's
form with everything under a top-level ``workflow:`` mapping is read too.
"""
from __future__ import annotations

import math
import re

from seekrun.errors import Diagnostic, suggest

TOP_KEYS = ("name", "version", "description", "tasks", "notifications", "max_active_nodes", "pools", "timeout",
            "params", "env", "dotenv")
TASK_KEYS = ("script", "depends_on", "timeout_minutes", "retries", "retry_backoff", "retry_delay_ms", "environment",
             "condition", "skip_if", "run_always", "parallelism", "matrix", "cpu_cores", "memory_mb", "disk_gb",
             "description")
SEEKRUN_KEYS = ("files", "outputs", "pool", "slots", "continue_on", "preconditions", "output", "dir", "params",
                "tags", "always", "max_concurrent")
BACKOFFS = {"exponential": "exponential", "linear": "linear", "constant": "constant"}
HINTS = {"cpu_cores": "cpu", "memory_mb": "memory_mb", "disk_gb": "disk_gb"}  # hint -> the pool it takes
NOTIFY_TYPES = ("slack", "webhook", "email", "pagerduty")
_ENV = re.compile(r"\{\{\s*env\.([A-Za-z_]\w*)\s*\}\}")
_MATRIX = re.compile(r"\{\{\s*matrix\.([A-Za-z_][\w-]*)\s*\}\}")


def tasks_of(data):
    """The workflow mapping (the document, or its ``workflow:``) when it has a ``tasks:`` mapping."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), dict):
        return data
    inner = data.get("workflow") if isinstance(data, dict) and len(data) == 1 else None
    return inner if isinstance(inner, dict) and isinstance(inner.get("tasks"), dict) else None


def unwrap(data, node):
    """(workflow mapping, its YAML node): the document, or its ``workflow:`` value."""
    if isinstance(data, dict) and isinstance(data.get("tasks"), dict):
        return data, node
    return data["workflow"], _value(node, "workflow") or node


def _value(node, key):
    return next((v for k, v in getattr(node, "value", ()) if getattr(k, "value", None) == key), None)


def template(text: str) -> str:
    """``{{ env.NAME }}`` -> ``{{ env_var('NAME') }}``, ``{{ matrix.key }}`` -> ``${matrix.key}``."""
    return _MATRIX.sub(r"${matrix.\1}", _ENV.sub(r"{{ env_var('\1') }}", text))


def configure(project, cfg: dict, rel: str, line, errors: list[Diagnostic]) -> None:
    """The top level of a Script Runner file into the Project (its keys, its notifications)."""
    for key in cfg:
        if key not in TOP_KEYS:
            errors.append(Diagnostic(rel, line(key), f"unknown workflow key '{key}'{suggest(str(key), TOP_KEYS)}: "
                                                     "remove it", "warning"))
    from seekrun.project import read_timeout

    read_timeout(project, cfg, rel, line, errors)
    _notifications(project, cfg.get("notifications"), rel, line, errors)


def _notifications(project, value, rel: str, line, errors: list[Diagnostic]) -> None:
    if value is None:
        return
    node = line.node
    where = line("notifications")
    if not isinstance(value, dict):
        errors.append(Diagnostic(rel, where, "notifications must be a mapping: on_success, on_failure"))
        return
    unsupported: list[str] = []
    for key, entries in value.items():
        when = {"on_success": "success", "on_failure": "failure"}.get(key)
        at = _line(node, ("notifications", key)) or where
        if when is None:
            errors.append(Diagnostic(rel, at, f"notifications has no '{key}'"
                                              f"{suggest(str(key), ['on_success', 'on_failure'])}: "
                                              "use on_success or on_failure"))
            continue
        for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
            at = _line(node, ("notifications", key, i)) if isinstance(entries, list) else at
            kind = entry.get("type") if isinstance(entry, dict) else None
            if kind not in NOTIFY_TYPES:
                errors.append(Diagnostic(rel, at, f"notifications.{key}: each is a mapping with a type: slack "
                                                  f"(with webhook:){suggest(str(kind), NOTIFY_TYPES)}"))
            elif kind in ("email", "pagerduty"):
                unsupported.append(f"{kind} (line {at})")
            elif not isinstance(entry.get("webhook"), str) or not entry["webhook"].strip():
                errors.append(Diagnostic(rel, at, f"notifications.{key}: a {kind} notification needs "
                                                  "webhook: <url> (e.g. '{{ env.SLACK_WEBHOOK }}')"))
            else:
                project.notify.append({"when": [when], "webhook": template(entry["webhook"].strip()),
                                       "command": None, "line": at})
    if unsupported:
        errors.append(Diagnostic(rel, where, "notifications not supported by seekrun (it posts slack webhooks), "
                                             f"ignored: {', '.join(unsupported)}", "warning"))


def _line(node, path) -> int | None:
    from seekrun.parser.yaml_load import line_of

    return line_of(node, path)


def read_records(cfg: dict, node, text: str, rel: str, root):
    """(records, errors, warnings, notes) for the tasks of a Script Runner workflow."""
    from seekrun.kinds.task import ALWAYS_UNDECLARED
    from seekrun.parser.records import _record
    from seekrun.parser.yaml_load import Document

    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    notes: list[str] = []
    tasks = cfg["tasks"]
    tasks_node = _value(node, "tasks") or node
    pools = cfg.get("pools") if isinstance(cfg.get("pools"), dict) else {}
    translated, broken = [], set()
    for name, spec in tasks.items():
        task_node = _value(tasks_node, name) or tasks_node
        where = task_node.start_mark.line + 1
        if not isinstance(spec, dict):
            errors.append(Diagnostic(rel, where, f"task {name}: a task is a mapping with script: <file>"))
            broken.add(f"task.{name}")
            continue
        problems: list = []
        data = translate(str(name), spec, tasks, pools, root, problems, notes)
        for path, message, *severity in problems:
            (warnings if severity else errors).append(Diagnostic(
                rel, _line(task_node, path) or where, f"task {name}: {message}", *severity))
        if any(not severity for _, _, *severity in problems):
            broken.add(f"task.{name}")
            continue
        translated.append((spec, data, task_node, where))
    records = []
    for spec, data, task_node, where in translated:
        if broken and data.get("depends_on"):  # its own error is reported: not again as a missing ref
            data["depends_on"] = [d for d in data["depends_on"] if d not in broken]
        sub = Document(data, task_node, where, text)
        rec = _record("task", data, sub, rel, errors, warnings, None, root, "{{" in text)
        if rec is not None:
            if not (spec.get("files") or spec.get("outputs")) and not rec.get("always"):
                rec["always"] = ALWAYS_UNDECLARED  # a script says nothing of what it reads: it runs every run
            records.append(rec)
    return records, errors, warnings, [f"{rel}: {n}" for n in notes]


def translate(name: str, spec: dict, tasks: dict, pools: dict, root, problems: list, notes: list) -> dict:
    """One task as a task node definition; problems as (key path, message[, "warning"])."""
    node: dict = {"kind": "task", "name": name}
    for key in spec:
        if key in SEEKRUN_KEYS:
            node[key] = spec[key]
        elif key not in TASK_KEYS:
            problems.append(((key,), f"unknown key '{key}'{suggest(str(key), TASK_KEYS)}: remove it", "warning"))
    if spec.get("description") is not None:
        node["description"] = spec["description"]
    _script(spec.get("script"), node, root, problems)
    depends = _depends(spec.get("depends_on"), tasks, problems)
    _condition(spec, node, depends, tasks, problems)
    if depends:
        node["depends_on"] = [*(node.get("depends_on") or []), *(f"task.{d}" for d in depends)]
    minutes = spec.get("timeout_minutes")
    if minutes is not None:
        if _number(minutes) is None or minutes <= 0:
            problems.append((("timeout_minutes",), f"timeout_minutes must be a number above 0, not {minutes!r}"))
        else:
            node["timeout"] = minutes * 60
    _retry(spec, node, problems)
    env = spec.get("environment")
    if env is not None:
        if not isinstance(env, dict) or any(isinstance(v, (dict, list)) or v is None for v in env.values()):
            problems.append((("environment",), "environment must map variable names to values"))
        else:
            node["env"] = {str(k): template(v) if isinstance(v, str) else v for k, v in env.items()}
    if spec.get("run_always") is not None:
        node["run_always"] = spec["run_always"]  # (checked with the other run controls)
    if spec.get("matrix") is not None:
        node["matrix"] = spec["matrix"]
    n = spec.get("parallelism")
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            problems.append((("parallelism",), f"parallelism must be a whole number from 1, not {n!r}"))
        elif spec.get("matrix") is not None:
            node.setdefault("max_concurrent", n)
        else:
            notes.append(f"task {name}: parallelism {n} without a matrix: the task runs once (give it a matrix "
                         "to run instances in parallel)")
    _hints(name, spec, node, pools, problems, notes)
    return node


def _number(v):
    return None if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) else v


def _script(script, node: dict, root, problems: list) -> None:
    if not isinstance(script, str) or not script.strip():
        problems.append((("script",) if script is not None else (), "a task runs a script: add "
                         "'script: ./scripts/<file>.py' (a .py file, a .sh file or a program)"))
        return
    script = script.strip()
    if not (root / script).is_file():
        problems.append((("script",), f"script '{script}' does not exist (paths are relative to the workflow "
                                      "file): create it or fix the path"))
        return
    if script.endswith(".py"):
        node["python"] = script
    elif script.endswith(".sh"):
        node["command"] = ["sh", script]
    else:
        node["command"] = [script if "/" in script else f"./{script}"]


def _depends(value, tasks: dict, problems: list) -> list[str]:
    if value is None:
        return []
    listed = [value] if isinstance(value, str) else value
    if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
        problems.append((("depends_on",), "depends_on names tasks: a task name or a list of them"))
        return []
    out = []
    for i, dep in enumerate(listed):
        if dep in tasks:
            out.append(dep)
        else:
            problems.append((("depends_on", i) if isinstance(value, list) else ("depends_on",),
                             f"depends on '{dep}', which is not a task of this workflow"
                             f"{suggest(dep, [str(t) for t in tasks])}"))
    return out


def _condition(spec: dict, node: dict, depends: list, tasks: dict, problems: list) -> None:
    from seekrun.workflows.expr import BadExpression, parse, plain
    from seekrun.workflows.expr import tasks as read

    pres = []
    for key in ("condition", "skip_if"):
        if spec.get(key) is None:
            continue
        try:
            tree = parse(spec[key])
        except BadExpression as exc:
            problems.append(((key,), f"{key}: bad expression: {exc}"))
            continue
        names = read(tree)
        unknown = [t for t in names if t not in tasks]
        if unknown:
            problems.append(((key,), f"{key} reads '{unknown[0]}', which is not a task of this workflow"
                                     f"{suggest(unknown[0], [str(t) for t in tasks])}"))
            continue
        depends.extend(t for t in names if t not in depends)  # it waits for what it reads
        text = plain(spec[key]) if isinstance(spec[key], str) else str(spec[key]).lower()
        pres.append({"expr": text, "negate": key == "skip_if"})
        if key == "condition" and names and spec.get("run_always") is None:
            node["run_always"] = True  # it runs whatever its upstream tasks did: the condition decides
    if pres:
        node["preconditions"] = [*(node.get("preconditions") or []), *pres]


def _retry(spec: dict, node: dict, problems: list) -> None:
    keys = ("retries", "retry_backoff", "retry_delay_ms")
    if all(spec.get(k) is None for k in keys):
        return
    retries, backoff, delay = (spec.get(k) for k in keys)
    retry: dict = {"limit": 0 if retries is None else retries}
    if retries is None:
        problems.append((("retry_backoff" if backoff is not None else "retry_delay_ms",),
                         "retry_backoff and retry_delay_ms have no effect without retries: add 'retries: N'",
                         "warning"))
    if backoff is not None:
        if backoff not in BACKOFFS:
            problems.append((("retry_backoff",), f"retry_backoff '{backoff}' is not one of exponential, linear or "
                                                 f"constant{suggest(str(backoff), list(BACKOFFS))}"))
            return
        retry["backoff"] = BACKOFFS[backoff]
    if delay is not None:
        if _number(delay) is None or delay < 0:
            problems.append((("retry_delay_ms",), f"retry_delay_ms must be a number of milliseconds, not {delay!r}"))
            return
        retry["interval"] = delay / 1000
    node["retry"] = retry


def _hints(name: str, spec: dict, node: dict, pools: dict, problems: list, notes: list) -> None:
    for key, pool in HINTS.items():
        v = spec.get(key)
        if v is None:
            continue
        if _number(v) is None or v <= 0:
            problems.append(((key,), f"{key} must be a number above 0, not {v!r}"))
        elif pool in pools and "pool" not in node:
            node["pool"], node["slots"] = pool, max(1, math.ceil(v))
        elif pool not in pools:
            notes.append(f"task {name}: {key} is a hint: declare pools: {{{pool}: N}} to have it hold {v} "
                         f"of N slots while it runs")
