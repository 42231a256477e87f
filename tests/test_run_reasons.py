"""Issue 3: every rerun reason, no-op edits and removed nodes.

Each test builds a small real project in tmp_path with the real CLI, edits it the way
a user would, runs again and checks what the user sees: the exit code, the reason in
target/run_results.json, which nodes ran, the DuckDB tables and the state file.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from conftest import all_tables, clean_build, cli, query, ran, reasons, run_results, table, write_project

ALL = {"source.a", "source.b", "transform.t1", "transform.t2", "transform.t3", "transform.tb"}

T1_SQL = "SELECT id, v * 2 AS v FROM source.a"

FILES = {
    "data/a.csv": "id,v\n1,10\n2,20\n3,30\n",
    "data/b.csv": "id,w\n1,100\n2,200\n",
    "nodes/sources/a.yml": """\
        kind: source
        name: a
        description: the a rows
        source: csv
        table: data/a.csv
        """,
    "nodes/sources/b.yml": """\
        kind: source
        name: b
        source: csv
        table: data/b.csv
        """,
    "nodes/transforms/t1.yml": f"""\
        kind: transform
        name: t1
        description: doubled
        tags: [daily]
        inputs:
          - ref: source.a
        transform: {T1_SQL}
        """,
    "nodes/transforms/t2.yml": """\
        kind: transform
        name: t2
        inputs:
          - ref: transform.t1
          - ref: source.b
        transform: |
          SELECT t.id, t.v + b.w AS vw
          FROM input_0 t JOIN input_1 b ON t.id = b.id
        """,
    "nodes/transforms/t3.yml": """\
        kind: transform
        name: t3
        inputs:
          - ref: transform.t2
        transform: SELECT count(*) AS n, sum(vw) AS total FROM ref('transform.t2')
        """,
    "nodes/transforms/tb.yml": """\
        kind: transform
        name: tb
        inputs:
          - ref: source.b
        transform: SELECT id, w FROM source.b WHERE w > 150
        """,
}


def state(project: Path) -> dict:
    return json.loads((project / "target" / "state" / "execution_state.json").read_text())


def state_nodes(project: Path) -> dict[str, dict]:
    data = state(project)
    return data.get("nodes", data)


def edit(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new))


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """The project, built once (all nodes new and successful)."""
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    return p


def assert_nothing_to_do(project: Path) -> None:
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout
    assert ran(project) == set()
    assert all(r["status"] == "cached" for r in run_results(project).values())


# ---- new ---------------------------------------------------------------------------------

def test_first_run_every_node_is_new_and_builds_the_tables(tmp_path):
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    results = run_results(p)
    assert set(results) == ALL
    for nid, r in results.items():
        assert r["status"] == "success", r
        assert r["reason"] == "new", r
        assert r["attempts"] == 1
        assert r["error"] is None
    assert results["source.a"]["row_count"] == 3
    assert results["transform.t2"]["row_count"] == 2
    assert table(p, "transform.t1") == [(1, 20), (2, 40), (3, 60)]
    assert table(p, "transform.t2") == [(1, 120), (2, 240)]
    assert table(p, "transform.t3") == [(2, 360)]
    assert table(p, "transform.tb") == [(2, 200)]
    nodes = state_nodes(p)
    assert set(nodes) == ALL
    for nid, entry in nodes.items():
        assert entry["status"] == "success"
        for key in ("duration", "row_count", "last_run"):
            assert key in entry, (nid, key)
    assert nodes["source.a"]["row_count"] == 3
    # and again: nothing to do
    assert_nothing_to_do(p)


# ---- config changed ------------------------------------------------------------------------

def test_transform_sql_change_reruns_node_and_its_downstream(proj, tmp_path):
    edit(proj, "nodes/transforms/t1.yml", "v * 2", "v * 3")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {
        "transform.t1": "config changed: transform SQL",
        "transform.t2": "upstream transform.t1 changed",
        "transform.t3": "upstream transform.t2 changed",
    }
    results = run_results(proj)
    for nid in ("source.a", "source.b", "transform.tb"):
        assert results[nid]["status"] == "cached"
        assert results[nid]["reason"] is None
    assert table(proj, "transform.t1") == [(1, 30), (2, 60), (3, 90)]
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert_nothing_to_do(proj)


def test_source_path_change_is_a_config_change(proj, tmp_path):
    shutil.copy(proj / "data" / "a.csv", proj / "data" / "a_copy.csv")
    edit(proj, "nodes/sources/a.yml", "data/a.csv", "data/a_copy.csv")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    r = run_results(proj)
    assert r["source.a"]["status"] == "success"
    assert r["source.a"]["reason"] == "config changed: source path"
    assert ran(proj) <= {"source.a", "transform.t1", "transform.t2", "transform.t3"}
    assert all_tables(proj) == clean_build(proj, tmp_path)


# ---- source data changed ------------------------------------------------------------------

def test_csv_bytes_change_reruns_source_and_downstream(proj, tmp_path):
    (proj / "data" / "a.csv").write_text("id,v\n1,11\n2,20\n3,30\n4,40\n")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {
        "source.a": "source data changed",
        "transform.t1": "upstream source.a changed",
        "transform.t2": "upstream transform.t1 changed",
        "transform.t3": "upstream transform.t2 changed",
    }
    assert table(proj, "source.a") == [(1, 11), (2, 20), (3, 30), (4, 40)]
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert_nothing_to_do(proj)


def test_same_size_csv_change_right_after_a_run_is_detected(proj, tmp_path):
    """Same byte count, written immediately after the build: the stat may look alike."""
    path = proj / "data" / "b.csv"
    st = os.stat(path)
    path.write_text("id,w\n1,100\n2,900\n")
    assert os.stat(path).st_size == st.st_size
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj)["source.b"] == "source data changed"
    assert ran(proj) == {"source.b", "transform.t2", "transform.t3", "transform.tb"}
    assert table(proj, "transform.tb") == [(2, 900)]
    assert all_tables(proj) == clean_build(proj, tmp_path)


# ---- previous run failed --------------------------------------------------------------------

def test_failed_node_reruns_until_fixed(proj, tmp_path):
    write_project(proj, {"nodes/transforms/bad.yml": """\
        kind: transform
        name: bad
        inputs:
          - ref: transform.t1
        transform: SELECT id, CAST('x' AS INT) AS v FROM input_0
        """})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    r = run_results(proj)["transform.bad"]
    assert r["status"] == "failed"
    assert r["reason"] == "new"
    assert r["error"] and "x" in r["error"]
    assert state_nodes(proj)["transform.bad"]["status"] == "failed"

    # unchanged: it runs again (and fails again) because the previous run failed
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    assert reasons(proj) == {"transform.bad": "previous run failed"}
    assert run_results(proj)["transform.bad"]["status"] == "failed"

    # fixed: it runs, succeeds, and only it runs
    edit(proj, "nodes/transforms/bad.yml", "CAST('x' AS INT)", "CAST('7' AS INT)")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"transform.bad": "previous run failed"}
    assert run_results(proj)["transform.bad"]["status"] == "success"
    assert table(proj, "transform.bad") == [(1, 7), (2, 7), (3, 7)]
    assert state_nodes(proj)["transform.bad"]["status"] == "success"
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert_nothing_to_do(proj)


# ---- output missing --------------------------------------------------------------------------

def test_dropped_table_is_rebuilt_as_output_missing(proj, tmp_path):
    con = duckdb.connect(str(proj / "target" / "seekrun.duckdb"))
    con.execute('DROP TABLE "transform"."t2"')
    con.close()
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    # the rebuilt table is built from the same inputs, so nothing downstream needs to run
    assert reasons(proj) == {"transform.t2": "output missing"}
    assert table(proj, "transform.t2") == [(1, 120), (2, 240)]
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert_nothing_to_do(proj)


def test_deleted_database_with_state_kept_rebuilds_everything(proj, tmp_path):
    (proj / "target" / "seekrun.duckdb").unlink()
    assert (proj / "target" / "state" / "execution_state.json").exists()
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    results = run_results(proj)
    assert set(results) == ALL
    for nid, r in results.items():
        assert r["status"] == "success", r
        assert r["reason"] == "output missing", r
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert_nothing_to_do(proj)


# ---- --full ----------------------------------------------------------------------------------

def test_full_reruns_everything_with_reason_full(proj, tmp_path):
    before = all_tables(proj)
    res = cli("run", "-p", str(proj), "--full")
    assert res.exit_code == 0, res.output
    results = run_results(proj)
    assert set(results) == ALL
    for r in results.values():
        assert r["status"] == "success" and r["reason"] == "--full", r
    assert all_tables(proj) == before
    assert_nothing_to_do(proj)


# ---- no-op edits -------------------------------------------------------------------------------

def _touch(p: Path) -> None:
    path = p / "data" / "a.csv"
    st = os.stat(path)
    later = st.st_mtime_ns + 5_000_000_000
    os.utime(path, ns=(later, later))


def _touch_now(p: Path) -> None:
    os.utime(p / "data" / "b.csv")


def _comment(p: Path) -> None:
    edit(p, "nodes/transforms/t2.yml", "SELECT t.id", "-- join the doubled rows with b\n  SELECT /* ids */ t.id")


def _whitespace(p: Path) -> None:
    edit(p, "nodes/transforms/t2.yml", "SELECT t.id, t.v + b.w AS vw",
         "SELECT   t.id,\n    t.v   +   b.w   AS vw   ")


def _whitespace_inline(p: Path) -> None:
    edit(p, "nodes/transforms/t1.yml", T1_SQL, "SELECT  id ,  v*2  AS  v  FROM  source.a  ")


def _description(p: Path) -> None:
    edit(p, "nodes/transforms/t1.yml", "description: doubled", "description: the values, doubled")
    edit(p, "nodes/sources/a.yml", "description: the a rows", "description: rows of a")


def _tags(p: Path) -> None:
    edit(p, "nodes/transforms/t1.yml", "tags: [daily]", "tags: [daily, pii]\nowner: someone-else")


@pytest.mark.parametrize("change", [_touch, _touch_now, _comment, _whitespace, _whitespace_inline,
                                    _description, _tags],
                         ids=["touch-csv", "touch-csv-now", "sql-comment", "sql-whitespace",
                              "sql-whitespace-inline", "description", "tags-owner"])
def test_no_op_edit_runs_nothing(proj, change):
    before = all_tables(proj)
    change(proj)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout, res.output
    assert ran(proj) == set()
    assert all(r["status"] == "cached" for r in run_results(proj).values())
    assert all_tables(proj) == before
    # still nothing on the run after that (the no-op edit did not leave anything pending)
    assert_nothing_to_do(proj)


def test_touch_then_real_change_is_still_detected(proj, tmp_path):
    """A touch must not hide a later content change (no stale hash cached for the file)."""
    _touch_now(proj)
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert ran(proj) == set()
    (proj / "data" / "b.csv").write_text("id,w\n1,100\n2,300\n")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj)["source.b"] == "source data changed"
    assert all_tables(proj) == clean_build(proj, tmp_path)


# ---- removed nodes ------------------------------------------------------------------------------

def test_removed_node_has_its_table_dropped_and_state_removed(proj, tmp_path):
    assert "transform.t3" in state_nodes(proj)
    (proj / "nodes" / "transforms" / "t3.yml").unlink()
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert ran(proj) == set()
    assert "transform.t3" not in run_results(proj)
    assert "transform.t3" not in state_nodes(proj)
    tables = query(proj, "SELECT schema_name || '.' || table_name FROM duckdb_tables() "
                         "WHERE database_name = current_database() AND schema_name <> '_seekrun'")
    assert ("transform.t3",) not in tables
    assert {t for (t,) in tables} == ALL - {"transform.t3"}
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert_nothing_to_do(proj)


def test_removed_node_added_back_is_new_again(proj):
    text = (proj / "nodes" / "transforms" / "t3.yml").read_text()
    (proj / "nodes" / "transforms" / "t3.yml").unlink()
    assert cli("run", "-p", str(proj)).exit_code == 0
    (proj / "nodes" / "transforms" / "t3.yml").write_text(text)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert reasons(proj) == {"transform.t3": "new"}
    assert table(proj, "transform.t3") == [(2, 360)]


# ---- more config and data changes ------------------------------------------------------------------

def test_reader_params_change_is_a_config_change(proj, tmp_path):
    edit(proj, "nodes/sources/b.yml", "table: data/b.csv", "table: data/b.csv\nparams:\n  header: true")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    r = run_results(proj)["source.b"]
    assert r["status"] == "success"
    assert r["reason"] == "config changed: reader params"
    assert all_tables(proj) == clean_build(proj, tmp_path)


def test_ref_style_change_is_a_no_op(proj):
    """input_0, kind.name and ref('kind.name') name the same input: switching between them is no change."""
    edit(proj, "nodes/transforms/t1.yml", "FROM source.a", "FROM input_0")
    edit(proj, "nodes/transforms/t3.yml", "ref('transform.t2')", "transform.t2")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout
    assert ran(proj) == set()


def test_glob_source_sees_added_and_removed_files(tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/parts/p1.csv": "id,v\n1,1\n",
        "data/parts/p2.csv": "id,v\n2,2\n",
        "nodes/parts.yml": "kind: source\nname: parts\nsource: csv\ntable: data/parts/*.csv\n",
        "nodes/total.yml": """\
            kind: transform
            name: total
            inputs: [{ref: source.parts}]
            transform: SELECT sum(v) AS s, count(*) AS n FROM input_0
            """,
    })
    assert cli("run", "-p", str(p)).exit_code == 0
    assert table(p, "transform.total") == [(3, 2)]
    (p / "data" / "parts" / "p3.csv").write_text("id,v\n3,30\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert reasons(p) == {"source.parts": "source data changed", "transform.total": "upstream source.parts changed"}
    assert table(p, "transform.total") == [(33, 3)]
    (p / "data" / "parts" / "p1.csv").unlink()
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert reasons(p)["source.parts"] == "source data changed"
    assert table(p, "transform.total") == [(32, 2)]
    assert_nothing_to_do(p)


def test_configured_database_path_is_used_and_checked(tmp_path):
    p = write_project(tmp_path / "proj", FILES, marker="name: testproj\ndatabase: target/custom.duckdb\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert not (p / "target" / "seekrun.duckdb").exists()
    assert query(p, 'SELECT * FROM "transform"."t3"', db="target/custom.duckdb") == [(2, 360)]
    (p / "target" / "custom.duckdb").unlink()
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert set(reasons(p).values()) == {"output missing"}
    assert ran(p) == ALL
    assert query(p, 'SELECT * FROM "transform"."t3"', db="target/custom.duckdb") == [(2, 360)]


def test_output_has_one_plain_line_per_finished_node(tmp_path):
    import re

    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert "\x1b[" not in res.stdout  # not a terminal: no ANSI codes
    rows = {nid: r["row_count"] for nid, r in run_results(p).items()}
    for nid in ALL:
        lines = [ln for ln in res.stdout.splitlines() if nid in ln.split()]
        assert len(lines) == 1, (nid, res.stdout)
        assert re.search(r"\d+(\.\d+)?\s*s\b", lines[0]), lines[0]  # a duration
        assert f"{rows[nid]} row{'s' if rows[nid] != 1 else ''}" in lines[0], lines[0]  # "1 row" (issue 11)
