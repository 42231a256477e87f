"""`seekrun docs`: a static site of the project (no server-side code; opens from file://).

index.html draws the lineage graph from data.js (a script, not JSON: a page opened from file://
cannot fetch files); nodes/<id>.html is a page per node; runs.html the recent runs and the
latest run's timeline. The JavaScript and CSS are seekrun's own (assets/), copied into the
output: nothing is loaded from the internet.

Above LARGE nodes the graph shows the neighbourhood of the selected node (two levels up and
down) instead of the whole project, so a 10,000-node project's page loads and responds.

The site is written into a temporary folder beside --out and then swapped in: a failed or
interrupted build leaves the previous site as it was.
"""
from __future__ import annotations

import json
import os
import shutil
from importlib import resources
from pathlib import Path

LARGE = 400


def build(looked, out: Path) -> dict:
    """Write the site to `out`; {"out", "pages", "nodes"}."""
    from seekrun.docsite import data, pages
    from seekrun.secrets import redact

    node_list = data.nodes(looked)
    large = len(node_list) > LARGE
    graph = data.graph_data(node_list, large)
    for n, g in zip(node_list, graph["nodes"]):
        g["page"] = pages.page_name(n["id"])
    project = looked.project.name
    target_dir = looked.project.target_dir
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.seekrun-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "nodes").mkdir(parents=True)
        (tmp / "assets").mkdir()
        for name in ("site.js", "site.css"):
            (tmp / "assets" / name).write_bytes(resources.files("seekrun.docsite").joinpath("assets", name).read_bytes())
        text = json.dumps(graph, separators=(",", ":"), sort_keys=True).replace("</", "<\\/")
        (tmp / "data.js").write_text(redact(f"window.SEEKRUN_DATA = {text};\n"), encoding="utf-8")
        (tmp / "index.html").write_text(pages.index(project, len(node_list), large), encoding="utf-8")
        for n in node_list:
            (tmp / "nodes" / pages.page_name(n["id"])).write_text(redact(pages.node(n, project)), encoding="utf-8")
        tl = data.timeline(target_dir, looked.manifest)
        (tmp / "runs.html").write_text(redact(pages.runs(project, data.runs(target_dir), tl)), encoding="utf-8")
        _swap(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"out": str(out), "pages": len(node_list) + 2, "nodes": len(node_list)}


def _swap(tmp: Path, out: Path) -> None:
    """Put the new site in place of the old one (renames: never a half-written site at `out`)."""
    from seekrun.errors import Diagnostic, UsageError

    if out.exists() and not out.is_dir():
        raise UsageError([Diagnostic(str(out), None, "exists and is not a folder: give --out a folder")])
    old = out.parent / f".{out.name}.seekrun-old-{os.getpid()}"
    if out.exists():
        os.rename(out, old)
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def serve(out: Path, port: int) -> None:
    """Serve the site on 127.0.0.1 until Ctrl-C or SIGTERM."""
    import functools
    import sys
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 (the base class's name)
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(out)))
    print(f"Serving {out} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
    finally:
        server.server_close()
