"""Issue 4: the aggregation kind.

A small real project, built with the real CLI into a real DuckDB file.  The expected
tables are worked out by hand from these rows (source.tx):

    cust  day         amount  shop
    1     2024-01-01  10      a
    1     2024-01-05  20      b
    1     2024-01-10  30      a
    1     2024-01-12  40      a
    2     2024-01-06  5       a
    2     2024-01-11  7       b
    3     2024-01-02  8       a
    3     2024-01-12  NULL    b

and the application dates of source.apps: (1, 2024-01-06), (1, 2024-01-12), (2, 2024-01-10).
A window of N days holds the rows with  app_date - N days < day <= app_date.
"""
from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from conftest import cli, query, ran, reasons, run_results, table, target_snapshot, write_project
from engine_matrix import ident

pytestmark = pytest.mark.usefixtures("kind_engine")  # DuckDB, then Spark (tests/engine_matrix.py)

TX = """\
cust,day,amount,shop
1,2024-01-01,10,a
1,2024-01-05,20,b
1,2024-01-10,30,a
1,2024-01-12,40,a
2,2024-01-06,5,a
2,2024-01-11,7,b
3,2024-01-02,8,a
3,2024-01-12,,b
"""

APPS = """\
cust,app_date
1,2024-01-06
1,2024-01-12
2,2024-01-10
"""

LATEST = """\
kind: aggregation
name: latest
description: amounts per customer
inputs:
  - ref: source.tx
id_col: cust
feature_date_col: day
features:
  - name: amount
    column: amount
    basic: [sum, count, avg, min, max, stddev]
    rolling:
      - window: [1, 7]
        aggs: [sum, count]
      - window: [30]
        aggs: [mean]
"""

FILES = {
    "data/tx.csv": TX,
    "data/apps.csv": APPS,
    "nodes/sources.yml": """\
        kind: source
        name: tx
        source: csv
        table: data/tx.csv
        ---
        kind: source
        name: apps
        source: csv
        table: data/apps.csv
        """,
    "nodes/history.yml": """\
        kind: transform
        name: history
        inputs:
          - ref: source.apps
          - ref: source.tx
        transform: |
          SELECT a.cust, a.app_date, t.day, t.amount, t.shop
          FROM source.apps AS a JOIN source.tx AS t ON t.cust = a.cust
        """,
    "nodes/latest.yml": LATEST,
    "nodes/per_app.yml": """\
        kind: aggregation
        name: per_app
        inputs:
          - ref: transform.history
        id_col: cust
        feature_date_col: day
        application_date_col: app_date
        group_by: [shop]
        features:
          - name: amount
            basic: [sum, count]
            rolling:
              - window: [7]
                aggs: [sum]
        """,
    "nodes/top.yml": """\
        kind: transform
        name: top
        inputs:
          - ref: aggregation.latest
        transform: SELECT cust, amount_sum FROM aggregation.latest WHERE amount_sum > 50
        """,
}

ALL = {"source.tx", "source.apps", "transform.history", "aggregation.latest", "aggregation.per_app",
       "transform.top"}
D = date(2024, 1, 12)  # the latest day in source.tx: aggregation.latest's application date

LATEST_COLUMNS = ["cust", "application_date", "amount_sum", "amount_count", "amount_avg", "amount_min",
                  "amount_max", "amount_stddev", "amount_sum_1d", "amount_count_1d", "amount_sum_7d",
                  "amount_count_7d", "amount_avg_30d"]
