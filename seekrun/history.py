"""Run history: ``target/runs/<run_id>/`` holds each non-dry run's events.jsonl, its
run_results.json (target/run_results.json stays the latest) and its node logs (logs/<node>.log).

Run ids start with the UTC start time to the millisecond (``20260102T030405.123-1a2b3c``), so
they sort by time.  ``history: {keep_runs: N}`` in the project file (default 50) keeps the N
newest; older folders are pruned at the end of a run, never during one (a folder whose logs
the state still points at, for a ``${step.stdout}``, is kept).
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

DEFAULT_KEEP = 50
COUNTED = {"success": "ran", "cached": "cached", "failed": "failed", "skipped": "skipped",
           "cancelled": "cancelled"}  # status -> count


def counts(statuses) -> dict:
    """ran / cached / failed / skipped, as `seekrun runs` shows them."""
    out = dict.fromkeys(COUNTED.values(), 0)
    for status in statuses:
        if status in COUNTED:
            out[COUNTED[status]] += 1
    return out


def new_run_id() -> str:
    now = datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%S')}.{now.microsecond // 1000:03d}-{os.urandom(3).hex()}"


def runs_dir(target_dir: Path) -> Path:
    return Path(target_dir) / "runs"


def run_dir(target_dir: Path, run_id: str) -> Path:
    return runs_dir(target_dir) / run_id


def log_path(target_dir: Path, run_id: str, nid: str) -> Path:
    """Where a node's (or a handler's) log goes: its run's folder (outside a run: target/logs/adhoc)."""
    if not run_id:
        return Path(target_dir) / "logs" / "adhoc" / f"{nid}.log"
    return run_dir(target_dir, run_id) / "logs" / f"{nid}.log"


def run_ids(target_dir: Path) -> list[str]:
    """The kept runs, newest first."""
    try:
        names = os.listdir(runs_dir(target_dir))
    except OSError:
        return []
    return sorted((n for n in names if not n.startswith(".") and os.path.isdir(runs_dir(target_dir) / n)),
                  reverse=True)


def keep_runs(metadata: dict) -> int:
    value = metadata.get("keep_runs")
    return value if isinstance(value, int) and value > 0 else DEFAULT_KEEP


def prune(target_dir: Path, keep: int, current: str, pinned=()) -> list[str]:
    """Delete all but the ``keep`` newest run folders (never the current run's, nor a pinned one)."""
    removed = []
    for rid in run_ids(target_dir)[keep:]:
        if rid == current or rid in pinned:
            continue
        shutil.rmtree(run_dir(target_dir, rid), ignore_errors=True)
        removed.append(rid)
    return removed


def pinned_runs(target_dir: Path, records: dict) -> set[str]:
    """Run folders holding a log the state points at (a cached task's ${step.stdout})."""
    bases = {str(runs_dir(target_dir)) + os.sep, str(runs_dir(target_dir).resolve()) + os.sep}
    out = set()
    for rec in records.values():
        log = rec.get("log") if isinstance(rec, dict) else None
        for base in bases:
            if isinstance(log, str) and log.startswith(base):
                out.add(log[len(base):].split(os.sep, 1)[0])
    return out


def read_events(path: Path) -> list[dict]:
    """A run's events; a line cut short by a kill is left out."""
    out = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    except OSError:
        return []
    return out


def describe_run(target_dir: Path, rid: str, running: bool = False) -> dict:
    """One run as `seekrun runs` shows it: from its run_results.json, else from its events
    (a run going on now, or one killed before it finished: status ``running`` / ``unfinished``)."""
    folder = run_dir(target_dir, rid)
    try:
        data = json.loads((folder / "run_results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        meta = data.get("metadata") or {}
        return {"run_id": rid, "started_at": meta.get("started_at"), "duration": meta.get("elapsed"),
                "status": data.get("status"), "counts": counts(r.get("status") for r in data.get("results") or [])}
    events = read_events(folder / "events.jsonl")
    started = next((e for e in events if e.get("event") == "run_started"), {})
    ended = (e.get("status") if e.get("event") == "node_finished" else "skipped" for e in events
             if e.get("event") in ("node_finished", "node_skipped"))
    return {"run_id": rid, "started_at": started.get("ts"), "duration": None,
            "status": "running" if running else "unfinished", "counts": counts(ended)}


def progress(target_dir: Path) -> dict | None:
    """Where the newest run is, from its events file: run id, nodes done, running, pending."""
    ids = run_ids(target_dir)
    if not ids:
        return None
    rid = ids[0]
    events = read_events(run_dir(target_dir, rid) / "events.jsonl")
    to_run, running, done, finished = 0, {}, set(), None
    for e in events:
        kind, node = e.get("event"), e.get("node_id")
        if kind == "run_started":
            to_run = int(e.get("to_run") or 0)
        elif kind == "node_started":
            running[node] = e.get("ts")
        elif kind in ("node_finished", "node_skipped"):
            if node in running or e.get("status") != "cached":
                done.add(node)
            running.pop(node, None)
        elif kind == "run_finished":
            finished = e
    started = next((e for e in events if e.get("event") == "run_started"), {})
    return {"run_id": rid, "started_at": started.get("ts"), "run_pid": started.get("pid"),
            "finished": finished is not None, "status": finished.get("status") if finished else None,
            "done": len(done), "running_nodes": sorted(running),
            "pending": max(0, to_run - len(done) - len(running))}


def write_results(target_dir: Path, run_id: str, summary, started_at: str, args: dict) -> None:
    """The run's run_results.json, in its folder and as target/run_results.json (the latest)."""
    from seekrun import __version__
    from seekrun.fsutil import atomic_write_json

    data = {
        "status": summary.status,  # success, failed, partial, cancelled
        "metadata": {"seekrun_version": __version__, "started_at": started_at,
                     "elapsed": round(summary.total_duration, 6), "args": args,
                     "interrupted": summary.interrupted, "timed_out": summary.timed_out},
        "results": [r.to_dict() for r in summary.results],
        "removed": summary.removed_nodes,
        "dropped": summary.dropped_nodes,
        **({"handlers": [h.to_dict() for h in summary.handlers]} if summary.handlers else {}),
    }
    atomic_write_json(run_dir(target_dir, run_id) / "run_results.json", data)
    atomic_write_json(Path(target_dir) / "run_results.json", data)  # the latest
