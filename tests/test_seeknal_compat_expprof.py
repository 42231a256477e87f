"""Issue 11, compatibility items 9 (exposures) and 10 (profiles in Seeknal's layout).

The nodes are tests/seeknal_compat/seeknal/expprof/ (Seeknal's own syntax) over
tests/seeknal_compat/data/expprof_*.csv, copied into tmp_path and built with the real CLI.

The SEEKNAL_* rows below are what Seeknal 2.13 (/tmp/skvenv, DuckDB 2.0.1) gave on the same
files: the project was copied to /tmp/skexp and built with `seeknal run`; the profile rows are
target/intermediate/profile_expprof_sales_stats.parquet, the feature group rows
target/intermediate/feature_group_<name>.parquet, the exposures target/expprof_out/.
Where seekrun differs on purpose it says so next to the rows.
"""
from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from conftest import cli, query, ran, run_results

COMPAT = Path(__file__).parent / "seeknal_compat"
AREA = "expprof"

# Seeknal 2.13's profile of data/expprof_sales.csv, in its order. Its freshness_hours are
# hours from max to the time of its run (recomputed below for ours); its ties inside
# top_values come in no particular order ("dave" before "carol" there; seekrun orders ties by value).
SEEKNAL_PROFILE = [
    ("_table_", "row_count", "8", None),
    ("order_id", "null_count", "0", None), ("order_id", "null_percent", "0.0", None),
    ("order_id", "distinct_count", "8", None), ("order_id", "min", "1", None), ("order_id", "max", "8", None),
    ("order_id", "avg", "4.5", None), ("order_id", "sum", "36.0", None),
    ("order_id", "stddev", "2.449489742783178", None), ("order_id", "p25", "2", None),
    ("order_id", "p50", "4", None), ("order_id", "p75", "6", None),
    ("region", "null_count", "0", None), ("region", "null_percent", "0.0", None),
    ("region", "distinct_count", "4", None),
    ("region", "top_values", None, '[{"value":"north","count":4,"percent":50.0}, {"value":"south","count":2,'
                                   '"percent":25.0}, {"value":"east","count":1,"percent":12.5}, {"value":"west",'
                                   '"count":1,"percent":12.5}]'),
    ("amount", "null_count", "1", None), ("amount", "null_percent", "12.5", None),
    ("amount", "distinct_count", "7", None), ("amount", "min", "3.5", None), ("amount", "max", "99.99", None),
    ("amount", "avg", "24.141428571428573", None), ("amount", "sum", "168.99", None),
    ("amount", "stddev", "33.862381009300684", None), ("amount", "p25", "8.4375", None),
    ("amount", "p50", "12.0", None), ("amount", "p75", "18.9375", None),
    ("qty", "null_count", "1", None), ("qty", "null_percent", "12.5", None), ("qty", "distinct_count", "6", None),
    ("qty", "min", "1", None), ("qty", "max", "10", None), ("qty", "avg", "3.857142857142857", None),
    ("qty", "sum", "27.0", None), ("qty", "stddev", "3.0237157840738176", None), ("qty", "p25", "2", None),
    ("qty", "p50", "3", None), ("qty", "p75", "5", None),
    ("order_date", "null_count", "0", None), ("order_date", "null_percent", "0.0", None),
    ("order_date", "distinct_count", "4", None), ("order_date", "min", "2024-01-01", None),
    ("order_date", "max", "2024-01-04", None), ("order_date", "freshness_hours", "<now>", None),
    ("updated_at", "null_count", "1", None), ("updated_at", "null_percent", "12.5", None),
    ("updated_at", "distinct_count", "7", None), ("updated_at", "min", "2024-01-01 08:00:00", None),
    ("updated_at", "max", "2024-01-04 14:00:00", None), ("updated_at", "freshness_hours", "<now>", None),
    ("paid", "null_count", "1", None), ("paid", "null_percent", "12.5", None), ("paid", "distinct_count", "2", None),
    ("paid", "top_values", None, '[{"value":"true","count":5,"percent":71.43}, {"value":"false","count":2,'
                                 '"percent":28.57}]'),
    ("customer", "null_count", "1", None), ("customer", "null_percent", "12.5", None),
    ("customer", "distinct_count", "4", None),
    ("customer", "top_values", None, '[{"value":"alice","count":3,"percent":42.86}, {"value":"bob","count":2,'
                                     '"percent":28.57}, {"value":"dave","count":1,"percent":14.29}, '
                                     '{"value":"carol","count":1,"percent":14.29}]'),
]
# Seeknal's profile_check log for rule.expprof_sales_profile_checks: every check passed.
SEEKNAL_CHECKS = ["_table_.row_count = 8.0", "amount.p50 = 12.0", "amount.sum = 168.99", "qty.p75 = 5.0",
                  "region.null_percent = 0.0"]
