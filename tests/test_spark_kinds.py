"""The kinds Spark builds (transform, aggregation, rule), as contract tests over both engines:
each project is built once with every node on DuckDB and once with the project's default
``engine: spark`` (Spark local[2]), and the two builds must agree on what a user sees: every
table (numbers to 9 significant places, the floating-point tolerance), each node's status, and
the messages of failing and warning rules. One Spark session serves the module."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import write_project
from spark_helpers import build_in_process, needs_spark, spark_session  # noqa: F401 (a fixture)

pytestmark = needs_spark

PEOPLE = ("id,name,score,day,ts\n1,ann,10,2024-03-01,2024-03-04 10:00:00\n2,bob,,2024-03-02,2024-03-04 23:00:00\n"
          "2,cy,40,2024-03-03,\n3,,25.5,2024-03-01,2024-03-01 00:00:00\n4,dee,-3,,2024-03-02 12:30:00\n")
SOURCE = "kind: source\nname: t\nsource: csv\ntable: data/t.csv\n"

RULES = SOURCE + """\
---
kind: rule
name: strict
inputs: [{ref: source.t}]
rule:
  - type: "null"
    columns: [id, name]
  - type: "null"
    column: score
    params: {max_null_percentage: 0.25}
  - type: range
    column: score
    params: {min_val: 0, max_val: 35}
  - type: uniqueness
    columns: [id]
  - type: freshness
    name: fresh_2d
    column: ts
    params: {max_age: 2d, reference_time: "2024-03-05"}
  - type: freshness
    name: by_day
    column: day
    params: {max_age: 24h, reference_time: "2024-03-04"}
  - name: negative_rows
    type: sql_assertion
    sql: SELECT * FROM input_0 WHERE score < 0
  - name: count_zero
    type: sql_assertion
    sql: SELECT count(*) FROM ref('source.t') WHERE score > 100
---
kind: rule
name: lenient
inputs: [{ref: source.t}]
rule:
  - type: range
    name: ids_positive
    columns: [id]
    params: {min_val: 1}
  - type: uniqueness
    name: id_mostly_unique
    column: id
    params: {max_duplicate_percentage: 0.6}
  - type: range
    name: not_after_march_2
    column: day
    params: {max_val: "2024-03-02"}
params:
  severity: warn
---
kind: transform
name: after
inputs: [{ref: rule.lenient}]
transform: SELECT status, count(*) AS n FROM ref('rule.lenient') GROUP BY status
"""

ORDERS = ("order_id,customer_id,order_date,amount,channel\n1,1,2024-01-01,10.5,web\n2,1,2024-01-03,20.0,shop\n"
          "3,2,2024-01-02,7.25,web\n4,3,2024-01-05,,web\n5,2,2024-01-06,3.0,shop\n6,3,2023-12-20,99.9,shop\n"
          "7,1,2024-01-07,1.75,web\n")
AGGREGATIONS = """\
kind: source
name: orders
source: csv
table: data/orders.csv
---
kind: aggregation
name: spend
inputs: [{ref: source.orders}]
id_col: customer_id
feature_date_col: order_date
features:
  - name: amount
    basic: [sum, count, max, min, avg]
    rolling: [{window: [3, 7], aggs: [sum, count]}]
---
kind: aggregation
name: by_channel
inputs: [{ref: source.orders}]
id_col: customer_id
feature_date_col: order_date
group_by: [channel]
features:
  - name: amount
    basic: [sum, count]
---
kind: transform
name: top
inputs: [{ref: aggregation.spend}, {ref: aggregation.by_channel}]
transform: |
  SELECT s.customer_id, s.amount_sum, b.channel, b.amount_count,
         CASE WHEN s.amount_max > 20 THEN 'big' ELSE 'small' END AS size,
         s.amount_sum / nullif(s.amount_count, 0) AS mean
  FROM ref('aggregation.spend') AS s JOIN ref('aggregation.by_channel') AS b USING (customer_id)
