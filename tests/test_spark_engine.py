"""Spark as a second engine, as a user meets it: a mixed project (sources and a rule-like report on
DuckDB, a transform and an aggregation on Spark local[2]) builds the same tables as the all-DuckDB
project; editing the Spark node reruns exactly it and what depends on it; a no-op run starts no
JVM; a failed Spark build keeps the last good table; what cannot run on Spark is refused at parse."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, all_tables, cli, ran, write_project
from spark_helpers import needs_spark

ORDERS = "order_id,customer_id,order_date,amount\n1,1,2024-01-01,10.5\n2,1,2024-01-03,20.0\n" \
         "3,2,2024-01-02,7.25\n4,3,2024-01-05,\n5,2,2024-01-06,3.0\n6,3,2023-12-20,99.9\n"
NODES = """\
kind: source
name: orders
source: csv
table: data/orders.csv
---
kind: transform
name: paid
engine: spark
inputs: [{ref: source.orders}]
transform: |
  SELECT customer_id, order_date, amount, amount * 2 AS doubled
  FROM ref('source.orders') WHERE amount IS NOT NULL
---
kind: aggregation
name: spend
engine: spark
inputs: [{ref: transform.paid}]
id_col: customer_id
feature_date_col: order_date
features:
  - name: amount
    basic: [sum, count, max]
    rolling: [{window: [7], aggs: [sum]}]
---
kind: transform
name: report
inputs: [{ref: aggregation.spend}]
transform: SELECT customer_id, amount_sum, amount_sum_7d FROM ref('aggregation.spend') WHERE amount_count > 0
---
kind: rule
name: spend_ok
inputs: [{ref: aggregation.spend}]
rule:
  - {type: range, column: amount_sum, params: {min_val: 0}}
  - {type: uniqueness, columns: [customer_id]}
