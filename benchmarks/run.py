#!/usr/bin/env python3
"""Measure seekrun against the floor (../shared/bench/floor_duckdb.py) on a graphspec graph.

Every operation runs as whole processes, alternating with the floor in the same
invocation, for several rounds.  Figures are medians (wall, CPU, peak RSS per process)
and each wall time is also given as a ratio to the floor's median from this run.

usage: python benchmarks/run.py --nodes 1000 [--rounds 3] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from render import render  # noqa: E402

SHARED = Path(os.environ.get("SEEKRUN_SHARED", HERE.parent.parent / "shared"))


def measure(cmd: list[str], cwd: Path | None = None) -> dict:
    """Run one process; return wall seconds, CPU seconds and peak RSS (MB) of that process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode not in (0,):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "rss": ru.ru_maxrss / 1024}


def seekrun(*args: str) -> list[str]:
    exe = shutil.which("seekrun")
    return [exe, *args] if exe else [sys.executable, "-m", "seekrun", *args]


class Bench:
    def __init__(self, n: int, rounds: int, rows: int, workdir: Path):
        self.n, self.rounds = n, rounds
        self.graph = workdir / "graph"
        self.proj = workdir / "project"
        self.floor_db = workdir / "floor.duckdb"
        subprocess.run([sys.executable, str(SHARED / "bench" / "graphspec.py"), str(self.graph),
                        "--nodes", str(n), "--rows", str(rows)], check=True, stdout=subprocess.DEVNULL)
        render(self.graph, self.proj)
        self.g = json.loads((self.graph / "graph.json").read_text())
        self.floor_runs: list[dict] = []
        self.rows: list[tuple] = []

    # ---- graph facts -----------------------------------------------------------------
    def downstream(self, name: str) -> set[str]:
        children: dict[str, list[str]] = {m["name"]: [] for m in self.g["nodes"]}
        for m in self.g["nodes"]:
            for d in set(m["deps"]):
                children[d].append(m["name"])
        seen, q = {name}, deque([name])
        while q:
            for c in children[q.popleft()]:
                if c not in seen:
                    seen.add(c)
                    q.append(c)
        return seen

    def pick_transforms(self) -> tuple[str, str]:
        """(small, large): transforms in the middle third with the smallest / largest closure."""
        nodes = [m for m in self.g["nodes"] if m["kind"] == "transform"]
        third = nodes[len(nodes) // 3: 2 * len(nodes) // 3]
        sizes = {m["name"]: len(self.downstream(m["name"])) for m in third}
        small = min(sizes, key=lambda k: (sizes[k] if sizes[k] > 1 else 10 ** 9, k))
        large = max(sizes, key=lambda k: (sizes[k], k))
        return small, large

    # ---- operations --------------------------------------------------------------------
    def floor(self) -> dict:
        for p in (self.floor_db, Path(str(self.floor_db) + ".wal")):
            p.unlink(missing_ok=True)
        r = measure([sys.executable, str(SHARED / "bench" / "floor_duckdb.py"), str(self.graph),
                     "--db", str(self.floor_db)])
        self.floor_runs.append(r)
        return r

    def ran(self) -> int:
        res = json.loads((self.proj / "target" / "run_results.json").read_text())
        return sum(1 for r in res["results"] if r["status"] in ("success", "failed"))

    def op(self, label: str, cmd: list[str], before=None, after=None, expected: int | None = None):
        runs, counts = [], []
        for _ in range(self.rounds):
            self.floor()
            if before:
                before()
            runs.append(measure(cmd, cwd=self.proj))
            if expected is not None:
                counts.append(self.ran())
            if after:
                after()
        self.rows.append((label, runs, expected, counts))
        med = statistics.median(r["wall"] for r in runs)
        print(f"  {label:<36} {med:7.3f}s", flush=True)

    def edit_transform(self, name: str, on: bool) -> None:
        path = self.proj / "nodes" / "transforms" / f"{name}.yml"
        text = path.read_text()
        path.write_text(text.replace("% 1000", "% 997") if on else text.replace("% 997", "% 1000"))

    def edit_csv(self, on: bool) -> None:
        path = self.proj / "data" / "src_00000.csv"
        lines = path.read_text().splitlines(keepends=True)
        first = lines[1].split(",")
        lines[1] = f"{first[0]},{int(first[1]) + (1 if on else -1)}\n"
        path.write_text("".join(lines))

    def run_all(self) -> None:
        target = self.proj / "target"
        small, large = self.pick_transforms()
        print(f"N={self.n}: small edit {small} ({len(self.downstream(small))} downstream), "
              f"large edit {large} ({len(self.downstream(large))} downstream)", flush=True)
        self.op("CLI start (--version)", seekrun("--version"))
        self.op("parse, cold", seekrun("parse"), before=lambda: shutil.rmtree(target, ignore_errors=True))
        self.op("parse, warm", seekrun("parse"))
        self.op("full build, --threads 1", seekrun("run", "--full", "--threads", "1"),
                before=lambda: shutil.rmtree(target, ignore_errors=True), expected=self.n)
        self.op("full build, default threads", seekrun("run", "--full"),
                before=lambda: shutil.rmtree(target, ignore_errors=True), expected=self.n)
        self.op("no-op run", seekrun("run"), expected=0)
        settle = lambda: measure(seekrun("run"), cwd=self.proj)  # noqa: E731
        for label, name in (("edit, small downstream", small), ("edit, large downstream", large)):
            self.op(label, seekrun("run"), before=lambda nm=name: self.edit_transform(nm, True),
                    after=lambda nm=name: (self.edit_transform(nm, False), settle()),
                    expected=len(self.downstream(name)))
        csv = self.proj / "data" / "src_00000.csv"
        self.op("touch one source CSV", seekrun("run"), before=lambda: os.utime(csv), expected=0)
        self.op("change one source CSV", seekrun("run"), before=lambda: self.edit_csv(True),
                after=lambda: (self.edit_csv(False), settle()),
                expected=len(self.downstream("src_00000")))
        self.parse_noop_rss()

    def parse_noop_rss(self) -> None:
        parse = measure(seekrun("parse"), cwd=self.proj)
        noop = measure(seekrun("run"), cwd=self.proj)
        self.peak = max(parse["rss"], noop["rss"])

    # ---- report --------------------------------------------------------------------------
    def markdown(self) -> str:
        floor = statistics.median(r["wall"] for r in self.floor_runs)
        floor_cpu = statistics.median(r["cpu"] for r in self.floor_runs)
        floor_rss = statistics.median(r["rss"] for r in self.floor_runs)
        out = [f"### N = {self.n} nodes ({self.rounds} rounds; floor median {floor:.3f}s wall, "
               f"{floor_cpu:.2f}s CPU, {floor_rss:.0f} MB, over {len(self.floor_runs)} floor runs)", "",
               "| operation | wall (median) | × floor | CPU | peak RSS | nodes run / expected |",
               "|---|---|---|---|---|---|"]
        for label, runs, expected, counts in self.rows:
            wall = statistics.median(r["wall"] for r in runs)
            cpu = statistics.median(r["cpu"] for r in runs)
            rss = max(r["rss"] for r in runs)
            ran = "" if expected is None else f"{'/'.join(str(c) for c in sorted(set(counts)))} / {expected}"
            out.append(f"| {label} | {wall:.3f}s | {wall / floor:.3f} | {cpu:.2f}s | {rss:.0f} MB | {ran} |")
        out.append(f"| peak RSS, parse + no-op | | | | {self.peak:.0f} MB | |")
        return "\n".join(out) + "\n"


def header() -> str:
    import duckdb

    from seekrun import __version__

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30
    return (f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores, "
            f"{mem:.0f} GiB RAM, {platform.system()} {platform.machine()}; Python {platform.python_version()}, "
            f"seekrun {__version__}, duckdb {duckdb.__version__}.\n"
            f"Command: `python benchmarks/run.py {' '.join(sys.argv[1:])}`\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--markdown", type=Path, help="append the results as markdown to this file")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    if not (SHARED / "bench" / "graphspec.py").is_file():
        raise SystemExit(f"run.py: {SHARED}/bench/graphspec.py not found: put the shared/ folder beside the "
                         "repository, or set SEEKRUN_SHARED=/path/to/shared")
    text = header() + "\n"
    for n in a.nodes:
        text += run_one(lambda work: Bench(n, a.rounds, a.rows, work), f"seekrun-bench-{n}-", a.keep)
    if a.markdown:
        with open(a.markdown, "a") as f:
            f.write(text)


def run_one(make_bench, prefix: str, keep: bool, workdir: Path | None = None) -> str:
    """Run one benchmark in a fresh work folder; print and return its markdown."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir=workdir))
    try:
        b = make_bench(work)
        b.run_all()
        md = b.markdown()
        print(md)
        return md + "\n"
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
