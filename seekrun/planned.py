"""From the plan to the results a run starts with, and what a run that stopped early left undone.

- Every node starts with its plan: to run (pending), cached, or skipped with a SKIP_* code.  A
  node cached only on the guess that a re-read input reads what it read last time carries
  ``after_reread`` (decided again once those have run; a dry run shows it apart).
- A node seekrun cannot execute (or that reads one, further up) and was built before loses
  its table, its files and its state record, as a node removed from the project does
  (``unbuildable_built``): the database is what a clean build leaves.
- A run that stopped (after a failure, or interrupted) reports every node that never started
  as skipped, a re-read-rechecked one too, unless what it was built from is still there.
- A run that would drop more than half of the built nodes is refused unless allowed
  (``guard_removals``): most likely a node_paths typo, not an intent.
"""
from __future__ import annotations

from seekrun.errors import Diagnostic, ProjectError, first_few
from seekrun.rebuilder import PlanItem
from seekrun.outputs import has_table
from seekrun.results import (FILTERED, SKIP_AFTER_FAILURE, SKIP_DEFERRED, SKIP_FILTERED, SKIP_INTERRUPTED,
                             SKIP_NOT_EXECUTABLE,
                             SKIP_PRECONDITION, SKIP_UPSTREAM_SKIPPED, NodeResult, NodeStatus)


def initial_results(items: dict[str, PlanItem], deferred_from: str | None = None) -> dict[str, NodeResult]:
    results: dict[str, NodeResult] = {}
    for nid, it in items.items():
        if it.deferred is not None:  # --defer: read from the other build, not built here
            results[nid] = NodeResult(nid, NodeStatus.SKIPPED, str(it.reason), skip=SKIP_DEFERRED,
                                      error=f"read from {deferred_from} (--defer): not built here",
                                      deferred_from=deferred_from)
        elif it.not_executable is not None:  # accepted by the parser, but seekrun cannot build it
            results[nid] = NodeResult(nid, NodeStatus.SKIPPED, f"not executable by seekrun: {it.not_executable}",
                                      skip=SKIP_NOT_EXECUTABLE)
        elif it.runs:
            results[nid] = NodeResult(nid, NodeStatus.PENDING, str(it.reason))
        elif it.reason is None:
            results[nid] = NodeResult(nid, NodeStatus.CACHED, None,
                                      after_reread=list(it.after_reread) if it.recheck else [])
        elif it.blocked_by is not None:
            skip = SKIP_NOT_EXECUTABLE if _cannot_build(items, it) else SKIP_FILTERED
            results[nid] = NodeResult(nid, NodeStatus.SKIPPED, str(it.reason), skip=skip, error=_blocked(items, it))
        else:
            results[nid] = NodeResult(nid, NodeStatus.SKIPPED, str(it.reason), error=FILTERED, skip=SKIP_FILTERED)
    return results


def unbuildable_built(results: dict[str, NodeResult], records: dict) -> list[str]:
    """Nodes built before that seekrun cannot execute now (or that read one): their builds go."""
    return sorted(nid for nid, r in results.items() if r.skip == SKIP_NOT_EXECUTABLE and nid in records)


