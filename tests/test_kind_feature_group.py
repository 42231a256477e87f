"""Issue 4: the feature_group kind.

A small real project (a CSV of visits, two feature groups and a transform downstream),
built with the real CLI into a real DuckDB file.  Every expected table below is worked
out by hand from the CSV:

    customer_id  day         amount  channel
    1            2024-01-01  10.5    web
    1            2024-01-01  2.0     app
    1            2024-01-02  4.5     app
    2            2024-01-01  7       web
    3            2024-01-03  1       web
"""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from conftest import cli, query, ran, reasons, run_results, table, target_snapshot, write_project
from engine_matrix import duckdb_only, on_spark

pytestmark = pytest.mark.usefixtures("kind_engine")  # DuckDB, then Spark (tests/engine_matrix.py)

CSV = """\
customer_id,day,amount,channel
1,2024-01-01,10.5,web
1,2024-01-01,2.0,app
1,2024-01-02,4.5,app
2,2024-01-01,7,web
3,2024-01-03,1,web
"""

TOTALS_SQL = """\
SELECT customer_id, count(*) AS visits, sum(amount) AS spend, max(channel) AS last_channel
  FROM source.visits GROUP BY customer_id"""

FILES = {
    "data/visits.csv": CSV,
    "nodes/visits.yml": """\
        kind: source
        name: visits
        source: csv
        table: data/visits.csv
        """,
    "nodes/features/totals.yml": f"""\
        kind: feature_group
        name: totals
        description: visits and spend per customer
        entity:
          name: customer
          join_keys: [customer_id]
        materialization:
          offline:
            enabled: true
            format: parquet
        inputs:
          - ref: source.visits
        transform: |
          {TOTALS_SQL.replace(chr(10), chr(10) + '          ')}
        features:
          spend: {{dtype: DOUBLE}}
          visits: {{dtype: INTEGER}}
        """,
    "nodes/features/daily.yml": """\
        kind: feature_group
        name: daily
        entity: {name: customer, join_keys: [customer_id]}
        materialization:
          event_time_col: day
        inputs:
          - ref: source.visits
        transform: |
          SELECT customer_id, day, sum(amount) AS spend, 'x' AS note
          FROM ref('source.visits')
          GROUP BY customer_id, day
        features: null
        """,
    "nodes/loyal.yml": """\
        kind: transform
        name: loyal
        inputs:
          - ref: feature_group.totals
        transform: SELECT customer_id, spend FROM feature_group.totals WHERE visits > 1
        """,
}

ALL = {"source.visits", "feature_group.totals", "feature_group.daily", "transform.loyal"}
TOTALS_ROWS = [(1, 17.0, 3), (2, 7.0, 1), (3, 1.0, 1)]  # (customer_id, spend, visits)
DAILY_ROWS = [
    (1, "2024-01-01", 12.5, "x"),
    (1, "2024-01-02", 4.5, "x"),
    (2, "2024-01-01", 7.0, "x"),
    (3, "2024-01-03", 1.0, "x"),
]
PARQUET = Path("target/feature_store/totals.parquet")


def edit(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new))


def columns(project: Path, node_id: str) -> list[tuple[str, str]]:
    kind, name = node_id.split(".")
    return [(r[0], r[1]) for r in query(project, f'DESCRIBE "{kind}"."{name}"')]


def parquet_rows(path: Path) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect()
    try:
        cur = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
        return [d[0] for d in cur.description], sorted(cur.fetchall(), key=repr)
    finally:
        con.close()


def daily_rows(project: Path) -> list[tuple]:
    return [(c, str(d), s, n) for c, d, s, n in table(project, "feature_group.daily")]


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == ALL
    return p


# ---- contents ------------------------------------------------------------------------------

def test_declared_features_are_cast_and_ordered_after_the_join_keys(proj):
    # keys first, then the features in the order listed (spend before visits, unlike the SQL);
    # last_channel is not a declared feature, so it is not in the table
    assert columns(proj, "feature_group.totals") == [
        ("customer_id", "BIGINT"), ("spend", "DOUBLE"), ("visits", "INTEGER")]
    assert table(proj, "feature_group.totals") == TOTALS_ROWS
    # the SQL alone would give visits as BIGINT: the cast is what made it INTEGER
    assert query(proj, "SELECT typeof(count(*)) FROM source.visits") == [("BIGINT",)]


