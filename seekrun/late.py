"""What is decided late: nodes whose output hash is known only once they have run (a re-read
source: what it read; a task: what it wrote and printed), and what that means for the plan
(its dependents "wait on" it), the summary (early cutoff, said) and a dry run (a task's command
as it would run)."""
from __future__ import annotations

from pathlib import Path

from seekrun.results import ExecutionSummary, NodeStatus


def content_nodes(manifest) -> frozenset:
    """Nodes whose output hash is the content of what they produced, without being re-read (tasks)."""
    return frozenset(nid for nid, n in manifest.nodes.items() if n.get("content_output") and not n.get("reread"))


def maybe_why(manifest, items: dict, maybe: list[str]) -> str:
    """What the plan's "and up to N more" depend on: re-read data, task outputs, or both."""
    doubt = {w for nid in maybe for w in items[nid].after_reread}
    tasks = content_nodes(manifest)
    kinds = ["re-read data" if doubt - tasks else "", "task outputs" if doubt & tasks else ""]
    return " or ".join(k for k in kinds if k) + " changed"


def note_cutoffs(before: dict, store, results: dict, summary: ExecutionSummary) -> None:
    """Early cutoff, said: a task that ran and wrote what it wrote before leaves what reads it
    cached. ``before``: the output hash of each content node that was to run, before the run."""
    from seekrun.output import plural

    for nid, old in before.items():
        res = results[nid]
        if old is None or res.status is not NodeStatus.SUCCESS or (store.nodes.get(nid) or {}).get("output_hash") != old:
            continue
        stayed = sum(1 for r in results.values() if r.status is NodeStatus.CACHED and nid in r.after_reread)
        if stayed:
            summary.notes.append(f"{nid} ran, outputs unchanged: {plural(stayed, 'dependent')} stay"
                                 f"{'s' if stayed == 1 else ''} cached")


def show_commands(manifest, root: Path, items: dict, results: dict, records: dict) -> None:
    """A dry run: each task that would run (or may) with its command as it would run, and what
    it declares it reads and writes."""
    for nid, res in results.items():
        node = manifest.nodes[nid]
        if node.get("task") and (items[nid].runs or items[nid].recheck):
            from seekrun.kinds.task_run import preview

            res.command = preview(node, root, records)
            res.declared = (f"files: {', '.join(node['task']['files']) or '-'}; "
                            f"outputs: {', '.join(node.get('output_files') or []) or '-'}")
            if node.get("fanout"):  # its instances: how many, or that it is known only when it runs
                from seekrun.parser.fanout import described

                res.declared += f"; {described(node['fanout'])}"