"""


def _project(root: Path, spark: bool = True) -> Path:
    return write_project(root, {"data/orders.csv": ORDERS,
                                "nodes/all.yml": NODES if spark else NODES.replace("engine: spark\n", "")})


def _tables(project: Path) -> dict:
    """Every node's rows, through DuckDB (a Spark node's table through its view), floats rounded."""
    import duckdb

    con = duckdb.connect(str(project / "target/seekrun.duckdb"), read_only=True)
    try:
        out = {}
        for nid in ("source.orders", "transform.paid", "aggregation.spend", "transform.report"):
            kind, name = nid.split(".")
            rows = con.execute(f'SELECT * FROM "{kind}"."{name}"').fetchall()
            out[nid] = sorted((tuple(round(v, 9) if isinstance(v, float) else v for v in r) for r in rows), key=repr)
        return out
    finally:
        con.close()


def _java_children() -> int:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if "java" in line and "seekrun" in line and "spark" in line.lower())


@needs_spark
def test_a_mixed_project_builds_what_duckdb_builds_and_reruns_only_what_changed(tmp_path):
    mixed, plain = _project(tmp_path / "mixed"), _project(tmp_path / "plain", spark=False)
    res = cli("run", "-p", str(mixed))
    assert res.exit_code == 0, res.output
    assert cli("run", "-p", str(plain)).exit_code == 0
    assert _tables(mixed) == _tables(plain)
    assert len(_tables(mixed)["aggregation.spend"]) == 3
    assert [r[3] for r in all_tables(mixed)["rule.spend_ok"][1]] == ["pass", "pass"]  # a DuckDB rule on a Spark table
    manifest = json.loads((mixed / "target/manifest.json").read_text())["nodes"]
    assert manifest["transform.paid"]["engine"] == "spark" and "`source`.`orders`" in manifest["transform.paid"]["spark_sql"]
    assert "engine" not in manifest["transform.report"]
    # the Spark tables are Parquet folders in the warehouse; DuckDB reads them through views
    assert (mixed / "target/spark-warehouse/aggregation/spend/CURRENT").is_file()
    assert "aggregation.spend" not in all_tables(mixed)  # a view, not a copy
    from seekrun.state import StateStore

    state = StateStore(mixed / "target/state").load(repair=False)
    assert state["aggregation.spend"]["location"] == {"engine": "spark", "path": "target/spark-warehouse/aggregation/spend"}
    assert state["transform.report"]["location"] == {"engine": "duckdb", "table": "transform.report"}
    shown = cli("show", "transform.paid", "-p", str(mixed))
    assert shown.exit_code == 0 and "engine     : spark" in shown.stdout, shown.output
    assert "SQL (as Spark runs it" in shown.stdout and "`source`.`orders`" in shown.stdout
    assert cli("docs", "-p", str(mixed)).exit_code == 0
    page = (mixed / "target/docs/nodes/transform.paid.html").read_text()
    assert "<th>Engine</th><td>spark</td>" in page and "`source`.`orders`" in page
    # the DuckDB source crossed to Spark as a Parquet export of that build
    exports = list((mixed / "target/interchange/source/orders").glob("*/data.parquet"))
    assert len(exports) == 1

    # a no-op run: nothing runs, and no JVM is started
    log = mixed / "target/spark.log"
    size = log.stat().st_size
    t0 = time.perf_counter()
    again = cli("run", "-p", str(mixed))
    assert again.exit_code == 0 and ran(mixed) == set() and "Nothing to do" in again.stdout
    assert time.perf_counter() - t0 < 5 and log.stat().st_size == size

    # editing the Spark transform reruns it and what depends on it, and nothing else
    nodes = mixed / "nodes/all.yml"
    nodes.write_text(nodes.read_text().replace("amount * 2 AS doubled", "amount * 3 AS doubled"))
    res = cli("run", "-p", str(mixed))
    assert res.exit_code == 0, res.output
    assert ran(mixed) == {"transform.paid", "aggregation.spend", "transform.report", "rule.spend_ok"}
    assert "config changed: transform SQL" in res.stdout
    assert sorted(r[3] for r in _tables(mixed)["transform.paid"]) == [9.0, 21.75, 31.5, 60.0, 299.7]
    assert exports == list((mixed / "target/interchange/source/orders").glob("*/data.parquet"))  # export reused

    # a Spark table deleted behind seekrun's back: output missing, rebuilt
    import shutil

    shutil.rmtree(mixed / "target/spark-warehouse/aggregation")
    res = cli("run", "-p", str(mixed))
    assert res.exit_code == 0, res.output
    assert ran(mixed) == {"aggregation.spend"} and "output missing" in res.stdout
    assert _java_children() == 0  # the run's JVM went with it


@needs_spark
def test_moving_a_node_between_engines_rebuilds_it_and_its_downstream_once(tmp_path):
    proj = _project(tmp_path / "p", spark=False)
    assert cli("run", "-p", str(proj)).exit_code == 0
    before = _tables(proj)
    nodes = proj / "nodes/all.yml"
    nodes.write_text(nodes.read_text().replace("name: spend\n", "name: spend\nengine: spark\n"))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"aggregation.spend", "transform.report", "rule.spend_ok"}  # their input's engine changed
    assert _tables(proj) == before
    assert cli("run", "-p", str(proj)).exit_code == 0 and ran(proj) == set()
    nodes.write_text(nodes.read_text().replace("name: spend\nengine: spark\n", "name: spend\nengine: duckdb\n"))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"aggregation.spend", "transform.report", "rule.spend_ok"}
    assert _tables(proj) == before and "aggregation.spend" in all_tables(proj)
    assert not (proj / "target/spark-warehouse/aggregation/spend").exists()


@needs_spark
def test_a_failed_spark_build_keeps_the_last_good_table(tmp_path):
    proj = _project(tmp_path / "p")
    assert cli("run", "-p", str(proj)).exit_code == 0
    before = _tables(proj)
    pointer = (proj / "target/spark-warehouse/transform/paid/CURRENT").read_text()
    nodes = proj / "nodes/all.yml"
    nodes.write_text(nodes.read_text().replace("amount * 2 AS doubled", "CAST('not a date' AS DATE) AS doubled"))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    assert "transform.paid" in res.output and "not a date" in res.output
    assert (proj / "target/spark-warehouse/transform/paid/CURRENT").read_text() == pointer
    assert len(list((proj / "target/spark-warehouse/transform/paid").glob("v-*"))) == 1  # no half-written version
    assert _tables(proj) == before


def test_sql_that_would_change_meaning_on_spark_is_refused_at_parse(tmp_path):
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "nodes/all.yml": NODES.replace(
        "SELECT customer_id, order_date, amount, amount * 2 AS doubled",
        "SELECT customer_id, order_date, amount, CAST(amount / 2 AS INTEGER) AS whole")
        + "---\nkind: exposure\nname: other\nengine: spark\ntype: file\ndepends_on: [{ref: transform.paid}]\n"
          "params: {format: csv, path: out/paid.csv}\n"})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert any(line.startswith("nodes/all.yml:10: transform.paid: cannot run on Spark: lossy cast CAST(amount / 2 AS INT) of a DOUBLE") for line in lines), lines
    assert any("exposure.other: an exposure writes its files on this machine, by DuckDB" in line and "remove 'engine: spark'" in line
               for line in lines), lines  # every error, together
    assert "Traceback" not in res.output and not (proj / "target/manifest.json").exists()


def test_a_bad_engine_name_is_one_line(tmp_path):
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "nodes/all.yml": NODES},
                         marker="name: p\nengine: flink\n")
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2
    assert "seekrun_project.yml:2: engine 'flink' is not one seekrun has: write engine: duckdb or engine: spark" \
        in res.stderr


def _parse_without(tmp_path, code: str, env: dict) -> subprocess.CompletedProcess:
    proj = _project(tmp_path / "p")
    return subprocess.run([sys.executable, "-c", code + "\nfrom seekrun.cli import main\nmain()", "parse", "-p", str(proj)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=120)


def test_without_pyspark_parse_says_what_to_install(tmp_path):
    import os

    proc = _parse_without(tmp_path, "import sys; sys.modules['pyspark'] = None  # as if not installed",
                          {**os.environ})
    assert proc.returncode == 2, proc.stderr
    assert ("transform.paid runs on Spark, but pyspark is not installed: pip install 'seekrun[spark]'"
            in proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_java_parse_says_what_to_install(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(tmp_path / "empty-bin")
    proc = _parse_without(tmp_path, "", env)
    if "pyspark is not installed" in proc.stderr:
        pytest.skip("pyspark is not installed: the Java check comes after it")
    assert proc.returncode == 2, proc.stderr
    assert "Java is not found" in proc.stderr and "openjdk-17-jre-headless" in proc.stderr, proc.stderr


def test_a_duckdb_project_never_loads_spark(tmp_path):
    proj = _project(tmp_path / "p", spark=False)
    code = ("import sys\nfrom seekrun.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            "assert 'pyspark' not in sys.modules and 'sqlglot' not in sys.modules, 'loaded'\n")
    proc = subprocess.run([sys.executable, "-c", code, "run", "-p", str(proj)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert not (proj / "target/spark-warehouse").exists()



@needs_spark
def test_a_timeout_cancels_the_spark_job(tmp_path):
    rows = "v\n" + "".join(f"{i % 1000}\n" for i in range(100_000))
    proj = write_project(tmp_path / "p", {"data/big.csv": rows, "nodes/all.yml": """\
        kind: source
        name: big
        source: csv
        table: data/big.csv
        ---
        kind: transform
        name: pairs
        engine: spark
        timeout: 4s
        inputs: [{ref: source.big}]
        transform: SELECT count(*) AS n FROM ref('source.big') a CROSS JOIN ref('source.big') b WHERE a.v + b.v = -1
        """})
    t0 = time.perf_counter()
    res = cli("run", "-p", str(proj))
    took = time.perf_counter() - t0
    assert res.exit_code == 1, res.output
    assert "transform.pairs" in res.output and "timed out after 4s" in res.output, res.output
    assert took < 30, took  # 10^10 pairs would take far longer: the job was cancelled
    assert not (proj / "target/spark-warehouse/transform/pairs/CURRENT").exists()
    assert list((proj / "target/spark-warehouse/transform/pairs").glob("v-*")) == []


SPARK_SQL = """\
---
kind: transform
name: flags
engine: spark
dialect: spark
inputs: [{ref: source.orders}]
transform: |
  SELECT `customer_id`, nvl2(amount, 'paid', 'open') AS state
  FROM ref('source.orders')