def test_features_null_keeps_every_column_as_the_sql_made_it(proj):
    assert columns(proj, "feature_group.daily") == [
        ("customer_id", "BIGINT"), ("day", "DATE"), ("spend", "DOUBLE"), ("note", "VARCHAR")]
    assert daily_rows(proj) == DAILY_ROWS


def test_dependents_read_the_feature_table(proj):
    assert table(proj, "transform.loyal") == [(1, 17.0)]


def test_python_style_dtypes_mean_64_bit_types(tmp_path):
    files = {**FILES, "nodes/features/totals.yml": FILES["nodes/features/totals.yml"]
             .replace("{dtype: DOUBLE}", "{dtype: float}").replace("{dtype: INTEGER}", "{dtype: int}")}
    p = write_project(tmp_path / "proj", files)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert columns(p, "feature_group.totals") == [
        ("customer_id", "BIGINT"), ("spend", "DOUBLE"), ("visits", "BIGINT")]


def test_seeknal_shorthands_entity_name_offline_true_and_feature_list(tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/visits.csv": CSV,
        "nodes/visits.yml": FILES["nodes/visits.yml"],
        "nodes/fg.yml": """\
            kind: feature_group
            name: short
            entity: customer
            materialization:
              offline: true
              online: {enabled: true, ttl: 7d}
            inputs:
              - ref: source.visits
            transform: SELECT customer_id, count(*) AS visits, 'y' AS other FROM source.visits GROUP BY 1
            features: [visits]
            """,
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    # seekrun has no online store: said, not silently skipped
    assert run_results(p)["feature_group.short"]["warnings"] == [
        "feature_group.short: materialization.online is not supported by seekrun (ignored)"]
    assert table(p, "feature_group.short") == [(1, 3), (2, 1), (3, 1)]
    assert parquet_rows(p / "target/feature_store/short.parquet") == (["customer_id", "visits"],
                                                                     [(1, 3), (2, 1), (3, 1)])


def test_no_transform_takes_the_first_input_as_it_is(tmp_path):
    """Issue 11 (4): as Seeknal does, a feature_group without transform is its first input,
    checked (keys unique per event time) and with its declared features kept."""
    p = write_project(tmp_path / "proj", {
        "data/visits.csv": CSV,
        "nodes/visits.yml": FILES["nodes/visits.yml"],
        "nodes/fg.yml": """\
            kind: feature_group
            name: plain
            entity: {name: customer, join_keys: [customer_id]}
            materialization: {event_time_col: day}
            inputs: [{ref: transform.daily}, {ref: source.visits}]
            features: {amount: {dtype: DOUBLE}}
            ---
            kind: transform
            name: daily
            inputs: [source.visits]
            transform: SELECT customer_id, day, sum(amount) AS amount, 'x' AS other FROM source.visits GROUP BY ALL
            """,
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert columns(p, "feature_group.plain") == [("customer_id", "BIGINT"), ("day", "DATE"), ("amount", "DOUBLE")]
    assert table(p, "feature_group.plain") == [
        (1, date(2024, 1, 1), 12.5), (1, date(2024, 1, 2), 4.5), (2, date(2024, 1, 1), 7.0),
        (3, date(2024, 1, 3), 1.0)]
    assert json.loads((p / "target/manifest.json").read_text())["nodes"]["feature_group.plain"][
        "compiled_sql"] == 'SELECT * FROM "transform"."daily"'


def test_no_transform_and_no_input_is_a_parse_error(tmp_path):
    p = write_project(tmp_path / "proj", {"nodes/fg.yml": """\
        kind: feature_group
        name: empty
        entity: customer
        """})
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "nodes/fg.yml:1: feature_group.empty has no SQL: add 'transform: SELECT ...'" in res.stderr


# ---- offline store ---------------------------------------------------------------------------

def test_offline_parquet_holds_exactly_the_table(proj):
    assert parquet_rows(proj / PARQUET) == (["customer_id", "spend", "visits"], TOTALS_ROWS)
    # only the enabled group is written, and no temp file is left behind
    assert sorted(p.name for p in (proj / "target/feature_store").iterdir()) == ["totals.parquet"]
    manifest = json.loads((proj / "target/manifest.json").read_text())
    assert manifest["nodes"]["feature_group.totals"]["output_files"] == [PARQUET.as_posix()]
    assert "output_files" not in manifest["nodes"]["feature_group.daily"]


def test_deleting_the_parquet_reruns_only_that_node(proj):
    (proj / PARQUET).unlink()
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"feature_group.totals": "output missing"}
    assert parquet_rows(proj / PARQUET) == (["customer_id", "spend", "visits"], TOTALS_ROWS)
    res = cli("run", "-p", str(proj))
    assert "Nothing to do" in res.stdout and ran(proj) == set()


def test_turning_offline_off_rebuilds_and_removes_the_stale_file(proj):
    edit(proj, "nodes/features/totals.yml", "enabled: true", "enabled: false")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"feature_group.totals": "config changed: materialization",
                             "transform.loyal": "upstream feature_group.totals changed"}
    assert not (proj / PARQUET).exists()
    assert table(proj, "feature_group.totals") == TOTALS_ROWS
    res = cli("run", "-p", str(proj))  # no file is expected any more: nothing is missing
    assert ran(proj) == set()


# ---- what reruns -----------------------------------------------------------------------------

def test_sql_edit_reruns_the_group_and_its_dependents_only(proj):
    edit(proj, "nodes/features/totals.yml", "sum(amount) AS spend", "sum(amount) * 2 AS spend")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"feature_group.totals": "config changed: feature_group SQL",
                             "transform.loyal": "upstream feature_group.totals changed"}
    assert table(proj, "feature_group.totals") == [(1, 34.0, 3), (2, 14.0, 1), (3, 2.0, 1)]
    assert table(proj, "transform.loyal") == [(1, 34.0)]
    assert parquet_rows(proj / PARQUET)[1] == [(1, 34.0, 3), (2, 14.0, 1), (3, 2.0, 1)]


