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
ORDERS_SOURCE = "kind: source\nname: orders\nsource: csv\ntable: data/orders.csv\n---\n"
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


PROFILES = SOURCE + """\
---
kind: transform
name: typed
inputs: [{ref: source.t}]
transform: |
  SELECT id, name, score, CAST(score AS DECIMAL(10, 2)) AS price, day, ts, score > 20 AS high,
         id * 1000000000000 AS big
  FROM ref('source.t')
---
kind: transform
name: thirds
inputs: [{ref: source.t}]
transform: SELECT CAST(id AS DECIMAL(10, 2)) AS d FROM ref('source.t') WHERE id <= 2
---
kind: profile
name: p_src
inputs: [{ref: source.t}]
---
kind: profile
name: p_typed
inputs: [{ref: transform.typed}]
profile:
  params: {max_top_values: 3}
---
kind: profile
name: p_thirds
inputs: [{ref: transform.thirds}]
"""
APPROXIMATE = {"p25", "p50", "p75"}  # approx_quantile (DuckDB) and percentile_approx (Spark) differ


def _profile(root: Path, nid: str) -> dict:
    import duckdb

    con = duckdb.connect(str(root / "target" / "seekrun.duckdb"), read_only=True)
    try:
        kind, name = nid.split(".")
        rows = con.execute(f'SELECT * FROM "{kind}"."{name}"').fetchall()
    finally:
        con.close()
    return {(c, m, v if m == "top_value" else None): (v, d) for c, m, v, d in rows}


def test_a_profile_on_spark_writes_the_rows_a_duckdb_build_writes(tmp_path, spark_session):
    duck = write_project(tmp_path / "duckdb", {"data/t.csv": PEOPLE, "nodes/all.yml": PROFILES})
    # a profile moves to Spark by its own engine: spark (the project default leaves it on DuckDB)
    on_spark = PROFILES.replace("kind: profile\n", "kind: profile\nengine: spark\n")
    spark = write_project(tmp_path / "spark", {"data/t.csv": PEOPLE, "nodes/all.yml": on_spark},
                          marker="name: p\nengine: spark\n")
    seen_duck, _ = _build(duck)
    seen_spark, engines = _build(spark, spark_session)
    assert engines["profile.p_src"] == engines["profile.p_typed"] == engines["transform.thirds"] == "spark"
    assert seen_spark == seen_duck and all(s[0] == "success" for s in seen_spark.values()), seen_spark
    assert _profile(spark, "profile.p_thirds")[("d", "avg", None)][0] == "1.6666666666666667"  # a DOUBLE, as DuckDB's
    for nid in ("profile.p_src", "profile.p_typed", "profile.p_thirds"):
        on_duck, on_spark = _profile(duck, nid), _profile(spark, nid)
        assert on_spark.keys() == on_duck.keys()  # the same rows: columns, metrics, top values
        for key, (value, detail) in on_duck.items():
            got = on_spark[key]
            if key[1] in APPROXIMATE:  # within the column's range
                low, high = float(on_duck[(key[0], "min", None)][0]), float(on_duck[(key[0], "max", None)][0])
                assert low <= float(got[0]) <= high, (key, got)
            elif key[1] == "freshness_hours":
                assert abs(float(got[0]) - float(value)) < 1, (key, got, value)
            elif key[1] != "profiled_at":
                assert got == (value, detail), (nid, key)  # DuckDB's text, word for word
    typed = _profile(spark, "profile.p_typed")
    assert typed[("price", "max", None)][0] == "40.00" and typed[("big", "max", None)][0] == "4000000000000"
    assert typed[("high", "top_values", None)][1] == ('[{"value":"false","count":2,"percent":50.0},'
                                                      ' {"value":"true","count":2,"percent":50.0}]')
    assert typed[("ts", "min", None)][0] == "2024-03-01 00:00:00"


