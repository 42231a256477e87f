"""Issue 3: failure handling. Stop after a failure (exit 1), --continue-on-error with
skipped dependents, build-then-swap keeps the last good table, --retry, and
run_results.json entries.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import all_tables, clean_build, cli, query, ran, run_results, table, write_project

BAD_SQL = "SELECT id, CAST('x' AS INT) AS v FROM input_0"

#   source.s -> transform.a_bad -> transform.b_child -> transform.c_grandchild
#            \-> transform.z_ok -> transform.z_next
#   source.s + transform.a_bad -> transform.m_mixed (depends on the failing branch too)
FILES = {
    "data/s.csv": "id,v\n1,1\n2,2\n3,3\n",
    "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
    "nodes/a_bad.yml": """\
        kind: transform
        name: a_bad
        inputs: [{ref: source.s}]
        transform: SELECT id, v + 1 AS v FROM input_0
        """,
    "nodes/b_child.yml": """\
        kind: transform
        name: b_child
        inputs: [{ref: transform.a_bad}]
        transform: SELECT id, v * 10 AS v FROM input_0
        """,
    "nodes/c_grandchild.yml": """\
        kind: transform
        name: c_grandchild
        inputs: [{ref: transform.b_child}]
        transform: SELECT sum(v) AS total FROM input_0
        """,
    "nodes/m_mixed.yml": """\
        kind: transform
        name: m_mixed
        inputs: [{ref: source.s}, {ref: transform.a_bad}]
        transform: SELECT s.id, s.v + a.v AS v FROM input_0 s JOIN input_1 a USING (id)
        """,
    "nodes/z_ok.yml": """\
        kind: transform
        name: z_ok
        inputs: [{ref: source.s}]
        transform: SELECT id, v - 1 AS v FROM input_0
        """,
    "nodes/z_next.yml": """\
        kind: transform
        name: z_next
        inputs: [{ref: transform.z_ok}]
        transform: SELECT count(*) AS n FROM input_0
        """,
}
ALL = {"source.s", "transform.a_bad", "transform.b_child", "transform.c_grandchild", "transform.m_mixed",
       "transform.z_ok", "transform.z_next"}
DEPENDENTS = {"transform.b_child", "transform.c_grandchild", "transform.m_mixed"}
RESULT_KEYS = {"node_id", "status", "reason", "duration", "row_count", "attempts", "error"}


def tables_present(project: Path) -> set[str]:
    return {t for (t,) in query(project, "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                                         "WHERE database_name = current_database() AND schema_name <> '_seekrun'")}


def set_sql(project: Path, name: str, sql: str) -> None:
    path = project / "nodes" / f"{name}.yml"
    lines = path.read_text().splitlines()
    lines = [f"transform: {sql}" if ln.startswith("transform:") else ln for ln in lines]
    path.write_text("\n".join(lines) + "\n")


def statuses(project: Path) -> dict[str, str]:
    return {nid: r["status"] for nid, r in run_results(project).items()}


@pytest.fixture
def fresh_bad(tmp_path: Path) -> Path:
    """The project with a_bad failing at run time, never built."""
    p = write_project(tmp_path / "proj", FILES)
    set_sql(p, "a_bad", BAD_SQL)
    return p


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """The project built once, every node successful."""
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == ALL
    return p


def test_run_results_has_one_complete_entry_per_node(built):
    data = json.loads((built / "target" / "run_results.json").read_text())
    for key in ("seekrun_version", "started_at", "elapsed", "args"):
        assert key in data["metadata"], key
    ids = [r["node_id"] for r in data["results"]]
    assert sorted(ids) == sorted(ALL)  # one entry per node, no duplicates
    for r in data["results"]:
        assert set(r) >= RESULT_KEYS, r
        assert r["status"] == "success"
        assert r["attempts"] == 1
        assert r["error"] is None
        assert isinstance(r["duration"], (int, float)) and r["duration"] >= 0
    rows = {r["node_id"]: r["row_count"] for r in data["results"]}
    assert rows["source.s"] == 3 and rows["transform.z_next"] == 1


def test_exit_code_0_when_all_success_or_cached(built):
    set_sql(built, "z_ok", "SELECT id, v - 2 AS v FROM input_0 WHERE id > 1")
    res = cli("run", "-p", str(built))
    assert res.exit_code == 0, res.output
    st = statuses(built)
    assert set(st.values()) == {"success", "cached"}
    assert {n for n, s in st.items() if s == "success"} == {"transform.z_ok", "transform.z_next"}


def test_default_stops_starting_new_nodes_after_a_failure(fresh_bad):
    res = cli("run", "-p", str(fresh_bad), "--threads", "1")
    assert res.exit_code == 1, res.output
    st = statuses(fresh_bad)
    assert set(st) == ALL
    assert st["source.s"] == "success"
    assert st["transform.a_bad"] == "failed"
    # Kahn order with a node-id tie-break: a_bad is started before z_ok; nothing starts after it fails
    for nid in ALL - {"source.s", "transform.a_bad"}:
        assert st[nid] == "skipped", (nid, st[nid])
    assert tables_present(fresh_bad) == {"source.s"}
    err = run_results(fresh_bad)["transform.a_bad"]["error"]
    assert err and "x" in err
    assert "a_bad" in res.output


def test_default_with_threads_still_exits_1_and_runs_no_dependent(fresh_bad):
    res = cli("run", "-p", str(fresh_bad), "--threads", "4")
    assert res.exit_code == 1, res.output
    st = statuses(fresh_bad)
    assert st["transform.a_bad"] == "failed"
    for nid in DEPENDENTS:
        assert st[nid] == "skipped"
    assert not (tables_present(fresh_bad) & DEPENDENTS)


def test_continue_on_error_runs_independent_branches_and_skips_dependents(fresh_bad, tmp_path):
    res = cli("run", "-p", str(fresh_bad), "--continue-on-error", "--threads", "1")
    assert res.exit_code == 1, res.output
    st = statuses(fresh_bad)
    assert st == {
        "source.s": "success",
        "transform.a_bad": "failed",
        "transform.b_child": "skipped",
        "transform.c_grandchild": "skipped",
        "transform.m_mixed": "skipped",
        "transform.z_ok": "success",
        "transform.z_next": "success",
    }
    results = run_results(fresh_bad)
    for nid in DEPENDENTS:
        assert results[nid]["attempts"] == 0, results[nid]
    assert tables_present(fresh_bad) == {"source.s", "transform.z_ok", "transform.z_next"}
    assert table(fresh_bad, "transform.z_next") == [(3,)]

    # fix it: the failed node and its skipped dependents run; the rest stays cached
    set_sql(fresh_bad, "a_bad", "SELECT id, v + 1 AS v FROM input_0")
    res = cli("run", "-p", str(fresh_bad))
    assert res.exit_code == 0, res.output
    assert ran(fresh_bad) == {"transform.a_bad"} | DEPENDENTS
    assert run_results(fresh_bad)["transform.a_bad"]["reason"] == "previous run failed"
    assert all_tables(fresh_bad) == clean_build(fresh_bad, tmp_path)


def test_continue_on_error_dependents_keep_their_old_tables(built, tmp_path):
    before = all_tables(built)
    set_sql(built, "a_bad", BAD_SQL)
    (built / "data" / "s.csv").write_text("id,v\n1,1\n2,2\n3,3\n4,4\n")  # everything needs to run
    res = cli("run", "-p", str(built), "--continue-on-error", "--threads", "2")
    assert res.exit_code == 1, res.output
    st = statuses(built)
    assert st["transform.a_bad"] == "failed"
    assert st["source.s"] == st["transform.z_ok"] == st["transform.z_next"] == "success"
    for nid in DEPENDENTS:
        assert st[nid] == "skipped"
        assert run_results(built)[nid]["attempts"] == 0
    after = all_tables(built)
    for nid in DEPENDENTS | {"transform.a_bad"}:
        assert after[nid] == before[nid], nid  # not rebuilt on stale input, not destroyed
    assert table(built, "transform.z_next") == [(4,)]
    # the skipped ones still need to run: they do once the failure is fixed
    set_sql(built, "a_bad", "SELECT id, v + 1 AS v FROM input_0")
    res = cli("run", "-p", str(built))
    assert res.exit_code == 0, res.output
    assert ran(built) == {"transform.a_bad"} | DEPENDENTS
    assert all_tables(built) == clean_build(built, tmp_path)


def test_failed_build_keeps_the_last_good_table(built):
    good = table(built, "transform.a_bad")
    assert good == [(1, 2), (2, 3), (3, 4)]
    set_sql(built, "a_bad", BAD_SQL)
    res = cli("run", "-p", str(built))
    assert res.exit_code == 1, res.output
    assert run_results(built)["transform.a_bad"]["status"] == "failed"
    assert table(built, "transform.a_bad") == good
    # the dependents were not run on it either
    for nid in DEPENDENTS:
        assert run_results(built)[nid]["status"] == "skipped"


def test_failed_build_late_in_the_query_keeps_the_last_good_table(built):
    """The failure comes after rows were produced (a row that fails to cast): still no partial table."""
    good = table(built, "transform.z_ok")
    set_sql(built, "z_ok", "SELECT id, CAST(CASE WHEN id = 3 THEN 'x' ELSE '1' END AS INT) AS v FROM input_0")
    res = cli("run", "-p", str(built))
    assert res.exit_code == 1, res.output
    assert run_results(built)["transform.z_ok"]["status"] == "failed"
    assert table(built, "transform.z_ok") == good


def test_retry_retries_a_failing_sql_node(fresh_bad):
    res = cli("run", "-p", str(fresh_bad), "--retry", "2", "--threads", "1", "--continue-on-error")
    assert res.exit_code == 1, res.output
    r = run_results(fresh_bad)
    assert r["transform.a_bad"]["status"] == "failed"
    assert r["transform.a_bad"]["attempts"] == 3
    assert r["transform.a_bad"]["error"]
    assert r["transform.z_ok"]["attempts"] == 1  # successes are not retried


def test_retry_zero_means_one_attempt(fresh_bad):
    res = cli("run", "-p", str(fresh_bad), "--retry", "0")
    assert res.exit_code == 1, res.output
    assert run_results(fresh_bad)["transform.a_bad"]["attempts"] == 1


def test_negative_retry_is_a_usage_error(fresh_bad):
    res = cli("run", "-p", str(fresh_bad), "--retry", "-1")
    assert res.exit_code == 2, res.output
    assert not (fresh_bad / "target" / "run_results.json").exists()


def test_failed_node_reruns_on_the_next_run(built):
    set_sql(built, "z_ok", "SELECT id, CAST('x' AS INT) AS v FROM input_0")
    assert cli("run", "-p", str(built)).exit_code == 1
    assert run_results(built)["transform.z_ok"]["status"] == "failed"
    res = cli("run", "-p", str(built))
    assert res.exit_code == 1, res.output
    r = run_results(built)
    assert ran(built) == {"transform.z_ok"}
    assert r["transform.z_ok"]["reason"] == "previous run failed"
    assert r["transform.z_next"]["status"] == "skipped"
    state = json.loads((built / "target" / "state" / "execution_state.json").read_text())
    nodes = state.get("nodes", state)
    assert nodes["transform.z_ok"]["status"] == "failed"
    assert nodes["transform.z_next"]["status"] == "success"  # its last build is still valid


def test_failure_output_names_the_node_and_error(fresh_bad):
    res = cli("run", "-p", str(fresh_bad), "--threads", "1")
    assert res.exit_code == 1
    fail_lines = [ln for ln in res.stdout.splitlines() if "transform.a_bad" in ln]
    assert fail_lines, res.stdout
    assert any("FAIL" in ln.upper() for ln in fail_lines)
    assert "\x1b[" not in res.stdout  # not a terminal: plain lines


def test_a_stopped_run_leaves_nothing_stale(built, tmp_path):
    """Nodes not started because the run stopped after a failure still need to run next time."""
    set_sql(built, "a_bad", BAD_SQL)
    (built / "data" / "s.csv").write_text("id,v\n1,1\n2,2\n3,3\n4,4\n")  # every node needs to run
    res = cli("run", "-p", str(built), "--threads", "1")
    assert res.exit_code == 1, res.output
    st = statuses(built)
    assert st["source.s"] == "success" and st["transform.a_bad"] == "failed"
    assert st["transform.z_ok"] == st["transform.z_next"] == "skipped"
    # still failing: the independent branch that was not started runs now
    res = cli("run", "-p", str(built), "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert ran(built) == {"transform.a_bad", "transform.z_ok", "transform.z_next"}
    assert run_results(built)["transform.z_ok"]["reason"] == "upstream source.s changed"
    # fixed: the rest runs, and the result is a clean build's
    set_sql(built, "a_bad", "SELECT id, v + 1 AS v FROM input_0")
    res = cli("run", "-p", str(built))
    assert res.exit_code == 0, res.output
    assert ran(built) == {"transform.a_bad"} | DEPENDENTS
    assert all_tables(built) == clean_build(built, tmp_path)