def test_dtype_edit_and_feature_order_edit_rerun(proj):
    edit(proj, "nodes/features/totals.yml", "visits: {dtype: INTEGER}", "visits: {dtype: DOUBLE}")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert set(reasons(proj)) == {"feature_group.totals", "transform.loyal"}
    assert reasons(proj)["feature_group.totals"] == "config changed: features"
    assert columns(proj, "feature_group.totals")[2] == ("visits", "DOUBLE")
    # swapping two features changes the column order, so it is a change too
    edit(proj, "nodes/features/totals.yml", "  spend: {dtype: DOUBLE}\n  visits: {dtype: DOUBLE}",
         "  visits: {dtype: DOUBLE}\n  spend: {dtype: DOUBLE}")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj)["feature_group.totals"] == "config changed: features"
    assert [c for c, _ in columns(proj, "feature_group.totals")] == ["customer_id", "visits", "spend"]


def test_description_tags_and_entity_name_edits_run_nothing(proj):
    before = table(proj, "feature_group.totals")
    edit(proj, "nodes/features/totals.yml", "description: visits and spend per customer",
         "description: something else\ntags: [ml]\ncolumns:\n  spend: EUR")
    edit(proj, "nodes/features/totals.yml", "name: customer", "name: client")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout
    assert ran(proj) == set()
    assert table(proj, "feature_group.totals") == before


# ---- checks ----------------------------------------------------------------------------------

def test_duplicate_keys_fail_the_node_and_keep_the_last_good_table(proj):
    parquet_before = (proj / PARQUET).read_bytes()
    # no GROUP BY: customer 1 has three rows
    edit(proj, "nodes/features/totals.yml", TOTALS_SQL.splitlines()[0].strip(),
         "SELECT customer_id, 1 AS visits, amount AS spend, channel AS last_channel")
    edit(proj, "nodes/features/totals.yml", "FROM source.visits GROUP BY customer_id", "FROM source.visits")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    results = run_results(proj)
    error = results["feature_group.totals"]["error"]
    assert results["feature_group.totals"]["status"] == "failed"
    assert error == ("feature_group.totals: join keys are not unique per (customer_id): 1 duplicate key(s) "
                     "covering 3 rows: customer_id=1 (3 rows)")
    assert "customer_id=1 (3 rows)" in res.output
    assert results["transform.loyal"]["status"] == "skipped"
    # the previous table and offline file are untouched
    assert table(proj, "feature_group.totals") == TOTALS_ROWS
    assert (proj / PARQUET).read_bytes() == parquet_before
    assert sorted(p.name for p in (proj / "target/feature_store").iterdir()) == ["totals.parquet"]


