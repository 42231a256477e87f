"""The sample project through Spark Connect: a real Connect server (the one the pyspark
distribution ships, started here on 127.0.0.1), `remote:` pointing at it (its port through
env_var()), every transform and aggregation on Spark; the tables equal the all-DuckDB build."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import SAMPLE, cli, ran
from engine_matrix import pin_sample
from spark_helpers import needs_spark

pytestmark = needs_spark


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    pytest.importorskip("grpc", reason="Spark Connect's client needs pyspark's connect extra (pip install '.[spark]')")
    import pyspark

    home = Path(pyspark.__file__).parent
    jar = next(iter(sorted((home / "jars").glob("spark-connect_*.jar"))), None)
    if jar is None:
        pytest.skip("this pyspark ships no Spark Connect server jar")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("connect") / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [str(home / "bin/spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
         "--master", "local[2]", "--conf", f"spark.connect.grpc.binding.port={port}",
         "--conf", "spark.connect.grpc.binding.address=127.0.0.1", "--conf", "spark.ui.enabled=false",
         "--conf", "spark.sql.session.timeZone=UTC",
         "--conf", f"spark.sql.warehouse.dir={log_path.parent / 'warehouse'}", "--jars", str(jar), "spark-internal"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SPARK_HOME": str(home)}, start_new_session=True,
        cwd=str(log_path.parent))  # (the server's own files stay in the test's folder)
    deadline = time.monotonic() + 180
    while b"Spark Connect server started" not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Spark Connect server did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.5)
    yield port
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    log.close()


def _num(v):
    """Numbers compared to 6 decimal places, as floats: a DECIMAL sum is DECIMAL(38, 2) on DuckDB
    and DECIMAL(20, 2) on Spark (the same values, another precision)."""
    import decimal

    return round(float(v), 6) if isinstance(v, (float, decimal.Decimal)) else v


def _tables(project: Path, ids) -> dict:
    import duckdb

    con = duckdb.connect(str(project / "target/seekrun.duckdb"), read_only=True)
    try:
        out = {}
        for nid in ids:
            kind, name = nid.split(".")
            cur = con.execute(f'SELECT * FROM "{kind}"."{name}"')
            cols = [d[0] for d in cur.description]
            rows = sorted((tuple(_num(v) for v in r) for r in cur.fetchall()), key=repr)
            out[nid] = (cols, rows)
        return out
    finally:
        con.close()


def test_the_sample_project_builds_through_spark_connect(tmp_path, connect_server, monkeypatch):
    spark_proj = tmp_path / "spark"
    plain = tmp_path / "plain"
    for dest in (spark_proj, plain):
        shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("target"))
    monkeypatch.setenv("SEEKRUN_TEST_CONNECT_PORT", str(connect_server))
    marker = spark_proj / "seekrun_project.yml"
    marker.write_text(marker.read_text() + "engine: spark\nspark:\n"
                      "  remote: \"sc://127.0.0.1:{{ env_var('SEEKRUN_TEST_CONNECT_PORT') }}\"\n")
    pin_sample(spark_proj)
    res = cli("run", "-p", str(spark_proj))
    assert res.exit_code == 0, res.output
    assert cli("run", "-p", str(plain)).exit_code == 0
    import json

    nodes = json.loads((spark_proj / "target/manifest.json").read_text())["nodes"]
    on_spark = sorted(n for n, e in nodes.items() if e.get("engine") == "spark")
    assert len(on_spark) == 12 and "aggregation.customer_order_amounts" in on_spark and "rule.orders_quality" in on_spark
    assert "feature_group.customer_features" in on_spark and "profile.products_profile" not in on_spark
    # CAST(sum(quantity) AS BIGINT) runs on Spark (quantity is an integer: checked when it runs)
    assert "transform.daily_revenue" in on_spark and "feature_group.customer_daily_orders" in on_spark
    assert "transform.customer_360" not in on_spark  # (pinned: round() of a division)
    # the project file's remote is kept as written: the port's value is filled in only when it runs
    manifest = json.loads((spark_proj / "target/manifest.json").read_text())
    assert manifest["metadata"]["spark"]["remote"] == "sc://127.0.0.1:{{ env_var('SEEKRUN_TEST_CONNECT_PORT') }}"
    table_nodes = sorted(n for n, e in nodes.items()
                         if e["kind"] in ("source", "transform", "aggregation", "feature_group", "rule"))
    assert _tables(spark_proj, table_nodes) == _tables(plain, table_nodes)
    assert not (spark_proj / "target/spark.log").exists()  # no local JVM: the server did the work
    again = cli("run", "-p", str(spark_proj))
    assert again.exit_code == 0 and ran(spark_proj) == set(), again.output