# ---- a caller's session (DAGRunner(spark_session=...)): used, and left as it was ----------------
TIMES = SOURCE + """\
---
kind: transform
name: hours
inputs: [{ref: source.t}]
transform: SELECT id, CAST(ts AS VARCHAR) AS at, hour(ts) AS h FROM ref('source.t') WHERE ts IS NOT NULL
---
kind: transform
name: zone
engine: spark
dialect: spark
inputs: [{ref: source.t}]
transform: SELECT current_timezone() AS tz, count(*) AS n FROM source.t
"""


def test_a_callers_session_builds_in_utc_and_gets_its_settings_and_catalog_back(tmp_path, spark_session):
    proj = write_project(tmp_path / "p", {"data/t.csv": PEOPLE, "nodes/all.yml": TIMES},
                         marker="name: p\nengine: spark\n")
    key = "spark.sql.session.timeZone"
    spark_session.conf.set(key, "America/New_York")
    try:
        seen, _ = _build(proj, spark_session)
        assert seen["transform.hours"][0] == "success", seen
        assert spark_session.conf.get(key) == "America/New_York"  # put back
    finally:
        spark_session.conf.set(key, "UTC")
    rows = _tables(proj, ["transform.hours"])["transform.hours"][1]
    assert (1, "2024-03-04 10:00:00", 10) in rows and (2, "2024-03-04 23:00:00", 23) in rows  # read as UTC
    assert _tables(proj, ["transform.zone"])["transform.zone"][1] == [("UTC", 5)]  # seekrun's zone, while it built
    assert not spark_session.catalog.tableExists("source.t")  # what seekrun registered is gone
    assert not spark_session.catalog.databaseExists("source")


def test_a_table_in_the_callers_catalog_by_an_inputs_name_is_never_replaced(tmp_path, spark_session):
    theirs = tmp_path / "theirs"
    spark_session.range(3).write.parquet(str(theirs))
    spark_session.sql("CREATE DATABASE IF NOT EXISTS `source`")
    spark_session.sql(f"CREATE TABLE `source`.`t` USING parquet LOCATION '{theirs}'")
    try:
        proj = write_project(tmp_path / "p", {"data/t.csv": PEOPLE, "nodes/all.yml": TIMES},
                             marker="name: p\nengine: spark\n")
        seen, _ = _build(proj, spark_session)
        assert seen["transform.hours"][0] == "failed"
        assert "the Spark session's catalog already has a table source.t that seekrun did not make" in \
            seen["transform.hours"][1]
        assert sorted(r.id for r in spark_session.table("source.t").collect()) == [0, 1, 2]  # theirs, untouched
    finally:
        spark_session.sql("DROP TABLE IF EXISTS `source`.`t`")
        spark_session.sql("DROP DATABASE IF EXISTS `source`")


FEATURES = """\
kind: source
name: orders
source: csv
table: data/orders.csv
---
kind: feature_group
name: spend
entity: {name: customer, join_keys: [customer_id]}
materialization:
  offline: {enabled: true, format: parquet}
inputs: [{ref: source.orders}]
transform: |
  SELECT customer_id, count(*) AS orders, sum(amount) AS total, max(order_date) AS last_day
  FROM ref('source.orders') GROUP BY customer_id
features:
  orders: {dtype: INTEGER}
  total: {dtype: 'DECIMAL(12, 2)'}
  last_day: {}
---
kind: feature_group
name: by_channel
entity: {name: customer, join_keys: [customer_id]}
materialization:
  event_time_col: order_date
  offline: {partition_by: [channel]}
inputs: [{ref: source.orders}]
transform: SELECT customer_id, order_date, channel, amount FROM ref('source.orders')
features: null
---
kind: feature_group
name: not_unique
entity: customer
inputs: [{ref: source.orders}]
transform: SELECT customer_id, channel FROM ref('source.orders')
features: [channel]
"""


def _offline(root: Path) -> dict:
    import duckdb

    store = root / "target" / "feature_store"
    con = duckdb.connect()
    try:
        return {
            "files": sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()),
            "spend": con.execute(f"SELECT * FROM read_parquet('{store / 'spend.parquet'}') ORDER BY 1").fetchall(),
            "types": con.execute(f"DESCRIBE SELECT * FROM read_parquet('{store / 'spend.parquet'}')").fetchall(),
            "by_channel": con.execute(f"SELECT * FROM read_parquet('{store / 'by_channel'}/**/*.parquet', "
                                      "hive_partitioning = true) ORDER BY ALL").fetchall()}
    finally:
        con.close()