def test_keys_must_be_unique_per_event_time_not_per_key(proj):
    # one row per (customer_id, day) passed; one row per visit does not: customer 1 has two
    # visits on 2024-01-01
    edit(proj, "nodes/features/daily.yml", "sum(amount) AS spend", "amount AS spend")
    edit(proj, "nodes/features/daily.yml", "GROUP BY customer_id, day", "")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    error = run_results(proj)["feature_group.daily"]["error"]
    assert error == ("feature_group.daily: join keys are not unique per (customer_id, day): 1 duplicate key(s) "
                     "covering 2 rows: customer_id=1, day=2024-01-01 (2 rows)")
    assert daily_rows(proj) == DAILY_ROWS


def test_many_duplicates_are_counted_and_a_few_named(tmp_path):
    rows = "".join(f"{k},2024-01-01,1,web\n{k},2024-01-01,2,web\n" for k in range(1, 9))
    p = write_project(tmp_path / "proj", {
        "data/visits.csv": "customer_id,day,amount,channel\n" + rows,
        "nodes/visits.yml": FILES["nodes/visits.yml"],
        "nodes/fg.yml": """\
            kind: feature_group
            name: raw
            entity: {join_keys: [customer_id]}
            inputs: [{ref: source.visits}]
            transform: SELECT customer_id, amount FROM source.visits
            """,
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 1, res.output
    error = run_results(p)["feature_group.raw"]["error"]
    assert error == ("feature_group.raw: join keys are not unique per (customer_id): 8 duplicate key(s) "
                     "covering 16 rows: customer_id=1 (2 rows); customer_id=2 (2 rows); customer_id=3 (2 rows); "
                     "customer_id=4 (2 rows); customer_id=5 (2 rows); and 3 more")
    assert query(p, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'feature_group'") == [(0,)]


def test_missing_join_key_column_fails_with_the_columns_listed(proj):
    edit(proj, "nodes/features/daily.yml", "join_keys: [customer_id]", "join_keys: [client_id]")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    assert run_results(proj)["feature_group.daily"]["error"] == (
        "feature_group.daily: join key 'client_id' is not a column of the feature group's SQL result "
        "(columns: customer_id, day, spend, note)")
    assert daily_rows(proj) == DAILY_ROWS


def test_missing_event_time_and_feature_columns_fail(proj):
    edit(proj, "nodes/features/daily.yml", "event_time_col: day", "event_time_col: ts")
    edit(proj, "nodes/features/totals.yml", "visits: {dtype: INTEGER}", "vists: {dtype: INTEGER}")
    res = cli("run", "-p", str(proj), "--continue-on-error")
    assert res.exit_code == 1, res.output
    results = run_results(proj)
    assert results["feature_group.daily"]["error"] == (
        "feature_group.daily: event_time_col 'ts' is not a column of the feature group's SQL result "
        "(columns: customer_id, day, spend, note)")
    assert results["feature_group.totals"]["error"] == (
        "feature_group.totals: feature 'vists' is not a column of the feature group's SQL result "
        "(columns: customer_id, visits, spend, last_channel)")


def test_null_join_key_fails(proj):
    edit(proj, "nodes/features/daily.yml", "SELECT customer_id, day",
         "SELECT CASE WHEN customer_id = 2 THEN NULL ELSE customer_id END AS customer_id, day")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    assert run_results(proj)["feature_group.daily"]["error"] == (
        "feature_group.daily: 1 row(s) have a NULL join key (customer_id): every feature row must name its entity")


def test_a_failed_cast_fails_the_node(proj):
    edit(proj, "nodes/features/totals.yml", "spend: {dtype: DOUBLE}", "last_channel: {dtype: INTEGER}")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    error = run_results(proj)["feature_group.totals"]["error"]
    # (DuckDB fails on the value; on Spark the cast of a text to INTEGER is refused: it would truncate '2.5')
    assert ("lossy cast" if on_spark() else "Could not convert string 'web' to INT32") in error, error
    assert table(proj, "feature_group.totals") == TOTALS_ROWS


def test_fixing_the_failure_builds_again(proj):
    edit(proj, "nodes/features/daily.yml", "join_keys: [customer_id]", "join_keys: [client_id]")
    assert cli("run", "-p", str(proj)).exit_code == 1
    edit(proj, "nodes/features/daily.yml", "join_keys: [client_id]", "join_keys: [customer_id]")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"feature_group.daily": "previous run failed"}
    assert daily_rows(proj) == DAILY_ROWS


# ---- refused before anything runs ------------------------------------------------------------

def test_bad_config_is_a_parse_error_with_its_line(proj):
    before = target_snapshot(proj)
    edit(proj, "nodes/features/totals.yml", "join_keys: [customer_id]", "join_keys: []")
    edit(proj, "nodes/features/daily.yml", "features: null", "features: {}")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/features/totals.yml:6: feature_group.totals: entity.join_keys is empty" in res.stderr
    assert "nodes/features/daily.yml:12: feature_group.daily: features is empty" in res.stderr
    assert target_snapshot(proj) == before


def test_bad_dtype_text_is_a_parse_error(proj):
    edit(proj, "nodes/features/totals.yml", "spend: {dtype: DOUBLE}", "spend: {dtype: 'DOUBLE; DROP'}")
    edit(proj, "nodes/features/totals.yml", "visits: {dtype: INTEGER}", "visits: {dtype: DECIMAL(10,2)}")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/features/totals.yml:17: feature_group.totals: feature 'spend': dtype 'DOUBLE; DROP'" in res.stderr
    # a comma inside a YAML flow mapping splits the type: said plainly, not left to DuckDB
    assert ("nodes/features/totals.yml:18: feature_group.totals: feature 'visits': dtype 'DECIMAL(10' has "
            "unbalanced brackets") in res.stderr


def test_unsupported_offline_format_refused_before_anything_runs(proj):
    edit(proj, "nodes/features/totals.yml", "format: parquet", "format: delta")
    edit(proj, "nodes/features/daily.yml", "sum(amount)", "max(amount)")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "feature_group.totals: offline format 'delta' is not supported (supported: parquet)" in res.stderr
    assert daily_rows(proj) == DAILY_ROWS  # daily did not run either


# ---- Python feature groups -------------------------------------------------------------------

PY_FG = '''\
def build(ctx):
    visits = ctx.ref("source.visits")
    return visits.aggregate("customer_id, sum(amount) AS spend, 'z' AS junk", "customer_id")
'''


@duckdb_only("a Python feature group cannot run on Spark yet (refused at parse)")
def test_python_feature_group_is_checked_cast_and_written_like_a_sql_one(tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/visits.csv": CSV,
        "nodes/visits.yml": FILES["nodes/visits.yml"],
        "pipelines/fg.py": PY_FG,
        "nodes/pyfg.yml": """\
            kind: feature_group
            name: pyfg
            entity: {name: customer, join_keys: [customer_id]}
            materialization: {offline: {enabled: true}}
            inputs: [{ref: source.visits}]
            python: pipelines/fg.py:build
            features: {spend: {dtype: 'DECIMAL(10,2)'}}
            """,
        "nodes/deco.py": """\
            from seekrun.pipeline import feature_group


            @feature_group(name="deco", inputs=["source.visits"],
                           entity={"name": "customer", "join_keys": ["customer_id"]},
                           features={"visits": {"dtype": "INTEGER"}})
            def deco(ctx):
                return ctx.ref("source.visits").aggregate("customer_id, count(*) AS visits", "customer_id")
            """,
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert columns(p, "feature_group.pyfg") == [("customer_id", "BIGINT"), ("spend", "DECIMAL(10,2)")]
    expected = [(1, Decimal("17.00")), (2, Decimal("7.00")), (3, Decimal("1.00"))]
    assert table(p, "feature_group.pyfg") == expected
    assert parquet_rows(p / "target/feature_store/pyfg.parquet") == (["customer_id", "spend"], expected)
    assert columns(p, "feature_group.deco") == [("customer_id", "BIGINT"), ("visits", "INTEGER")]
    assert table(p, "feature_group.deco") == [(1, 3), (2, 1), (3, 1)]
    # no staging table is left behind
    assert query(p, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'feature_group' "
                    "ORDER BY 1") == [("deco",), ("pyfg",)]

    # an edit of the function that makes the keys repeat fails the node; the last table stays
    edit(p, "pipelines/fg.py", 'visits.aggregate("customer_id, sum(amount) AS spend, \'z\' AS junk", "customer_id")',
         'visits.project("customer_id, amount AS spend")')
    res = cli("run", "-p", str(p))
    assert res.exit_code == 1, res.output
    assert reasons(p) == {"feature_group.pyfg": "config changed: Python code"}
    assert run_results(p)["feature_group.pyfg"]["error"] == (
        "feature_group.pyfg: join keys are not unique per (customer_id): 1 duplicate key(s) covering 3 rows: "
        "customer_id=1 (3 rows)")
    assert table(p, "feature_group.pyfg") == expected
    assert query(p, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%staging%'") == [(0,)]


# ---- the sample project ----------------------------------------------------------------------

def test_sample_project_customer_features(sample):
    res = cli("run", "-p", str(sample))
    assert res.exit_code == 0, res.output
    # Lena Novak (12) signed up on 2024-03-10 and never ordered or browsed: 5 days of tenure
    # on 2024-03-15, zero counts, no average order value, segment dormant
    row = (12, 0, 0.0, None, 0, 0, 5, "dormant")
    assert query(sample, "SELECT * FROM feature_group.customer_features WHERE customer_id = 12") == [row]
    names, rows = parquet_rows(sample / "target/feature_store/customer_features.parquet")
    assert names == ["customer_id", "completed_orders", "total_spent", "avg_order_value", "events", "checkouts",
                     "tenure_days", "segment"]
    assert len(rows) == 12 and row in rows
    assert rows == table(sample, "feature_group.customer_features")
    res = cli("run", "-p", str(sample))
    assert "Nothing to do" in res.stdout


def test_a_rebuild_from_the_parse_cache_keeps_the_features_order(tmp_path):
    """The order of `features` is the order of the columns, also when the node file is not
    read again (its record comes from the parse cache, whose JSON has its keys sorted) and
    when the manifest is loaded by the Python API: an incremental rebuild gives the columns
    of a clean build."""
    import os

    files = dict(FILES)
    files["nodes/features/totals.yml"] = FILES["nodes/features/totals.yml"].replace(
        "spend: {dtype: DOUBLE}\n          visits: {dtype: INTEGER}",
        "visits: {dtype: INTEGER}\n          spend: {dtype: DOUBLE}")
    p = write_project(tmp_path / "proj", files)
    node_file = p / "nodes/features/totals.yml"
    assert node_file.read_text().index("visits: {dtype") < node_file.read_text().index("spend: {dtype")
    old = node_file.stat().st_mtime - 3600  # long past: its parse-cache entry is trusted next time
    os.utime(node_file, (old, old))
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    order = ["customer_id", "visits", "spend"]
    assert [c for c, _ in columns(p, "feature_group.totals")] == order

    (p / "data/visits.csv").write_text(CSV + "4,2024-01-04,3,web\n")  # the group rebuilds, its file unread
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert "feature_group.totals" in ran(p)
    assert [c for c, _ in columns(p, "feature_group.totals")] == order
    assert parquet_rows(p / PARQUET)[0] == order

    from seekrun import DAGRunner, Manifest

    manifest = Manifest.load(p / "target" / "manifest.json")
    summary = DAGRunner(manifest, state_dir=p / "target" / "state").run(full=True, nodes=["totals"])
    assert summary.exit_code == 0, [(r.node_id, r.error) for r in summary.results]
    assert [c for c, _ in columns(p, "feature_group.totals")] == order