def mark_undone(manifest, node_runner, ids: list[str], results: dict[str, NodeResult], interrupted: bool,
                why: str | None = None) -> None:
    """After a run that stopped early: every node that never started is skipped (interrupted, or
    not started after a failure). A rechecked node that never started stays cached only if its
    inputs still hold what it was built from and none of them was left undone."""
    why, code = (((why or "interrupted"), SKIP_INTERRUPTED) if interrupted else
                 ("not started: the run stopped after a failure", SKIP_AFTER_FAILURE))
    for nid in ids:
        res = results[nid]
        if res.status is NodeStatus.RUNNING and interrupted:  # stopped while it ran: its last build stands
            res.status, res.error, res.skip = NodeStatus.CANCELLED, why, code
        elif res.status in (NodeStatus.PENDING, NodeStatus.RUNNING):
            res.status, res.error, res.skip = NodeStatus.SKIPPED, why, code
    provisional = node_runner.provisional if node_runner is not None else set()
    started = node_runner.started if node_runner is not None else set()
    for nid in manifest.topological_order():
        res = results[nid]
        if nid not in provisional or nid in started or res.status is not NodeStatus.CACHED:
            continue
        reason = node_runner.recheck(nid)
        undone = next((p for p in manifest.parents(nid) if results[p].status is NodeStatus.FAILED
                       or results[p].skip in (SKIP_AFTER_FAILURE, SKIP_INTERRUPTED, SKIP_PRECONDITION,
                                              SKIP_UPSTREAM_SKIPPED)), None)
        if reason is None and undone is None:
            continue  # what it was built from is what its inputs hold: cached
        res.reason = str(reason) if reason is not None else f"input {undone} was not built"
        if reason is not None and not node_runner.runner.plan_items[nid].selected:
            res.status, res.error, res.skip = NodeStatus.SKIPPED, FILTERED, SKIP_FILTERED
        else:
            res.status, res.error, res.skip = NodeStatus.SKIPPED, why, code


def maybe_reason(r: NodeResult, selected: bool = True, tasks=frozenset()) -> str:
    """Why a dry run cannot say whether a rechecked node runs: what re-read sources read, and
    what tasks write, are known only once they have run (``tasks``: the content-output nodes)."""
    waits = [w for w in r.after_reread if w in tasks]
    who = [w for w in r.after_reread if w not in tasks]
    parts = []
    if waits:
        parts.append(f"waits on {_and(waits)}'s output" if len(waits) == 1 else
                     f"waits on the outputs of {_and(waits)}")
    if who:
        what = (f"what {who[0]} reads has" if len(who) == 1 else
                f"what {', '.join(who[:-1])} or {who[-1]} read has")
        verb = "runs" if selected else "left out by the filter: needs to run"
        parts.append(f"{verb} if {what} changed: database sources are re-read every run")
    elif not selected:
        parts.append("left out by the filter: needs to run if it changed")
    return "; ".join(parts)


def _and(ids: list[str]) -> str:
    return ids[0] if len(ids) == 1 else f"{', '.join(ids[:-1])} and {ids[-1]}"


def _root_cause(items: dict[str, PlanItem], it: PlanItem) -> str | None:
    """The first unbuilt input up the chain of blocked inputs."""
    root, seen = it.blocked_by, set()
    while root is not None and items[root].not_executable is None and items[root].blocked_by is not None \
            and root not in seen:
        seen.add(root)
        root = items[root].blocked_by
    return root


def _cannot_build(items: dict[str, PlanItem], it: PlanItem) -> bool:
    root = _root_cause(items, it)
    return root is not None and items[root].not_executable is not None


def _blocked(items: dict[str, PlanItem], it: PlanItem) -> str:
    """Why a node cannot run because of an input, naming the node seekrun cannot execute when
    that is the cause (its input, or further up)."""
    root = _root_cause(items, it)
    if root is not None and items[root].not_executable is not None:
        return (f"input {root} is not executable by seekrun" if root == it.blocked_by else
                f"input {it.blocked_by} cannot be built: {root} is not executable by seekrun")
    why = "" if items[it.blocked_by].selected else " (left out by the filter)"
    return f"input {it.blocked_by} has not been built{why}: still needs to run"