def test_feature_groups_on_spark_build_the_tables_offline_files_and_key_checks_duckdb_does(tmp_path, spark_session):
    files = {"data/orders.csv": ORDERS, "nodes/all.yml": FEATURES}
    duck = write_project(tmp_path / "duckdb", files)
    spark = write_project(tmp_path / "spark", files, marker="name: p\nengine: spark\n")
    seen_duck, _ = _build(duck)
    seen_spark, engines = _build(spark, spark_session)
    assert {n for n, e in engines.items() if e == "spark"} == {"feature_group.spend", "feature_group.by_channel",
                                                               "feature_group.not_unique"}
    assert seen_spark == seen_duck  # the duplicate keys' failure, word for word
    assert seen_spark["feature_group.not_unique"][0] == "failed"
    assert "join keys are not unique per (customer_id)" in seen_spark["feature_group.not_unique"][1]
    ids = ["feature_group.spend", "feature_group.by_channel"]
    assert _tables(spark, ids) == _tables(duck, ids)
    assert _offline(spark) == _offline(duck)  # the same files, rows and Parquet types
    assert not (spark / "target" / "feature_store" / "not_unique.parquet").exists()


SOURCES = """\
kind: source
name: people
engine: spark
source: csv
table: data/t.csv
---
kind: source
name: dmy
engine: spark
source: csv
table: data/dmy.csv
---
kind: source
name: events
engine: spark
source: json
table: data/events.json
---
kind: source
name: lines
engine: spark
source: jsonl
table: data/lines.jsonl
---
kind: source
name: pq
engine: spark
source: parquet
table: data/pq/*.parquet
---
kind: source
name: ragged
engine: spark
source: csv
table: data/ragged.csv
---
kind: transform
name: joined
inputs: [{ref: source.people}, {ref: source.events}]
transform: |
  SELECT p.id, p.name, p.day, e.kind, e.at FROM ref('source.people') AS p JOIN ref('source.events') AS e USING (id)
"""
SOURCE_FILES = {
    "data/t.csv": PEOPLE.replace("2,cy,40", '2,"cy, jr",40'),
    "data/dmy.csv": "a;d;when\n1;03/01/2024;03/01/2024 10:30:00\n2;13/02/2024;13/02/2024 23:05:09\n",
    "data/events.json": '[{"id": 1, "kind": "buy", "at": "2024-03-01 10:00:00", "n": 1.5},\n'
                        ' {"id": 2, "kind": "view", "at": "2024-03-02 11:30:00", "n": null}]\n',
    "data/lines.jsonl": '{"id": 1, "tags": ["a", "b"], "ok": true}\n{"id": 2, "tags": [], "ok": false}\n',
    "data/ragged.csv": "a,b,c\n1,2,3\n4,5\n",
}


def test_file_sources_on_spark_read_the_tables_duckdb_reads(tmp_path, spark_session):
    import duckdb

    duck = write_project(tmp_path / "duckdb", {**SOURCE_FILES, "nodes/all.yml": SOURCES.replace("engine: spark\n", "")})
    spark = write_project(tmp_path / "spark", {**SOURCE_FILES, "nodes/all.yml": SOURCES})
    for root in (duck, spark):
        (root / "data" / "pq").mkdir()
        duckdb.sql("SELECT range AS id, 'r' || range AS label, DATE '2024-01-01' + CAST(range AS INTEGER) AS d "
                   "FROM range(5)").write_parquet(str(root / "data" / "pq" / "part1.parquet"))
    seen_duck, _ = _build(duck)
    seen_spark, engines = _build(spark, spark_session)
    assert {n for n, e in engines.items() if e == "spark"} == {n for n in engines if n.startswith("source.")}
    assert seen_spark == seen_duck  # the ragged file's failure names its bad line on both
    assert seen_spark["source.ragged"][0] == "failed" and "line 3" in seen_spark["source.ragged"][1]
    ids = sorted(n for n in engines if n != "source.ragged")
    assert _tables(spark, ids) == _tables(duck, ids)
    import duckdb as d

    con = d.connect(str(spark / "target" / "seekrun.duckdb"), read_only=True)
    try:  # the same column types as DuckDB's reader gives
        types = {r[0]: r[1] for r in con.execute('DESCRIBE "source"."dmy"').fetchall()}
    finally:
        con.close()
    assert types == {"a": "BIGINT", "d": "DATE", "when": "TIMESTAMP"}


