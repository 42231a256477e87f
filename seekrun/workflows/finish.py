"""After a workflow's run: its handlers (``handlerOn``), then what it gives back.

- Handlers run after the steps, every run: ``success`` or ``failure`` (or ``cancel`` after
  Ctrl-C, a kill or the run's timeout), then ``exit`` whatever happened.  They see the DAG_*
  variables (``DAG_STATUS`` too), the run's params, and every step's captured value by its
  output name (``${EXTRACTED_FILE}``).  A handler that fails fails the run.
- The outputs (``STATE/outputs.json``, read by a parent's dag node): each step's captured value
  under its output name and the ``key=value`` lines steps and handlers wrote to
  ``$DAG_RUN_OUTPUT_FILE``; with the status, the params and the counts.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from seekrun import values
from seekrun.fsutil import atomic_write_json
from seekrun.results import NodeResult, NodeStatus

CLEANUP = 600.0  # seconds a handler may take (Dagu's maxCleanUpTimeSec is its own limit, not read here)


def _status(summary) -> str:
    if summary.interrupted:
        return "cancelled"
    return "succeeded" if summary.exit_code == 0 else "failed"


def collected(manifest, records: dict, summary) -> dict[str, str]:
    """Step outputs in step order (the file's), later ones winning: of the steps that ran or were
    cached in this run (a failed or skipped one gives none, whatever it gave before)."""
    out: dict[str, str] = {}
    now = {r.node_id: r.status.value for r in summary.results}
    for nid in sorted(manifest.nodes, key=lambda n: (manifest.nodes[n].get("line") or 0, n)):
        node, rec = manifest.nodes[nid], records.get(nid) or {}
        if rec.get("status") != "success" or now.get(nid) not in ("success", "cached"):
            continue
        name = (node.get("task") or {}).get("output")
        if name and rec.get("value") is not None:
            out[name] = rec["value"]
        out.update(rec.get("outputs") or {})
    return out


def after_run(project, manifest, summary, params: dict[str, str], run_id: str) -> None:
    from seekrun.state import StateStore

    records = StateStore(project.state_dir).load(repair=False)
    outputs = collected(manifest, records, summary)
    from seekrun.hashing import hash_obj

    digest = hash_obj(sorted((nid, (records.get(nid) or {}).get("output_hash")) for nid in manifest.nodes))
    status = _status(summary)
    handlers = project.handlers or {}
    chosen = [h for h in (("cancel",) if status == "cancelled" else ("success",) if status == "succeeded"
                          else ("failure",)) if h in handlers] + (["exit"] if "exit" in handlers else [])
    for which in chosen:
        result, written = _handler(project, which, handlers[which], status, params, outputs, run_id)
        summary.results.append(result)
        outputs.update(written)
        if result.status is NodeStatus.FAILED and status == "succeeded":
            status = "failed"
    counts = {k: sum(1 for r in summary.results if r.status.value == v and not r.node_id.startswith("handler."))
              for k, v in (("ran", "success"), ("cached", "cached"), ("failed", "failed"), ("skipped", "skipped"))}
    error = next((r.error for r in summary.results if r.status is NodeStatus.FAILED and r.error), None)
    atomic_write_json(project.target_dir / "outputs.json",
                      {"name": project.name, "params": params, "status": status, "outputs": outputs,
                       "counts": counts, "digest": digest,
                       **({"error": error.splitlines()[0][:500]} if error else {})})


def _handler(project, which: str, step: dict, status: str, params: dict, outputs: dict, run_id: str):
    from seekrun.engines.process import ProcessRunner
    from seekrun.kinds.task_run import read_outputs, shown
    import shlex

    nid = f"handler.{which}"
    target = project.target_dir
    from seekrun.history import log_path

    log = log_path(target, run_id, nid)
    out_file = target / "tasks" / nid / "dag_run_output"
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (getattr(project, "env", None) or {}).items()})
    env.update(params)
    env.update(DAG_NAME=project.name, DAG_RUN_ID=run_id, DAG_RUN_STEP_NAME="onExit" if which == "exit" else
               f"on{which.capitalize()}", DAG_RUN_LOG_FILE=str(log), DAG_RUN_OUTPUT_FILE=str(out_file),
               DAG_STATUS=status)
    own = step.get("env") or {}
    if isinstance(own, list):
        own = {str(k): v for item in own if isinstance(item, dict) for k, v in item.items()}

    def lookup(name: str):
        for scope in (own, params, outputs, env):
            if name in scope:
                return str(scope[name])
        return None
    started = time.perf_counter()
    try:
        env.update({str(k): values.expand(str(v), lookup) for k, v in own.items()})
        if step.get("script") is not None:
            argv = [*shlex.split(step.get("shell") or step.get("command") or "sh"), "-c",
                    values.expand(step["script"], lookup, shell=True)]
        else:
            argv = ["/bin/sh", "-c", values.expand(step["command"], lookup, shell=True)]
    except values.UnknownValue as exc:
        return NodeResult(nid, NodeStatus.FAILED, error=f"{nid}: '${{{exc.name}}}' has no value"), {}
    cwd = project.root / step["dir"] if step.get("dir") else project.root
    runner = ProcessRunner()
    from seekrun.secrets import redact

    try:
        fin = runner.run(argv, cwd=cwd, env=env, log=log, timeout=CLEANUP, capture=False, redact=redact)
    finally:  # (stopped by Ctrl-C or a parent's timeout, the process runner stops the handler too)
        runner.close()
    took = time.perf_counter() - started
    if fin.exit_code != 0 or fin.error:
        tail = "".join(f"\n  | {line}" for line in fin.tail)
        why = fin.error or f"exited {fin.exit_code}"
        return NodeResult(nid, NodeStatus.FAILED, reason=f"handlerOn.{which}", duration=took, attempts=1,
                          error=redact(f"{nid} ({shown(argv)}) {why} (log: {os.path.relpath(log, project.root)}){tail}")), {}
    written = read_outputs(out_file)
    out_file.unlink(missing_ok=True)
    if any(redact(f"{k}={v}") != f"{k}={v}" for k, v in written.items()):
        return NodeResult(nid, NodeStatus.FAILED, reason=f"handlerOn.{which}", duration=took, attempts=1,
                          error=f"{nid}: what it wrote to $DAG_RUN_OUTPUT_FILE holds a secret (an env_var() or "
                                "dotenv value), which seekrun never stores: write a reference to it instead"), {}
    return NodeResult(nid, NodeStatus.SUCCESS, reason=f"handlerOn.{which}", duration=took, attempts=1), written


def refuse(project, why: str) -> None:
    """A child DAG that must not run (past the depth limit): it says so to its parent, exit 1."""
    from seekrun.errors import RunFailure

    project.target_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(project.target_dir / "outputs.json",
                      {"name": project.name, "params": {}, "status": "failed", "outputs": {}, "counts": {},
                       "error": why})
    raise RunFailure(why)
