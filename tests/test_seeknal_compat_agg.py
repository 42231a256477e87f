"""Issue 11, items 3, 4, 5, 6a and 6c: Seeknal's aggregation nodes, in Seeknal's own syntax.

The project is tests/seeknal_compat (marker, seeknal/agg/ and data/agg_tx.csv), copied to
tmp_path and built with the real CLI.

Where the expected rows come from: Seeknal 2.13 run on a copy of the same files
(``cp -r seeknal_project.yml seeknal data /tmp/sk_compat; cd /tmp/sk_compat;
seeknal run --continue-on-error``, with a two-line ``uv`` stand-in on PATH that runs
``uv run X`` as ``/tmp/skvenv/bin/python X`` because Seeknal runs Python nodes through uv),
then each ``target/<kind>/<name>/result.parquet`` read back with DuckDB.  Seeknal writes
those through pandas, so its dates are TIMESTAMP and its integer sums DOUBLE; seekrun keeps
DuckDB's types (DATE, HUGEINT), and the values are equal.

Where Seeknal 2.13 itself fails or drops columns, the rows are worked out by hand from
data/agg_tx.csv, and the test says so:

- rolling windows: Seeknal 2.13 ignores ``functions:`` (it reads only ``aggs:``), so its
  documented form ``{window: 7d, functions: [...]}`` silently gives no rolling column; its
  ``{window: [7], aggs: [...]}`` form fails (a window function inside its GROUP BY: "column
  amount must appear in the GROUP BY clause").  seekrun builds them, named as Seeknal's
  code names them (``<name>_<agg>_<N>d``);
- aggregation ratio: fails in Seeknal 2.13 the same way;
- a second_order_aggregation whose source is a feature_group: Seeknal 2.13 looks only for
  an aggregation's or a transform's output ("Source aggregation 'feature_group.x' not found").

The input rows (data/agg_tx.csv; application date 2024-01-12 for every row):

    customer  region  day         amount  refund
    1         north   2024-01-01  10      0
    1         north   2024-01-05  20      1
    1         north   2024-01-10  30      0
    1         north   2024-01-10  5       0
    1         north   2024-01-12  40      0
    2         south   2024-01-06  5       0
    2         south   2024-01-11  7       1
    3         north   2024-01-02  8       0
    3         north   2024-01-12  NULL    0
    4         south   2023-12-01  50      0
    4         south   2024-01-09  12      0
"""
from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from conftest import cli, query, ran, reasons, run_results, table, target_snapshot

COMPAT = Path(__file__).parent / "seeknal_compat"
APP = date(2024, 1, 12)


def d(month_day: str) -> date:
    m, dd = month_day.split("-")
    return date(2023 if m == "12" else 2024, int(m), int(dd))