# stddev is the sample standard deviation, rounded to 6 places below:
#   cust 1: 10, 20, 30, 40 -> mean 25, squares 225+25+25+225 = 500, sqrt(500/3) = 12.909944
#   cust 2: 5, 7 -> sqrt(2) = 1.414214;  cust 3: one value -> NULL
LATEST_ROWS = [
    # cust, app, sum, count, avg, min, max, stddev, sum_1d, count_1d, sum_7d, count_7d, avg_30d
    (1, D, 100, 4, 25.0, 10, 40, 12.909944, 40, 1, 70, 2, 25.0),    # 7d: 01-10 + 01-12 (01-05 is out)
    (2, D, 12, 2, 6.0, 5, 7, 1.414214, None, 0, 12, 2, 6.0),        # 1d: nothing on 01-12; 7d: 01-06 is in
    (3, D, 8, 1, 8.0, 8, 8, None, None, 0, None, 0, 8.0),           # the 01-12 row has no amount
]


def edit(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new))


def colnames(project: Path, node_id: str) -> list[str]:
    kind, name = node_id.split(".")
    return [r[0] for r in query(project, f'DESCRIBE "{kind}"."{name}"')]


def latest_rows(project: Path) -> list[tuple]:
    cols = ", ".join("round(amount_stddev, 6)" if c == "amount_stddev" else c for c in LATEST_COLUMNS)
    return query(project, f"SELECT {cols} FROM aggregation.latest ORDER BY cust")


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == ALL
    return p


def small_project(tmp_path: Path, agg_yaml: str, csv: str = TX) -> Path:
    return write_project(tmp_path / "small", {
        "data/tx.csv": csv,
        "nodes/tx.yml": "kind: source\nname: tx\nsource: csv\ntable: data/tx.csv\n",
        "nodes/agg.yml": agg_yaml,
    })


# ---- contents ------------------------------------------------------------------------------

def test_basic_and_rolling_aggs_over_the_latest_feature_date(proj):
    assert colnames(proj, "aggregation.latest") == LATEST_COLUMNS
    assert latest_rows(proj) == LATEST_ROWS
    assert table(proj, "transform.top") == [(1, 100)]


def test_per_row_application_dates_with_group_by(proj):
    assert colnames(proj, "aggregation.per_app") == [
        "cust", "app_date", "shop", "amount_sum", "amount_count", "amount_sum_7d"]
    assert table(proj, "aggregation.per_app") == sorted([
        (1, date(2024, 1, 6), "a", 10, 1, 10),      # only 01-01 is on or before 01-06
        (1, date(2024, 1, 6), "b", 20, 1, 20),
        (1, date(2024, 1, 12), "a", 80, 3, 70),     # 7d: 01-10 and 01-12, not 01-01
        (1, date(2024, 1, 12), "b", 20, 1, None),   # 01-05 is exactly 7 days back: out
        (2, date(2024, 1, 10), "a", 5, 1, 5),
        (2, date(2024, 1, 10), "b", None, 0, None),  # 01-11 is after the application date
    ], key=repr)


def test_absent_application_date_column_uses_the_latest_feature_date_and_warns(tmp_path):
    p = small_project(tmp_path, """\
        kind: aggregation
        name: agg
        inputs: [{ref: source.tx}]
        id_col: cust
        feature_date_col: day
        application_date_col: as_of
        features:
          - {name: spent, column: amount, basic: [sum, mean]}
        """)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert colnames(p, "aggregation.agg") == ["cust", "as_of", "spent_sum", "spent_avg"]
    assert table(p, "aggregation.agg") == [(1, D, 100, 25.0), (2, D, 12, 6.0), (3, D, 8, 8.0)]
    warning = ("aggregation.agg: application_date_col 'as_of' is not a column of source.tx: "
               "the latest day is the application date")
    assert run_results(p)["aggregation.agg"]["warnings"] == [warning]
    assert warning in res.output


def test_null_application_dates_fall_back_to_the_latest_feature_date(tmp_path):
    csv = ("cust,day,amount,app\n"
           "1,2024-01-01,10,2024-01-03\n"
           "1,2024-01-05,20,2024-01-03\n"   # after its application date: not counted
           "2,2024-01-02,5,\n"
           "2,2024-01-05,7,\n")             # no application date: the latest day, 2024-01-05
    p = small_project(tmp_path, """\
        kind: aggregation
        name: agg
        inputs: [{ref: source.tx}]
        id_col: cust
        feature_date_col: day
        application_date_col: app
        features:
          - {name: amount, basic: [sum]}
        """, csv)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert table(p, "aggregation.agg") == [(1, date(2024, 1, 3), 10), (2, date(2024, 1, 5), 12)]
    assert run_results(p)["aggregation.agg"]["warnings"] == []


