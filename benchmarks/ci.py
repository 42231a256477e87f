#!/usr/bin/env python3
"""The CI recipe's cost on a graphspec graph: a production build, then, in a fresh CI folder
holding the project with one edited transform and production's target/ as prod/,

    seekrun run -s state:modified+ --defer --state prod     (budget: 0.5 s + the selected nodes' share of the floor)
    seekrun diff --state prod                                 (budget: 0.3 s)

Each round starts the CI folder afresh (no target/) and measures the floor in the same round.

usage: python benchmarks/ci.py --nodes 1000 [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import SHARED, Bench, measure, seekrun  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=1000)
    a = ap.parse_args()
    if not (SHARED / "bench" / "graphspec.py").is_file():
        raise SystemExit(f"ci.py: {SHARED}/bench/graphspec.py not found (set SEEKRUN_SHARED)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b = Bench(a.nodes, a.rounds, a.rows, work)
        measure(seekrun("run"), cwd=b.proj)  # production's build
        prod = work / "prod"
        shutil.copytree(b.proj / "target", prod)
        small, _ = b.pick_transforms()
        b.edit_transform(small, True)  # the pull request: one edited transform
        ci = work / "ci"
        expected = len(b.downstream(small))
        runs, diffs, floors, counts = [], [], [], []
        for _ in range(a.rounds):
            floors.append(b.floor()["wall"])
            shutil.rmtree(ci, ignore_errors=True)
            shutil.copytree(b.proj, ci, ignore=shutil.ignore_patterns("target"))
            runs.append(measure(seekrun("run", "-s", "state:modified+", "--defer", "--state", str(prod)), cwd=ci)["wall"])
            results = json.loads((ci / "target" / "run_results.json").read_text())["results"]
            counts.append(sum(1 for r in results if r["status"] == "success"))
            diffs.append(measure(seekrun("diff", "--state", str(prod)), cwd=ci)["wall"])
        floor = statistics.median(floors)
        run_wall, diff_wall = statistics.median(runs), statistics.median(diffs)
        share = floor * expected / a.nodes
        print(f"N={a.nodes}, edited {small}: {expected} nodes to build (built: {sorted(set(counts))}); "
              f"{a.rounds} rounds, floor median {floor:.3f}s")
        print(f"  run -s state:modified+ --defer  {run_wall:.3f}s = {run_wall / floor:.3f} x floor; "
              f"budget 0.5s + {share:.3f}s share = {0.5 + share:.3f}s: {'within' if run_wall <= 0.5 + share else 'OVER'}")
        print(f"  diff --state                    {diff_wall:.3f}s = {diff_wall / floor:.3f} x floor; "
              f"budget 0.300s: {'within' if diff_wall <= 0.3 else 'OVER'}")


if __name__ == "__main__":
    main()
