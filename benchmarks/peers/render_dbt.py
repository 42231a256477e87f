#!/usr/bin/env python3
"""Render a graph from ../shared/bench/graphspec.py (graph.json + CSVs) into a dbt project for dbt-duckdb.

usage: render_dbt.py GRAPH_DIR OUT_DIR [--csv-as model|seed] [--threads N]
Writes dbt_project.yml, profiles.yml (DuckDB file OUT_DIR/bench.duckdb, path relative
to the project, so dbt must run with the project as its working directory) and one
models/<name>.sql per transform using {{ ref('...') }}; every node is materialized as
a table.  The CSVs are copied into OUT_DIR/data/ and loaded either
  model (default): one model per CSV, `select * from read_csv_auto('data/<file>')`,
                   the same statement the floor runs; dbt sees no change in the data;
  seed:            as dbt seeds (seed-paths: [data]), dbt's own CSV loader, whose
                   content checksum lets `state:modified` notice a changed CSV.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

PROJECT = """\
name: bench
version: "1.0.0"
config-version: 2
profile: bench
model-paths: ["models"]
seed-paths: ["{seed_path}"]
target-path: target
clean-targets: ["target"]
models:
  bench:
    +materialized: table
flags:
  send_anonymous_usage_stats: false
  use_colors: false
  partial_parse: true
"""

PROFILES = """\
bench:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: bench.duckdb
      threads: {threads}
"""


def render(graph_dir: Path, out: Path, csv_as: str = "model", threads: int | None = None) -> int:
    if csv_as not in ("model", "seed"):
        raise ValueError(f"csv_as must be 'model' or 'seed', not {csv_as!r}")
    g = json.loads((graph_dir / "graph.json").read_text())
    models = out / "models"
    models.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(parents=True, exist_ok=True)
    # with seeds the CSVs live in the seed path; otherwise keep dbt from treating data/ as seeds
    (out / "dbt_project.yml").write_text(PROJECT.format(seed_path="data" if csv_as == "seed" else "seeds"))
    (out / "profiles.yml").write_text(PROFILES.format(threads=threads or os.cpu_count() or 1))
    for n in g["nodes"]:
        if n["kind"] == "source":
            csv = Path(n["csv"]).name
            shutil.copyfile(graph_dir / n["csv"], out / "data" / csv)
            if csv_as == "model":
                (models / f"{n['name']}.sql").write_text(f"select * from read_csv_auto('data/{csv}')\n")
        else:
            sql = n["sql"].format(*(f"{{{{ ref('{d}') }}}}" for d in n["deps"]))
            (models / f"{n['name']}.sql").write_text(sql + "\n")
    return len(g["nodes"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graph_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--csv-as", choices=("model", "seed"), default="model",
                    help="load each CSV as a read_csv_auto model (default) or as a dbt seed")
    ap.add_argument("--threads", type=int, help="profiles.yml threads (default: CPU count)")
    a = ap.parse_args()
    n = render(a.graph_dir, a.out, a.csv_as, a.threads)
    print(f"{n} nodes -> {a.out}")


if __name__ == "__main__":
    main()
