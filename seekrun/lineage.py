"""`seekrun lineage`: the subgraph of the selected nodes (and N levels up and down), as Mermaid
(renders in GitHub's markdown inside a ```mermaid block), Graphviz dot, or JSON.

JSON: {"nodes": [{"id", "kind", "name", "file", "line", "status", "selected"}], "edges":
[{"from", "to"}]}: nodes in build order, edges between the nodes shown, `status` the last run's
(null if never built), `selected` false for a node added by --upstream/--downstream.
"""
from __future__ import annotations

import json

FORMATS = ("mermaid", "dot", "json")
# fill colours per kind (also used by the docs site's legend); other kinds are grey
KIND_COLOURS = {
    "source": "#cfe8ff", "transform": "#d8f5d0", "feature_group": "#ffe9c2", "aggregation": "#ffd9d0",
    "second_order_aggregation": "#ffd0e4", "rule": "#f3d6ff", "profile": "#e3e0ff", "exposure": "#fff6b3",
    "model": "#c9f2ef", "semantic_model": "#e6e6e6", "metric": "#f0e0c8", "task": "#dcdcdc", "dag": "#c8d8c8",
}
STATUS_STROKES = {"success": "#2e7d32", "failed": "#c62828", "skipped": "#ef6c00", "cancelled": "#6d4c41"}


def neighbourhood(manifest, ids, upstream: int, downstream: int) -> set[str]:
    """The nodes given, their ancestors up to `upstream` levels and descendants up to `downstream`."""
    shown = set(ids)
    for step, levels in ((manifest.parents, upstream), (manifest.children.__getitem__, downstream)):
        frontier = set(ids)
        for _ in range(levels):
            frontier = {n for f in frontier for n in step(f)} - shown
            if not frontier:
                break
            shown |= frontier
    return shown


def subgraph(looked, upstream: int = 0, downstream: int = 0) -> dict:
    manifest = looked.manifest
    selected = set(looked.ids)
    shown = neighbourhood(manifest, selected, upstream, downstream)
    order = manifest.topological_order(shown)
    nodes = []
    for nid in order:
        entry = manifest.nodes[nid]
        nodes.append({"id": nid, "kind": entry["kind"], "name": entry["name"], "file": entry["file"],
                      "line": entry.get("line"), "status": (looked.records.get(nid) or {}).get("status"),
                      "selected": nid in selected})
    edges = [{"from": p, "to": nid} for nid in order for p in manifest.parents(nid) if p in shown]
    return {"nodes": nodes, "edges": edges}


def render(graph: dict, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(graph, indent=1, sort_keys=True) + "\n"
    return (_mermaid if fmt == "mermaid" else _dot)(graph)


def _mermaid(graph: dict) -> str:
    # ids n0, n1...: a kind.name holds '.', and Mermaid reads some words (end, graph) as keywords
    alias = {n["id"]: f"n{i}" for i, n in enumerate(graph["nodes"])}
    lines = ["flowchart LR"]
    for n in graph["nodes"]:
        lines.append(f'    {alias[n["id"]]}["{_mermaid_text(n["id"])}"]')
    for e in graph["edges"]:
        lines.append(f'    {alias[e["from"]]} --> {alias[e["to"]]}')
    kinds: dict[str, list[str]] = {}
    status: dict[str, list[str]] = {}
    for n in graph["nodes"]:
        kinds.setdefault(n["kind"], []).append(alias[n["id"]])
        if n["status"] in STATUS_STROKES:
            status.setdefault(n["status"], []).append(alias[n["id"]])
    for kind, members in sorted(kinds.items()):
        lines.append(f"    classDef k_{kind} fill:{KIND_COLOURS.get(kind, '#eeeeee')},stroke:#555555,color:#000000")
        lines.append(f"    class {','.join(members)} k_{kind}")
    for st, members in sorted(status.items()):
        lines.append(f"    classDef s_{st} stroke:{STATUS_STROKES[st]},stroke-width:3px")
        lines.append(f"    class {','.join(members)} s_{st}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return "".join(f"#{ord(c)};" if c in '"#<>&' else c for c in text)


def _dot(graph: dict) -> str:
    lines = ["digraph seekrun {", "    rankdir=LR;",
             '    node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];']
    for n in graph["nodes"]:
        attrs = [f'label={_dot_text(n["id"])}', f'fillcolor="{KIND_COLOURS.get(n["kind"], "#eeeeee")}"',
                 f'tooltip={_dot_text(n["file"] + (":" + str(n["line"]) if n["line"] else ""))}']
        if n["status"] in STATUS_STROKES:
            attrs += [f'color="{STATUS_STROKES[n["status"]]}"', "penwidth=2.5"]
        lines.append(f"    {_dot_text(n['id'])} [{', '.join(attrs)}];")
    for e in graph["edges"]:
        lines.append(f"    {_dot_text(e['from'])} -> {_dot_text(e['to'])};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
