"""Handlers: tasks that run once at the end of a run, after its nodes.

A project file sets them as ``on_success``, ``on_failure``, ``on_cancel`` and ``on_exit``; a
Dagu workflow as ``handlerOn: {success, failure, cancel, exit}`` (seekrun/workflows/load.py).
One reader and one runner serve both:

- Which run: ``success`` when nothing failed (the run's status ``success`` or ``partial``),
  ``failure`` when a node failed (or the run passed its timeout), ``cancel`` after Ctrl-C or
  SIGTERM; then ``exit`` whatever happened, last.  Never on a dry run.
- Fields, as ``kind: task`` has them: one of ``command`` (a string for /bin/sh, or a list run as
  argv), ``script`` (with ``shell``) or ``python`` (a .py file run with seekrun's interpreter);
  ``env``, ``params``, ``dir``, ``timeout`` (default 10m) and ``retry`` (a number, or
  ``{limit, interval, backoff, max_interval, exit_codes}``).  A string is a command.
- Environment: the caller's, the project env (env:, dotenv:), the run params, then
  SEEKRUN_RUN_STATUS (success, failed, partial, cancelled), SEEKRUN_RUN_ID, SEEKRUN_RUN_RESULTS
  (target/run_results.json), SEEKRUN_PROJECT_DIR, SEEKRUN_TARGET_DIR, and Dagu's names (DAG_NAME,
  DAG_RUN_ID, DAG_RUN_STEP_NAME, DAG_RUN_LOG_FILE, DAG_RUN_OUTPUT_FILE, DAG_STATUS), then its env.
- Its log: target/runs/<run_id>/logs/handler.<which>.log.  A handler that fails is reported (one line
  and the tail of its log) and makes the exit code nonzero; the run's status stays what the
  nodes did (run_results.json gets a ``handlers`` list).
"""
from __future__ import annotations

import os
import shlex
import sys
import time

from seekrun import values
from seekrun.errors import Diagnostic, suggest
from seekrun.results import NodeResult, NodeStatus

WHICH = ("success", "failure", "cancel", "exit")
PROJECT_KEYS = {f"on_{w}": w for w in WHICH}  # the project file's spellings
FIELDS = ("command", "script", "shell", "python", "env", "params", "dir", "timeout", "retry", "description")
NOT_FOR_HANDLERS = ("inputs", "outputs", "files", "output", "preconditions", "continue_on", "run_always", "pool",
                    "slots", "foreach", "matrix", "always", "tags")
CLEANUP = 600.0  # seconds a handler may take unless it sets timeout:
# the run's status -> DAG_STATUS (Dagu's words: a partial run is a success there)
DAG_STATUS = {"success": "succeeded", "partial": "succeeded", "failed": "failed", "cancelled": "cancelled"}


