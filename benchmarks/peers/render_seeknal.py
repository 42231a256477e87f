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

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from render import node_id  # noqa: E402


def render(graph_dir: Path, out: Path) -> int:
    g = json.loads((graph_dir / "graph.json").read_text())
    by_name = {n["name"]: n for n in g["nodes"]}
    (out / "seeknal" / "sources").mkdir(parents=True, exist_ok=True)
    (out / "seeknal" / "transforms").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "seeknal_project.yml").write_text(
        "name: bench\nversion: 1.0.0\nprofile: default\nconfig-version: 1\nstate_backend: file\n")
    for n in g["nodes"]:
        if n["kind"] == "source":
            shutil.copyfile(graph_dir / n["csv"], out / "data" / Path(n["csv"]).name)
            text = (f"kind: source\nname: {n['name']}\nsource: csv\n"
                    f"table: data/{Path(n['csv']).name}\n")
            (out / "seeknal" / "sources" / f"{n['name']}.yml").write_text(text)
        else:
            deps = [node_id(by_name[d]) for d in n["deps"]]
            sql = n["sql"].format(*(f"ref('{d}')" for d in deps))
            inputs = "".join(f"  - ref: {d}\n" for d in deps)
            text = f"kind: transform\nname: {n['name']}\ninputs:\n{inputs}transform: >-\n  {sql}\n"
            (out / "seeknal" / "transforms" / f"{n['name']}.yml").write_text(text)
    return len(g["nodes"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graph_dir", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    n = render(a.graph_dir, a.out)
    print(f"{n} nodes -> {a.out}")


if __name__ == "__main__":
    main()
