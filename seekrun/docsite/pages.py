"""The site's HTML: index.html (the lineage graph), one page per node, runs.html (recent runs and
the latest run's timeline). Every text from the project is escaped; links are relative, so the
site works from file:// and from any folder it is served from."""
from __future__ import annotations

import hashlib
import re
from html import escape
from urllib.parse import quote

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def page_name(nid: str) -> str:
    """A node page's file name (ids of fan-out instances may hold characters a file should not)."""
    if _SAFE.match(nid):
        return f"{nid}.html"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", nid) + "-" + hashlib.sha1(nid.encode()).hexdigest()[:8] + ".html"


def _layout(title: str, body: str, root: str, project: str, page: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - {escape(project)}</title>
<link rel="stylesheet" href="{root}assets/site.css"></head>
<body data-root="{root}" data-page="{page}">
<header><a class="brand" href="{root}index.html">{escape(project)}</a>
<nav><a href="{root}index.html">Lineage</a> <a href="{root}runs.html">Runs</a></nav>
<div class="search"><input id="search" type="search" placeholder="Search names and descriptions" autocomplete="off">
<ul id="search-results"></ul></div></header>
<main>{body}</main>
<script src="{root}data.js"></script><script src="{root}assets/site.js"></script>
</body></html>
"""


def _status(status) -> str:
    text = status or "never built"
    return f'<span class="status s-{escape(str(status or "none"))}">{escape(text)}</span>'


def index(project: str, count: int, large: bool) -> str:
    mode = (f"This project has {count} nodes: the graph shows the neighbourhood of the selected node "
            "(two levels up and down). Search, or click a node, to move." if large else
            f"{count} nodes. Scroll to zoom, drag to pan, click a node for its page.")
    body = f"""<h1>Lineage</h1>
<p id="mode" class="note" data-mode="{'neighbourhood' if large else 'full'}">{escape(mode)}</p>
<div class="toolbar"><button id="zoom-in" title="Zoom in">+</button><button id="zoom-out" title="Zoom out">&minus;</button>
<button id="zoom-fit" title="Fit">fit</button> <span id="legend"></span></div>
<div id="graph-box"><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg></div>"""
    return _layout("Lineage", body, "", project, "index")


def _link(nid: str, root: str) -> str:
    return f'<a href="{root}nodes/{escape(page_name(nid))}">{escape(nid)}</a>'


def node(n: dict, project: str) -> str:
    root = "../"
    rows = [("Kind", escape(n["kind"])), ("Engine", escape(n.get("engine") or "duckdb")), ("Defined in", escape(f"{n['file']}:{n['line']}" if n["line"] else n["file"])),
            ("Owner", escape(n["owner"] or "-")), ("Tags", escape(", ".join(n["tags"]) or "-")),
            ("Inputs", ", ".join(_link(p, root) for p in n["inputs"]) or "-"),
            ("Used by", ", ".join(_link(c, root) for c in n["children"]) or "-"),
            ("Last run", _status(n["status"])),
            ("Duration", f"{n['duration']:.3f} s" if isinstance(n["duration"], (int, float)) else "-"),
            ("Rows", escape(str(n["rows"])) if n["rows"] is not None else "-"),
            ("Ran because", escape(n["reason"] or "-")), ("At", escape(n["last_run"] or "-"))]
    if n["status"] == "failed" and n["error"]:
        rows.append(("Error", f"<code>{escape(str(n['error']).splitlines()[0])}</code>"))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    cols = ""
    if n["columns"]:
        src = "types from the database" if n["types_from_db"] else "as declared in the node file"
        cols = (f"<h2>Columns</h2><p class='note'>{len(n['columns'])} columns, {src}</p><table class='columns'>"
                "<tr><th>Column</th><th>Type</th><th>Description</th></tr>"
                + "".join(f"<tr><td>{escape(c['name'])}</td><td>{escape(c['type'] or '-')}</td>"
                          f"<td>{escape(c['description'] or '')}</td></tr>" for c in n["columns"]) + "</table>")
    sql = (f"<h2>SQL, as it runs</h2><pre class='sql'>{escape(n['sql'])}</pre>" if n["sql"] else "")
    if n["command"] is not None:
        command = n["command"] if isinstance(n["command"], str) else " ".join(map(str, n["command"]))
        sql += f"<h2>Command</h2><pre class='sql'>{escape(command)}</pre>"
    body = (f"<h1 class='node-title' data-node-id='{escape(n['id'])}'>{escape(n['id'])}</h1>"
            f"<p class='description'>{escape(n['description']) or '<em>No description.</em>'}</p>"
            f"<p><a href='../index.html#node={quote(n['id'], safe='')}'>Show in the lineage graph</a></p>"
            f"<table class='facts'>{table}</table>{cols}{sql}")
    return _layout(n["id"], body, root, project, "node")


def _seconds(value) -> str:
    return f"{value:.2f} s" if isinstance(value, (int, float)) else "-"


def runs(project: str, recent: list[dict], tl: dict | None) -> str:
    head = "<tr><th>Run</th><th>Started</th><th>Duration</th><th>Status</th><th>Ran</th><th>Cached</th>" \
           "<th>Failed</th><th>Skipped</th></tr>"
    rows = "".join(
        f"<tr><td>{escape(r['run_id'])}</td><td>{escape(r['started_at'] or '-')}</td>"
        f"<td>{_seconds(r['duration'])}</td>"
        f"<td>{_status(r['status'])}</td><td>{r['counts']['ran']}</td><td>{r['counts']['cached']}</td>"
        f"<td>{r['counts']['failed']}</td><td>{r['counts']['skipped']}</td></tr>" for r in recent)
    table = f"<table class='runs'>{head}{rows}</table>" if recent else "<p>No runs recorded yet.</p>"
    body = f"<h1>Runs</h1>{table}<h2>Timeline of the latest run that built something</h2>{gantt(tl)}"
    return _layout("Runs", body, "", project, "runs")


def gantt(tl: dict | None) -> str:
    if tl is None:
        return "<p>No run yet.</p>"
    if not tl["bars"]:
        return f"<p>The latest runs, up to {escape(tl['newest'])}, built nothing: every node was up to date.</p>"
    width, lane_h, left = 900, 26, 4
    span = tl["span"] or 1e-6
    critical = set(tl["critical"])
    parts = []
    for b in tl["bars"]:
        x = left + b["start"] / span * (width - 2 * left)
        w = max(2.0, (b["end"] - b["start"]) / span * (width - 2 * left))
        y = 4 + b["lane"] * lane_h
        cls = "bar" + (" critical" if b["id"] in critical else "") + f" s-{escape(b['status'] or 'none')}"
        tip = f"{b['id']}: {b['duration']:.3f} s, {b['status']}" + (f" ({b['reason']})" if b["reason"] else "")
        fits = int((w - 8) // 6.5)  # characters that fit in the bar at the label's size
        label = b["id"].split(".", 1)[-1]
        label = label if len(label) <= fits else (label[:fits - 1] + "\u2026" if fits >= 4 else "")
        text = (f'<text class="bar-label" x="{x + 4:.1f}" y="{y + lane_h / 2 + 1:.1f}">{escape(label)}</text>'
                if label else "")
        parts.append(f'<a href="nodes/{escape(page_name(b["id"]))}"><rect class="{cls}" data-node-id="{escape(b["id"])}" '
                     f'x="{x:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 6}" rx="3"><title>{escape(tip)}</title>'
                     f'</rect>{text}</a>')
    height = 8 + tl["lanes"] * lane_h
    for i in range(5):  # a time axis under the lanes
        x = left + i / 4 * (width - 2 * left)
        parts.insert(i, f'<line class="tick" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}"/>'
                     f'<text class="tick-label" x="{x:.1f}" y="{height + 14}" text-anchor="{"start" if i == 0 else "end" if i == 4 else "middle"}">'
                     f'{span * i / 4:.2f} s</text>')
    height += 20
    path = " &rarr; ".join(escape(i) for i in tl["critical"])
    later = (f" (the runs since, up to {escape(tl['newest'])}, built nothing)" if tl["newest"] != tl["run_id"] else "")
    return (f"<p class='note'>Run {escape(tl['run_id'])}{later}: {len(tl['bars'])} nodes ran in {tl['lanes']} parallel "
            f"lane{'s' if tl['lanes'] != 1 else ''} over {span:.3f} s. Critical path (outlined): {path}</p>"
            f"<div id='timeline-box'><svg id='timeline' xmlns='http://www.w3.org/2000/svg' viewBox='0 0 {width} {height}' "
            f"width='{width}' height='{height}'>{''.join(parts)}</svg></div>")