def test_timestamp_feature_dates_use_windows_of_24_hours(tmp_path):
    csv = ("cust,ts,amount\n"
           "1,2024-01-09 07:00:00,1\n"    # 25 hours before the latest ts: outside 1d
           "1,2024-01-09 09:00:00,2\n"    # 23 hours before: inside
           "1,2024-01-10 08:00:00,4\n")   # the latest ts: the application date
    p = small_project(tmp_path, """\
        kind: aggregation
        name: agg
        inputs: [{ref: source.tx}]
        id_col: cust
        feature_date_col: ts
        features:
          - name: amount
            rolling: [{window: [1, 2], aggs: [sum]}]
        """, csv)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert table(p, "aggregation.agg") == [
        (1, query(p, "SELECT TIMESTAMP '2024-01-10 08:00:00'")[0][0], 6, 7)]


# ---- what reruns -----------------------------------------------------------------------------

def test_config_edit_reruns_the_node_and_its_dependents(proj):
    edit(proj, "nodes/latest.yml", "window: [1, 7]", "window: [1, 3]")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"aggregation.latest": "config changed: features",
                             "transform.top": "upstream aggregation.latest changed"}
    assert "amount_sum_7d" not in colnames(proj, "aggregation.latest")
    # 3 days back from 01-12: 01-10 and 01-12 for cust 1, 01-11 for cust 2, only a NULL for cust 3
    assert query(proj, "SELECT cust, amount_sum_3d, amount_count_3d FROM aggregation.latest ORDER BY cust") == [
        (1, 70, 2), (2, 7, 1), (3, None, 0)]


def test_group_by_edit_reruns_only_that_node(proj):
    edit(proj, "nodes/per_app.yml", "group_by: [shop]", "group_by: []")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert set(reasons(proj)) == {"aggregation.per_app"}
    assert table(proj, "aggregation.per_app") == sorted([
        (1, date(2024, 1, 6), 30, 2, 30),           # 01-01 and 01-05 from both shops
        (1, date(2024, 1, 12), 100, 4, 70),
        (2, date(2024, 1, 10), 5, 1, 5),            # 01-11 is after the application date
    ], key=repr)


def test_description_and_tags_edits_run_nothing(proj):
    edit(proj, "nodes/latest.yml", "description: amounts per customer",
         "description: amounts per client\ntags: [ml]\nowner: someone")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout
    assert ran(proj) == set()