def test_a_source_moves_to_spark_only_by_its_own_engine_and_refuses_params_spark_lacks(tmp_path, spark_session):
    proj = write_project(tmp_path / "p", {"data/t.csv": PEOPLE, "nodes/all.yml": SOURCE + (
        "---\nkind: source\nname: odd\nengine: spark\nsource: csv\ntable: data/t.csv\n"
        "params: {sample_size: 10, all_varchar: true, nullstr: NA}\n")}, marker="name: p\nengine: spark\n")
    seen, engines = _build(proj, spark_session)
    assert engines["source.t"] == "duckdb" and engines["source.odd"] == "spark"
    assert seen["source.odd"][0] == "failed"
    assert seen["source.odd"][1] == ("source.odd: reader params all_varchar, nullstr, sample_size have no Spark "
                                     "equivalent: "
                                     "build this source on DuckDB (remove engine: spark)")


FANOUT = """\
kind: source
name: orders
source: csv
table: data/orders.csv
---
kind: transform
name: by_channel
foreach: [web, shop, phone]
inputs: [{ref: source.orders}]
transform: |
  SELECT '{{ var('ITEM') }}' AS channel, customer_id, sum(amount) AS total
  FROM ref('source.orders') WHERE channel = '{{ var('ITEM') }}' GROUP BY customer_id
---
kind: transform
name: mixed
foreach: [a, b]
inputs: [{ref: source.orders}]
transform: |
  SELECT order_id, amount AS {{ var('ITEM') }}_col
  FROM ref('source.orders')
---
kind: transform
name: report
inputs: [{ref: transform.by_channel}]
transform: SELECT channel, count(*) AS customers, sum(total) AS total FROM ref('transform.by_channel') GROUP BY channel
"""


def test_a_fan_out_on_spark_builds_each_instance_and_their_union_as_duckdb_does(tmp_path, spark_session):
    files = {"data/orders.csv": ORDERS, "nodes/all.yml": FANOUT}
    duck = write_project(tmp_path / "duckdb", files)
    spark = write_project(tmp_path / "spark", files, marker="name: p\nengine: spark\n")
    seen_duck, _ = _build(duck)
    seen_spark, engines = _build(spark, spark_session)
    assert engines["transform.by_channel[web]"] == engines["transform.by_channel"] == "spark"
    assert seen_spark == seen_duck and all(s[0] == "success" for s in seen_spark.values()), seen_spark
    ids = sorted(n for n in engines if not n.startswith("source."))
    assert _tables(spark, ids) == _tables(duck, ids)
    assert _tables(spark, ["transform.mixed"])["transform.mixed"][0] == ["order_id", "a_col", "b_col"]
    assert not spark_session.catalog.databaseExists("transform")  # the instances' tables dropped too
    again, _ = _build(spark, spark_session)
    assert {n for n, s in again.items() if s[0] == "success"} == set()


