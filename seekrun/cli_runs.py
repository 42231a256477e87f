"""Watching runs from the command line: ``seekrun runs``, ``logs``, ``status``, ``cancel``.

Read-only, and never take the project lock (they work while a run goes on); they read
target/runs/ (seekrun/history.py).  ``cancel`` sends SIGTERM to the lock's holder, which
stops as after Ctrl-C.  Exit codes: 0; 1 when ``cancel`` finds no run in progress (or the run
did not stop in time); 2 for bad input (an unknown node or run, a node with no log).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from seekrun.completion import complete_node


def _target(project_dir: Path) -> Path:
    from seekrun.project import find_project

    return find_project(project_dir).target_dir


def _usage(message: str) -> None:
    print(f"seekrun: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _holder(target: Path):
    from seekrun.lock import ProjectLock

    return ProjectLock(target).holder()


def runs(project_dir: Path, as_json: bool, limit: int) -> None:
    from seekrun import history

    target = _target(project_dir)
    ids = history.run_ids(target)[:limit]
    holder = _holder(target)
    newest = history.progress(target) if holder is not None else None
    # the newest folder is the running one only if the lock holder started it (not a killed run's)
    running = newest is not None and str(newest.get("run_pid")) == holder.pid
    rows = [history.describe_run(target, rid, running and i == 0) for i, rid in enumerate(ids)]
    if as_json:
        print(json.dumps(rows, indent=1, sort_keys=True))
        return
    if not rows:
        print("No runs recorded yet (target/runs/ is empty): `seekrun run` records each run there.")
        return
    print(f"{'RUN ID':<28} {'STARTED':<26} {'DURATION':>9}  {'STATUS':<10} RAN CACHED FAILED SKIPPED CANCELLED")
    for r in rows:
        c = r["counts"]
        took = "-" if r["duration"] is None else f"{r['duration']:.2f}s"
        print(f"{r['run_id']:<28} {r['started_at'] or '-':<26} {took:>9}  {r['status'] or '-':<10} "
              f"{c['ran']:>3} {c['cached']:>6} {c['failed']:>6} {c['skipped']:>7} {c.get('cancelled', 0):>9}")


def logs(node: str, project_dir: Path, run_id: Optional[str], as_json: bool = False) -> None:
    import difflib

    from seekrun import history
    from seekrun.secrets import redact

    target = _target(project_dir)
    ids = history.run_ids(target)
    if run_id is not None:
        if run_id not in ids:
            close = difflib.get_close_matches(run_id, ids, 1)
            _usage(f"no run '{run_id}' in target/runs/" + (f": did you mean {close[0]}?" if close else
                                                             ": `seekrun runs` lists the runs kept"))
        ids = [run_id]
    known = _node_ids(target)
    named = sorted(k for k in known if k.split(".", 1)[-1] == node) if node not in known and "." not in node else []
    if len(named) > 1:
        _usage(f"'{node}' is ambiguous: use one of {', '.join(named)}")
    nid = named[0] if named else node
    for rid in ids:
        path = history.run_dir(target, rid) / "logs" / f"{nid}.log"
        if path.is_file():
            text = redact(path.read_text(encoding="utf-8", errors="replace"))
            if as_json:
                text = json.dumps({"run_id": rid, "node": nid, "path": str(path), "log": text}, indent=1) + "\n"
            sys.stdout.write(text)
            sys.stdout.flush()
            return
    if known and nid not in known and not nid.startswith("handler."):
        close = difflib.get_close_matches(nid, sorted(known), 1)
        _usage(f"unknown node '{node}'" + (f": did you mean {close[0]}?" if close else
                                          ": `seekrun show NODE` names the project's nodes"))
    where = f"run {run_id}" if run_id else f"the {len(ids)} runs kept"
    _usage(f"no log for {nid} in {where}: only tasks write logs, and only when they run "
           "(`seekrun runs` lists the runs; a cached task has its log in the run that built it)")


def _node_ids(target: Path) -> set[str]:
    try:
        return set((json.loads((target / "manifest.json").read_text(encoding="utf-8")).get("nodes") or {}))
    except (OSError, ValueError, AttributeError):
        return set()


def status(project_dir: Path, as_json: bool) -> None:
    from seekrun import history

    target = _target(project_dir)
    holder = _holder(target)
    where = history.progress(target)
    pid = str(where.pop("run_pid")) if where is not None else None
    # the newest run is the lock holder's (not one killed earlier), still going
    building = holder is not None and where is not None and not where["finished"] and pid == holder.pid
    out = {"running": holder is not None, "pid": int(holder.pid) if holder and holder.pid.isdigit() else None,
           "phase": "building" if building else "starting" if holder is not None else None}
    if holder is not None and not building:
        out.update(run_id=None, last_run=where)
    else:
        out.update(where or {"run_id": None})
    if as_json:
        print(json.dumps(out, indent=1, sort_keys=True))
        return
    if holder is not None and not building:
        last = f"; the last run, {where['run_id']}, ended {where['status'] or 'unfinished'}" if where else ""
        print(f"A run is starting ({holder.describe()}): parsing or planning, no node started yet{last}.")
    elif where is None:
        print("No run recorded yet.")
    elif building:
        now = ", ".join(where["running_nodes"]) or "-"
        print(f"Run {where['run_id']} is running ({holder.describe()}): {where['done']} done, "
              f"{len(where['running_nodes'])} running ({now}), {where['pending']} pending")
    elif where["finished"]:
        print(f"No run in progress. The last run, {where['run_id']}, ended {where['status']}: "
              f"{where['done']} nodes done.")
    else:
        print(f"No run in progress. The last run, {where['run_id']}, did not finish (killed?): "
              f"{where['done']} done, {where['pending'] + len(where['running_nodes'])} left undone.")


def cancel(project_dir: Path, wait: float) -> None:
    import os
    import signal
    import time

    target = _target(project_dir)
    holder = _holder(target)
    if holder is None or not holder.pid.isdigit() or int(holder.pid) == os.getpid():
        print("No run in progress: nothing to cancel.", file=sys.stderr)
        raise typer.Exit(1)
    who = holder.describe()
    try:
        os.kill(int(holder.pid), signal.SIGTERM)
    except ProcessLookupError:
        print("No run in progress: nothing to cancel (it just ended).", file=sys.stderr)
        raise typer.Exit(1)
    print(f"Sent SIGTERM to {who}: it stops its running nodes and keeps what finished.")
    deadline = time.monotonic() + wait
    while wait and _holder(target) is not None:
        if time.monotonic() >= deadline:
            print(f"seekrun: the run is still stopping after {wait:g} s", file=sys.stderr)
            raise typer.Exit(1)
        time.sleep(0.05)
    if wait:
        print("The run has stopped.")


def register(app: typer.Typer, project_opt) -> None:
    """Add the commands to the CLI (each a thin wrapper over the functions above)."""
    from seekrun.errors import ProjectError

    def guarded(fn, *args):
        try:
            fn(*args)
        except ProjectError as exc:
            from seekrun.clierrors import fail

            fail(exc, False)

    @app.command("runs", short_help="List recent runs with their status and counts.")
    def _runs(project_dir: Path = project_opt,
              as_json: bool = typer.Option(False, "--json", help="A list of objects: run_id, started_at, "
                                                                   "duration, status, counts."),
              limit: int = typer.Option(20, "--limit", "-n", help="Show this many runs (newest first).")):
        """List recent runs, newest first: id, start, duration, status and counts.

        Example: seekrun runs -n 5 --json"""
        guarded(runs, project_dir, as_json, limit)

    @app.command("logs", short_help="Print a node's log from a run.")
    def _logs(node: str = typer.Argument(..., help="Node id (kind.name) or a unique name.",
                                         autocompletion=complete_node),
              project_dir: Path = project_opt,
              run_id: Optional[str] = typer.Option(None, "--run", help="The run (an id from `seekrun runs`)."),
              as_json: bool = typer.Option(False, "--json",
                                           help='Print {"run_id", "node", "path", "log": the text} as JSON.')):
        """Print a node's log from the last run that ran it (or from the named run).

        Example: seekrun logs task.extract_sales --run 20261201T101500.123-1a2b3c"""
        guarded(logs, node, project_dir, run_id, as_json)

    @app.command("status", short_help="Where the current run is.")
    def _status(project_dir: Path = project_opt,
                as_json: bool = typer.Option(False, "--json", help="Print it as JSON.")):
        """Where the current run is (from its events file; never takes the lock).

        --json: running, pid, phase (building, starting or null), run_id, and the run's progress
        (started_at, finished, status, done, running_nodes, pending).

        Example: seekrun status --json"""
        guarded(status, project_dir, as_json)

    @app.command("cancel", short_help="Stop the run in progress.")
    def _cancel(project_dir: Path = project_opt,
                wait: float = typer.Option(30.0, "--wait", help="Seconds to wait for it to stop (0: do not wait).")):
        """Stop the run in progress (SIGTERM to the lock holder, as Ctrl-C). Exit 1 if none is.

        Example: seekrun cancel --wait 60"""
        guarded(cancel, project_dir, wait)
