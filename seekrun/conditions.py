"""Preconditions, evaluated on the worker when a node is about to run (never at parse time,
never by --dry-run): all must hold, in the order written, or the node is skipped.

- ``{condition: "${ENV}", expected: "production"}``: the condition's value, with ``${NAME}``
  filled in (the node's params, then its env mapping, then the environment: seekrun/values.py)
  and each `` `command` `` replaced by its output (trimmed), equals ``expected``;
  ``expected: "re:<regex>"`` is an unanchored regex search.
- ``{condition: "test -f data/today.csv"}``: a command (``/bin/sh -c``, in the project folder)
  that must exit 0.
- ``{sql: "SELECT ..."}``: a query on the node's inputs, on the worker's DuckDB cursor, that
  must return true.
- ``{expr: "{{ extract.exit_code != 0 }}"}``: an expression over the input tasks' exit code
  and status in this run (seekrun/workflows/expr.py: a parser of its own, never ``eval``).
- ``negate: true`` on any: it must not hold.

A condition that cannot be evaluated (an unknown ``${NAME}``, a query error) fails the node:
a typo must not skip a node quietly, run after run.  Commands run in their own process group,
killed on Ctrl-C (``Commands.kill``) and after the node's timeout.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

from seekrun import secrets
from seekrun.controls import describe, format_duration, lookup_for
from seekrun.kinds.base import NodeFailure
from seekrun.values import UnknownValue, expand

_BACKTICK = re.compile(r"`([^`]*)`")


class Commands:
    """The precondition commands running now (to stop them on Ctrl-C)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen] = set()
        self.stopped = False

    def run(self, command: str, root: Path, node_id: str, timeout: float | None) -> tuple[int, str]:
        """(exit code, stdout) of ``/bin/sh -c command`` in the project folder."""
        env = {**os.environ, "SEEKRUN_PROJECT_DIR": str(root), "SEEKRUN_NODE": node_id}
        with self._lock:
            if self.stopped:
                raise NodeFailure("interrupted before it started")
            proc = subprocess.Popen(["/bin/sh", "-c", command], cwd=root, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
            self._procs.add(proc)
        from seekrun.engines.process import follow

        try:
            with open(os.devnull, "wb") as sink:  # its output is its value, never logged
                code, timed_out, _, kept = follow(proc, sink, timeout, True, lambda text: text)
        finally:
            with self._lock:
                self._procs.discard(proc)
        if timed_out:
            raise NodeFailure(f"precondition timed out after {format_duration(timeout)}: {command}",
                              timed_out=True)
        return code, b"".join(kept).decode("utf-8", "replace")

    def kill(self) -> None:
        with self._lock:
            self.stopped = True
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: a `sleep` the shell started too
    except (ProcessLookupError, PermissionError):
        pass


def unmet(node: dict, root: Path, engine, commands: Commands, upstream: dict | None = None) -> str | None:
    """The first precondition that does not hold, described as written; None when all hold.
    NodeFailure when one cannot be evaluated. ``upstream`` (a task's run context): its input
    tasks' captured values and ``${name.status}`` / ``${name.exit_code}``, as its command sees them."""
    from seekrun.params import env_of

    own = lookup_for(node, lambda name: None)
    late = None
    if upstream is not None and node.get("task"):
        from seekrun.kinds.task_run import lookup_for as task_lookup

        late = task_lookup(node, upstream, {}, {}, environ={}, project_env=env_of(root))

    def lookup(name: str) -> str | None:
        value = own(name)
        if value is None and late is not None:
            value = late(name)
        if value is None:
            value = project_env.get(name)
        return os.environ.get(name) if value is None else value
    project_env = env_of(root)
    timeout = node.get("timeout")
    for pre in node.get("preconditions") or ():
        try:
            held = _expr_holds(pre, upstream or {}) if "expr" in pre else \
                _holds(pre, node, root, engine, commands, lookup, timeout)
        except UnknownValue as exc:
            raise NodeFailure(secrets.redact(
                f"precondition {describe(pre)}: ${{{exc.name}}} has no value (not in the node's params, "
                "env or the environment): set it, or write ${" + exc.name + ":-default}")) from None
        except NodeFailure as exc:
            if str(exc).startswith(("interrupted", "precondition")):
                raise
            raise NodeFailure(secrets.redact(f"precondition {describe(pre)} could not be checked: {exc}"),
                              timed_out=exc.timed_out) from None
        if held == bool(pre.get("negate")):
            return secrets.redact(describe(pre))
    return None


def _expr_holds(pre: dict, upstream: dict) -> bool:
    """``{expr: ...}``: over the input tasks' status and exit code in this run (never eval)."""
    from seekrun.workflows.expr import evaluate, parse

    seen = {name: upstream.get(nid) or {} for name, nid in (pre.get("tasks") or {}).items()}
    return bool(evaluate(parse(pre["expr"]), seen, os.environ))


def _holds(pre: dict, node: dict, root: Path, engine, commands: Commands, lookup, timeout) -> bool:
    nid = node["id"]
    if "sql" in pre:
        condition = getattr(engine, "condition", None)
        if condition is None:
            raise NodeFailure("this engine cannot run SQL preconditions")
        value = condition(node, pre["run"])
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        raise NodeFailure(f"the query must return true or false, not {str(value)[:40]!r}")
    if "expected" not in pre:  # a command: exit 0 holds
        code, _ = commands.run(expand(pre["condition"], lookup, shell=True), root, nid, timeout)
        return code == 0
    # split on the backticks as written, so a value filled in can never become a command
    parts = _BACKTICK.split(pre["condition"])  # text, command, text, command, ..., text
    value = "".join(expand(part, lookup) if i % 2 == 0 else
                    commands.run(expand(part, lookup, shell=True), root, nid, timeout)[1].strip()
                    for i, part in enumerate(parts))
    expected = pre["expected"]
    if expected.startswith("re:"):
        return re.search(expected[3:], value) is not None
    return value == expected
