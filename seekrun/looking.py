"""The read-only view the inspecting commands share (`show`, `ls`, `lineage`, `docs`): the
project parsed as it is now (nothing written), the last run's records, the selection, and
optionally the plan a dry run would make (whether each node would run now, and why).

No lock is taken: while a run holds the project, `holder` says who, the plan is made from the
last committed state, and callers do not open the database.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field


@dataclass
class Looked:
    project: object
    compiled: object
    manifest: object
    records: dict
    holder: object | None
    ids: list[str]  # the selected nodes (all of them without a selection), in build order
    results: dict = field(default_factory=dict)  # node id -> NodeResult of the dry-run plan
    db_path: object | None = None

    def would_run(self, nid: str) -> dict:
        """{"runs": bool, "reason": str|None, "state": text} for a planned node."""
        from seekrun.output import unbuildable

        res = self.results.get(nid)
        if res is None:
            return {"runs": None, "reason": None, "state": "-"}
        runs = res.status.value != "cached"
        if unbuildable(res):
            return {"runs": False, "reason": res.reason, "state": f"skipped: {res.reason}"}
        if runs:
            return {"runs": True, "reason": res.reason, "state": f"would run ({res.reason})"}
        if res.after_reread:
            return {"runs": None, "reason": res.reason, "state": f"may run ({res.reason})"}
        return {"runs": False, "reason": None, "state": "up to date"}


def look(project_dir, *, select=None, exclude=None, state=None, state_db=None, values=None,
         params: dict | None = None, plan: bool = False) -> Looked:
    """Parse (writing nothing), read the records, resolve the selection; with ``plan``, make
    the dry-run plan."""
    from seekrun import target
    from seekrun.cli_state import load_state
    from seekrun.compiled import Compiled
    from seekrun.lock import note_run_in_progress
    from seekrun.project import find_project
    from seekrun.state import StateStore

    project = find_project(project_dir)
    target.check(project.root, project.database_path, writes=False)
    holder = note_run_in_progress(project.target_dir)
    other = load_state(state, state_db, project)
    compiled = Compiled(project, strict=False, values=values, params=params)
    manifest = compiled.manifest
    records = StateStore(project.state_dir).load(repair=False) if project.state_dir.is_dir() else {}
    chosen = None
    if select or exclude:
        from seekrun.selector import context, resolve

        picked = resolve(manifest, context(manifest, records, project.target_dir, other), select=select,
                         exclude=exclude)
        if picked.note:
            print(picked.note, file=sys.stderr)
        chosen = picked.ids
    looked = Looked(project, compiled, manifest, records, holder, manifest.topological_order(chosen))
    if plan:
        from seekrun.runner import DAGRunner

        runner = DAGRunner(manifest, compiled.old, project.state_dir, project_dir=project.root,
                           file_cache=compiled.result.file_cache)
        runner.committed_only = holder is not None
        summary = runner.run(dry_run=True)
        looked.results = {r.node_id: r for r in summary.results}
        looked.db_path = runner.db_path
    return looked


def node_named(manifest, node: str) -> str:
    """A node id, or the id of the one node with this name; else a usage error with a hint."""
    from seekrun.errors import Diagnostic, UsageError, suggest

    ids = {node} if node in manifest.nodes else {n for n, v in manifest.nodes.items() if v["name"] == node}
    if len(ids) != 1:
        why = (f"'{node}' is ambiguous: use one of {', '.join(sorted(ids))}" if ids else
               f"unknown node '{node}'{suggest(node, manifest.nodes)}")
        raise UsageError([Diagnostic("", None, why)])
    return next(iter(ids))
