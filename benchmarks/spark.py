#!/usr/bin/env python3
"""The Spark engine's cost, next to DuckDB's and the floor (../shared/bench/floor_duckdb.py).

1. The graphspec graph (default 1,000 nodes) built by seekrun with every transform on DuckDB,
   then with every transform on Spark local[2] (``engine: spark`` in the project file), and a
   no-op run of each; whole processes, alternating with the floor in the same invocation.
   Spark's session start is measured on a project of one source and one Spark transform (its
   full build less the same project's on DuckDB); the per-node overhead is what remains of the
   Spark build's extra time, divided by the transforms.
2. One aggregation (count, sum, avg, min, max by key) over 10^7 and 10^8 rows of Parquet: the
   engines themselves (DuckDB in-process; Spark local[2] in a warm session, so the JVM start is
   left out), and seekrun end to end (a Parquet source on DuckDB and the aggregation on each
   engine; on Spark this includes the source's Parquet export).

usage: python benchmarks/spark.py [--nodes 1000] [--rows 10000000 100000000] [--markdown FILE]
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import SHARED, Bench, header, measure, seekrun  # noqa: E402

AGG = ("SELECT k, count(*) AS n, sum(v) AS s, avg(v) AS a, min(v) AS lo, max(v) AS hi "
       "FROM ref('source.big') GROUP BY k")


def _spark_project(proj: Path, engine: str) -> None:
    marker = proj / "seekrun_project.yml"
    lines = [x for x in marker.read_text().splitlines() if not x.startswith("engine:")]
    marker.write_text("\n".join([*lines, f"engine: {engine}"]) + "\n")


def _clean(proj: Path) -> None:
    shutil.rmtree(proj / "target", ignore_errors=True)


def graph_figures(n: int, rounds: int, work: Path) -> str:
    bench = Bench(n, rounds, 1000, work)
    proj = bench.proj
    transforms = sum(1 for m in bench.g["nodes"] if m["kind"] == "transform")
    figures: dict[str, list[float]] = {}
    for engine in ("duckdb", "spark"):
        _spark_project(proj, engine)
        for _ in range(rounds):
            bench.floor()
            _clean(proj)
            figures.setdefault(f"full build, {engine}", []).append(measure(seekrun("run"), cwd=proj)["wall"])
            bench.floor()
            figures.setdefault(f"no-op run, {engine}", []).append(measure(seekrun("run"), cwd=proj)["wall"])
    tiny = work / "tiny"
    (tiny / "data").mkdir(parents=True)
    (tiny / "data" / "a.csv").write_text("id,v\n1,2\n")
    (tiny / "nodes").mkdir()
    (tiny / "nodes" / "all.yml").write_text("kind: source\nname: a\nsource: csv\ntable: data/a.csv\n---\nkind: transform\n"
                                    "name: b\ninputs: [{ref: source.a}]\ntransform: SELECT id, v * 2 AS v FROM "
                                    "ref('source.a')\n")
    (tiny / "seekrun_project.yml").write_text("name: tiny\n")
    for engine in ("duckdb", "spark"):
        _spark_project(tiny, engine)
        for _ in range(rounds):
            _clean(tiny)
            figures.setdefault(f"1 source + 1 transform, full build, {engine}", []).append(
                measure(seekrun("run"), cwd=tiny)["wall"])
    floor = statistics.median(r["wall"] for r in bench.floor_runs)
    med = {k: statistics.median(v) for k, v in figures.items()}
    start = med["1 source + 1 transform, full build, spark"] - med["1 source + 1 transform, full build, duckdb"]
    per_node = (med["full build, spark"] - med["full build, duckdb"] - start) / transforms
    out = [f"#### The {n}-node graph ({transforms} transforms), {rounds} rounds; floor median {floor:.3f}s\n",
           "| operation | wall (median) | × floor |", "|---|---|---|"]
    out += [f"| {k} | {v:.3f}s | {v / floor:.3f} |" for k, v in med.items()]
    out += ["", f"Spark session start (1-node project, Spark less DuckDB): **{start:.2f}s**; per-node overhead "
                f"on Spark over DuckDB: **{per_node * 1000:.0f} ms**. Full build on Spark / on DuckDB: "
                f"**{med['full build, spark'] / med['full build, duckdb']:.1f}×**; no-op run on Spark / on DuckDB: "
                f"**{med['no-op run, spark'] / med['no-op run, duckdb']:.2f}×**.", ""]
    return "\n".join(out)


def _data(path: Path, rows: int) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute(f"COPY (SELECT (i * 2654435761) % 100000 AS k, CAST(i % 1000 AS DOUBLE) AS v FROM range({rows}) t(i)) "
                f"TO '{path}' (FORMAT parquet)")
    con.close()


def _engines(parquet: Path, spark) -> tuple[float, float]:
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(AGG.replace("ref('source.big')", f"read_parquet('{parquet}')")).fetchall()
    duck = time.perf_counter() - t0
    con.close()
    spark.read.parquet(str(parquet)).createOrReplaceTempView("big")
    t0 = time.perf_counter()
    spark.sql(AGG.replace("ref('source.big')", "big")).collect()
    return duck, time.perf_counter() - t0


def aggregation_figures(sizes: list[int], work: Path) -> str:
    from seekrun.engines.spark import SparkEngine

    engine = SparkEngine(work, work, {})
    spark = engine.session()
    out = ["#### One aggregation (count, sum, avg, min, max by 100,000 keys), Spark local[2]\n",
           "| rows | DuckDB query | Spark query (warm session) | Spark / DuckDB | seekrun run, DuckDB | "
           "seekrun run, Spark | Spark / DuckDB |", "|---|---|---|---|---|---|---|"]
    try:
        for rows in sizes:
            proj = work / f"agg-{rows}"
            (proj / "data").mkdir(parents=True)
            _data(proj / "data" / "big.parquet", rows)
            _engines(proj / "data" / "big.parquet", spark)  # warm both (file cache, JIT)
            duck, sp = _engines(proj / "data" / "big.parquet", spark)
            (proj / "nodes").mkdir()
            (proj / "nodes" / "all.yml").write_text("kind: source\nname: big\nsource: parquet\ntable: data/big.parquet\n---\n"
                                            f"kind: transform\nname: agg\ninputs: [{{ref: source.big}}]\n"
                                            f"transform: {AGG}\n")
            (proj / "seekrun_project.yml").write_text("name: agg\n")
            runs = {}
            for eng in ("duckdb", "spark"):
                _spark_project(proj, eng)
                _clean(proj)
                runs[eng] = measure(seekrun("run"), cwd=proj)["wall"]
            out.append(f"| {rows:,} | {duck:.2f}s | {sp:.2f}s | {sp / duck:.1f}× | {runs['duckdb']:.2f}s | "
                       f"{runs['spark']:.2f}s | {runs['spark'] / runs['duckdb']:.1f}× |")
            shutil.rmtree(proj)
    finally:
        engine.close()
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rows", type=int, nargs="*", default=[10 ** 7, 10 ** 8])
    ap.add_argument("--markdown", type=Path, help="append the results as markdown to this file")
    a = ap.parse_args()
    if not (SHARED / "bench" / "graphspec.py").is_file():
        raise SystemExit(f"spark.py: {SHARED}/bench/graphspec.py not found: set SEEKRUN_SHARED=/path/to/shared")
    text = header().replace("benchmarks/run.py", "benchmarks/spark.py") + "\n"
    with tempfile.TemporaryDirectory(prefix="seekrun-spark-bench-") as tmp:
        text += graph_figures(a.nodes, a.rounds, Path(tmp) / "graph") + "\n"
        if a.rows:
            text += aggregation_figures(a.rows, Path(tmp) / "agg")
    print(text)
    if a.markdown:
        with open(a.markdown, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