def read(spec, label: str, rel: str, line, node, errors: list[Diagnostic], dagu: bool = False) -> dict | None:
    """One handler's spec, checked and normalised (None, with errors added, when it is wrong).
    ``line``: its line; ``node``: the YAML node it is under (for the lines of its keys)."""
    from seekrun.parser.yaml_load import line_of

    def err(path: tuple, message: str) -> None:
        at = line_of(node, path) if node is not None and path else None
        errors.append(Diagnostic(rel, at or line, f"{label}: {message}"))

    if isinstance(spec, str):
        spec = {"command": spec}
    if not isinstance(spec, dict):
        err((), "must be a command, or a task: {command: ..., env: ..., timeout: ..., retry: ...}")
        return None
    before = len(errors)
    for key in () if dagu else spec:  # (a Dagu step's other keys are not read, as before)
        if key in NOT_FOR_HANDLERS:
            err((key,), f"'{key}' is for a node, not a handler: a handler runs once, after the nodes")
        elif key not in FIELDS:
            err((key,), f"has no '{key}'{suggest(str(key), FIELDS)}: use {', '.join(FIELDS[:-1])}")
    if dagu and spec.get("script") is not None and spec.get("command") is not None:
        spec = {**spec, "shell": spec.get("shell") or spec["command"]}  # Dagu: the command runs the script
        spec.pop("command")
    how = [k for k in ("command", "script", "python") if spec.get(k) not in (None, "", [])]
    out: dict = {}
    if len(how) != 1:
        err(tuple(how[1:2]), "needs exactly one of 'command', 'script' or 'python'"
            + (f": it has {' and '.join(how)}" if how else ""))
    else:
        cmd = spec[how[0]]
        if how[0] == "command" and isinstance(cmd, list) and cmd and all(
                isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in cmd):
            out["argv"] = [str(c) for c in cmd]
        elif isinstance(cmd, str):
            out[how[0]] = cmd
        else:
            err((how[0],), f"{how[0]} must be a string" + (" or a list of strings" if how[0] == "command" else ""))
    shell = spec.get("shell")
    if shell is not None and (not isinstance(shell, str) or not shlex.split(shell) or "script" not in how):
        err(("shell",), "shell is for 'script', and names a program, e.g. bash or 'bash -e'")
    env = spec.get("env") or {}
    if isinstance(env, list):  # Dagu's list of single mappings
        env = {k: v for item in env if isinstance(item, dict) for k, v in item.items()}
    if not isinstance(env, dict) or not all(isinstance(k, str) and k.isidentifier() and
                                            isinstance(v, (str, int, float, bool)) for k, v in env.items()):
        err(("env",), "env must map variable names (letters, digits, _) to strings")
    params = spec.get("params") or {}
    if not isinstance(params, dict):
        err(("params",), "params must be a mapping of names to values")
    if spec.get("dir") is not None and not isinstance(spec["dir"], str):
        err(("dir",), "dir must be a folder path")
    from seekrun.controls import parse_controls

    controls, problems = parse_controls({k: spec.get(k) for k in ("timeout", "retry")}, [], frozenset())
    for path, message in problems:
        err(path, message)
    if len(errors) > before:
        return None
    out.update({"env": {k: values.as_text(v) for k, v in env.items()},
                "params": {str(k): values.as_text(v) for k, v in params.items()},
                "shell": shell or "sh", "key": label, "line": line, **controls,
                **({"dir": spec["dir"]} if spec.get("dir") else {})})
    return out


def read_project(project, cfg: dict, line, errors: list[Diagnostic]) -> None:
    """on_success, on_failure, on_cancel, on_exit in a project file."""
    node = getattr(line, "node", None)
    for key, which in PROJECT_KEYS.items():
        if cfg.get(key) is not None:
            sub = child_node(node, key)
            spec = read(cfg[key], key, project.marker, line(key), sub, errors)
            if spec is not None:
                project.handlers[which] = spec


def child_node(node, key):
    for k, v in getattr(node, "value", None) or []:
        if getattr(k, "value", None) == key:
            return v
    return None


def chosen(handlers: dict, status: str) -> list[str]:
    """The handlers that run for a run's status, in order (exit last)."""
    first = {"cancelled": "cancel", "failed": "failure"}.get(status, "success")
    return [w for w in (first, "exit") if w in handlers]


def run_all(project, summary, run_id: str, params: dict, outputs: dict | None = None) -> dict[str, str]:
    """Run the handlers the run's status calls for; their results go to summary.handlers (and
    run_results.json). Returns what they wrote to $DAG_RUN_OUTPUT_FILE."""
    written: dict[str, str] = {}
    status = summary.status
    for which in chosen(project.handlers or {}, status):
        result, more = run_one(project, which, project.handlers[which], status, params, {**(outputs or {}), **written},
                               run_id)
        summary.handlers.append(result)
        written.update(more)
    return written


def context_env(project, status: str, run_id: str, params: dict) -> dict[str, str]:
    """What a handler (and a notification command) sees besides its own env."""
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (getattr(project, "env", None) or {}).items()})
    env.update(params)
    env.update(SEEKRUN_RUN_STATUS=status, SEEKRUN_RUN_ID=run_id or "",
               SEEKRUN_RUN_RESULTS=str(project.target_dir / "run_results.json"),
               SEEKRUN_PROJECT_DIR=str(project.root), SEEKRUN_TARGET_DIR=str(project.target_dir),
               DAG_NAME=project.name, DAG_RUN_ID=run_id or "", DAG_STATUS=DAG_STATUS.get(status, status))
    return env


