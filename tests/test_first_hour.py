"""Issue 11, "the first hour of a new user": what a person sees on the lock, during a run, in a
run's lines and summary, in `show`, on a bad rule parameter, and the small wording things.

Real projects, real DuckDB, the real CLI; the lock tests hold the lock from a real second
process (a seekrun run whose slow nodes never finish on their own, or a plain Python program
holding the database open).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import cli, cli_proc, clean_build, all_tables, run_results, write_project
from test_reliability import slow_project, start_run, wait_for


def _stop(proc: subprocess.Popen) -> tuple[str, str]:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=60)


def small(root: Path, extra: dict | None = None) -> Path:
    return write_project(root, {
        "data/a.csv": "id,v\n1,10\n2,20\n3,30\n",
        "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "nodes/b.yml": ("kind: transform\nname: b\ndescription: doubled values\nowner: data-team\n"
                        "tags: [daily, finance]\ninputs:\n  - ref: source.a\n"
                        "transform: SELECT id, v * 2 AS v2 FROM input_0\n"
                        "columns:\n  id: the key\n  v2: twice v\n"),
        "nodes/c.yml": "kind: transform\nname: c\ninputs:\n  - ref: transform.b\ntransform: SELECT count(*) AS n FROM input_0\n",
        **(extra or {}),
    })


# ---------------------------------------------------------------------------------------------
# 2 + 3 + 11: the project lock, held by a real second seekrun


def test_a_run_in_progress_is_named_read_only_commands_work_and_wait_waits(tmp_path):
    proj, ids = slow_project(tmp_path / "proj")
    lock = proj / "target" / ".seekrun.lock"
    proc = start_run(proj, "--threads", "1")
    waiter = None
    try:
        wait_for(lambda: lock.exists() and lock.read_text().startswith(f"{proc.pid} "), proc, "the lock was taken")
        # the lock file says when, in UTC with its zone
        assert re.fullmatch(rf"{proc.pid} \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n", lock.read_text())

        # 2: a second run is refused, naming the process and its command line; never "delete"
        res = cli_proc("run", "-p", str(proj), timeout=30)
        shown = res.output
        assert res.exit_code == 2, shown
        assert re.search(rf"project is locked by pid {proc.pid} \(python\S* -m seekrun run -p \S+ --threads 1\) "
                         r"since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: a run is in progress; wait for it to finish "
                         r"\(`seekrun run --wait` waits for it\), or stop that process", res.stderr), shown
        assert "delete" not in shown.lower() and "Traceback" not in shown

        # 3: read-only commands go on, say a run is in progress, and read the committed state
        wait_for(lambda: "a_quick" in (proj / "target" / "state" / "execution_state.journal").read_text()
                 if (proj / "target" / "state" / "execution_state.journal").exists() else False,
                 proc, "a_quick finished")
        manifest_before = (proj / "target" / "manifest.json").stat().st_mtime_ns
        note = f"a run is in progress (pid {proc.pid} ("
        dry = cli_proc("run", "-p", str(proj), "--dry-run", timeout=30)
        assert dry.exit_code == 0 and note in dry.stderr, dry.output
        assert "showing the last committed state" in dry.stderr
        assert "RUN    transform.slow_0  (new)" in dry.stdout, dry.output
        assert "transform.a_quick" not in dry.stdout, dry.output  # finished by the run in progress: cached

        shown = cli_proc("show", "transform.a_quick", "-p", str(proj), timeout=30)
        assert shown.exit_code == 0 and note in shown.stderr, shown.output
        assert "transform.a_quick  [up to date]" in shown.stdout, shown.output
        assert re.search(r"last run   : success, \d+\.\d{3}s, at \S+ \S+ UTC \(ran because: new\)", shown.stdout), shown.output
        assert "rows       : 1 row (as of the last run)" in shown.stdout, shown.output
        assert "a run holds the database" in shown.stdout, shown.output

        parsed = cli_proc("parse", "-p", str(proj), "--dry-run", timeout=30)
        assert parsed.exit_code == 0 and note in parsed.stderr, parsed.output
        assert "Dry run: nothing was written." in parsed.stdout, parsed.output
        assert (proj / "target" / "manifest.json").stat().st_mtime_ns == manifest_before
        assert proc.poll() is None, "the run in progress was disturbed"

        # 3: --wait with a timeout gives up, saying for whom it waited
        t0 = time.monotonic()
        res = cli_proc("run", "-p", str(proj), "--wait", "--wait-timeout", "0.5", timeout=30)
        assert res.exit_code == 2, res.output
        assert f"seekrun: waiting (at most 0.5 s) for the run in progress to finish: pid {proc.pid} (" in res.stderr
        assert "gave up waiting after 0.5 s" in res.stderr, res.output
        assert time.monotonic() - t0 < 20

        # 3: --wait waits as long as it takes, then runs
        waiter = subprocess.Popen([sys.executable, "-m", "seekrun", "run", "-p", str(proj), "--wait"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        time.sleep(1.0)
        assert waiter.poll() is None, "--wait did not wait"
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        out, err = waiter.communicate(timeout=120)
    finally:
        _stop(proc)
        if waiter is not None:
            _stop(waiter)
    assert waiter.returncode == 0, out + err
    assert f"waiting for the run in progress to finish: pid {proc.pid} (" in err, err
    assert "Execution summary" in out
    assert all(r["status"] in ("success", "cached") for r in run_results(proj).values())


def test_a_database_held_open_by_another_program_names_it_and_never_says_delete(tmp_path):
    proj = small(tmp_path / "proj")
    assert cli("run", "-p", str(proj)).exit_code == 0
    (proj / "nodes" / "c.yml").write_text("kind: transform\nname: c\ninputs:\n  - ref: transform.b\n"
                                          "transform: SELECT count(*) AS n, 1 AS one FROM input_0\n")
    script = tmp_path / "hold_db.py"
    script.write_text("import duckdb, sys, time\ncon = duckdb.connect(sys.argv[1])\n"
                      "print('open', flush=True)\ntime.sleep(120)\n")
    holder = subprocess.Popen([sys.executable, str(script), str(proj / "target" / "seekrun.duckdb")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        before = (proj / "target" / "run_results.json").read_bytes()
        res = cli_proc("run", "-p", str(proj), timeout=60)
    finally:
        _stop(holder)
    assert res.exit_code == 2, res.output
    assert re.search(rf"target/seekrun.duckdb: the database is open in another program: pid {holder.pid} "
                     r"\(python\S* \S*hold_db\.py \S*seekrun\.duckdb\) holds DuckDB's lock on it; close the database "
                     r"there, or stop that program or wait for it to finish, then run again", res.stderr), res.output
    low = res.output.lower()
    assert "delete" not in low and "move it away" not in low and "rebuild" not in low, res.output
    assert (proj / "target" / "run_results.json").read_bytes() == before
    assert cli("run", "-p", str(proj)).exit_code == 0  # once it is closed


# ---------------------------------------------------------------------------------------------
# 4 + 11: each node's line says why it ran; plurals; one "Nothing to do"


def test_each_line_of_a_run_says_why_the_node_ran(tmp_path):
    proj = small(tmp_path / "proj")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert re.search(r"^OK     source\.a  \d+\.\d{3}s  3 rows  \(new\)$", res.stdout, re.M), res.stdout
    assert re.search(r"^OK     transform\.c  \d+\.\d{3}s  1 row  \(new\)$", res.stdout, re.M), res.stdout
    assert not any(" 1 rows" in ln for ln in lines)

    (proj / "nodes" / "b.yml").write_text((proj / "nodes" / "b.yml").read_text().replace("v * 2", "v * 3"))
    res = cli("run", "-p", str(proj))
    assert re.search(r"^OK     transform\.b  \S+  3 rows  \(config changed: transform SQL\)$", res.stdout, re.M), res.stdout
    assert re.search(r"^OK     transform\.c  \S+  1 row  \(upstream transform\.b changed\)$", res.stdout, re.M), res.stdout
    # the README's promise, in its own words
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "Each node that runs says why" in readme


def test_nothing_to_do_is_said_one_way(tmp_path):
    proj = small(tmp_path / "proj")
    assert cli("run", "-p", str(proj)).exit_code == 0
    run = cli("run", "-p", str(proj)).stdout.strip()
    dry = cli("run", "-p", str(proj), "--dry-run").stdout.strip()
    assert run == dry == "Nothing to do: all 3 nodes are up to date.", (run, dry)
    one = write_project(tmp_path / "one", {"nodes/x.yml": "kind: transform\nname: x\ntransform: SELECT 1 AS a\n"})
    first = cli("run", "-p", str(one))
    assert first.exit_code == 0 and first.stdout.startswith("Running 1 of 1 node\n"), first.stdout
    assert cli("run", "-p", str(one)).stdout.strip() == "Nothing to do: the only node is up to date."


# ---------------------------------------------------------------------------------------------
# 5: skipped, three ways, counted apart


def test_skipped_nodes_say_why_and_are_counted_apart(tmp_path):
    proj = write_project(tmp_path / "proj", {
        "nodes/a.yml": "kind: transform\nname: a\ntransform: SELECT 1 AS x\n",
        "nodes/bad.yml": "kind: transform\nname: bad\ntransform: SELECT CAST('x' AS INTEGER) AS x\n",
        "nodes/bad_child.yml": "kind: transform\nname: bad_child\ninputs:\n  - ref: transform.bad\n"
                               "transform: SELECT * FROM input_0\n",
        "nodes/later.yml": "kind: transform\nname: later\ntransform: SELECT 2 AS x\n",
        "nodes/left_out.yml": "kind: transform\nname: left_out\ntags: [skipme]\ntransform: SELECT 3 AS x\n",
    })
    res = cli("run", "-p", str(proj), "--threads", "1", "--exclude-tags", "skipme")
    assert res.exit_code == 1, res.output
    assert "  skipped     : 3 (1 left out by a filter, 2 not started after a failure)" in res.stdout, res.stdout
    assert "SKIP   transform.bad_child  (upstream transform.bad failed)" in res.stdout, res.stdout
    assert "Left out by the filter, still to run: transform.left_out" in res.stdout
    results = run_results(proj)
    assert {nid: (r["status"], r["skip"]) for nid, r in results.items()} == {
        "transform.a": ("success", None), "transform.bad": ("failed", None),
        "transform.bad_child": ("skipped", "after_failure"), "transform.later": ("skipped", "after_failure"),
        "transform.left_out": ("skipped", "filtered")}
    assert results["transform.later"]["error"] == "not started: the run stopped after a failure"
    as_json = json.loads(cli("run", "-p", str(proj), "--threads", "1", "--exclude-tags", "skipme",
                             "--json").stdout)
    assert as_json["skipped_nodes"] == 3
    assert as_json["skipped_by"] == {"filtered": 1, "after_failure": 2}


def test_interrupted_nodes_are_counted_as_interrupted(tmp_path):
    proj, ids = slow_project(tmp_path / "proj", n=2)
    proc = start_run(proj, "--threads", "1")
    try:
        journal = proj / "target" / "state" / "execution_state.journal"
        wait_for(lambda: journal.exists() and "a_quick" in journal.read_text(), proc, "a node finished")
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        _stop(proc)
    assert proc.returncode == 130, out + err
    assert "  skipped     : 2 (2 interrupted)" in out, out
    assert "  cancelled   : 1 (stopped while running; their last builds stand)" in out, out
    assert {nid: (r["status"], r["skip"]) for nid, r in run_results(proj).items() if r["skip"]} == {
        "transform.slow_0": ("cancelled", "interrupted"),  # it was running (--threads 1)
        "transform.slow_1": ("skipped", "interrupted"), "transform.total": ("skipped", "interrupted")}


# ---------------------------------------------------------------------------------------------
# 6: --full with a filter dirties only what it selects, and says so


def test_full_with_a_filter_dirties_only_the_selection_and_says_so(tmp_path):
    proj = small(tmp_path / "proj")
    assert cli("run", "-p", str(proj)).exit_code == 0
    res = cli("run", "-p", str(proj), "--full", "--types", "source")
    assert res.exit_code == 0, res.output
    assert ("--full rebuilds only the 1 selected node: the other 2 are not marked to rebuild (any that need "
            "to run anyway are listed as left out by the filter)") in res.stdout, res.stdout
    assert {nid: r["status"] for nid, r in run_results(proj).items()} == {
        "source.a": "success", "transform.b": "cached", "transform.c": "cached"}
    assert "--full" not in json.dumps({k: v for k, v in run_results(proj).items() if k != "source.a"})
    assert cli("run", "-p", str(proj)).stdout.startswith("Nothing to do")

    # an unselected node that needs to run keeps its own reason, and runs on the next plain run
    (proj / "nodes" / "c.yml").write_text("kind: transform\nname: c\ninputs:\n  - ref: transform.b\n"
                                          "transform: SELECT count(*) + 1 AS n FROM input_0\n")
    res = cli("run", "-p", str(proj), "--full", "--types", "source")
    assert "(--full;" not in res.output and "--full; not selected" not in res.output
    assert run_results(proj)["transform.c"]["reason"] == "config changed: transform SQL"
    assert run_results(proj)["transform.c"]["skip"] == "filtered"
    res = cli("run", "-p", str(proj))
    assert {nid for nid, r in run_results(proj).items() if r["status"] == "success"} == {"transform.c"}
    assert "(config changed: transform SQL)" in res.stdout
    assert all_tables(proj) == clean_build(proj, tmp_path)


# ---------------------------------------------------------------------------------------------
# 9: show


def test_show_gives_tags_owner_columns_rows_and_the_last_run(tmp_path):
    proj = small(tmp_path / "proj")
    res = cli("show", "transform.b", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "  tags       : daily, finance" in res.stdout and "  owner      : data-team" in res.stdout
    assert "  last run   : never built" in res.stdout
    assert "    id  -- the key" in res.stdout and "(types from the database: not built yet)" in res.stdout
    assert not (proj / "target" / "run_results.json").exists()  # read-only

    assert cli("run", "-p", str(proj)).exit_code == 0
    res = cli("show", "b", "-p", str(proj))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "transform.b  [up to date]" in out
    assert re.search(r"  last run   : success, \d+\.\d{3}s, at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                     r"\(ran because: new\)", out), out
    assert "  rows       : 3 rows\n" in out
    assert "  columns    : 2 columns\n    id  BIGINT  -- the key\n    v2  BIGINT  -- twice v\n" in out, out
    data = json.loads(cli("show", "transform.b", "-p", str(proj), "--json").stdout)
    assert data["columns"] == [{"name": "id", "type": "BIGINT", "description": "the key"},
                               {"name": "v2", "type": "BIGINT", "description": "twice v"}]
    assert data["row_count"] == 3 and data["last_run"]["status"] == "success"
    assert data["last_run"]["reason"] == "new" and data["tags"] == ["daily", "finance"]


# ---------------------------------------------------------------------------------------------
# 10: a bad rule parameter names the rule, the check and the parameter; verdicts are not retried


RULES = {
    "nodes/r.yml": """\
        kind: rule
        name: amounts
        inputs: [{ref: source.a}]
        rule:
          - {type: range, name: v_from, column: v, params: {min_val: '2024-01-01'}}
        """,
    "nodes/q.yml": """\
        kind: rule
        name: strict
        inputs: [{ref: source.a}]
        rule: {type: range, name: small_v, column: v, params: {max_val: 15}}
        """,
}


def test_a_bad_rule_parameter_names_the_rule_check_and_parameter_and_verdicts_are_not_retried(tmp_path):
    proj = small(tmp_path / "proj", RULES)
    t0 = time.monotonic()
    res = cli("run", "-p", str(proj), "--continue-on-error", "--retry", "3")
    assert res.exit_code == 1, res.output
    assert ("FAILED rule.amounts: check 'v_from' (range): params.min_val is the date/time '2024-01-01', "
            "but column 'v' is BIGINT: give a number") in res.stdout, res.stdout
    assert "Could not convert" not in res.output and "Conversion Error" not in res.output
    results = run_results(proj)
    # a check that cannot apply, and a check that fails on the data: each tried once, not 4 times
    assert results["rule.amounts"]["attempts"] == 1 and results["rule.strict"]["attempts"] == 1, results
    assert "1 of 1 check failed: small_v (v): 2 of 3 non-NULL values are not <= 15" in results["rule.strict"]["error"]
    assert time.monotonic() - t0 < 0.2 * (1 + 2 + 4) + 10  # no backoff waits were spent on them


def test_a_rule_sql_error_names_the_check_and_keeps_the_caret(tmp_path):
    proj = small(tmp_path / "proj", {"nodes/r.yml": """\
        kind: rule
        name: casts
        inputs: [{ref: source.a}]
        rule: {type: sql_assertion, name: as_date, sql: "SELECT * FROM input_0 WHERE CAST(v AS VARCHAR)::DATE > DATE '2024-01-01'"}
        """})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    assert re.search(r"FAILED rule\.casts: check 'as_date' \(sql_assertion\) cannot run: Conversion Error: .*: "
                     r"fix its SQL to fit the data", res.stdout), res.stdout
    assert "^" in res.stdout
    assert run_results(proj)["rule.casts"]["attempts"] == 1


def test_a_node_whose_input_was_left_out_says_so(tmp_path):
    proj = small(tmp_path / "proj")
    res = cli("run", "-p", str(proj), "--nodes", "transform.c")
    assert res.exit_code == 0, res.output
    r = run_results(proj)["transform.c"]
    assert (r["status"], r["skip"], r["reason"]) == ("skipped", "filtered", "new")
    assert r["error"] == "input transform.b has not been built (left out by the filter): still needs to run"
    assert "skipped     : 3 (3 left out by a filter)" in res.stdout, res.stdout


def test_rule_parameters_whose_type_is_knowable_are_refused_at_parse(tmp_path):
    proj = small(tmp_path / "proj", {"nodes/r.yml": """\
        kind: rule
        name: bounds
        inputs: [{ref: source.a}]
        rule:
          - {type: range, name: mixed, column: v, params: {min_val: 1, max_val: '2024-01-01'}}
          - {type: range, name: word, column: v, params: {min_val: abc}}
        """})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert ("nodes/r.yml:5: rule.bounds: min_val (1) and max_val ('2024-01-01') must be of one type: both "
            "numbers, or both dates/timestamps") in res.stderr, res.output
    assert "nodes/r.yml:6: rule.bounds: min_val must be a number or a date/timestamp" in res.stderr, res.output
    assert "'abc'" in res.stderr and "Traceback" not in res.output