# data/expprof_sales.csv as Seeknal wrote it (its partitioned exposure and the first of its two
# inputs): through pandas, so qty (with a NULL) is a float and order_date a timestamp there; the
# values are the same.
SALES = [
    (1, "north", 10.5, 2, date(2024, 1, 1), datetime(2024, 1, 1, 8, 0), True, "alice"),
    (2, "south", 20.25, 1, date(2024, 1, 1), datetime(2024, 1, 1, 9, 30), False, "bob"),
    (3, "north", None, 5, date(2024, 1, 2), datetime(2024, 1, 2, 10, 0), True, None),
    (4, "east", 7.75, 3, date(2024, 1, 2), datetime(2024, 1, 2, 11, 15), True, "carol"),
    (5, "north", 12.0, 4, date(2024, 1, 3), datetime(2024, 1, 3, 12, 0), False, "alice"),
    (6, "south", 3.5, None, date(2024, 1, 3), datetime(2024, 1, 3, 13, 45), True, "dave"),
    (7, "west", 99.99, 10, date(2024, 1, 4), datetime(2024, 1, 4, 14, 0), None, "bob"),
    (8, "north", 15.0, 2, date(2024, 1, 4), None, True, "alice"),
]
# Seeknal's feature_group rows (its order_date a pandas timestamp at midnight; ours the DATE the SQL casts to).
SEEKNAL_CUSTOMER_ORDERS = [
    ("alice", date(2024, 1, 1), 1, 10.5), ("alice", date(2024, 1, 3), 1, 12.0), ("alice", date(2024, 1, 4), 1, 15.0),
    ("bob", date(2024, 1, 1), 1, 20.25), ("bob", date(2024, 1, 4), 1, 99.99), ("carol", date(2024, 1, 2), 1, 7.75),
    ("dave", date(2024, 1, 3), 1, 3.5)]
