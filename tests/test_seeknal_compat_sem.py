"""Seeknal's semantic layer (issue 11, item 6b): semantic_model and metric nodes, their views
metric.<name>, and `seekrun query`.

The nodes are tests/seeknal_compat/seeknal/semantic/ in Seeknal 2.13's own syntax, the data
tests/seeknal_compat/data/sem_orders.csv.  SEEKNAL below is what Seeknal 2.13 printed for the
same files: in a copy of the project with `seeknal init`, the files moved to where Seeknal
reads them (seeknal/sources/, seeknal/transforms/, seeknal/semantic_models/orders_model.yml,
seeknal/metrics/metrics.yml), `seeknal run`, then
`seeknal query --metrics M --dimensions order_date__month --order-by order_date_month --format csv`
(and the other --dimensions noted).  Seeknal prints the month as a TIMESTAMP; seekrun's grain
column is a DATE (every grain is a day or longer).  Where Seeknal cannot compute a metric, the
test says what it does instead.
"""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import cli, query, reasons

COMPAT = Path(__file__).parent / "seeknal_compat"
M = [dt.date(2024, m, 1) for m in (1, 2, 3, 4)]

SEEKNAL = {  # metric -> values per month (Jan..Apr 2024), from `seeknal query` as above
    "total_revenue": [245.5, 335.24, 285.0, 370.75],
    "completed_revenue": [200.5, 335.24, 225.0, 370.75],
    "revenue_per_order": [81.83333333333333, 111.74666666666667, 95.0, 123.58333333333333],
    "completion_rate": [0.6666666666666666, 1.0, 0.6666666666666666, 1.0],  # inline in the semantic model
    "gross_margin": [0.42973523421588594, 0.43324185658036035, 0.42105263157894735, 0.366149696561025],
    "total_cost": [140.0, 190.0, 165.0, 235.0],
}
# Cumulative metrics: at --dimensions order_date__month Seeknal fails ("Binder Error: Referenced
# column "order_date" not found"); at --dimensions order_date it gives a running total per day:
SEEKNAL_DAILY_CUMULATIVE = [120.0, 200.5, 245.5, 445.5, 480.75, 580.74, 730.74, 790.74, 865.74, 1175.74,
                            1217.74, 1236.49]