def guard_removals(removed: list[str], records: dict, allow: bool, dry_run: bool, summary,
                   dropped: list[str] = (), nodes: dict | None = None) -> None:
    """A run that would drop more than half of the built nodes (or all of them) is most
    likely a mistake (a node_paths typo, a folder moved away, a source's format changed to
    one seekrun cannot read, which drops the builds of ``dropped``): refuse unless allowed.
    The instances of a fan-out still in the project (``nodes``) do not count: its items were
    edited."""
    if nodes:
        removed = [n for n in removed if (nodes.get(n.split("[", 1)[0]) or {}).get("gather") is None]
    built, gone = len(records), [*removed, *dropped]
    if allow or not gone or not (len(gone) * 2 > built or len(gone) == built):
        return
    why = ("" if not dropped else " (not executable by seekrun now)" if not removed else
           f" ({first_few(list(dropped))}: not executable by seekrun now)")
    message = (f"this run would remove {len(gone)} of the {built} built nodes ({first_few(gone)}) and "
               f"drop their tables{why}: if that is intended, run again with --allow-removals; otherwise "
               + ("check node_paths and that the node files are where they were" if removed else
                  "check the nodes' kinds and formats"))
    if dry_run:
        summary.warnings.append(message)
        return
    raise ProjectError([Diagnostic("", None, message)])


def warn_stale_tables(runner, items: dict[str, PlanItem], store, summary) -> None:
    """Tables whose stamps are not their recorded builds, with no interrupted run to explain
    it (no journal was left): the database is not the one the last run left, even when it
    carries this project's identity (an older copy of it put back)."""
    if runner.db.replaced or store.journal_found:
        return
    stale = sorted(nid for nid, it in items.items() if it.reason is not None
                   and it.reason.code == "output_changed" and has_table(runner.manifest.nodes[nid]["kind"]))
    if stale:
        summary.warnings.append(
            f"{runner._rel(runner.db_path)} is not the database the last run left: the table"
            f"{'s' if len(stale) > 1 else ''} of {first_few(stale)} "
            "do not match their recorded builds (an older copy put back, or changed outside seekrun): rebuilt")


def stale_inputs(manifest, items: dict[str, PlanItem], to_run: list[str]) -> str | None:
    """Said once: the stale inputs, left out by the selection, that the nodes to run read as
    they are (built from old code or data). They still need to run, and run on the next run."""
    stale: dict[str, str] = {}
    seen: set[str] = set()
    for nid in to_run:  # up through what the selection leaves out (each node looked at once)
        todo = [p for p in manifest.parents(nid) if not items[p].selected]
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            it = items[p]
            if it.deferred is not None:
                continue  # read from the other build: not stale for this run
            if it.reason is not None:
                stale[p] = str(it.reason)
            todo += [q for q in manifest.parents(p) if not items[q].selected]
    if not stale:
        return None
    listed = ", ".join(f"{p} ({stale[p]})" for p in sorted(stale)[:5])
    more = f" and {len(stale) - 5} more" if len(stale) > 5 else ""
    return (f"the selected nodes read stale inputs the selection leaves out: {listed}{more}; they are "
            "read as they are now and rebuilt on the next run without a selection (select them too, e.g. "
            "-s +NODE, or read them from another build with --defer --state DIR)")


def verify_tables(runner, engine, store, summary, before: dict) -> dict | None:
    """The tables really there after the run (a Python node may have dropped or replaced
    another node's table): recorded, and any node whose table was its recorded build
    before the run (or was built by it) and is not any more is said so (it rebuilds on
    the next run)."""
    try:
        final = engine.existing_outputs()
    except Exception:
        return None
    ran = {r.node_id for r in summary.results if r.status is NodeStatus.SUCCESS}
    dropped = set(runner.deferral.dropped) if runner.deferral is not None else set()  # --defer made way for views
    lost = sorted(nid for nid, rec in store.nodes.items() if nid in runner.manifest.nodes and nid not in dropped
                  and rec.get("status") == "success" and has_table(runner.manifest.nodes[nid]["kind"])
                  and not str(rec.get("output_hash")).startswith("unverified-")
                  and (nid in ran or before.get(nid, "-") == rec.get("output_hash"))
                  and final.get(nid, "-") != rec.get("output_hash"))
    if lost:
        summary.warnings.append(f"the table{'s' if len(lost) > 1 else ''} of {first_few(lost)} changed or "
                                "disappeared during this "
                                "run (dropped by a Python node?): rebuilt on the next run")
    return final