SEEKNAL_REGION_ORDERS = [
    ("east", date(2024, 1, 2), 1, 3), ("north", date(2024, 1, 1), 1, 2), ("north", date(2024, 1, 2), 1, 5),
    ("north", date(2024, 1, 3), 1, 4), ("north", date(2024, 1, 4), 1, 2), ("south", date(2024, 1, 1), 1, 1),
    ("south", date(2024, 1, 3), 1, None), ("west", date(2024, 1, 4), 1, 10)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "compat"
    (root / "seeknal").mkdir(parents=True)
    shutil.copy(COMPAT / "seeknal_project.yml", root / "seeknal_project.yml")
    shutil.copytree(COMPAT / "seeknal" / AREA, root / "seeknal" / AREA)
    (root / "data").mkdir()
    for f in (COMPAT / "data").glob(f"{AREA}_*"):
        shutil.copy(f, root / "data" / f.name)
    return root


def build(project: Path) -> None:
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output


def profile(project: Path) -> list[tuple]:
    return query(project, "SELECT * FROM profile.expprof_sales_stats")


def _ties_sorted(detail: str | None):
    """top_values with ties ordered by value (Seeknal leaves their order open)."""
    if detail is None:
        return None
    items = json.loads(detail)
    return sorted(items, key=lambda d: (-d["count"], d["value"]))


def test_profile_has_seeknal_rows_with_seeknal_values_then_extras(project: Path):
    build(project)
    rows = profile(project)
    by_key = {(c, m): (v, d) for c, m, v, d in rows}
    profiled_at = datetime.fromisoformat(by_key[("_table_", "profiled_at")][0]).timestamp()
    for col, metric, value, detail in SEEKNAL_PROFILE:
        assert (col, metric) in by_key, (col, metric)
        ours, our_detail = by_key[(col, metric)]
        if metric == "freshness_hours":  # hours from max (read as UTC) to the build
            newest = datetime.fromisoformat(by_key[(col, "max")][0]).replace(tzinfo=timezone.utc).timestamp()
            assert abs(float(ours) - (profiled_at - newest) / 3600) < 0.01
        elif metric == "top_values":
            assert ours is None and _ties_sorted(our_detail) == _ties_sorted(detail)
            assert our_detail == detail or col == "customer"  # same text but for the tie order
        else:
            assert (ours, our_detail) == (value, detail), (col, metric)
    # the same rows in the same order; what seekrun adds is extra rows of its own metrics
    seeknal_keys = [(c, m) for c, m, _, _ in SEEKNAL_PROFILE]
    assert [(c, m) for c, m, _, _ in rows if (c, m) in set(seeknal_keys)] == seeknal_keys
    extras = [(c, m) for c, m, _, _ in rows if (c, m) not in set(seeknal_keys)]
    assert {m for _, m in extras} == {"min", "max", "top_value", "profiled_at"}
    assert {c for c, m in extras if m in ("min", "max")} == {"region", "paid", "customer"}  # text, boolean
    assert ("customer", "top_value", "alice", "3") in rows and ("paid", "top_value", "true", "5") in rows


def test_profile_checks_written_for_seeknal_pass_as_in_seeknal(project: Path):
    build(project)
    rows = query(project, 'SELECT "check", "column", status, message FROM rule.expprof_sales_profile_checks')
    assert [r[2] for r in rows] == ["pass"] * len(SEEKNAL_CHECKS)
    assert [r[3].split(" (")[0] for r in rows] == [
        "row_count = 8", "p50 of amount = 12.0", "sum of amount = 168.99", "p75 of qty = 5", "null_percent of region = 0.0"]


FRESHNESS_RULE = """\
kind: rule
name: expprof_fresh
inputs:
  - ref: profile.expprof_sales_stats
rule:
  type: profile_check
  checks:
    - column: updated_at
      metric: freshness_hours
      fail: "> 200000"
"""


def test_freshness_hours_check_is_measured_against_now_and_rechecked_as_time_passes(project: Path):
    (project / "seeknal" / AREA / "fresh.yml").write_text(FRESHNESS_RULE)
    build(project)
    assert query(project, "SELECT status FROM rule.expprof_fresh") == [("pass",)]
    # the profile says it was built 20 years ago: measured now, the data is 20 years older
    import duckdb

    con = duckdb.connect(str(project / "target" / "seekrun.duckdb"))
    con.execute("UPDATE profile.expprof_sales_stats SET value = '2006-01-01T00:00:00+00:00' "
                "WHERE metric = 'profiled_at'")
    con.close()
    res = cli("run", "-p", str(project), "--full", "--nodes", "rule.expprof_fresh")
    assert res.exit_code == 1, res.output
    (status, message), = query(project, "SELECT status, message FROM rule.expprof_fresh")
    assert status == "fail" and "(measured now)" in message and "'> 200000'" in message
    # the rule (and not the profile) is re-checked as time passes: the clock is among its hashed fields
    nodes = json.loads((project / "target" / "manifest.json").read_text())["nodes"]
    assert "clock" in nodes["rule.expprof_fresh"]["hashes"]["fields"]
    assert "clock" not in nodes["profile.expprof_sales_stats"]["hashes"]["fields"]


def test_a_second_run_rebuilds_nothing_and_a_profile_check_on_top_values_is_refused(project: Path):
    build(project)
    res = cli("run", "-p", str(project))
    assert res.output.startswith("Nothing to do"), res.output
    node = project / "seeknal" / AREA / "profile_rules.yml"
    node.write_text(node.read_text().replace("metric: null_percent", "metric: top_values"))
    res = cli("parse", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert ("profile_rules.yml:20: rule.expprof_sales_profile_checks: metric 'top_values' is a JSON list, "
            "not a number (thresholds compare numbers)") in res.output


def test_two_inputs_write_one_file_each_named_after_the_input(project: Path):
    build(project)
    out = project / "target" / "expprof_out"
    # Seeknal 2.13 writes export.csv with the first input only, silently
    assert not (out / "export.csv").exists()
    sales = query(project, f"SELECT * FROM read_csv('{out / 'export_expprof_sales.csv'}') ORDER BY order_id")
    assert sales == SALES
    customers = query(project, f"SELECT * FROM read_csv('{out / 'export_expprof_customers.csv'}') ORDER BY 1")
    assert customers == [("alice", "gold", date(2023, 5, 1)), ("bob", "silver", date(2023, 6, 15)),
                         ("carol", "gold", date(2023, 7, 20)), ("dave", "bronze", date(2023, 8, 30))]
    assert run_results(project)["exposure.expprof_two_tables"]["row_count"] == 12
    # deleting one of them reruns that exposure (and it writes both again)
    (out / "export_expprof_customers.csv").unlink()
    build(project)
    assert ran(project) == {"exposure.expprof_two_tables"}
    assert (out / "export_expprof_customers.csv").exists()


def _partition_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_partitioned_exposure_writes_hive_folders_and_notices_a_partition_file_change(project: Path):
    build(project)
    folder = project / "target" / "expprof_out" / "sales_by_region"
    assert _partition_files(folder) == [f"region={r}/data_0.parquet" for r in ("east", "north", "south", "west")]
    # Seeknal 2.13 ignores partition_by (one parquet file); read back, ours holds the same rows
    rows = query(project, f"SELECT order_id, region, amount, qty, order_date, updated_at, paid, customer FROM "
                          f"read_parquet('{folder}/*/*.parquet', hive_partitioning = true) ORDER BY order_id")
    assert rows == SALES
    # a partition file deleted by hand: output missing/changed -> only that exposure reruns
    (folder / "region=west" / "data_0.parquet").unlink()
    build(project)
    assert ran(project) == {"exposure.expprof_sales_by_region"}
    assert (folder / "region=west" / "data_0.parquet").exists()
    # a partition file edited, or one added, is noticed too
    (folder / "region=east" / "data_0.parquet").write_bytes(b"not parquet")
    build(project)
    assert ran(project) == {"exposure.expprof_sales_by_region"}
    (folder / "region=nowhere").mkdir()
    (folder / "region=nowhere" / "data_0.parquet").write_bytes(b"x")
    build(project)
    assert ran(project) == {"exposure.expprof_sales_by_region"}
    assert _partition_files(folder) == [f"region={r}/data_0.parquet" for r in ("east", "north", "south", "west")]
    assert cli("run", "-p", str(project)).output.startswith("Nothing to do")


def test_a_failed_partitioned_write_keeps_the_last_good_folder(project: Path):
    build(project)
    folder = project / "target" / "expprof_out" / "sales_by_region"
    before = {p: (folder / p).read_bytes() for p in _partition_files(folder)}
    node = project / "seeknal" / AREA / "sales_by_region.yml"
    node.write_text(node.read_text().replace("partition_by: [region]", "partition_by: [regoin]"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1, res.output
    assert "partition_by column regoin is not in the table (columns: order_id, region," in res.output
    assert {p: (folder / p).read_bytes() for p in _partition_files(folder)} == before
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".seekrun-")]


def test_offline_mapping_without_enabled_writes_the_offline_store_as_seeknal_does(project: Path):
    build(project)
    store = project / "target" / "feature_store"
    rows = query(project, f"SELECT * FROM read_parquet('{store / 'expprof_customer_orders.parquet'}') ORDER BY ALL")
    assert rows == SEEKNAL_CUSTOMER_ORDERS
    assert sorted(query(project, "SELECT * FROM feature_group.expprof_customer_orders")) == SEEKNAL_CUSTOMER_ORDERS


def test_offline_partition_by_writes_a_partitioned_feature_store_folder(project: Path):
    build(project)
    folder = project / "target" / "feature_store" / "expprof_region_orders"
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert _partition_files(folder) == [f"order_date={d}/data_0.parquet" for d in days]
    rows = query(project, f"SELECT region, CAST(order_date AS DATE), orders, qty FROM "
                          f"read_parquet('{folder}/*/*.parquet', hive_partitioning = true) ORDER BY ALL")
    assert rows == SEEKNAL_REGION_ORDERS
    # a deleted partition file reruns the feature group, which writes it again
    shutil.rmtree(folder / "order_date=2024-01-04")
    build(project)
    assert ran(project) == {"feature_group.expprof_region_orders"}
    assert _partition_files(folder) == [f"order_date={d}/data_0.parquet" for d in days]
    # partitioning turned off: the folder goes, the single parquet file comes
    node = project / "seeknal" / AREA / "feature_group_partitioned.yml"
    node.write_text(node.read_text().replace("    partition_by: [order_date]\n", ""))
    build(project)
    assert not folder.exists() and (folder.parent / "expprof_region_orders.parquet").is_file()


@pytest.mark.parametrize("edit, message", [
    ("  - ref: source.expprof_customers\n", None),
    ("partition_by: [region]", "partition_by lists region twice"),
])
def test_exposure_config_errors_are_reported_at_parse(project: Path, edit, message):
    if message is None:  # two inputs with the same name
        (project / "seeknal" / AREA / "dupe.yml").write_text(
            "kind: transform\nname: expprof_customers\ninputs: [source.expprof_customers]\n"
            "transform: SELECT * FROM source.expprof_customers\n")
        node = project / "seeknal" / AREA / "two_tables.yml"
        node.write_text(node.read_text() + "  - ref: transform.expprof_customers\n")
        message = ("inputs source.expprof_customers and transform.expprof_customers would both be written to "
                   "'target/expprof_out/export_expprof_customers.csv'")
    else:
        node = project / "seeknal" / AREA / "sales_by_region.yml"
        node.write_text(node.read_text().replace(edit, "partition_by: [region, REGION]").replace("REGION", "region"))
    res = cli("parse", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert not (project / "target" / "seekrun.duckdb").exists()


def test_offline_enabled_false_is_honoured(project: Path):
    # Seeknal 2.13's DuckDB engine writes its offline store for any offline mapping, even this one
    node = project / "seeknal" / AREA / "feature_group.yml"
    node.write_text(node.read_text().replace("    format: parquet\n", "    format: parquet\n    enabled: false\n"))
    build(project)
    store = project / "target" / "feature_store"
    assert not (store / "expprof_customer_orders.parquet").exists()
    assert sorted(query(project, "SELECT * FROM feature_group.expprof_customer_orders")) == SEEKNAL_CUSTOMER_ORDERS
