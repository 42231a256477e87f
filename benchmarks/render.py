#!/usr/bin/env python3
"""Render a graph from ../shared/bench/graphspec.py (graph.json + CSVs) into a seekrun project.

usage: render.py GRAPH_DIR OUT_DIR
One YAML file per node under nodes/, CSVs copied into OUT_DIR/data/.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def node_id(n: dict) -> str:
    return f"{'source' if n['kind'] == 'source' else 'transform'}.{n['name']}"


def render(graph_dir: Path, out: Path, node_dir: str = "nodes",
           marker: tuple[str, str] = ("seekrun_project.yml", "name: bench\n")) -> int:
    """Write the project; node_dir and marker make the same nodes a Seeknal project too."""
    g = json.loads((graph_dir / "graph.json").read_text())
    by_name = {n["name"]: n for n in g["nodes"]}
    (out / node_dir / "sources").mkdir(parents=True, exist_ok=True)
    (out / node_dir / "transforms").mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / marker[0]).write_text(marker[1])
    for n in g["nodes"]:
        if n["kind"] == "source":
            shutil.copyfile(graph_dir / n["csv"], out / "data" / Path(n["csv"]).name)
            text = (f"kind: source\nname: {n['name']}\nsource: csv\n"
                    f"table: data/{Path(n['csv']).name}\n")
            (out / node_dir / "sources" / f"{n['name']}.yml").write_text(text)
        else:
            deps = [node_id(by_name[d]) for d in n["deps"]]
            sql = n["sql"].format(*(f"ref('{d}')" for d in deps))
            inputs = "".join(f"  - ref: {d}\n" for d in deps)
            text = f"kind: transform\nname: {n['name']}\ninputs:\n{inputs}transform: >-\n  {sql}\n"
            (out / node_dir / "transforms" / f"{n['name']}.yml").write_text(text)
    return len(g["nodes"])


def main(render_fn=render, doc: str = __doc__) -> None:
    """The command line of this renderer, and of the others built on it (peers/)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("graph_dir", type=Path)
    ap.add_argument("out", type=Path)
    a = ap.parse_args()
    n = render_fn(a.graph_dir, a.out)
    print(f"{n} nodes -> {a.out}")


if __name__ == "__main__":
    main()