"""


@needs_spark
def test_a_node_written_in_spark_sql_runs_as_written_and_duckdb_reads_its_table(tmp_path):
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "nodes/all.yml": NODES + SPARK_SQL})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    import duckdb

    con = duckdb.connect(str(proj / "target/seekrun.duckdb"), read_only=True)
    try:
        rows = sorted(con.execute('SELECT customer_id, state FROM "transform"."flags"').fetchall())
    finally:
        con.close()
    assert rows == [(1, "paid"), (1, "paid"), (2, "paid"), (2, "paid"), (3, "open"), (3, "paid")]
    show = cli("show", "transform.flags", "-p", str(proj))
    assert show.exit_code == 0 and "nvl2(amount" in show.stdout and "`source`.`orders`" in show.stdout
    again = cli("run", "-p", str(proj))
    assert again.exit_code == 0 and ran(proj) == set()


def test_spark_sql_on_duckdb_or_reading_what_it_does_not_declare_is_refused_at_parse(tmp_path):
    nodes = (NODES + SPARK_SQL
             + SPARK_SQL.replace("name: flags", "name: local").replace("engine: spark\n", "")
             + SPARK_SQL.replace("name: flags", "name: sneaky").replace(
                 "FROM ref('source.orders')", "FROM ref('source.orders') JOIN transform.paid USING (customer_id)")
             + SPARK_SQL.replace("name: flags", "name: odd").replace("dialect: spark", "dialect: mysql")
             + SPARK_SQL.replace("name: flags", "name: secret").replace("'open'", "'{{ env_var(\"TOKEN\") }}'"))
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "nodes/all.yml": nodes})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2 and "Traceback" not in res.output
    err = res.stderr
    assert "transform.local: dialect: spark means its SQL is Spark SQL, which DuckDB does not run: add engine: spark" \
        in err
    assert "transform.sneaky: it reads transform.paid, which is not one of its inputs: add it to inputs" in err
    assert "transform.odd: dialect 'mysql' is not one seekrun reads" in err
    assert "transform.secret: env_var() is not filled into Spark SQL (dialect: spark)" in err
    assert "transform.flags" not in err and not (proj / "target/manifest.json").exists()


def test_a_warehouse_url_is_refused_rather_than_taken_for_a_folder(tmp_path):
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "nodes/all.yml": NODES},
                         marker="name: p\nspark:\n  warehouse: s3a://bucket/wh\n")
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "seekrun_project.yml:2: spark.warehouse 's3a://bucket/wh' is a URL" in res.stderr
    assert not (proj / "s3a:").exists() and not (proj / "target/manifest.json").exists()