def test_manifest_node_holds_the_generated_sql(proj):
    node = json.loads((proj / "target/manifest.json").read_text())["nodes"]["aggregation.latest"]
    sql = node["generated_sql"]
    assert 'FROM "source"."tx"' in sql
    assert ('sum("amount") FILTER (WHERE "day" <= "__seekrun_application_date" AND "day" > '
            '"__seekrun_application_date" - INTERVAL 7 DAY) AS "amount_sum_7d"') in sql
    assert 'avg("amount") FILTER (WHERE "day" <= "__seekrun_application_date") AS "amount_avg"' in sql
    assert "GROUP BY \"cust\", \"__seekrun_application_date\"" in sql
    assert node["hashes"]["fields"]["generated_sql"]
    res = cli("show", "aggregation.latest", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert f"AS {ident('amount_avg_30d')}" in res.stdout  # (the SQL that runs: Spark's on Spark)


# ---- parse errors ----------------------------------------------------------------------------

def test_unknown_aggs_are_parse_errors_with_their_lines(proj):
    before = target_snapshot(proj)
    edit(proj, "nodes/latest.yml", "basic: [sum, count, avg, min, max, stddev]",
         "basic: [sum, count, median, min, max, stddev]")
    edit(proj, "nodes/latest.yml", "aggs: [mean]", "aggs: [total]")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert ("nodes/latest.yml:11: aggregation.latest: unknown aggregation 'median' in features[0].basic "
            "(did you mean 'mean'?): use one of avg, count, max, mean, min, std, stddev, sum") in res.stderr
    assert ("nodes/latest.yml:16: aggregation.latest: unknown aggregation 'total' in "
            "features[0].rolling[1].aggs: use one of avg, count, max, mean, min, std, stddev, sum") in res.stderr
    assert target_snapshot(proj) == before


@pytest.mark.parametrize("old, new, line, message", [
    ("basic: [sum, count, avg, min, max, stddev]", "basic: [sum, avg, mean]", 11,
     "output column 'amount_avg' is produced twice (also by features[0].basic[1])"),
    ("window: [30]", "window: [0]", 15,
     "features[0].rolling[1].window: 0 is not a number of days (a whole number >= 1, or e.g. 7d)"),
    ("    column: amount\n", "    column: amount\n    rolling_window: 7\n", 11,
     "unknown key 'rolling_window' in features[0]: use name, column, basic, rolling, ratio, since, description"),
    ("inputs:\n  - ref: source.tx\n", "", 1,
     "aggregation needs an input to aggregate"),
    ("feature_date_col: day\n", "feature_date_col: day\ngroup_by: [cust]\n", 8,
     "group_by column 'cust' is already id_col"),
])
def test_bad_config_is_a_parse_error(proj, old, new, line, message):
    edit(proj, "nodes/latest.yml", old, new)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert f"nodes/latest.yml:{line}: aggregation.latest: {message}" in res.stderr


# ---- run-time failures -----------------------------------------------------------------------

def test_missing_columns_fail_the_node_and_keep_the_last_table(proj):
    edit(proj, "nodes/latest.yml", "column: amount", "column: amt")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    results = run_results(proj)
    assert results["aggregation.latest"]["error"] == (
        "aggregation.latest: 'amt' (features[0].column) not found in source.tx (columns: cust, day, amount, shop)")
    assert results["transform.top"]["status"] == "skipped"
    assert latest_rows(proj) == LATEST_ROWS


def test_text_feature_dates_fail_with_a_hint(tmp_path):
    p = small_project(tmp_path, """\
        kind: aggregation
        name: agg
        inputs: [{ref: source.tx}]
        id_col: cust
        feature_date_col: shop
        features:
          - {name: amount, basic: [sum]}
        """)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 1, res.output
    assert run_results(p)["aggregation.agg"]["error"] == (
        "aggregation.agg: feature_date_col 'shop' is VARCHAR, not a DATE or TIMESTAMP: "
        "cast it upstream (e.g. CAST(shop AS DATE))")


@pytest.mark.parametrize("rolling", [True, False])
def test_application_date_col_equal_to_feature_date_col_is_one_row_per_entity_and_day(tmp_path, rolling):
    """Issue 11 (5): the daily per-entity aggregation (Seeknal's result: basic and since over
    that day's rows); a window holds the entity's rows in the N days up to that day."""
    p = small_project(tmp_path, f"""\
        kind: aggregation
        name: agg
        inputs: [{{ref: source.tx}}]
        id_col: cust
        feature_date_col: day
        application_date_col: day
        features:
          - name: amount
            basic: [sum]
            {"rolling: [{window: 7d, functions: [sum]}]" if rolling else ""}
            since: {{condition: "shop = 'a'", aggs: [count]}}
        """)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    rows = [  # cust, day, that day's sum, the 7 days' sum, that day's rows in shop a
        (1, date(2024, 1, 1), 10, 10, 1), (1, date(2024, 1, 5), 20, 30, 0), (1, date(2024, 1, 10), 30, 50, 1),
        (1, date(2024, 1, 12), 40, 70, 1), (2, date(2024, 1, 6), 5, 5, 1), (2, date(2024, 1, 11), 7, 12, 0),
        (3, date(2024, 1, 2), 8, 8, 1), (3, date(2024, 1, 12), None, None, 0)]
    if rolling:
        assert colnames(p, "aggregation.agg") == ["cust", "day", "amount_sum", "amount_sum_7d", "amount_count_if"]
    else:
        assert colnames(p, "aggregation.agg") == ["cust", "day", "amount_sum", "amount_count_if"]
        rows = [r[:3] + r[4:] for r in rows]
    assert table(p, "aggregation.agg") == sorted(rows, key=repr)


def test_seeknal_ratio_and_since_aggs(tmp_path):
    """Issue 11 (6c): ratio and since, once refused, are built as Seeknal names them.  Worked out
    from TX by hand: the application date is 2024-01-12 (the latest day); a ratio is the
    numerator window's sum over the denominator window's (NULL when that is NULL or 0)."""
    p = small_project(tmp_path, """\
        kind: aggregation
        name: agg
        inputs: [{ref: source.tx}]
        id_col: cust
        feature_date_col: day
        features:
          - name: amount
            ratio: [{numerator: [1, 7d], denominator: [8, 30], aggs: [sum]}]
            since: [{condition: "shop = 'a'", aggs: [count, sum]}]
        """)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert colnames(p, "aggregation.agg") == [
        "cust", "application_date", "amount_sum_ratio_1d_8d", "amount_sum_ratio_1d_30d",
        "amount_sum_ratio_7d_8d", "amount_sum_ratio_7d_30d", "amount_count_if", "amount_sum_if"]
    D = date(2024, 1, 12)
    assert table(p, "aggregation.agg") == [
        (1, D, 40 / 90, 0.4, 70 / 90, 0.7, 3, 80),
        (2, D, None, None, 1.0, 1.0, 1, 5),
        (3, D, None, None, None, None, 1, 8)]


def test_ratio_and_since_config_errors_are_parse_errors(tmp_path):
    p = small_project(tmp_path, """\
        kind: aggregation
        name: agg
        inputs: [{ref: source.tx}]
        id_col: cust
        feature_date_col: day
        features:
          - name: amount
            ratio: [{numerator: [1], aggs: [median]}]
            since: [{aggs: [max]}]
        """)
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert ("nodes/agg.yml:8: aggregation.agg: features[0].ratio[0].denominator is missing: "
            "give its window(s) in days, e.g. [7]") in res.stderr
    assert ("unknown aggregation 'median' in features[0].ratio[0].aggs (did you mean 'mean'?)") in res.stderr
    assert "nodes/agg.yml:9: aggregation.agg: features[0].since[0].condition is missing" in res.stderr
    assert ("nodes/agg.yml:9: aggregation.agg: unknown aggregation 'max' in features[0].since[0].aggs: "
            "use one of count, sum") in res.stderr


# ---- the sample project ----------------------------------------------------------------------

def test_sample_project_order_aggregation(sample):
    res = cli("run", "-p", str(sample))
    assert res.exit_code == 0, res.output
    # every order of the sample falls in 2024-03-01..2024-03-14, so the 30-day window holds a
    # customer's whole history and the 7-day window never more than it
    assert query(sample, """
        SELECT count(*),
               count(*) FILTER (WHERE amount_sum_30d = amount_sum AND amount_count_30d = amount_count),
               count(*) FILTER (WHERE amount_count_7d <= amount_count),
               count(DISTINCT application_date)
        FROM aggregation.customer_order_amounts""") == [(9, 9, 9, 1)]
    assert query(sample, "SELECT count(*) FROM aggregation.customer_order_amounts a "
                         "JOIN transform.customer_orders c USING (customer_id) "
                         "WHERE a.amount_count <> c.completed_orders OR a.amount_sum <> c.total_spent") == [(0,)]
    res = cli("run", "-p", str(sample))
    assert "Nothing to do" in res.stdout