SEEKNAL_DAILY_MTD = [120.0, 200.5, 245.5, 200.0, 235.25, 335.24, 150.0, 210.0, 285.0, 310.0, 352.0, 370.75]
DAYS = ["2024-01-03", "2024-01-15", "2024-01-28", "2024-02-02", "2024-02-10", "2024-02-21", "2024-03-05",
        "2024-03-18", "2024-03-30", "2024-04-02", "2024-04-11", "2024-04-29"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(COMPAT / "seeknal_project.yml", root)
    shutil.copytree(COMPAT / "seeknal" / "semantic", root / "seeknal" / "semantic")
    (root / "data").mkdir()
    for f in (COMPAT / "data").glob("sem_*"):
        shutil.copy(f, root / "data")
    return root


def built(project: Path) -> Path:
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    return project


def view(project: Path, name: str) -> list[tuple]:
    return query(project, f'SELECT * FROM "metric"."{name}"')


def q(project: Path, *args: str):
    return cli("query", "-p", str(project), *args)


def line_of(project: Path, rel: str, text: str) -> int:
    return next(i for i, ln in enumerate((project / rel).read_text().splitlines(), 1) if text in ln)


def test_every_metric_is_a_view_at_the_default_grain_with_seeknal_values(project):
    built(project)
    for name, values in SEEKNAL.items():
        rows = view(project, name)
        assert [r[0] for r in rows] == M, name
        assert [r[1] for r in rows] == pytest.approx(values), name
    cols = query(project, "SELECT column_name, data_type FROM duckdb_columns() WHERE schema_name = 'metric' "
                          "AND table_name = 'total_revenue' ORDER BY column_index")
    assert cols == [("order_date__month", "DATE"), ("total_revenue", "DOUBLE")]
    # cumulative: the running total at each month's end, which is Seeknal's daily running total
    # on the month's last order day
    assert [r[1] for r in view(project, "cumulative_revenue")] == pytest.approx([245.5, 580.74, 865.74, 1236.49])
    assert [r[1] for r in view(project, "revenue_mtd")] == pytest.approx(SEEKNAL["total_revenue"])
    assert [r[1] for r in view(project, "revenue_ytd")] == pytest.approx([245.5, 580.74, 865.74, 1236.49])


def test_derived_metric_with_an_offset(project):
    # Seeknal cannot compute this one: it substitutes aliases as text ('prev' holds 'rev') and
    # ignores offset; its query fails with "Scalar Function with name psum does not exist".
    built(project)
    rows = view(project, "revenue_growth")
    rev = SEEKNAL["total_revenue"]
    assert [r[0] for r in rows] == M
    assert rows[0][1] is None  # no month before January
    assert [r[1] for r in rows[1:]] == pytest.approx([(rev[i] - rev[i - 1]) / rev[i - 1] for i in (1, 2, 3)])


def test_query_prints_the_metric_by_grain_and_dimension(project):
    built(project)
    res = q(project, "--metric", "total_revenue")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["order_date__month", "total_revenue"]
    assert lines[2].split() == ["2024-01-01", "245.5"] and lines[-1] == "(4 rows)"
    # Seeknal: --dimensions region,order_date__quarter
    res = q(project, "--metric", "total_revenue", "--by", "region", "--grain", "quarter", "--json")
    assert res.exit_code == 0, res.output
    got = [(r["order_date__quarter"], r["region"], r["total_revenue"]) for r in json.loads(res.stdout)]
    assert got == [("2024-01-01", "EU", pytest.approx(425.25)), ("2024-01-01", "US", pytest.approx(440.49)),
                   ("2024-04-01", "EU", pytest.approx(42.0)), ("2024-04-01", "US", pytest.approx(328.75))]
    # Seeknal: --dimensions order_date (a day grain) for the cumulative metrics
    for metric, values in (("cumulative_revenue", SEEKNAL_DAILY_CUMULATIVE), ("revenue_mtd", SEEKNAL_DAILY_MTD)):
        res = q(project, "--metric", metric, "--grain", "day", "--json")
        rows = json.loads(res.stdout)
        assert [r["order_date__day"] for r in rows] == DAYS
        assert [r[metric] for r in rows] == pytest.approx(values)
    # a measure is a metric too, as in Seeknal (customers: count_distinct)
    res = q(project, "--metric", "customers", "--json")
    assert [r["customers"] for r in json.loads(res.stdout)] == [2, 3, 3, 3]
    # a running total per region: each region's own
    res = q(project, "--metric", "cumulative_revenue", "--by", "region", "--json")
    eu = [r["cumulative_revenue"] for r in json.loads(res.stdout) if r["region"] == "EU"]
    assert eu == pytest.approx([165.0, 200.25, 425.25, 467.25])


@pytest.mark.parametrize("args, message", [
    (["--metric", "total_revenu"], "unknown metric 'total_revenu' (did you mean 'total_revenue'?)"),
    (["--metric", "total_revenue", "--by", "regon"], "unknown dimension 'regon' for metric 'total_revenue' "
                                                     "(did you mean 'region'?)"),
    (["--metric", "total_revenue", "--grain", "mnth"], "unknown grain 'mnth' (did you mean 'month'?)"),
    (["--metric", "total_revenue", "--by", "order_date"], "use --grain"),
])
def test_query_refuses_unknown_names_in_one_line(project, args, message):
    built(project)
    res = q(project, *args)
    assert res.exit_code == 2
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Traceback" not in res.output


def test_query_before_any_run_says_to_run(project):
    res = q(project, "--metric", "total_revenue")
    assert res.exit_code == 2
    assert "run `seekrun run` first" in res.stderr
    assert not (project / "target" / "seekrun.duckdb").exists()


def test_query_reads_the_database_read_only(project):
    built(project)
    db = project / "target" / "seekrun.duckdb"
    before = db.read_bytes()
    assert q(project, "--metric", "gross_margin", "--by", "status").exit_code == 0
    assert db.read_bytes() == before


def test_bad_refs_are_parse_errors_naming_file_and_line(project):
    metrics = project / "seeknal" / "semantic" / "metrics.yml"
    model = project / "seeknal" / "semantic" / "orders_model.yml"
    metrics.write_text(metrics.read_text().replace("measure: cost_total", "measure: cost_totl")
                       .replace("  - metric: total_cost", "  - metric: total_cst"))
    model.write_text(model.read_text().replace("transform.sem_orders_clean", "transform.sem_order_clean"))
    res = cli("parse", "-p", str(project))
    assert res.exit_code == 2
    rel = "seeknal/semantic/metrics.yml"
    assert (f"{rel}:{line_of(project, rel, 'cost_totl')}: metric.total_cost: measure 'cost_totl' is not defined "
            "in any semantic model (did you mean 'cost_total'?)") in res.stderr
    assert (f"{rel}:{line_of(project, rel, 'total_cst')}: metric.gross_margin: input metric 'total_cst' is not "
            "defined (did you mean 'total_cost'?)") in res.stderr
    mrel = "seeknal/semantic/orders_model.yml"
    assert (f"{mrel}:{line_of(project, mrel, 'model: ')}: semantic_model.orders: ref 'transform.sem_order_clean' "
            "does not exist (did you mean 'transform.sem_orders_clean'?)") in res.stderr
    assert "3 errors" in res.stderr and "Traceback" not in res.output


@pytest.mark.parametrize("old, new, message", [
    ("agg: count_distinct", "agg: countdistinct", "agg 'countdistinct' (did you mean 'count_distinct'?)"),
    ("default_time_dimension: order_date", "default_time_dimension: region",
     "default_time_dimension 'region' is a categorical dimension: give it 'type: time'"),
    ("time_granularity: month", "time_granularity: monthly", "time_granularity 'monthly' (did you mean 'month'?)"),
    ("type: ratio", "type: ration", "metric type 'ration' (did you mean 'ratio'?)"),
])
def test_semantic_model_shape_errors_point_at_their_line(project, old, new, message):
    model = project / "seeknal" / "semantic" / "orders_model.yml"
    model.write_text(model.read_text().replace(old, new))
    res = cli("parse", "-p", str(project))
    assert res.exit_code == 2
    rel = "seeknal/semantic/orders_model.yml"
    assert f"{rel}:{line_of(project, rel, new)}: semantic_model.orders: " in res.stderr
    assert message in res.stderr


def test_metric_cycle_is_a_parse_error(project):
    metrics = project / "seeknal" / "semantic" / "metrics.yml"
    metrics.write_text(metrics.read_text() + "---\nkind: metric\nname: loop_a\ntype: derived\nexpr: loop_b + 1\n"
                       "inputs:\n  - metric: loop_b\n---\nkind: metric\nname: loop_b\ntype: derived\n"
                       "expr: loop_a * 2\ninputs:\n  - metric: loop_a\n")
    res = cli("parse", "-p", str(project))
    assert res.exit_code == 2
    assert "metric cycle: loop_a -> loop_b -> loop_a" in res.stderr


def test_views_rebuild_only_when_what_they_read_changes(project):
    built(project)
    assert cli("run", "-p", str(project)).stdout.startswith("Nothing to do")
    model = project / "seeknal" / "semantic" / "orders_model.yml"
    # a description is metadata: nothing reruns
    model.write_text(model.read_text().replace("description: Order amount", "description: Amount paid"))
    assert cli("run", "-p", str(project)).stdout.startswith("Nothing to do")
    # one measure's expression: the semantic model and the metrics over that measure
    model.write_text(model.read_text().replace("    expr: cost\n", "    expr: cost * 2\n"))
    built(project)
    assert set(reasons(project)) == {"semantic_model.orders", "metric.total_cost", "metric.gross_margin"}
    assert reasons(project)["metric.total_cost"].startswith("config changed: metric SQL")
    assert [r[1] for r in view(project, "total_cost")] == pytest.approx([280.0, 380.0, 330.0, 470.0])
    # the node a semantic model reads: every metric over it
    tr = project / "seeknal" / "semantic" / "transforms.yml"
    tr.write_text(tr.read_text().replace("FROM ref('source.sem_orders')", "FROM ref('source.sem_orders')\n"
                                         "  WHERE region = 'EU'"))
    built(project)
    ran = reasons(project)
    assert {n for n in ran if n.startswith("metric.")} == {f"metric.{n}" for n in (
        *SEEKNAL, "cumulative_revenue", "revenue_ytd", "revenue_mtd", "revenue_growth", "completed_revenue")}
    assert ran["metric.total_revenue"] == "upstream transform.sem_orders_clean changed"
    # the default grain: each metric's SQL
    model.write_text(model.read_text().replace("time_granularity: month", "time_granularity: quarter"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2
    assert (f"seeknal/semantic/metrics.yml:{line_of(project, 'seeknal/semantic/metrics.yml', 'grain_to_date: month')}"
            ": metric.revenue_mtd: grain_to_date 'month' is finer than the grain 'quarter'") in res.stderr
    metrics = project / "seeknal" / "semantic" / "metrics.yml"
    metrics.write_text(metrics.read_text().replace("grain_to_date: month", "grain_to_date: quarter"))
    built(project)
    assert "metric.total_cost" in reasons(project)
    assert view(project, "total_revenue") == [(dt.date(2024, 1, 1), pytest.approx(425.25)),
                                              (dt.date(2024, 4, 1), pytest.approx(42.0))]


def test_removed_metric_drops_its_view(project):
    built(project)
    metrics = project / "seeknal" / "semantic" / "metrics.yml"
    text = metrics.read_text()
    start = text.index("---\nkind: metric\nname: revenue_growth")
    metrics.write_text(text[:start])
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert "metric.revenue_growth" in res.stdout
    assert query(project, "SELECT view_name FROM duckdb_views() WHERE schema_name = 'metric' "
                          "AND view_name = 'revenue_growth'") == []


def test_show_describes_a_metric_and_a_semantic_model(project):
    built(project)
    res = cli("show", "metric.revenue_per_order", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert "inputs     : transform.sem_orders_clean" in res.stdout
    assert "SUM(amount)" in res.stdout and "NULLIF(" in res.stdout
    res = cli("show", "metric.completion_rate", "-p", str(project))  # inline: defined in the model's file
    assert "defined in : seeknal/semantic/orders_model.yml:" in res.stdout
    res = cli("show", "semantic_model.orders", "-p", str(project))
    assert res.exit_code == 0 and '"measure completed_orders filter 1"' in res.stdout


def test_a_dimension_that_does_not_work_is_a_warning_on_the_semantic_model(project):
    model = project / "seeknal" / "semantic" / "orders_model.yml"
    model.write_text(model.read_text().replace("  - name: region\n", "  - name: region\n    expr: regionx\n"))
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ("semantic_model.orders: dimension region (regionx) does not work on transform.sem_orders_clean"
            in res.output)
    assert [r[1] for r in view(project, "total_revenue")] == pytest.approx(SEEKNAL["total_revenue"])


def test_seeknal_grain_spelling_in_by(project):
    built(project)
    res = q(project, "--metric", "total_revenue", "--by", "region,order_date__quarter", "--json")
    assert res.exit_code == 0, res.output
    assert [(r["order_date__quarter"], r["region"]) for r in json.loads(res.stdout)][:2] == [
        ("2024-01-01", "EU"), ("2024-01-01", "US")]


def test_query_says_when_a_metric_changed_since_the_last_run(project):
    built(project)
    metrics = project / "seeknal" / "semantic" / "metrics.yml"
    metrics.write_text(metrics.read_text().replace("filter: \"status = 'completed'\"", "filter: \"region = 'EU'\""))
    res = q(project, "--metric", "completed_revenue", "--json")
    assert res.exit_code == 0, res.output
    assert "note: metric.completed_revenue changed since the last run" in res.stderr
    assert [r["completed_revenue"] for r in json.loads(res.stdout)] == pytest.approx([165.0, 35.25, 225.0, 42.0])


def test_ratio_across_two_semantic_models_and_an_untimed_model(tmp_path):
    from tests.conftest import write_project

    p = write_project(tmp_path / "two", {
        "seeknal_project.yml": "name: two\n",
        "data/sem_a.csv": "d,x\n2024-01-01,1\n2024-01-02,2\n2024-02-01,3\n",
        "data/sem_b.csv": "d,y\n2024-01-05,10\n2024-03-01,20\n",
        "seeknal/s.yml": """\
            kind: source
            name: a
            source: csv
            table: data/sem_a.csv
            ---
            kind: source
            name: b
            source: csv
            table: data/sem_b.csv
            """,
        "seeknal/semantic_models/m.yml": """\
            kind: semantic_model
            name: ma
            model: ref('source.a')
            dimensions:
              - {name: d, type: time, time_granularity: month}
            measures:
              - {name: xs, expr: x, agg: sum}
            ---
            kind: semantic_model
            name: mb
            model: "ref('source.b')"
            default_time_dimension: d
            dimensions:
              - {name: d, type: time, time_granularity: day}
            measures:
              - {name: ys, expr: y, agg: sum}
            ---
            kind: semantic_model
            name: mc
            model: source.b
            measures:
              - {name: y_max, expr: y, agg: max}
            """,
        "seeknal/metrics/r.yml": """\
            kind: metric
            name: x_per_y
            type: ratio
            numerator: xs
            denominator: ys
            ---
            kind: metric
            name: top_y
            type: simple
            measure: y_max
            """,
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    # the grain is the numerator's model's (month); each side aggregated alone, then joined
    assert view(p, "x_per_y") == [(dt.date(2024, 1, 1), pytest.approx(0.3)), (dt.date(2024, 2, 1), None),
                                  (dt.date(2024, 3, 1), None)]
    assert view(p, "top_y") == [(20,)]  # no time dimension: one row
    res = q(p, "--metric", "top_y", "--grain", "day")
    assert res.exit_code == 2 and "no time dimension" in res.stderr
