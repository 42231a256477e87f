"""Whole-project checks for dag nodes, on every parse (cached records cannot see a child file
deleted since they were read)."""
from __future__ import annotations

from seekrun.errors import Diagnostic


def check_children(records: dict[str, dict], errors: list[Diagnostic], root) -> None:
    from seekrun.kinds.dag import child_problem

    for nid in sorted(records):
        rec = records[nid]
        if rec["kind"] != "dag" or not rec.get("task"):
            continue
        why = child_problem(root, rec["task"]["run"])
        if why is not None:
            errors.append(Diagnostic(rec["file"], (rec.get("task_lines") or {}).get("run") or rec["line"],
                                     f"{nid}: {why}"))
