"""Issue 4: kind `profile`.

Real projects in tmp_path, the real CLI, a real DuckDB file: the long-format stats table
"profile"."<name>" is compared with rows worked out by hand from the CSV written here.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from conftest import cli, query, ran, run_results, write_project
from engine_matrix import assert_same_profile

pytestmark = pytest.mark.usefixtures("kind_engine")  # DuckDB, then Spark (tests/engine_matrix.py)

# id BIGINT, city VARCHAR, amount DOUBLE, day DATE (read_csv detects the types)
DATA = "id,city,amount,day\n1,Oslo,10.5,2024-01-02\n2,Rome,,2024-01-01\n3,Oslo,4.5,\n4,,4.5,2024-01-03\n"

SOURCE = "kind: source\nname: t\nsource: csv\ntable: data/t.csv\n"


def stats(project: Path, name: str) -> list[tuple]:
    """The profile's rows in the order they were written."""
    return query(project, f'SELECT * FROM "profile"."{name}"')


def test_profile_contents_by_hand(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": DATA,
        "nodes/t.yml": SOURCE,
        "nodes/p.yml": "kind: profile\nname: p\ninputs:\n  - ref: source.t\n",
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert query(project, "SELECT column_name, data_type FROM information_schema.columns WHERE "
                          "table_schema = 'profile' AND table_name = 'p' ORDER BY ordinal_position") == [
        ("column_name", "VARCHAR"), ("metric", "VARCHAR"), ("value", "VARCHAR"), ("detail", "VARCHAR")]
    rows = stats(project, "p")
    # Seeknal's layout (checked against Seeknal 2.13 in test_seeknal_compat_expprof.py): numbers as
    # DuckDB prints them; seekrun's extras (text min/max, top_value rows, profiled_at) after them.
    stamp = rows.pop()
    assert stamp[:2] == ("_table_", "profiled_at") and stamp[2].endswith("+00:00")
    fresh = next(r for r in rows if r[1] == "freshness_hours")
    # newest day 2024-01-03 00:00 UTC, measured at the build (profiled_at)
    built = datetime.fromisoformat(stamp[2]).timestamp()
    assert abs(float(fresh[2]) - (built - datetime(2024, 1, 3, tzinfo=timezone.utc).timestamp()) / 3600) < 0.01
    assert_same_profile(rows, [
        ("_table_", "row_count", "4", None),
        # id: 1..4 -> avg 2.5, sum 10, sample stddev sqrt(5/3); approx_quantile gives 2, 2, 4 here
        ("id", "null_count", "0", None),
        ("id", "null_percent", "0.0", None),
        ("id", "distinct_count", "4", None),
        ("id", "min", "1", None),
        ("id", "max", "4", None),
        ("id", "avg", "2.5", None),
        ("id", "sum", "10.0", None),
        ("id", "stddev", "1.2909944487358056", None),
        ("id", "p25", "2", None),
        ("id", "p50", "2", None),
        ("id", "p75", "4", None),
        ("id", "top_value", "1", "1"),
        ("id", "top_value", "2", "1"),
        ("id", "top_value", "3", "1"),
        ("id", "top_value", "4", "1"),
        # city: Oslo, Rome, Oslo, NULL -> one top_values row (JSON, percent of non-NULL rows); NULL is
        # not a top value; min/max of text are seekrun's extras
        ("city", "null_count", "1", None),
        ("city", "null_percent", "25.0", None),
        ("city", "distinct_count", "2", None),
        ("city", "top_values", None,
         '[{"value":"Oslo","count":2,"percent":66.67}, {"value":"Rome","count":1,"percent":33.33}]'),
        ("city", "min", "Oslo", None),
        ("city", "max", "Rome", None),
        ("city", "top_value", "Oslo", "2"),
        ("city", "top_value", "Rome", "1"),
        # amount: 10.5, NULL, 4.5, 4.5 -> avg 6.5, sum 19.5, sample stddev sqrt(12) = 3.4641016...
        ("amount", "null_count", "1", None),
        ("amount", "null_percent", "25.0", None),
        ("amount", "distinct_count", "2", None),
        ("amount", "min", "4.5", None),
        ("amount", "max", "10.5", None),
        ("amount", "avg", "6.5", None),
        ("amount", "sum", "19.5", None),
        ("amount", "stddev", "3.4641016151377544", None),
        ("amount", "p25", "4.5", None),
        ("amount", "p50", "4.5", None),
        ("amount", "p75", "9.0", None),
        ("amount", "top_value", "4.5", "2"),
        ("amount", "top_value", "10.5", "1"),
        # day: dates; min/max as DuckDB prints them, then freshness_hours
        ("day", "null_count", "1", None),
        ("day", "null_percent", "25.0", None),
        ("day", "distinct_count", "3", None),
        ("day", "min", "2024-01-01", None),
        ("day", "max", "2024-01-03", None),
        fresh,
        ("day", "top_value", "2024-01-01", "1"),
        ("day", "top_value", "2024-01-02", "1"),
        ("day", "top_value", "2024-01-03", "1"),
    ])
    assert run_results(project)["profile.p"]["row_count"] == 47
    # deterministic but for the clock: a forced rebuild writes the very same rows
    before = [r for r in stats(project, "p") if r[1] not in ("freshness_hours", "profiled_at")]
    assert cli("run", "-p", str(project), "--full").exit_code == 0
    assert [r for r in stats(project, "p") if r[1] not in ("freshness_hours", "profiled_at")] == before


def test_profile_columns_limit_and_order_and_max_top_values(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": DATA,
        "nodes/t.yml": SOURCE,
        "nodes/p.yml": """\
            kind: profile
            name: p
            inputs: [source.t]
            profile:
              columns: [amount, nope, city]
              params:
                max_top_values: 1
            ---
            kind: profile
            name: no_top
            inputs: [source.t]
            profile:
              columns: [city]
              params: {max_top_values: 0}
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert_same_profile(stats(project, "p"), [
        ("_table_", "row_count", "4", None),
        ("amount", "null_count", "1", None),
        ("amount", "null_percent", "25.0", None),
        ("amount", "distinct_count", "2", None),
        ("amount", "min", "4.5", None),
        ("amount", "max", "10.5", None),
        ("amount", "avg", "6.5", None),
        ("amount", "sum", "19.5", None),
        ("amount", "stddev", "3.4641016151377544", None),
        ("amount", "p25", "4.5", None),
        ("amount", "p50", "4.5", None),
        ("amount", "p75", "9.0", None),
        ("amount", "top_value", "4.5", "2"),
        ("city", "null_count", "1", None),
        ("city", "null_percent", "25.0", None),
        ("city", "distinct_count", "2", None),
        ("city", "top_values", None, '[{"value":"Oslo","count":2,"percent":66.67}]'),
        ("city", "min", "Oslo", None),
        ("city", "max", "Rome", None),
        ("city", "top_value", "Oslo", "2"),
    ])
    assert_same_profile(stats(project, "no_top"), [
        ("_table_", "row_count", "4", None),
        ("city", "null_count", "1", None),
        ("city", "null_percent", "25.0", None),
        ("city", "distinct_count", "2", None),
        ("city", "min", "Oslo", None),
        ("city", "max", "Rome", None),
    ])
    warning = "column nope is not in source.t: not profiled (columns: id, city, amount, day)"
    assert run_results(project)["profile.p"]["warnings"] == [warning]
    assert f"warning: {warning}" in res.output


def test_profile_of_an_empty_table(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": DATA,
        "nodes/t.yml": SOURCE,
        "nodes/empty.yml": "kind: transform\nname: empty\ninputs: [source.t]\n"
                           "transform: SELECT id, city FROM input_0 WHERE false\n",
        "nodes/p.yml": "kind: profile\nname: p\ninputs: [transform.empty]\n",
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert_same_profile(stats(project, "p"), [
        ("_table_", "row_count", "0", None),
        # Seeknal gives NULL null_count here; 0 is the count of NULLs in no rows
        ("id", "null_count", "0", None),
        ("id", "null_percent", "0.0", None),
        ("id", "distinct_count", "0", None),
        ("id", "min", None, None),
        ("id", "max", None, None),
        ("id", "avg", None, None),
        ("id", "sum", None, None),
        ("id", "stddev", None, None),
        ("id", "p25", None, None),
        ("id", "p50", None, None),
        ("id", "p75", None, None),
        ("city", "null_count", "0", None),
        ("city", "null_percent", "0.0", None),
        ("city", "distinct_count", "0", None),
        ("city", "top_values", None, None),
        ("city", "min", None, None),
        ("city", "max", None, None),
    ])


def test_profile_edits_rerun_the_profile_and_its_checks_only(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": DATA,
        "nodes/t.yml": SOURCE,
        "nodes/other.yml": "kind: transform\nname: other\ninputs: [source.t]\ntransform: SELECT id FROM source.t\n",
        "nodes/p.yml": """\
            kind: profile
            name: p
            description: stats
            inputs: [source.t]
            profile:
              params: {max_top_values: 2}
            """,
        "nodes/check.yml": """\
            kind: rule
            name: check
            inputs: [profile.p]
            rule:
              type: profile_check
              checks:
                - {metric: row_count, fail: "< 1"}
            """,
    })
    assert cli("run", "-p", str(project)).exit_code == 0
    path = project / "nodes/p.yml"
    path.write_text(path.read_text().replace("description: stats", "description: column statistics\ntags: [dq]"))
    res = cli("run", "-p", str(project))
    assert res.output.startswith("Nothing to do"), res.output
    path.write_text(path.read_text().replace("max_top_values: 2", "max_top_values: 3"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ran(project) == {"profile.p", "rule.check"}
    results = run_results(project)
    assert results["profile.p"]["reason"] == "config changed: profile"
    assert results["rule.check"]["reason"] == "upstream profile.p changed"
    assert query(project, "SELECT count(*) FROM profile.p WHERE column_name = 'id' AND metric = 'top_value'") == [(3,)]


def test_bad_profile_config_is_reported_with_file_and_line(tmp_path):
    project = write_project(tmp_path / "p", {
        "data/t.csv": DATA,
        "nodes/t.yml": SOURCE,
        "nodes/p.yml": """\
            kind: profile
            name: p
            inputs: [source.t]
            profile:
              colums: [id]
              params:
                max_top_values: -1
                top: 3
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert "nodes/p.yml:5: profile.p: unknown key 'colums' in profile (did you mean 'columns'?)" in res.output
    assert "nodes/p.yml:7: profile.p: max_top_values must be a whole number >= 0, not -1" in res.output
    assert "nodes/p.yml:8: profile.p: unknown profile param 'top'" in res.output
    assert not (project / "target" / "seekrun.duckdb").exists()


def test_top_values_of_columns_named_like_seekruns_aliases_keep_their_order(tmp_path):
    # columns named cnt and val: ties are still broken by value, most frequent first
    project = write_project(tmp_path / "p", {
        "data/t.csv": "cnt,val\nc,z\nb,y\nc,x\na,y\nb,w\na,z\nd,x\n",
        "nodes/t.yml": SOURCE,
        "nodes/p.yml": """\
            kind: profile
            name: p
            inputs: [source.t]
            profile:
              params: {max_top_values: 3}
            """,
    })
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    rows = stats(project, "p")
    tops = [(r[0], r[2], r[3]) for r in rows if r[1] == "top_value"]
    assert tops == [("cnt", "a", "2"), ("cnt", "b", "2"), ("cnt", "c", "2"),
                    ("val", "x", "2"), ("val", "y", "2"), ("val", "z", "2")]
    details = {r[0]: r[3] for r in rows if r[1] == "top_values"}
    assert details == {
        "cnt": '[{"value":"a","count":2,"percent":28.57}, {"value":"b","count":2,"percent":28.57}, '
               '{"value":"c","count":2,"percent":28.57}]',
        "val": '[{"value":"x","count":2,"percent":28.57}, {"value":"y","count":2,"percent":28.57}, '
               '{"value":"z","count":2,"percent":28.57}]'}
