#!/usr/bin/env python3
"""The CI recipe's cost on a graphspec graph: a production build, then, in a fresh CI folder
holding the project with one edited transform and production's target/ as prod/,

    seekrun run -s state:modified+ --defer --state prod     (budget: 0.5 s + the selected nodes' share of the floor)
    seekrun diff --state prod                                 (budget: 0.3 s)

The checkout's files are left to be 2 s old before the first run, as they are in CI (installing
Python and seekrun takes longer than that): a file younger than that is re-read on every run
(its mtime tick may not be over), which is not what CI sees.

Each round starts the CI folder afresh (no target/: a pull request's first CI run), then makes a
second edit to another transform and runs again with the first run's target/ kept (the README's
cached target/: a later commit of the same pull request), and measures the floor in the same round.

Run it as seekrun is installed (bytecode cached): with PYTHONDONTWRITEBYTECODE set and an
editable install, every run compiles seekrun's changed modules again (about 0.1 s), which no
pip-installed seekrun does.

usage: python benchmarks/ci.py --nodes 1000 [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
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
    if sys.flags.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print("note: PYTHONDONTWRITEBYTECODE is set: modules without cached bytecode are compiled on every run")
    if not (SHARED / "bench" / "graphspec.py").is_file():
        raise SystemExit(f"ci.py: {SHARED}/bench/graphspec.py not found (set SEEKRUN_SHARED)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b = Bench(a.nodes, a.rounds, a.rows, work)
        measure(seekrun("run"), cwd=b.proj)  # production's build
        prod = work / "prod"
        shutil.copytree(b.proj / "target", prod)
        small, large = b.pick_transforms()
        second = next(m["name"] for m in b.g["nodes"] if m["kind"] == "transform" and m["name"] not in
                      b.downstream(small) and m["name"] != large and len(b.downstream(m["name"])) <= 3)
        b.edit_transform(small, True)  # the pull request: one edited transform
        ci = work / "ci"
        expected = len(b.downstream(small))
        runs, diffs, floors, counts, warm = [], [], [], [], []
        for _ in range(a.rounds):
            floors.append(b.floor()["wall"])
            shutil.rmtree(ci, ignore_errors=True)
            shutil.copytree(b.proj, ci, ignore=shutil.ignore_patterns("target"))
            time.sleep(2.1)  # the checkout's age in CI (see above)
            runs.append(measure(seekrun("run", "-s", "state:modified+", "--defer", "--state", str(prod)), cwd=ci)["wall"])
            results = json.loads((ci / "target" / "run_results.json").read_text())["results"]
            counts.append(sum(1 for r in results if r["status"] == "success"))
            diffs.append(measure(seekrun("diff", "--state", str(prod)), cwd=ci)["wall"])
            path = ci / "nodes" / "transforms" / f"{second}.yml"  # a second commit, target/ kept
            path.write_text(path.read_text().replace("% 1000", "% 997"))
            time.sleep(2.1)
            warm.append(measure(seekrun("run", "-s", "state:modified+", "--defer", "--state", str(prod)), cwd=ci)["wall"])
        floor = statistics.median(floors)
        run_wall, diff_wall = statistics.median(runs), statistics.median(diffs)
        share = floor * expected / a.nodes
        print(f"N={a.nodes}, edited {small}: {expected} nodes to build (built: {sorted(set(counts))}); "
              f"{a.rounds} rounds, floor median {floor:.3f}s")
        print(f"  run -s state:modified+ --defer  {run_wall:.3f}s = {run_wall / floor:.3f} x floor; "
              f"budget 0.5s + {share:.3f}s share = {0.5 + share:.3f}s: {'within' if run_wall <= 0.5 + share else 'OVER'}")
        warm_wall, warm_share = statistics.median(warm), floor * len(b.downstream(second)) / a.nodes
        print(f"  the same, 2nd commit, target/ kept {warm_wall:.3f}s = {warm_wall / floor:.3f} x floor; budget "
              f"{0.5 + warm_share:.3f}s: {'within' if warm_wall <= 0.5 + warm_share else 'OVER'}")
        print(f"  diff --state                    {diff_wall:.3f}s = {diff_wall / floor:.3f} x floor; "
              f"budget 0.300s: {'within' if diff_wall <= 0.3 else 'OVER'}")


if __name__ == "__main__":
    main()