"""

CASES = {"rules": ({"data/t.csv": PEOPLE}, RULES), "aggregations": ({"data/orders.csv": ORDERS}, AGGREGATIONS)}


def _build(root: Path, session=None):
    return build_in_process(root, session, continue_on_error=True)


def _num(v):
    import decimal

    return float(f"{float(v):.9g}") if isinstance(v, (float, decimal.Decimal)) else v


def _tables(root: Path, ids) -> dict:
    import duckdb

    con = duckdb.connect(str(root / "target" / "seekrun.duckdb"), read_only=True)
    try:
        out = {}
        for nid in ids:
            kind, name = nid.split(".")
            cur = con.execute(f'SELECT * FROM "{kind}"."{name}"')
            out[nid] = ([d[0] for d in cur.description],
                        sorted((tuple(_num(v) for v in r) for r in cur.fetchall()), key=repr))
        return out
    finally:
        con.close()


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_kind_builds_the_same_on_spark_as_on_duckdb(case, tmp_path, spark_session):
    files, nodes = CASES[case]
    duck = write_project(tmp_path / "duckdb", {**files, "nodes/all.yml": nodes})
    spark = write_project(tmp_path / "spark", {**files, "nodes/all.yml": nodes}, marker="name: p\nengine: spark\n")
    seen_duck, _ = _build(duck)
    seen_spark, engines = _build(spark, spark_session)
    assert {n for n, e in engines.items() if e == "spark"} == {n for n in engines if not n.startswith("source.")}
    assert seen_spark == seen_duck  # statuses, failure messages, warnings: word for word
    assert _tables(spark, sorted(engines)) == _tables(duck, sorted(engines))
    if case == "rules":
        assert seen_spark["rule.strict"][0] == "failed" and seen_spark["rule.lenient"][2]
        assert seen_spark["transform.after"][0] == "success"


def test_a_failing_rule_on_spark_keeps_its_results_and_the_next_run_retries_it(tmp_path, spark_session):
    proj = write_project(tmp_path / "p", {"data/t.csv": PEOPLE, "nodes/all.yml": RULES},
                         marker="name: p\nengine: spark\n")
    first, _ = _build(proj, spark_session)
    assert first["rule.strict"][0] == "failed" and "results in table rule.strict" in first["rule.strict"][1]
    kept = _tables(proj, ["rule.strict"])["rule.strict"][1]
    assert any(r[3] == "fail" for r in kept)
    again, _ = _build(proj, spark_session)
    assert again["rule.strict"][0] == "failed" and again["rule.lenient"][0] == "cached"
    (proj / "data" / "t.csv").write_text(textwrap.dedent(PEOPLE).replace("4,dee,-3", "4,dee,3"))
    third, _ = _build(proj, spark_session)
    assert {"source.t", "rule.strict", "rule.lenient"} <= {n for n, s in third.items() if s[0] in ("success", "failed")}
    now = {r[0]: r[3] for r in _tables(proj, ["rule.strict"])["rule.strict"][1]}
    assert now["negative_rows"] == "pass" and {r[0]: r[3] for r in kept}["negative_rows"] == "fail"


PY = '''\
def doubled(ctx):
    df = ctx.ref("source.orders")
    return df.where("amount IS NOT NULL").selectExpr("order_id", "amount * 2 AS twice")


def as_pandas(ctx):
    rows = ctx.ref(0).orderBy("order_id").limit(3).toPandas()
    rows["tag"] = ctx.params["tag"]
    return rows[["order_id", "tag"]]


def duck(ctx):
    return ctx.ref(0).filter("amount > 10").project("order_id")
'''
PY_NODES = """\
kind: source
name: orders
source: csv
table: data/orders.csv
---
kind: transform
name: twice
engine: spark
inputs: [{ref: source.orders}]
python: code.py:doubled
---
kind: transform
name: first3
engine: spark
inputs: [{ref: transform.twice}]
params: {tag: hello}
python: code.py:as_pandas
---
kind: transform
name: on_duckdb
inputs: [{ref: source.orders}]
python: code.py:duck
---
kind: transform
name: total
inputs: [{ref: transform.twice}]
transform: SELECT sum(twice) AS s FROM ref('transform.twice')
"""


def test_a_python_node_on_spark_gets_spark_dataframes_and_returns_one(tmp_path, spark_session):
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "code.py": PY, "nodes/all.yml": PY_NODES},
                         marker="name: p\nengine: spark\n")
    seen, engines = _build(proj, spark_session)
    assert all(s[0] == "success" for s in seen.values()), seen
    # the project's default moved the SQL transform; a Python node moves only by its own engine:
    assert engines == {"source.orders": "duckdb", "transform.twice": "spark", "transform.first3": "spark",
                       "transform.on_duckdb": "duckdb", "transform.total": "spark"}
    tables = _tables(proj, ["transform.twice", "transform.first3", "transform.on_duckdb", "transform.total"])
    assert tables["transform.twice"] == (["order_id", "twice"], [(1, 21.0), (2, 40.0), (3, 14.5), (5, 6.0),
                                                                  (6, 199.8), (7, 3.5)])
    assert tables["transform.first3"] == (["order_id", "tag"], [(1, "hello"), (2, "hello"), (3, "hello")])
    assert tables["transform.on_duckdb"][1] == [(1,), (2,), (6,)]
    assert tables["transform.total"] == (["s"], [(284.8,)])
    again, _ = _build(proj, spark_session)
    assert {n for n, s in again.items() if s[0] == "success"} == set()
    code = proj / "code.py"
    code.write_text(PY.replace('"amount * 2 AS twice"', '"amount * 3 AS twice"'))
    third, _ = _build(proj, spark_session)
    assert {"transform.twice", "transform.first3", "transform.total"} <= {n for n, s in third.items()
                                                                          if s[0] == "success"}
    assert _tables(proj, ["transform.total"])["transform.total"] == (["s"], [(427.2,)])


def test_a_python_node_on_spark_that_returns_nothing_fails_and_keeps_its_table(tmp_path, spark_session):
    proj = write_project(tmp_path / "p", {"data/orders.csv": ORDERS, "code.py": PY, "nodes/all.yml": PY_NODES},
                         marker="name: p\nengine: spark\n")
    _build(proj, spark_session)
    before = _tables(proj, ["transform.twice"])
    (proj / "code.py").write_text(PY.replace('    return df.where', '    df.where'))
    seen, _ = _build(proj, spark_session)
    assert seen["transform.twice"][0] == "failed"
    assert "doubled() returned None (no return statement?): on Spark, return a Spark DataFrame" in seen["transform.twice"][1]
    assert _tables(proj, ["transform.twice"]) == before