def test_what_spark_would_read_differently_from_duckdb_fails_loudly_never_silently(tmp_path, spark_session):
    nodes = """\
kind: source
name: yy
engine: spark
source: csv
table: data/yy.csv
---
kind: source
name: hive
engine: spark
source: parquet
table: data/year=2024/*.parquet
---
kind: source
name: shuffled
engine: spark
source: csv
table: data/n*.csv
"""
    proj = write_project(tmp_path / "p", {"data/yy.csv": "a,d\n1,05/01/99\n2,06/01/98\n",
                                          "data/n1.csv": "a,b\n1,2\n", "data/n2.csv": "b,a\n20,10\n",
                                          "nodes/all.yml": nodes})
    import duckdb

    (proj / "data" / "year=2024").mkdir()
    duckdb.sql("SELECT 1 AS x").write_parquet(str(proj / "data" / "year=2024" / "f.parquet"))
    seen, _ = _build(proj, spark_session)
    assert seen["source.yy"][0] == "failed" and "date format '%d/%m/%y': Spark reads no %y" in seen["source.yy"][1]
    assert seen["source.hive"][0] == "failed"
    assert "DuckDB reads the key=value folder in the files' paths as column year" in seen["source.hive"][1]
    assert seen["source.shuffled"][0] == "failed"  # DuckDB matches the files' columns by name; Spark would not
    assert "Spark cannot read the CSV files as DuckDB does" in seen["source.shuffled"][1]
    assert "CSV header does not conform to the schema" in seen["source.shuffled"][1]


def test_a_fan_out_whose_instances_give_a_column_as_number_and_text_unions_as_duckdb_does(tmp_path, spark_session):
    nodes = ORDERS_SOURCE + """\
kind: transform
name: codes
foreach: [num, text]
inputs: [{ref: source.orders}]
transform: |
  SELECT order_id, {{ var('ITEM') }} AS code FROM (SELECT order_id, customer_id AS num,
         '00' || CAST(customer_id AS VARCHAR) AS text FROM ref('source.orders'))
"""
    files = {"data/orders.csv": ORDERS, "nodes/all.yml": nodes}
    duck = write_project(tmp_path / "duckdb", files)
    spark = write_project(tmp_path / "spark", files, marker="name: p\nengine: spark\n")
    seen_duck, _ = _build(duck)
    seen_spark, _ = _build(spark, spark_session)
    assert seen_spark == seen_duck and seen_spark["transform.codes"][0] == "success", seen_spark
    assert _tables(spark, ["transform.codes"]) == _tables(duck, ["transform.codes"])
    assert (1, "001") in _tables(spark, ["transform.codes"])["transform.codes"][1]  # text, as DuckDB makes it