def run_one(project, which: str, step: dict, status: str, params: dict, outputs: dict, run_id: str):
    """(its NodeResult, the key=value lines it wrote to $DAG_RUN_OUTPUT_FILE)."""
    from seekrun.controls import retry_wait
    from seekrun.engines.process import ProcessRunner, describe
    from seekrun.kinds.task_run import read_outputs, shown
    from seekrun.secrets import redact

    nid, label = f"handler.{which}", step.get("key") or which
    from seekrun.history import log_path

    log = log_path(project.target_dir, run_id, nid)
    out_file = project.target_dir / "tasks" / nid / "dag_run_output"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.unlink(missing_ok=True)
    env = context_env(project, status, run_id, params)
    env.update(DAG_RUN_STEP_NAME="onExit" if which == "exit" else f"on{which.capitalize()}",
               DAG_RUN_LOG_FILE=str(log), DAG_RUN_OUTPUT_FILE=str(out_file))
    own, mine = step.get("env") or {}, step.get("params") or {}

    def lookup(name: str):
        for scope in (mine, own, params, outputs, env):
            if name in scope:
                return str(scope[name])
        return None

    def failed(message: str, took: float = 0.0, attempts: int = 1):
        return NodeResult(nid, NodeStatus.FAILED, reason=label, duration=took, attempts=attempts,
                          error=redact(message)), {}
    started = time.perf_counter()
    try:
        env.update({str(k): values.expand(str(v), lookup) for k, v in own.items()})
        if step.get("python") is not None:
            argv = [sys.executable, str(project.root / values.expand(step["python"], lookup))]
        elif step.get("argv") is not None:
            argv = [values.expand(a, lookup) for a in step["argv"]]
        elif step.get("script") is not None:
            argv = [*shlex.split(step.get("shell") or "sh"), "-c", values.expand(step["script"], lookup, shell=True)]
        else:
            argv = ["/bin/sh", "-c", values.expand(step["command"], lookup, shell=True)]
    except values.UnknownValue as exc:
        return failed(f"{nid} ({label}): '${{{exc.name}}}' has no value")
    cwd = project.root / step["dir"] if step.get("dir") else project.root
    if not cwd.is_dir():
        return failed(f"{nid} ({label}): dir '{step['dir']}' is not a folder")
    timeout = step.get("timeout") or CLEANUP
    policy = step.get("retry") or {"limit": 0}
    attempts = 0
    runner = ProcessRunner()
    try:
        while True:
            attempts += 1
            fin = runner.run(argv, cwd=cwd, env=env, log=log, timeout=timeout, capture=False, redact=redact)
            ok = fin.exit_code == 0 and not fin.error and not fin.timed_out
            codes = policy.get("exit_codes")
            if ok or fin.interrupted or attempts > policy["limit"] or (codes and fin.exit_code not in codes):
                break
            time.sleep(retry_wait(policy, attempts))
    finally:  # (stopped by Ctrl-C or a parent's timeout, the process runner stops the handler too)
        runner.close()
    took = time.perf_counter() - started
    if not ok:
        tail = "".join(f"\n  | {line}" for line in fin.tail)
        why = fin.error or (f"timed out after {describe(timeout)}" if fin.timed_out else f"exited {fin.exit_code}")
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return failed(f"{nid} ({shown(argv)}) {why}{tries} (log: {os.path.relpath(log, project.root)}){tail}",
                      took, attempts)
    written = read_outputs(out_file)
    out_file.unlink(missing_ok=True)
    if any(redact(f"{k}={v}") != f"{k}={v}" for k, v in written.items()):
        return failed(f"{nid}: what it wrote to $DAG_RUN_OUTPUT_FILE holds a secret (an env_var() or dotenv value), "
                      "which seekrun never stores: write a reference to it instead", took, attempts)
    return NodeResult(nid, NodeStatus.SUCCESS, reason=label, duration=took, attempts=attempts), written


def finish_run(project, manifest, summary, run_id: str) -> None:
    """After a run's nodes: its handlers (on_success... or handlerOn), then its notifications."""
    params = dict(manifest.metadata.get("params") or {})
    if project.flavour == "workflow" or project.target is not None:
        from seekrun.workflows.finish import after_run  # handlerOn, and what a parent dag node reads

        after_run(project, manifest, summary, params, run_id)
    elif project.handlers:
        run_all(project, summary, run_id, params)
    if project.notify:
        from seekrun.notify import send_all

        send_all(project, summary, run_id, params)