def copy_project(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(COMPAT / "seeknal_project.yml", dest / "seeknal_project.yml")
    shutil.copytree(COMPAT / "seeknal" / "agg", dest / "seeknal" / "agg")
    (dest / "data").mkdir()
    for f in (COMPAT / "data").glob("agg_*"):
        shutil.copy(f, dest / "data" / f.name)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    p = copy_project(tmp_path_factory.mktemp("compat") / "proj")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    return p


def columns(p: Path, node_id: str) -> list[str]:
    kind, name = node_id.split(".")
    return [r[0] for r in query(p, f'DESCRIBE "{kind}"."{name}"')]


# ---- item 3: Seeknal's documented rolling form -----------------------------------------------

def test_documented_rolling_form_builds_its_windows(built):
    assert columns(built, "aggregation.agg_customer_rolling") == [
        "customer_id", "app_date", "spend_sum", "spend_count", "spend_avg",
        "spend_sum_7d", "spend_avg_7d", "spend_sum_30d", "spend_count_30d"]
    # The first three feature columns are Seeknal 2.13's rows; Seeknal gives no rolling columns
    # (functions: ignored), so these are by hand: 7d = 2024-01-06..12, 30d = 2023-12-14..2024-01-12.
    assert table(built, "aggregation.agg_customer_rolling") == [
        (1, APP, 105, 5, 21.0, 75, 25.0, 105, 5),
        (2, APP, 12, 2, 6.0, 12, 6.0, 12, 2),
        (3, APP, 8, 1, 8.0, None, None, 8, 1),   # the 01-12 amount is NULL
        (4, APP, 62, 2, 31.0, 12, 12.0, 12, 1),  # 2023-12-01 is outside 30 days
    ]


def test_window_7d_is_window_7_and_functions_is_aggs(tmp_path):
    p = copy_project(tmp_path / "p")
    node = p / "seeknal" / "agg" / "agg_customer_rolling.yml"
    text = node.read_text()
    node.write_text(text.replace("window: 7d\n        functions:", "window: [7]\n        aggs:"))
    assert cli("run", "-p", str(p)).exit_code == 0
    first = query(p, "SELECT * FROM aggregation.agg_customer_rolling ORDER BY ALL")
    node.write_text(text)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert query(p, "SELECT * FROM aggregation.agg_customer_rolling ORDER BY ALL") == first


@pytest.mark.parametrize("old, new, message", [
    ("window: 7d\n", "window: 7w\n",
     "features[0].rolling[0].window: '7w' is not a number of days (a whole number >= 1, or e.g. 7d)"),
    ("functions: [sum, avg]", "functions: [sum, avg]\n        aggs: [sum]",
     "features[0].rolling[0] has both functions and aggs: keep one (they mean the same)"),
    ("functions: [sum, avg]", "functions: [sum, median]",
     "unknown aggregation 'median' in features[0].rolling[0].functions (did you mean 'mean'?)"),
])
def test_bad_rolling_config_is_a_parse_error_on_its_line(tmp_path, old, new, message):
    p = copy_project(tmp_path / "p")
    node = p / "seeknal" / "agg" / "agg_customer_rolling.yml"
    node.write_text(node.read_text().replace(old, new))
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "seeknal/agg/agg_customer_rolling.yml:" in res.stderr
    assert f"aggregation.agg_customer_rolling: {message}" in res.stderr
    assert "Traceback" not in res.output


# ---- item 6c: since and ratio ----------------------------------------------------------------

def test_since_matches_seeknal(built):
    assert columns(built, "aggregation.agg_customer_since") == [
        "customer_id", "app_date", "refunds_count_if", "refunds_sum_if", "spend_sum"]
    # Seeknal 2.13's rows (refunds_sum_if is 0, not NULL, when no row meets the condition)
    assert table(built, "aggregation.agg_customer_since") == [
        (1, APP, 1, 20, 105), (2, APP, 1, 7, 12), (3, APP, 0, 0, 8), (4, APP, 0, 0, 62)]


def test_ratio_is_built(built):
    assert columns(built, "aggregation.agg_customer_ratio") == ["customer_id", "app_date", "spend_sum_ratio_7d_30d"]
    # By hand (Seeknal 2.13 fails on this node): 7-day sum / 30-day sum
    assert table(built, "aggregation.agg_customer_ratio") == [
        (1, APP, 75 / 105), (2, APP, 1.0), (3, APP, None), (4, APP, 1.0)]


# ---- item 5: application_date_col = feature_date_col -----------------------------------------

def test_daily_aggregation_matches_seeknal(built):
    assert columns(built, "aggregation.agg_customer_daily") == [
        "customer_id", "tx_date", "region", "spend_sum", "spend_count", "spend_max"]
    assert table(built, "aggregation.agg_customer_daily") == sorted([  # Seeknal 2.13's rows
        (1, d("01-01"), "north", 10, 1, 10), (1, d("01-05"), "north", 20, 1, 20),
        (1, d("01-10"), "north", 35, 2, 30), (1, d("01-12"), "north", 40, 1, 40),
        (2, d("01-06"), "south", 5, 1, 5), (2, d("01-11"), "south", 7, 1, 7),
        (3, d("01-02"), "north", 8, 1, 8), (3, d("01-12"), "north", None, 0, None),
        (4, d("12-01"), "south", 50, 1, 50), (4, d("01-09"), "south", 12, 1, 12)], key=repr)


def test_daily_aggregation_windows_trail_each_day(built):
    # spend_sum is Seeknal 2.13's (that day's rows); the 7-day columns by hand (Seeknal drops
    # them): the customer's rows in the 7 days up to that day.
    assert table(built, "aggregation.agg_customer_daily_rolling") == sorted([
        (1, d("01-01"), 10, 10, 1), (1, d("01-05"), 20, 30, 2), (1, d("01-10"), 35, 55, 3),
        (1, d("01-12"), 40, 75, 3), (2, d("01-06"), 5, 5, 1), (2, d("01-11"), 7, 12, 2),
        (3, d("01-02"), 8, 8, 1), (3, d("01-12"), None, None, 0),
        (4, d("12-01"), 50, 50, 1), (4, d("01-09"), 12, 12, 1)], key=repr)


# ---- item 4: a feature_group with no transform -----------------------------------------------

CUSTOMER_DAY = sorted([  # Seeknal 2.13's feature group rows (its first input as it is)
    (1, "north", d("01-01"), 10.0, 1, APP), (1, "north", d("01-05"), 20.0, 1, APP),
    (1, "north", d("01-10"), 35.0, 2, APP), (1, "north", d("01-12"), 40.0, 1, APP),
    (2, "south", d("01-06"), 5.0, 1, APP), (2, "south", d("01-11"), 7.0, 1, APP),
    (3, "north", d("01-02"), 8.0, 1, APP), (3, "north", d("01-12"), None, 1, APP),
    (4, "south", d("12-01"), 50.0, 1, APP), (4, "south", d("01-09"), 12.0, 1, APP)], key=repr)


def test_feature_group_without_transform_is_its_first_input(built):
    assert columns(built, "feature_group.agg_customer_day_fg") == [
        "customer_id", "region", "tx_date", "spend_sum", "tx_count", "app_date"]
    assert table(built, "feature_group.agg_customer_day_fg") == CUSTOMER_DAY


# ---- item 6a: second_order_aggregation -------------------------------------------------------

def test_second_order_aggregation_matches_seeknal(built):
    # Seeknal 2.13 also outputs a copy 'spend_sum_SUM_1' (the window feature's plain sum,
    # renamed by pandas as a duplicate); seekrun outputs that column once.
    assert columns(built, "second_order_aggregation.agg_region_metrics") == [
        "region", "customer_id_COUNT", "spend_sum_SUM", "spend_sum_MEAN", "spend_sum_MAX",
        "spend_sum_SUM_0_6", "spend_sum_SUM0_6_SUM7_30", "SINCE_COUNT_spend_sum_GEO_D"]
    assert table(built, "second_order_aggregation.agg_region_metrics") == [
        ("north", 6, 113.0, 22.6, 40.0, 75.0, 75 / 38, 3),
        ("south", 4, 74.0, 18.5, 50.0, 24.0, None, 1)]


def test_second_order_aggregation_from_a_feature_group(built):
    # Seeknal 2.13 cannot read a feature_group source; these are the rows its Python
    # @second_order_aggregation gave for the same features over the same rows.
    assert columns(built, "second_order_aggregation.agg_region_from_fg") == [
        "region", "spend_sum_SUM", "spend_sum_MEAN", "tx_count_SUM", "tx_count_SUM_0_6"]
    assert table(built, "second_order_aggregation.agg_region_from_fg") == [
        ("north", 113.0, 22.6, 7, 4), ("south", 74.0, 18.5, 4, 3)]


def test_python_second_order_aggregation_matches_seeknal(built):
    import seekrun.pipeline

    if not hasattr(seekrun.pipeline, "second_order_aggregation"):
        pytest.skip("the @second_order_aggregation decorator object and 'from seeknal.pipeline import' "
                    "come with the Python pipelines item (1)")
    assert table(built, "second_order_aggregation.agg_region_metrics_py") == [  # Seeknal 2.13's rows
        ("north", 113.0, 22.6, 7, 4), ("south", 74.0, 18.5, 4, 3)]


def test_generated_sql_is_in_the_manifest_and_shown(built):
    manifest = json.loads((built / "target" / "manifest.json").read_text())
    node = manifest["nodes"]["second_order_aggregation.agg_region_metrics"]
    sql = node["generated_sql"]
    assert 'FROM "transform"."agg_customer_day"' in sql
    assert "date_diff('day', CAST(\"tx_date\" AS DATE), CAST(\"app_date\" AS DATE))" in sql
    assert node["hashes"]["fields"]["generated_sql"]
    res = cli("show", "second_order_aggregation.agg_region_metrics", "-p", str(built))
    assert res.exit_code == 0, res.output
    assert 'AS "spend_sum_SUM0_6_SUM7_30"' in res.stdout


def test_edits_rerun_exactly_what_they_change(tmp_path):
    p = copy_project(tmp_path / "p")
    assert cli("run", "-p", str(p)).exit_code == 0
    node = p / "seeknal" / "agg" / "agg_region_metrics.yml"
    text = node.read_text()
    node.write_text(text.replace("kind: second_order_aggregation\n",
                                 "kind: second_order_aggregation\ndescription: regions, for reports\n"))
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == set()
    node.write_text(text.replace("basic: [sum, mean, max]", "basic: [sum, mean, min]"))
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert reasons(p) == {"second_order_aggregation.agg_region_metrics": "config changed: features"}
    assert "spend_sum_MIN" in columns(p, "second_order_aggregation.agg_region_metrics")
    assert query(p, 'SELECT region, "spend_sum_MIN" FROM second_order_aggregation.agg_region_metrics '
                    "ORDER BY region") == [("north", 8.0), ("south", 5.0)]


SOA = """\
kind: second_order_aggregation
name: agg_region_metrics
id_col: region
feature_date_col: tx_date
application_date_col: app_date
source: transform.agg_customer_day
features:
  spend_sum:
    basic: [sum]
"""


@pytest.mark.parametrize("old, new, line, message", [
    ("    basic: [sum]\n", "    basic: [sum, median]\n", 9,
     "unknown aggregation 'median' in feature 'spend_sum'.basic (did you mean 'mean'?)"),
    ("    basic: [sum]\n", "    basic: [sum]\n    window: [6, 0]\n", 10,
     "feature 'spend_sum': window must be [lower, upper], whole numbers of days before the application "
     "date (0 = that day), lower <= upper, e.g. [0, 6]"),
    ("    basic: [sum]\n", "    window: [0, 6]\n", 9,
     "feature 'spend_sum': window needs the aggregations to apply: add 'basic: [sum]'"),
    ("source: transform.agg_customer_day\n", "source: transform.agg_customer_day\ninputs: [source.agg_tx]\n", 6,
     "source 'transform.agg_customer_day' is not among the inputs (source.agg_tx)"),
    ("source: transform.agg_customer_day\n", "source: transform.agg_customer_dy\n", 6,
     "ref 'transform.agg_customer_dy' does not exist (did you mean 'transform.agg_customer_day'?)"),
    ("    basic: [sum]\n", "    basic: [sum]\n    percentile: [50]\n", 10,
     "unknown key 'percentile' in feature 'spend_sum': use basic, window, ratio, since, source_feature, "
     "description"),
    ("    basic: [sum]\n", "    basic: [sum]\n  other:\n    since: {condition: 'tx_count > 1', aggs: [sum]}\n"
     "    source_feature: spend_sum\n  third:\n    since: {condition: 'tx_count > 2', aggs: [sum]}\n"
     "    source_feature: spend_sum\n", 14,
     "output column 'SINCE_SUM_spend_sum_GEO_D' is produced twice, differently (also by features.other.since)"),
])
def test_bad_second_order_config_is_a_parse_error(tmp_path, old, new, line, message):
    p = copy_project(tmp_path / "p")
    node = p / "seeknal" / "agg" / "agg_region_metrics.yml"
    node.write_text(SOA.replace(old, new))
    before = target_snapshot(p)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert (f"seeknal/agg/agg_region_metrics.yml:{line}: second_order_aggregation.agg_region_metrics: "
            f"{message}") in res.stderr
    assert "Traceback" not in res.output
    assert target_snapshot(p) == before


def test_missing_source_feature_fails_the_node_with_the_columns(tmp_path):
    p = copy_project(tmp_path / "p")
    node = p / "seeknal" / "agg" / "agg_region_metrics.yml"
    node.write_text(SOA.replace("    basic: [sum]\n", "    basic: [sum]\n    source_feature: spend\n"))
    res = cli("run", "-p", str(p))
    assert res.exit_code == 1, res.output
    assert run_results(p)["second_order_aggregation.agg_region_metrics"]["error"] == (
        "second_order_aggregation.agg_region_metrics: 'spend' (feature 'spend_sum') not found in "
        "transform.agg_customer_day (columns: customer_id, region, tx_date, spend_sum, tx_count, app_date)")


def test_without_application_date_col_the_latest_feature_date_is_used(tmp_path):
    """Seeknal 2.13 fails without application_date_col (it quotes None); seekrun measures the
    days from the latest feature date in the input, as its aggregation kind does."""
    p = copy_project(tmp_path / "p")
    node = p / "seeknal" / "agg" / "agg_region_metrics.yml"
    node.write_text(SOA.replace("application_date_col: app_date\n", "")
                    .replace("    basic: [sum]\n", "    basic: [sum]\n    window: [0, 2]\n"))
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    # the latest day is 2024-01-12: north 01-10 + 01-12 (35 + 40 + NULL), south 01-11 (7)
    assert table(p, "second_order_aggregation.agg_region_metrics") == [
        ("north", 113.0, 75.0), ("south", 74.0, 7.0)]


def test_decorated_second_order_aggregation_aggregates_the_functions_result(tmp_path):
    """@second_order_aggregation from seekrun.pipeline, with the same features as
    seeknal/agg/region_metrics.py: the SQL is generated at parse time over the function's result."""
    p = copy_project(tmp_path / "p")
    py = p / "seeknal" / "agg" / "region_metrics.py"
    py.write_text(py.read_text().replace("from seeknal.pipeline import", "from seekrun.pipeline import")
                  .replace('    application_date_col="app_date",\n',
                           '    application_date_col="app_date",\n    inputs=["transform.agg_customer_day"],\n'))
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 0, res.output
    node = json.loads((p / "target" / "manifest.json").read_text())["nodes"][
        "second_order_aggregation.agg_region_metrics_py"]
    assert node["python"] == "seeknal/agg/region_metrics.py:agg_region_metrics_py"
    assert 'FROM "second_order_aggregation"."__seekrun_staging_agg_region_metrics_py"' in node["generated_sql"]
    assert 'sum("tx_count") FILTER (WHERE "__seekrun_days_between" BETWEEN 0 AND 6) AS "tx_count_SUM_0_6"' in (
        node["generated_sql"])
    import seekrun.pipeline

    if not hasattr(seekrun.pipeline, "second_order_aggregation"):
        pytest.skip("running it needs the decorator object in seekrun.pipeline (the Python pipelines item)")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert table(p, "second_order_aggregation.agg_region_metrics_py") == [  # Seeknal 2.13's rows
        ("north", 113.0, 22.6, 7, 4), ("south", 74.0, 18.5, 4, 3)]
    assert query(p, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__seekrun_staging%'") == [(0,)]


@pytest.mark.parametrize("node, old, new, message", [
    ("agg_customer_since", '"is_refund == 1"', '"is_refund = = 1"',
     "aggregation.agg_customer_since: features[0].since[0].condition: SQL does not parse: "
     'syntax error at or near "="'),
    ("agg_customer_since", '"is_refund == 1"', '"customer_id IN (SELECT customer_id FROM source.agg_tx)"',
     "aggregation.agg_customer_since: SQL uses 'source.agg_tx' but it is not declared in inputs"),
    ("agg_region_metrics", '"spend_sum >= 20"', '"spend_sum >= = 20"',
     "second_order_aggregation.agg_region_metrics: feature 'big_days'.since.condition: SQL does not parse"),
])
def test_since_conditions_are_checked_at_parse(tmp_path, node, old, new, message):
    p = copy_project(tmp_path / "p")
    path = p / "seeknal" / "agg" / f"{node}.yml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    line = 1 + text[:text.index(old)].count("\n")
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert f"seeknal/agg/{node}.yml:{line}: {message}" in res.stderr
    assert "Traceback" not in res.output