def test_cancelling_a_run_on_a_callers_session_cancels_only_seekruns_jobs(tmp_path, spark_session):
    N = 4_000_000_000  # rows of the caller's own job: seconds long
    import threading
    import time

    from seekrun.compiled import Compiled
    from seekrun.runner import DAGRunner

    slow = SOURCE + "---\nkind: transform\nname: slow\nengine: spark\ninputs: [{ref: source.t}]\npython: slow.py:big\n"
    code = "def big(ctx):\n    return ctx.spark.range(2_000_000_000_000).selectExpr('sum(id % 7) AS s')\n"
    proj = write_project(tmp_path / "p", {"data/t.csv": PEOPLE, "nodes/all.yml": slow, "slow.py": code})
    compiled = Compiled(proj, strict=False, diff=False)
    runner = DAGRunner(compiled.manifest, compiled.old, compiled.project.state_dir, project_dir=proj,
                       file_cache=compiled.result.file_cache, spark_session=spark_session)
    done: dict = {}
    build = threading.Thread(target=lambda: done.setdefault("summary", runner.run(on_commit=compiled.save)))
    build.start()
    mine = None
    try:
        deadline = time.monotonic() + 120
        tracker = spark_session.sparkContext.statusTracker()
        while not tracker.getActiveJobsIds() and time.monotonic() < deadline:
            time.sleep(0.2)  # (until the slow node's job runs: the only job on the session yet)
        assert tracker.getActiveJobsIds() and build.is_alive(), done

        def theirs():
            spark_session.sparkContext.setJobGroup("the-callers", "a job of the caller's", interruptOnCancel=True)
            try:
                done["theirs"] = spark_session.range(0, N).selectExpr("sum(id % 7) AS s").collect()[0]["s"]
            except Exception as exc:  # (cancelled: what must not happen)
                done["theirs"] = exc

        mine = threading.Thread(target=theirs)
        mine.start()
        time.sleep(1.0)
        assert mine.is_alive(), done  # (still running when the run is cancelled)
    finally:  # (a failure above must not leave the slow node's job on the module's session)
        runner.cancel()
        build.join(120)
        if mine is not None:
            mine.join(120)
    assert not build.is_alive() and done["summary"].interrupted, [(r.node_id, r.status, r.error) for r in done["summary"].results]
    assert done["theirs"] == 21 * (N // 7) + sum(range(N % 7))  # the caller's job ran to its end
    assert not (proj / "target" / "spark-warehouse" / "transform" / "slow" / "CURRENT").exists()


def test_a_run_that_would_start_a_second_spark_session_in_the_process_says_to_pass_the_running_one(
        tmp_path, spark_session):
    proj = write_project(tmp_path / "p", {"data/t.csv": PEOPLE, "nodes/all.yml": SOURCE + (
        "---\nkind: transform\nname: x\ninputs: [{ref: source.t}]\ntransform: SELECT id FROM ref('source.t')\n")},
        marker="name: p\nengine: spark\n")
    seen, _ = build_in_process(proj)  # (no spark_session: seekrun would start its own, beside the module's)
    status, error, _ = seen["transform.x"]
    assert status == "failed" and "a Spark session is already running in this process" in error, seen
    assert "DAGRunner(..., spark_session=spark)" in error
    assert "cannot start Spark" not in error and "spark.log" not in error  # said as it is, not as a failed start
    assert spark_session.range(3).count() == 3  # the running session is untouched
    seen, _ = build_in_process(proj, spark_session)
    assert seen["transform.x"][0] == "success", seen


def test_an_integer_cast_is_decided_when_it_runs_by_its_inputs_types(tmp_path, spark_session):
    # CAST(sum(qty) AS BIGINT): at parse qty's type is not known; on Spark the cast builds where
    # qty is an integer (no fraction to round or truncate), and fails where it is a DOUBLE (DuckDB
    # rounds 1.5 to 2, Spark would truncate it to 1). A cast known lossy at parse is refused there.
    import duckdb

    from conftest import cli

    nodes = SOURCE.replace("t.csv", "o.csv").replace("name: t", "name: o") + textwrap.dedent("""\
        ---
        kind: transform
        name: whole
        inputs: [{ref: source.o}]
        transform: SELECT id, CAST(sum(qty) AS BIGINT) AS q, CAST(count(*) AS INTEGER) AS n FROM ref('source.o') GROUP BY id
        ---
        kind: transform
        name: fraction
        inputs: [{ref: source.o}]
        transform: SELECT id, CAST(sum(price) AS BIGINT) AS p FROM ref('source.o') GROUP BY id
        """)
    proj = write_project(tmp_path / "p", {"data/o.csv": "id,qty,price\n1,2,2.5\n2,3,1.5\n1,4,0.5\n",
                                          "nodes/all.yml": nodes}, marker="name: p\nengine: spark\n")
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    seen, engines = build_in_process(proj, spark_session, continue_on_error=True)
    assert engines["transform.whole"] == engines["transform.fraction"] == "spark"
    assert seen["transform.whole"][0] == "success", seen
    con = duckdb.connect(str(proj / "target/seekrun.duckdb"), read_only=True)
    try:
        assert con.execute('SELECT * FROM "transform"."whole" ORDER BY id').fetchall() == [(1, 6, 2), (2, 3, 1)]
    finally:
        con.close()
    assert seen["transform.fraction"][:2] == ("failed", (
        "transform.fraction: cannot run on Spark: lossy cast CAST(SUM(price) AS BIGINT) of a DOUBLE: DuckDB "
        "rounds a fraction to the nearest integer, Spark truncates it; write CAST(round(x) AS ...) or "
        "CAST(trunc(x) AS ...)"))
    assert not (proj / "target/spark-warehouse/transform/fraction").exists()

    known = proj / "nodes/all.yml"
    known.write_text(known.read_text().replace("CAST(sum(price) AS BIGINT)", "CAST(avg(qty) AS BIGINT)"))
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert ("nodes/all.yml:14: transform.fraction: cannot run on Spark: lossy cast CAST(AVG(qty) AS BIGINT) of a "
            "DOUBLE") in res.stderr, res.stderr
