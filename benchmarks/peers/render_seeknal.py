#!/usr/bin/env python3
"""Render a graph from ../shared/bench/graphspec.py (graph.json + CSVs) into a Seeknal 2.x project.

usage: render_seeknal.py GRAPH_DIR OUT_DIR
seeknal_project.yml, one YAML file per node under seeknal/sources/ and
seeknal/transforms/, CSVs copied into OUT_DIR/data/.  Sources are
`kind: source, source: csv, table: data/...`; transforms list their inputs as
`- ref: <kind>.<name>` and name them in SQL as ref('<kind>.<name>'), the same
shape benchmarks/render.py writes for seekrun (checked against Seeknal 2.13).
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from render import main as render_main, render as render_project  # noqa: E402


SEEKNAL_MARKER = ("seeknal_project.yml",
                  "name: bench\nversion: 1.0.0\nprofile: default\nconfig-version: 1\nstate_backend: file\n")


def render(graph_dir: Path, out: Path) -> int:
    """seekrun reads the Seeknal format, so this is the same project under seeknal/."""
    return render_project(graph_dir, out, node_dir="seeknal", marker=SEEKNAL_MARKER)


def main() -> None:
    render_main(render, __doc__)


if __name__ == "__main__":
    main()
