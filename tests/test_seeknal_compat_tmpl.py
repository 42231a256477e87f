"""Issue 11, compatibility 11: Seeknal's run-time template values in SQL.

``{{ today }}`` (and Seeknal's date functions on it: ``today(-1)``, ``month_start``,
``year_start``), ``{{ run_date }}``, ``{{ start_date }}`` / ``{{ end_date }}``,
``{{ env:NAME|default }}`` and ``{{ ref('x') }}``, on the nodes of
tests/seeknal_compat/seeknal/tmpl/ (data: tests/seeknal_compat/data/tmpl_orders.csv).

The expected rows are what Seeknal 2.13 (/tmp/skvenv) gave on the same files, run in a copy
of the project:
    seeknal run --date 2024-01-31 --start-date 2024-01-01 --end-date 2024-01-15 --continue-on-error
    TMPL_REGION=US seeknal run --date 2024-01-31 --continue-on-error
reading target/intermediate/*.parquet. Seeknal's sums are DOUBLE (140.0) where seekrun's CSV
read gives BIGINT (140): equal as values, compared as such. Where Seeknal differs:
- ``{{ ref('x') }}``: Seeknal 2.13 fails ("syntax error at or near "{"": it leaves the braces
  around the input's name); seekrun reads it as ref('x') (transform.tmpl_ref_braces).
- ``{{ start_date }}`` / ``{{ end_date }}`` without the options: Seeknal puts the literal text
  in the SQL (and the node fails: 'invalid date field format: "{{ start_date }}"'); seekrun
  defaults end_date to the run date and start_date to end_date.
- ``{{ env:X | d }}`` with spaces: Seeknal looks up "X " and defaults to " d"; seekrun strips both.
Tests pin the date with --run-date (or compare with the real date where the default is tested).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

from conftest import cli, reasons, run_results, table, write_project

COMPAT = Path(__file__).parent / "seeknal_compat"
SEEKNAL_DATES = ("--run-date", "2024-01-31", "--start-date", "2024-01-01", "--end-date", "2024-01-15")


def project(tmp_path: Path) -> Path:
    dest = tmp_path / "proj"
    (dest / "seeknal").mkdir(parents=True)
    (dest / "data").mkdir()
    shutil.copy(COMPAT / "seeknal_project.yml", dest)
    shutil.copytree(COMPAT / "seeknal" / "tmpl", dest / "seeknal" / "tmpl")
    for f in (COMPAT / "data").glob("tmpl_*"):
        shutil.copy(f, dest / "data")
    return dest


def run(proj: Path, *args: str):
    res = cli("run", "-p", str(proj), *args)
    assert res.exit_code == 0, res.output
    return res


def test_the_tables_match_seeknal_2_13(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPL_REGION", raising=False)
    proj = project(tmp_path)
    run(proj, *SEEKNAL_DATES)
    d = dt.date
    assert table(proj, "transform.tmpl_orders_in_range") == [(1, d(2024, 1, 1), 10), (2, d(2024, 1, 14), 20),
                                                            (3, d(2024, 1, 15), 30)]
    assert table(proj, "transform.tmpl_yesterday") == [("2024-01-31", "2024-01-01", "2024-01-01", 4, 40),
                                                      ("2024-01-31", "2024-01-01", "2024-01-01", 5, 50)]
    assert table(proj, "transform.tmpl_loaded") == [(d(2024, 1, 31), 7)]
    assert table(proj, "transform.tmpl_region") == [("EU", 4, 140.0)]
    assert table(proj, "transform.tmpl_static") == [("EU", 140.0), ("US", 140.0)]
    assert table(proj, "transform.tmpl_ref_braces") == [(3, 60)]  # Seeknal 2.13 fails on {{ ref() }}
    assert table(proj, "transform.tmpl_daily_orders") == [(6, 60)]  # params: {{ run_day }}, {{ region }}
    # the command line's dates win over the node's params (start_date: "{{ today(-7) }}")
    assert table(proj, "transform.tmpl_last_week") == [(1, d(2024, 1, 1)), (2, d(2024, 1, 14)), (3, d(2024, 1, 15))]
    monkeypatch.setenv("TMPL_REGION", "US")
    run(proj, "--date", "2024-01-31")  # Seeknal's own flag name works too
    assert table(proj, "transform.tmpl_region") == [("US", 3, 140.0)]
    assert table(proj, "transform.tmpl_last_week") == [(4, d(2024, 1, 30)), (5, d(2024, 1, 30)), (6, d(2024, 1, 31))]


def test_a_new_day_reruns_exactly_the_nodes_that_use_it_and_says_why(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPL_REGION", raising=False)
    proj = project(tmp_path)
    run(proj, "--run-date", "2026-11-30")
    res = run(proj, "--run-date", "2026-11-30")
    assert "Nothing to do" in res.output and not reasons(proj)
    run(proj, "--run-date", "2026-12-01")
    got = reasons(proj)
    assert got == {
        "transform.tmpl_yesterday": "today changed (2026-11-30 -> 2026-12-01)",
        "transform.tmpl_loaded": "run_date changed (2026-11-30 -> 2026-12-01)",
        "transform.tmpl_orders_in_range": "start_date changed (2026-11-30 -> 2026-12-01); "
                                          "end_date changed (2026-11-30 -> 2026-12-01)",
        "transform.tmpl_ref_braces": "upstream transform.tmpl_orders_in_range changed",
        "transform.tmpl_daily_orders": "today changed (2026-11-30 -> 2026-12-01)",  # via params: run_day
        "transform.tmpl_last_week": "today changed (2026-11-30 -> 2026-12-01); start_date changed "
                                    "(2026-11-23 -> 2026-11-24); end_date changed (2026-11-30 -> 2026-12-01)",
    }, got  # the source (whose description mentions {{ today }}), tmpl_static and tmpl_region stay cached
    assert table(proj, "transform.tmpl_yesterday") == []  # no order on 2026-11-30 (yesterday)
    # only the range moving reruns only the range (and what reads it)
    run(proj, "--run-date", "2026-12-01", "--start-date", "2024-01-01")
    assert reasons(proj) == {"transform.tmpl_orders_in_range": "start_date changed (2026-12-01 -> 2024-01-01)",
                             "transform.tmpl_ref_braces": "upstream transform.tmpl_orders_in_range changed",
                             "transform.tmpl_last_week": "start_date changed (2026-11-24 -> 2024-01-01)"}
    assert table(proj, "transform.tmpl_ref_braces") == [(7, 280)]
    plan = cli("run", "-p", str(proj), "--dry-run", "--run-date", "2026-12-02", "--start-date", "2024-01-01")
    assert "today changed (2026-12-01 -> 2026-12-02)" in plan.output, plan.output


def test_unset_dates_are_today_in_local_time_and_run_date_is_the_start_time(tmp_path):
    proj = project(tmp_path)
    before = dt.date.today().isoformat()
    run(proj)
    after = dt.date.today().isoformat()
    (row,) = table(proj, "transform.tmpl_loaded") or [(None, None)]
    assert row[0].isoformat() in (before, after)
    fields = json.loads((proj / "target" / "manifest.json").read_text())["nodes"][
        "transform.tmpl_orders_in_range"]["hashes"]["fields"]
    assert fields["start_date"] == fields["end_date"] and fields["start_date"] in (before, after)
    time.sleep(1.1)  # run_date is the run's start time (to the second): a later run has another
    plan = cli("run", "-p", str(proj), "--dry-run")
    lines = [line for line in plan.output.splitlines() if "tmpl_loaded" in line]
    assert lines and "run_date changed" in lines[0], plan.output
    assert not any("tmpl_static" in line for line in plan.output.splitlines()), plan.output


def test_bad_dates_are_one_line_errors(tmp_path):
    proj = project(tmp_path)
    run(proj, "--run-date", "2026-11-30")
    before = sorted((p, p.stat().st_mtime_ns) for p in (proj / "target").rglob("*") if p.is_file())
    for args, message in [
        (("--run-date", "2026-02-30"), "--run-date '2026-02-30' is not a date: write YYYY-MM-DD"),
        (("--run-date", "yesterday"), "--run-date 'yesterday' is not a date"),
        (("--end-date", "2026/01/31"), "--end-date '2026/01/31' is not a date"),
        (("--start-date", "2026-12-05", "--end-date", "2026-12-01"),
         "--start-date 2026-12-05 is after --end-date 2026-12-01"),
        (("--run-date", "2026-11-30", "--start-date", "2026-12-01"),
         "--start-date 2026-12-01 is after the run date (--end-date's default) 2026-11-30"),
    ]:
        for command in (("run",), ("run", "--dry-run"), ("parse",), ("show", "tmpl_static")):
            res = cli(*command, "-p", str(proj), *args)
            assert res.exit_code == 2, (command, args, res.output)
            assert res.stderr.splitlines()[0].startswith(message), (command, res.stderr)
            assert "Traceback" not in res.output
    after = sorted((p, p.stat().st_mtime_ns) for p in (proj / "target").rglob("*") if p.is_file())
    assert before == after


def test_show_and_parse_take_the_dates(tmp_path):
    proj = project(tmp_path)
    res = cli("show", "tmpl_orders_in_range", "-p", str(proj), "--start-date", "2024-01-02", "--end-date",
              "2024-01-09")
    assert res.exit_code == 0, res.output
    assert "BETWEEN CAST('2024-01-02' AS DATE) AND CAST('2024-01-09' AS DATE)" in res.output
    res = cli("parse", "-p", str(proj), "--run-date", "2024-03-01")
    assert res.exit_code == 0, res.output
    assert "CAST('2024-02-29' AS DATE)" in (proj / "target" / "manifest.json").read_text()  # today(-1), leap year
    res = cli("parse", "-p", str(proj), "--run-date", "2024-03-02")
    assert "~ transform.tmpl_yesterday (today changed (2024-03-01 -> 2024-03-02))" in res.output, res.output
    assert "tmpl_static" not in res.output and "source.tmpl_orders" not in res.output


def test_env_colon_values_are_secrets_like_env_var(tmp_path, monkeypatch):
    proj = project(tmp_path)
    secret = "Region-Sec7et-Value"
    monkeypatch.setenv("TMPL_REGION", secret)
    run(proj, "--run-date", "2026-11-30")
    assert table(proj, "transform.tmpl_region") == []
    for path in (proj / "target").rglob("*"):
        if path.is_file() and not path.name.endswith((".duckdb", ".wal")):
            assert secret.encode() not in path.read_bytes(), path
    monkeypatch.setenv("TMPL_REGION", "US")
    run(proj, "--run-date", "2026-11-30")
    assert reasons(proj) == {"transform.tmpl_region": "config changed: environment variable value"}
    assert table(proj, "transform.tmpl_region") == [("US", 3, 140)]


def test_env_colon_without_default_must_be_set(tmp_path, monkeypatch):
    monkeypatch.delenv("TMPL_UNSET_VAR", raising=False)
    proj = write_project(tmp_path / "p", {
        "seeknal_project.yml": "name: p\n",
        "data/a.csv": "x\n1\n",
        "seeknal/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "seeknal/t.yml": """\
            kind: transform
            name: t
            inputs:
              - ref: source.a
            transform: |
              SELECT x, '{{env:TMPL_UNSET_VAR}}' AS v, '{{ env:TMPL_SPACED | Zq9-fallbk }}' AS w
              FROM ref('source.a')
            """,
    })
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2
    assert res.stderr.splitlines()[0] == (
        "seeknal/t.yml:1: transform.t: environment variable TMPL_UNSET_VAR is not set: set it, or give a default "
        "with env_var('TMPL_UNSET_VAR', 'default') (Seeknal's form: {{ env:TMPL_UNSET_VAR|default }})"), res.stderr
    monkeypatch.setenv("TMPL_UNSET_VAR", "it's set")
    run(proj)
    assert table(proj, "transform.t") == [(1, "it's set", "Zq9-fallbk")]


def test_ref_in_braces_is_a_ref_and_must_be_declared(tmp_path):
    proj = write_project(tmp_path / "p", {
        "seeknal_project.yml": "name: p\n",
        "data/a.csv": "x\n1\n",
        "seeknal/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "seeknal/b.yml": "kind: source\nname: b\nsource: csv\ntable: data/a.csv\n",
        "seeknal/t.yml": """\
            kind: transform
            name: t
            inputs:
              - ref: source.a
            transform: SELECT * FROM {{ ref("source.a") }} JOIN {{ref('source.b')}} USING (x)
            """,
    })
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2
    assert "transform.t: SQL uses 'source.b' but it is not declared in inputs: add '- ref: source.b' to inputs" \
        in res.stderr, res.stderr
    (proj / "seeknal" / "t.yml").write_text((proj / "seeknal" / "t.yml").read_text().replace(
        "  - ref: source.a\n", "  - ref: source.a\n  - ref: source.b\n"))
    run(proj)
    assert table(proj, "transform.t") == [(1,)]


def test_an_unknown_expression_is_a_parse_error(tmp_path):
    proj = write_project(tmp_path / "p", {
        "seeknal_project.yml": "name: p\n",
        "data/a.csv": "x\n1\n",
        "seeknal/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "seeknal/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.a\n"
                         "transform: SELECT '{{ today(x) }}' AS d, '{{ run_date(1) }}' AS e FROM ref('source.a')\n",
    })
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2
    assert "cannot render '{{ today(x) }}'" in res.stderr and "cannot render '{{ run_date(1) }}'" in res.stderr
    (proj / "seeknal" / "t.yml").write_text("kind: transform\nname: t\ninputs:\n  - ref: source.a\n"
                                            "transform: SELECT '{{ today(-1000000) }}' AS d FROM ref('source.a')\n")
    res = cli("run", "-p", str(proj), "--run-date", "2026-12-01")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.splitlines()[0] == ("seeknal/t.yml:1: transform.t: '{{ today(-1000000) }}' is out of range for "
                                          "the run date 2026-12-01: pick a smaller offset"), res.stderr


def test_a_new_date_rereads_no_file(tmp_path):
    """Nodes keep their placeholders in the parse cache: a new date re-reads nothing."""
    from seekrun.parser import runvars
    from seekrun.parser.parse import parse_project

    proj = project(tmp_path)
    old = time.time() - 3600  # past the racy window: the cache trusts these files' stat
    for path in proj.rglob("*"):
        os.utime(path, (old, old))
    run(proj, "--run-date", "2026-11-30")
    run(proj, "--run-date", "2026-11-30")  # the cache is written on the first run, settled on the second
    result = parse_project(proj, run_values=runvars.from_options("2026-12-01"))
    assert result.parse_cache.reads == 0
    nodes = result.manifest.nodes
    assert nodes["transform.tmpl_yesterday"]["hashes"]["fields"]["today"] == "2026-12-01"
    assert "today" not in nodes["transform.tmpl_static"]["hashes"]["fields"]
    assert "2026-11-30" in nodes["transform.tmpl_yesterday"]["compiled_sql"]  # today(-1)
    assert run_results(proj)["transform.tmpl_static"]["status"] == "cached"


def test_run_help_says_the_time_zone():
    res = cli("run", "--help")
    text = " ".join(res.output.replace("\u2502", " ").split())  # rich draws a box: │ between lines
    assert "--run-date" in text and "--start-date" in text and "--end-date" in text
    assert "local time zone" in text


def test_a_params_default_that_is_not_a_date_is_a_parse_error(tmp_path):
    proj = write_project(tmp_path / "p", {
        "seeknal_project.yml": "name: p\n",
        "data/a.csv": "x\n1\n",
        "seeknal/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "seeknal/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.a\nparams:\n  start_date: last week\n"
                         "transform: SELECT '{{ start_date }}' AS d FROM ref('source.a')\n",
    })
    res = cli("run", "-p", str(proj), "--run-date", "2026-12-01")
    assert res.exit_code == 2
    assert res.stderr.splitlines()[0] == ("seeknal/t.yml:1: transform.t: params.start_date 'last week' is not a date: "
                                          "write YYYY-MM-DD (or e.g. {{ today(-7) }})"), res.stderr
    res = cli("run", "-p", str(proj), "--start-date", "2026-11-01", "--end-date", "2026-11-02")
    assert res.exit_code == 0, res.output  # the command line's value is used: the default is not needed
    assert table(proj, "transform.t") == [("2026-11-01",)]


def test_today_is_the_local_date_of_the_tz_setting(tmp_path):
    """UTC+14 and UTC-12 are always on different dates: today follows TZ, not UTC."""
    from zoneinfo import ZoneInfo

    from conftest import cli_proc

    proj = project(tmp_path)
    seen = {}
    for tz in ("Pacific/Kiritimati", "Etc/GMT+12"):
        before = dt.datetime.now(ZoneInfo(tz)).date().isoformat()
        res = cli_proc("show", "tmpl_yesterday", "-p", str(proj), "--json",
                       env={"TZ": tz, "PYTHONPATH": str(Path(__file__).parent.parent)})
        after = dt.datetime.now(ZoneInfo(tz)).date().isoformat()
        assert res.exit_code == 0, res.stderr
        seen[tz] = json.loads(res.stdout)["hashes"]["fields"]["today"]
        assert seen[tz] in (before, after), (tz, seen[tz])
    assert seen["Pacific/Kiritimati"] != seen["Etc/GMT+12"]


def test_decorator_arguments_of_python_nodes_take_the_values_too(tmp_path):
    proj = write_project(tmp_path / "p", {
        "seeknal_project.yml": "name: p\n",
        "data/a.csv": "x\n1\n",
        "seeknal/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "seeknal/p.py": """\
            from seekrun.pipeline import transform


            @transform(name="py_day", inputs=["source.a"], run_day="{{ today(-1) }}")
            def py_day(ctx):
                return ctx.con.sql(f"SELECT '{ctx.config['run_day']}' AS run_day")
            """,
    })
    run(proj, "--run-date", "2026-11-30")
    assert table(proj, "transform.py_day") == [("2026-11-29",)]
    run(proj, "--run-date", "2026-12-01")
    assert reasons(proj) == {"transform.py_day": "today changed (2026-11-30 -> 2026-12-01)"}
    assert table(proj, "transform.py_day") == [("2026-11-30",)]
    assert "Nothing to do" in run(proj, "--run-date", "2026-12-01").output
