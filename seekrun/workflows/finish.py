"""After a workflow's run: its handlers (``handlerOn``), then what it gives back.

- Handlers run after the steps, every run (seekrun/handlers.py, as a project's on_success...
  do): ``success`` or ``failure`` (or ``cancel`` after Ctrl-C or a kill), then ``exit``
  whatever happened.  They see the DAG_* variables (``DAG_STATUS`` too), the run's params, and
  every step's captured value by its output name (``${EXTRACTED_FILE}``).  A handler that
  fails fails the workflow (its outputs.json status, and the exit code).
- The outputs (``STATE/outputs.json``, read by a parent's dag node): each step's captured value
  under its output name and the ``key=value`` lines steps and handlers wrote to
  ``$DAG_RUN_OUTPUT_FILE``; with the status, the params and the counts.
"""
from __future__ import annotations

from seekrun.fsutil import atomic_write_json
from seekrun.results import NodeStatus


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
    from seekrun.handlers import run_all
    from seekrun.state import StateStore

    records = StateStore(project.state_dir).load(repair=False)
    outputs = collected(manifest, records, summary)
    from seekrun.hashing import hash_obj

    digest = hash_obj(sorted((nid, (records.get(nid) or {}).get("output_hash")) for nid in manifest.nodes))
    status = _status(summary)
    outputs.update(run_all(project, summary, run_id, params, outputs))  # handlerOn (seekrun/handlers.py)
    if status == "succeeded" and any(h.status is NodeStatus.FAILED for h in summary.handlers):
        status = "failed"  # for a parent's dag node, a handler that fails fails the workflow
    counts = {k: sum(1 for r in summary.results if r.status.value == v)
              for k, v in (("ran", "success"), ("cached", "cached"), ("failed", "failed"), ("skipped", "skipped"),
                                     ("cancelled", "cancelled"))}
    error = next((r.error for r in [*summary.results, *summary.handlers] if r.status is NodeStatus.FAILED and r.error),
                 None)
    atomic_write_json(project.target_dir / "outputs.json",
                      {"name": project.name, "params": params, "status": status, "outputs": outputs,
                       "counts": counts, "digest": digest,
                       **({"error": error.splitlines()[0][:500]} if error else {})})


def refuse(project, why: str) -> None:
    """A child DAG that must not run (past the depth limit): it says so to its parent, exit 1."""
    from seekrun.errors import RunFailure

    project.target_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(project.target_dir / "outputs.json",
                      {"name": project.name, "params": {}, "status": "failed", "outputs": {}, "counts": {},
                       "error": why})
    raise RunFailure(why)
