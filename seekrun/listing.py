"""`seekrun ls`: the project's nodes, one a line, with where they are defined, their tags, the
last run's status and whether each would run now (and why). Read-only, as `show` is.

`--output json` prints a list of objects (LS_JSON_FIELDS says what each key holds); `ids` and
`paths` print one id, or one node file, per line, for shell pipelines.
"""
from __future__ import annotations

import json

OUTPUTS = ("table", "json", "ids", "paths")
LS_JSON_FIELDS = {
    "id": "the node id, kind.name",
    "kind": "its kind",
    "name": "its name",
    "file": "the file that defines it, relative to the project folder",
    "line": "the line its document starts on (null when not known)",
    "tags": "its tags",
    "owner": "its owner, or null",
    "description": "its description, or null",
    "status": "the last run's status (success, failed, skipped, ...), or null if never built",
    "last_run": "when the last run that built it started (UTC ISO 8601), or null",
    "would_run": "true if a run now would build it, false if not, null if that is known only once it runs",
    "reason": "why it would run (or may), else null",
}


def rows(looked) -> list[dict]:
    out = []
    for nid in looked.ids:
        entry = looked.manifest.nodes[nid]
        record = looked.records.get(nid) or {}
        plan = looked.would_run(nid)
        out.append({"id": nid, "kind": entry["kind"], "name": entry["name"], "file": entry["file"],
                    "line": entry.get("line"), "tags": list(entry.get("tags") or []),
                    "owner": entry.get("owner"), "description": entry.get("description"),
                    "status": record.get("status"), "last_run": record.get("last_run"),
                    "would_run": plan["runs"], "reason": plan["reason"], "_state": plan["state"]})
    return out


def render(table: list[dict], output: str) -> str:
    if output == "ids":
        return "".join(f"{r['id']}\n" for r in table)
    if output == "paths":
        return "".join(f"{p}\n" for p in dict.fromkeys(r["file"] for r in table))
    if output == "json":
        return json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in table], indent=1,
                          sort_keys=True) + "\n"
    if not table:
        return "No nodes selected.\n"
    heads = ("ID", "KIND", "FILE:LINE", "TAGS", "LAST RUN", "NOW")
    cells = [(r["id"], r["kind"], f"{r['file']}:{r['line']}" if r["line"] else r["file"], ",".join(r["tags"]) or "-",
              r["status"] or "never built", r["_state"]) for r in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads[:-1])]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths)) + "  " + heads[-1]]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths)) + "  " + cell[-1] for cell in cells]
    runs = sum(1 for r in table if r["would_run"])
    lines.append(f"{len(table)} node{'s' if len(table) != 1 else ''}, {runs} would run")
    return "\n".join(lines) + "\n"
