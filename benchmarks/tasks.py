#!/usr/bin/env python3
"""What task nodes cost: a no-op run with 200 tasks added, and seekrun's overhead per task.

1. The neutral graph (../shared/bench/graphspec.py, N nodes) rendered as a project, and the
   same project with 200 tasks added (100 copy a file they read into a file a source reads,
   50 export a transform's table through ``${inputs.0}``, 50 chain on another task's output).
   Both are built once; then their no-op runs alternate with the floor
   (../shared/bench/floor_duckdb.py on the same graph), whole processes, several rounds.
2. Runs of K/4 and K independent ``true`` tasks (``always: true``), one thread: the cost of one
   more task (the slope) against the time to start and wait for ``true`` itself (measured in
   the same invocation, K times, from this Python).

usage: python benchmarks/tasks.py [--nodes 1000] [--tasks 200] [--rounds 5] [--trivial 200]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from render import node_id, render  # noqa: E402
from run import SHARED, header, measure, seekrun  # noqa: E402


def add_tasks(proj: Path, graph: dict, count: int, feed: bool = True) -> None:
    transforms = [node_id(n) for n in graph["nodes"] if n["kind"] == "transform"]
    (proj / "nodes" / "tasks").mkdir(parents=True, exist_ok=True)
    (proj / "data" / "tasks").mkdir(parents=True, exist_ok=True)
    docs = []
    copies = count // 2
    for i in range(copies):  # a file in, a file out, read by a source
        (proj / "data" / "tasks" / f"in_{i}.csv").write_text(f"id,v\n{i},{i * 7 % 1000}\n")
        docs.append(f"kind: task\nname: copy_{i}\ncommand: cp data/tasks/in_{i}.csv data/tasks/out_{i}.csv\n"
                    f"files: [data/tasks/in_{i}.csv]\noutputs: [data/tasks/out_{i}.csv]\n")
        if feed:
            docs.append(f"kind: source\nname: staged_{i}\nsource: csv\ntable: data/tasks/out_{i}.csv\n")
    exports = count // 4
    for i in range(exports):  # a table in (as Parquet), a file out
        docs.append(f"kind: task\nname: export_{i}\ninputs: [{{ref: {transforms[i * 7 % len(transforms)]}}}]\n"
                    f"command: cp ${{inputs.0}} data/tasks/export_{i}.parquet\n"
                    f"outputs: [data/tasks/export_{i}.parquet]\n")
    for i in range(count - copies - exports):  # chained on another task's output
        docs.append(f"kind: task\nname: chain_{i}\ncommand: cp data/tasks/out_{i}.csv data/tasks/chain_{i}.csv\n"
                    f"files: [data/tasks/out_{i}.csv]\noutputs: [data/tasks/chain_{i}.csv]\n")
    (proj / "nodes" / "tasks" / "tasks.yml").write_text("---\n".join(docs))


def median(xs):
    return statistics.median(xs)


def _graph(work: Path, name: str, n: int, rows: int) -> tuple[Path, dict]:
    out = work / name
    subprocess.run([sys.executable, str(SHARED / "bench" / "graphspec.py"), str(out), "--nodes", str(n),
                    "--rows", str(rows)], check=True, stdout=subprocess.DEVNULL)
    return out, json.loads((out / "graph.json").read_text())


def noop(n: int, tasks: int, rounds: int, rows: int, work: Path) -> str:
    """Three projects: the N-node graph; N nodes of which ``tasks`` are tasks (the graph of N -
    tasks nodes, plus the tasks); and the N-node graph plus the tasks plus the sources they feed."""
    graph_dir, graph = _graph(work, "graph", n, rows)
    small_dir, small = _graph(work, "graph_small", n - tasks, rows)
    plain, mixed, more = work / "plain", work / "mixed", work / "more"
    render(graph_dir, plain)
    render(small_dir, mixed)
    add_tasks(mixed, small, tasks, feed=False)
    render(graph_dir, more)
    add_tasks(more, graph, tasks)
    projects = (plain, mixed, more)
    for proj in projects:
        measure(seekrun("run", "-p", str(proj)))
        measure(seekrun("run", "-p", str(proj)))  # warm the parse cache
    floor: list[float] = []
    walls: dict[Path, list[float]] = {proj: [] for proj in projects}
    floor_cmd = [sys.executable, str(SHARED / "bench" / "floor_duckdb.py"), str(graph_dir), "--db",
                 str(work / "floor.duckdb")]
    for _ in range(rounds):
        (work / "floor.duckdb").unlink(missing_ok=True)
        floor.append(measure(floor_cmd)["wall"])
        for proj in projects:
            walls[proj].append(measure(seekrun("run", "-p", str(proj)))["wall"])
    f = median(floor)
    a, b, c = (median(walls[proj]) for proj in projects)
    return (f"#### No-op run, N = {n} nodes, with and without tasks ({rounds} rounds; floor median {f:.3f}s, "
            f"on the {n}-node graph)\n\n"
            "| project | no-op wall (median) | × floor |\n|---|---|---|\n"
            f"| {n} SQL nodes | {a:.3f}s | {a / f:.3f} |\n"
            f"| {n} nodes: {n - tasks} SQL nodes + {tasks} tasks | {b:.3f}s | {b / f:.3f} |\n"
            f"| {n} SQL nodes + {tasks} tasks + the {tasks // 2} sources they feed ({n + tasks + tasks // 2} nodes) "
            f"| {c:.3f}s | {c / f:.3f} |\n\n"
            f"{n} nodes with {tasks} tasks / without: **{b / a:.3f}** (the issue's bound: 1.10); "
            f"with {tasks + tasks // 2} nodes added: {c / a:.3f}.\n")


def _trivial_project(path: Path, k: int) -> Path:
    (path / "nodes").mkdir(parents=True)
    (path / "seekrun_project.yml").write_text(f"name: trivial{k}\n")
    (path / "nodes" / "t.yml").write_text("---\n".join(
        f"kind: task\nname: t{i}\ncommand: [\"true\"]\nalways: true\n" for i in range(k)))
    return path


def trivial(k: int, rounds: int, work: Path) -> str:
    """The cost of one more task: the slope between runs of k/4 and k trivial tasks (a run's
    fixed costs, opening DuckDB and starting the process watchdog, cancel out)."""
    small, large = max(1, k // 4), k
    p_small = _trivial_project(work / "trivial_small", small)
    p_large = _trivial_project(work / "trivial_large", large)
    for proj in (p_small, p_large):
        measure(seekrun("run", "-p", str(proj), "--threads", "1"))
    true = shutil.which("true")
    t_small, t_large, bare = [], [], []
    for _ in range(rounds):
        t_small.append(measure(seekrun("run", "-p", str(p_small), "--threads", "1"))["wall"])
        t_large.append(measure(seekrun("run", "-p", str(p_large), "--threads", "1"))["wall"])
        t0 = time.perf_counter()
        for _ in range(k):
            subprocess.Popen([true], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True).communicate()
        bare.append((time.perf_counter() - t0) / k)
    per_task = (median(t_large) - median(t_small)) / (large - small)
    over = per_task - median(bare)
    return (f"#### A trivial task (`true`), one thread ({rounds} rounds)\n\n"
            f"| figure | median |\n|---|---|\n"
            f"| run of {small} `true` tasks | {median(t_small):.3f}s |\n"
            f"| run of {large} `true` tasks | {median(t_large):.3f}s |\n"
            f"| per task: the difference / {large - small} | {per_task * 1000:.2f} ms |\n"
            f"| starting and waiting for `true` alone, from Python | {median(bare) * 1000:.2f} ms |\n\n"
            f"seekrun's overhead per trivial task: **{over * 1000:.2f} ms** (the issue's bound: 5 ms).\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--trivial", type=int, default=200)
    ap.add_argument("--markdown", type=Path)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="seekrun-bench-tasks-"))
    try:
        text = header().replace("benchmarks/run.py", "benchmarks/tasks.py") + "\n"
        text += noop(a.nodes, a.tasks, a.rounds, a.rows, work) + "\n" + trivial(a.trivial, a.rounds, work)
        print(text)
        if a.markdown:
            with open(a.markdown, "a") as f:
                f.write(text)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
