"""Issue 10: never wrong, nothing lost, as a user sees it.

Kills at the points where a table (or an exposure's file) and the state could disagree, a
source file changing while it is read, ragged CSVs, an older database put back, a Python node
dropping another node's table, a database shared by two projects, the removal guard,
symlinked node folders, an edit that hides its mtime, and a torn journal line.

Kills are real: a `python -m seekrun run` process with SEEKRUN_FAULT=<point>[:<node>] SIGKILLs
itself at that point (seekrun/faults.py).  After each, the next plain run must converge to the
tables (and exposure files) a clean build of the project gives, redoing no finished node.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from conftest import (all_tables, clean_build, cli, cli_proc, journal_successes, query, ran, reasons,
                      run_results, table, target_snapshot, write_project)

OUTPUT_CHANGED = "output does not match its last build (an interrupted run, or changed outside seekrun)"
KILLED = -signal.SIGKILL


def no_traceback(res) -> None:
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output


def temp_files(project: Path) -> list[str]:
    """Temp files of seekrun's atomic writes (".<name>.tmp-<pid>") and of exposures
    (".seekrun-tmp-...") anywhere in the project."""
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*")
                  if ".tmp-" in p.name or p.name.startswith(".seekrun-tmp-"))


# ---------------------------------------------------------------------------------------------
# 1. kills between a commit and its journal line, during the state fold, during the manifest write

KILL_FILES = {
    "data/s.csv": "id,v\n1,1\n2,2\n3,3\n",
    "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
    # sorts before transform.t, so with --threads 1 it finishes before t starts
    "nodes/a_side.yml": ("kind: transform\nname: a_side\ninputs:\n  - ref: source.s\n"
                         "transform: SELECT id, v + 100 AS v FROM input_0\n"),
    "nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT id, v * 2 AS v FROM input_0\n",
    "nodes/u.yml": "kind: transform\nname: u\ninputs:\n  - ref: transform.t\ntransform: SELECT sum(v) AS v FROM input_0\n",
    "nodes/out.yml": ("kind: exposure\nname: out\ntype: file\ninputs:\n  - ref: transform.t\n"
                      "params:\n  path: target/exports/out.csv\n"),
}
KILL_IDS = {"source.s", "transform.a_side", "transform.t", "transform.u", "exposure.out"}
EXPOSURE = "target/exports/out.csv"


def kill_project(tmp_path: Path) -> Path:
    p = write_project(tmp_path / "proj", KILL_FILES)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == KILL_IDS
    return p


def edit(p: Path, rel: str, old: str, new: str) -> None:
    path = p / rel
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def killed_run(p: Path, fault: str) -> list[str]:
    """A real seekrun process that SIGKILLs itself at the fault point; the nodes it finished
    (journaled by this run: the journal may still hold an earlier killed run's lines)."""
    earlier = len(journal_successes(p))
    res = cli_proc("run", "-p", str(p), "--threads", "1", env={"SEEKRUN_FAULT": fault})
    assert res.exit_code == KILLED, f"{fault}: exit {res.exit_code}\n{res.output}"
    return journal_successes(p)[earlier:]


def assert_converged(p: Path, tmp_path: Path) -> None:
    """Tables and the exposure's file are those of a clean build; nothing is left to do; no temp
    file is left behind."""
    assert all_tables(p) == clean_build(p, tmp_path)
    fresh = tmp_path / "fresh_copy"
    assert (p / EXPOSURE).read_bytes() == (fresh / EXPOSURE).read_bytes()
    assert temp_files(p) == []
    again = cli("run", "-p", str(p))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


def test_kill_between_commit_and_journal_then_revert_rebuilds_the_node(tmp_path):
    p = kill_project(tmp_path)
    edit(p, "nodes/a_side.yml", "v + 100", "v + 200")  # a node that finishes before the kill
    edit(p, "nodes/t.yml", "v * 2", "v * 3")
    finished = killed_run(p, "after_commit:transform.t")
    assert finished == ["transform.a_side"]
    # the kill came after t's commit: its table holds the edit, the state still says v * 2
    assert table(p, "transform.t") == [(1, 3), (2, 6), (3, 9)]

    edit(p, "nodes/t.yml", "v * 3", "v * 2")  # revert: the config is the recorded one again
    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert reasons(p) == {"transform.t": OUTPUT_CHANGED}, res.output
    assert "is not the database the last run left" not in res.output  # a kill explains it
    assert run_results(p)["transform.a_side"]["status"] == "cached"  # finished before the kill: kept
    assert table(p, "transform.t") == [(1, 2), (2, 4), (3, 6)]
    assert_converged(p, tmp_path)


@pytest.mark.parametrize("fault", ["exposure_write:exposure.out", "after_commit:exposure.out"])
def test_kill_while_an_exposure_writes_then_revert_gives_the_right_file(fault, tmp_path):
    p = kill_project(tmp_path)
    before = (p / EXPOSURE).read_bytes()
    edit(p, "nodes/t.yml", "v * 2", "v * 3")
    finished = killed_run(p, fault)
    assert finished == ["transform.t"]
    written = (p / EXPOSURE).read_bytes()
    if fault.startswith("after_commit"):
        assert written != before  # renamed into place, not journaled
    else:
        assert written == before  # its temp file is written, not renamed

    edit(p, "nodes/t.yml", "v * 3", "v * 2")
    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res)
    want = {"transform.t": "config changed: transform SQL"}
    if fault.startswith("after_commit"):
        want["exposure.out"] = OUTPUT_CHANGED
    assert reasons(p) == want, res.output
    assert (p / EXPOSURE).read_bytes() == before
    assert_converged(p, tmp_path)


@pytest.mark.parametrize("first, second", [
    ("after_commit:transform.t", "state_fold"),
    ("after_commit:exposure.out", "write:manifest.json"),
    ("exposure_write:exposure.out", "after_commit:transform.u"),
    ("state_folded", "after_commit:transform.t"),
])
def test_two_kills_in_a_row_then_a_normal_run_converges(first, second, tmp_path):
    p = kill_project(tmp_path)
    edit(p, "nodes/a_side.yml", "v + 100", "v + 200")
    edit(p, "nodes/t.yml", "v * 2", "v * 3")
    killed_run(p, first)
    edit(p, "nodes/t.yml", "v * 3", "v * 4")  # edited again between the two kills
    finished = killed_run(p, second)

    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert not (ran(p) & set(finished)), (finished, ran(p))
    for nid in finished:
        assert run_results(p)[nid]["status"] == "cached"
    assert table(p, "transform.t") == [(1, 4), (2, 8), (3, 12)]
    assert_converged(p, tmp_path)


@pytest.mark.parametrize("fault", ["state_fold", "state_folded", "write:manifest.json",
                                   "write:execution_state.json", "write:run_results.json"])
def test_kill_during_the_state_fold_or_a_target_write_converges(fault, tmp_path):
    p = kill_project(tmp_path)
    edit(p, "nodes/a_side.yml", "v + 100", "v + 200")
    edit(p, "nodes/t.yml", "v * 2", "v * 3")
    planned = {"transform.a_side", "transform.t", "transform.u", "exposure.out"}
    finished = killed_run(p, fault)
    if fault == "write:manifest.json":
        assert finished == []  # the manifest is written before anything runs
    elif fault == "write:run_results.json":  # after the fold: the journal is gone, the state has all
        assert not (p / "target" / "state" / "execution_state.journal").exists()
        state = json.loads((p / "target" / "state" / "execution_state.json").read_text())["nodes"]
        assert state["transform.t"]["config_hash"] == json.loads(
            (p / "target" / "manifest.json").read_text())["nodes"]["transform.t"]["hashes"]["config"]
        finished = sorted(planned)
    else:
        assert set(finished) == planned  # every node finished: the kill came at the end

    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert ran(p) == planned - set(finished), res.output
    assert table(p, "transform.t") == [(1, 3), (2, 6), (3, 9)]
    assert_converged(p, tmp_path)


# ---------------------------------------------------------------------------------------------
# 2. a source file changing between parse (hashed B) and load (read C)

MUTATOR_PY = '''\
"""Sorts before source.s in Kahn order: with --threads 1 it runs first, and rewrites the CSV
the parse has just hashed (once: only while the flag file is there)."""
from pathlib import Path

from seekrun.pipeline import model

ROOT = Path(__file__).resolve().parents[1]


@model(name="a_mutator")
def a_mutator(ctx):
    flag = ROOT / "mutate.flag"
    if flag.exists():
        (ROOT / "data" / "s.csv").write_text("id,v\\n1,1000\\n2,2000\\n3,3000\\n4,4000\\n")  # C
        flag.unlink()
    return ctx.con.sql("SELECT 1 AS done")
'''


def test_source_changed_between_parse_and_load_is_rebuilt_when_restored(tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/s.csv": "id,v\n1,1\n2,2\n",  # A
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT sum(v) AS v FROM input_0\n",
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output

    version_b = "id,v\n1,10\n2,20\n3,30\n"
    (p / "data" / "s.csv").write_text(version_b)
    (p / "nodes" / "mutator.py").write_text(MUTATOR_PY)
    (p / "mutate.flag").write_text("")
    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert not (p / "mutate.flag").exists(), "the mutator did not run before the source"
    assert table(p, "source.s") == [(1, 1000), (2, 2000), (3, 3000), (4, 4000)]  # C was loaded
    warning = [ln for ln in res.output.splitlines() if "data/s.csv changed while source.s read it" in ln]
    assert warning and "rebuilt on the next run" in warning[0], res.output
    assert run_results(p)["source.s"]["warnings"], run_results(p)["source.s"]

    (p / "data" / "s.csv").write_text(version_b)  # B again: what the state saw hashed
    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "Nothing to do" not in res.stdout
    assert ran(p) == {"source.s", "transform.t"}, res.output
    assert reasons(p)["source.s"] == "source data changed"
    assert reasons(p)["transform.t"] == "upstream source.s changed"
    assert table(p, "source.s") == [(1, 10), (2, 20), (3, 30)]
    assert table(p, "transform.t") == [(60,)]
    assert all_tables(p) == clean_build(p, tmp_path)
    again = cli("run", "-p", str(p))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


# ---------------------------------------------------------------------------------------------
# 3. ragged CSVs fail their node, naming the line

RAGGED = {
    "short row after good rows": ("id,a,b\n1,2,3\n2,3,4\n3,4,5\n4,3\n5,6,7\n", 5, "4,3"),
    "extra field in the last row": ("id,a,b\n1,2,3\n2,3,4\n3,4,5,6\n", 4, "3,4,5,6"),
    "a row with one field": ("id,a,b\n1,2,3\n7\n2,3,4\n", 3, "7"),
}


@pytest.mark.parametrize("case", sorted(RAGGED))
def test_ragged_csv_fails_its_node_with_the_line_and_fixing_it_builds(case, tmp_path):
    text, line, shown = RAGGED[case]
    p = write_project(tmp_path / "proj", {
        "data/good.csv": "id,x\n1,10\n2,20\n",
        "data/bad.csv": text,
        "nodes/good.yml": "kind: source\nname: good\nsource: csv\ntable: data/good.csv\n",
        "nodes/bad.yml": "kind: source\nname: bad\nsource: csv\ntable: data/bad.csv\n",
        "nodes/uses.yml": "kind: transform\nname: uses\ninputs:\n  - ref: source.bad\ntransform: SELECT * FROM input_0\n",
        "nodes/other.yml": "kind: transform\nname: other\ninputs:\n  - ref: source.good\ntransform: SELECT sum(x) AS x FROM input_0\n",
    })
    res = cli_proc("run", "-p", str(p), "--continue-on-error")
    assert res.exit_code == 1, res.output
    no_traceback(res)
    results = run_results(p)
    assert results["source.bad"]["status"] == "failed"
    error = results["source.bad"]["error"]
    assert f"line {line} of data/bad.csv" in error, error
    assert repr(shown) in error, error
    assert f"line {line} of data/bad.csv" in res.output
    assert results["transform.uses"]["status"] == "skipped"
    assert results["transform.other"]["status"] == "success"
    assert table(p, "source.good") == [(1, 10), (2, 20)]
    assert table(p, "transform.other") == [(30,)]
    assert "source.bad" not in all_tables(p)  # no single-column guess, no partial table

    (p / "data" / "bad.csv").write_text("id,a,b\n1,2,3\n2,3,4\n3,4,5\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == {"source.bad", "transform.uses"}
    assert table(p, "source.bad") == [(1, 2, 3), (2, 3, 4), (3, 4, 5)]
    assert query(p, "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'source' "
                    "AND table_name = 'bad'") == [(3,)]
    assert all_tables(p) == clean_build(p, tmp_path)


# ---------------------------------------------------------------------------------------------
# 6. an older database put back; a Python node dropping another node's table

DB_FILES = {
    "data/s.csv": "id,v\n1,1\n2,2\n3,3\n",
    "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
    "nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT id, v * 2 AS v FROM input_0\n",
    "nodes/u.yml": "kind: transform\nname: u\ninputs:\n  - ref: transform.t\ntransform: SELECT sum(v) AS v FROM input_0\n",
    "nodes/w.yml": "kind: transform\nname: w\ninputs:\n  - ref: source.s\ntransform: SELECT count(*) AS n FROM input_0\n",
}


def test_older_database_put_back_rebuilds_exactly_the_stale_tables(tmp_path):
    p = write_project(tmp_path / "proj", DB_FILES)
    assert cli("run", "-p", str(p)).exit_code == 0
    db = p / "target" / "seekrun.duckdb"
    old = tmp_path / "old.duckdb"
    shutil.copy2(db, old)

    edit(p, "nodes/t.yml", "v * 2", "v * 5")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == {"transform.t", "transform.u"}

    shutil.copy2(old, db)  # the older file put back (as a restore from a backup would)
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert "Nothing to do" not in res.stdout
    assert ran(p) == {"transform.t", "transform.u"}, res.output
    assert reasons(p) == {"transform.t": OUTPUT_CHANGED, "transform.u": OUTPUT_CHANGED}
    warning = [ln for ln in res.output.splitlines() if "is not the database the last run left" in ln]
    assert warning and "transform.t, transform.u" in warning[0], res.output
    assert table(p, "transform.t") == [(1, 5), (2, 10), (3, 15)]
    assert all_tables(p) == clean_build(p, tmp_path)
    again = cli("run", "-p", str(p))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


def test_database_from_another_build_of_the_same_project_is_seen(tmp_path):
    """A database copied from a second checkout (its own identity) with the same node names:
    the stamps differ from the records, so every table is rebuilt, never trusted by name."""
    p = write_project(tmp_path / "proj", DB_FILES)
    assert cli("run", "-p", str(p)).exit_code == 0
    other = write_project(tmp_path / "other", {**DB_FILES, "data/s.csv": "id,v\n1,7\n"})
    assert cli("run", "-p", str(other)).exit_code == 0
    shutil.copy2(other / "target" / "seekrun.duckdb", p / "target" / "seekrun.duckdb")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert "is not the database the last run left" in res.output, res.output
    assert ran(p) == {"source.s", "transform.t", "transform.u", "transform.w"}
    assert all_tables(p) == clean_build(p, tmp_path)


DROPPER_PY = '''\
from seekrun.pipeline import transform


@transform(name="z_dropper", inputs=["source.s"])
def z_dropper(ctx):
    ctx.con.execute('DROP TABLE transform.w')
    return ctx.ref("source.s")
'''


def test_python_node_dropping_another_nodes_table_is_warned_and_rebuilt(tmp_path):
    p = write_project(tmp_path / "proj", DB_FILES)
    assert cli("run", "-p", str(p)).exit_code == 0
    (p / "nodes" / "dropper.py").write_text(DROPPER_PY)
    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert ran(p) == {"transform.z_dropper"}
    warning = [ln for ln in res.output.splitlines() if "transform.w" in ln and "warning" in ln.lower()]
    assert warning and "disappeared" in warning[0], res.output
    assert "transform.w" not in all_tables(p)

    # the dropper is left out (it is a project file, the user removes it) and the table comes back
    (p / "nodes" / "dropper.py").unlink()
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == {"transform.w"}
    assert reasons(p)["transform.w"] == "output missing"
    assert table(p, "transform.w") == [(3,)]
    assert all_tables(p) == clean_build(p, tmp_path)


def test_python_node_dropping_a_table_is_rebuilt_even_when_it_runs_again(tmp_path):
    """The dropper stays: each run it drops transform.w again after w is checked, so each run
    warns and the next one rebuilds w. Never "Nothing to do" over a missing table."""
    p = write_project(tmp_path / "proj", {**DB_FILES, "nodes/dropper.py": DROPPER_PY})
    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "transform.w" not in all_tables(p)
    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "Nothing to do" not in res.stdout
    assert reasons(p) == {"transform.w": "output missing"}
    assert table(p, "transform.w") == [(3,)]


# ---------------------------------------------------------------------------------------------
# 7. a database shared by two projects; a foreign DuckDB file; an external path without opting in

def shared_project(root: Path, name: str, db: str = "../shared.duckdb", allow: bool = True) -> Path:
    marker = f"name: {name}\ndatabase: {db}\n" + ("allow_external_database: true\n" if allow else "")
    return write_project(root, {
        "seekrun_project.yml": marker,
        "data/s.csv": "id,v\n1,1\n2,2\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT sum(v) AS v FROM input_0\n",
    })


def test_two_projects_sharing_one_database_the_second_is_refused(tmp_path):
    one = shared_project(tmp_path / "one", "one")
    res = cli("run", "-p", str(one))
    assert res.exit_code == 0, res.output
    shared = tmp_path / "shared.duckdb"
    assert shared.is_file()
    tables = all_tables_at(shared)

    two = shared_project(tmp_path / "two", "two")
    res = cli_proc("run", "-p", str(two))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    line = [ln for ln in res.stderr.splitlines() if "belongs to the project at" in ln]
    assert line and str(one.resolve()) in line[0], res.output
    assert all_tables_at(shared) == tables  # the first project's tables are untouched
    # and a dry run is refused the same way
    res = cli_proc("run", "-p", str(two), "--dry-run")
    assert res.exit_code == 2 and str(one.resolve()) in res.stderr, res.output
    # the owner still runs fine
    res = cli("run", "-p", str(one))
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output


def all_tables_at(db: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return {f"{s}.{t}": sorted(con.execute(f'SELECT * FROM "{s}"."{t}"').fetchall(), key=repr)
                for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
    finally:
        con.close()


def test_foreign_duckdb_file_with_tables_is_refused(tmp_path):
    import duckdb

    foreign = tmp_path / "shared.duckdb"
    con = duckdb.connect(str(foreign))
    con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    con.close()
    p = shared_project(tmp_path / "one", "one")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    assert "holds tables but was not made by seekrun for this project" in res.stderr, res.output
    assert all_tables_at(foreign) == {"main.precious": [(42,)]}


@pytest.mark.parametrize("db", ["../shared.duckdb", "ABSOLUTE"])
def test_external_database_without_opting_in_is_refused(db, tmp_path):
    if db == "ABSOLUTE":
        db = str(tmp_path / "elsewhere" / "x.duckdb")
    p = shared_project(tmp_path / "one", "one", db=db, allow=False)
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    assert f"database '{db}' is outside the project" in res.stderr, res.output
    assert "allow_external_database: true" in res.stderr
    assert not (tmp_path / "shared.duckdb").exists() and not (tmp_path / "elsewhere").exists()


# ---------------------------------------------------------------------------------------------
# 8. the removal guard

def many_nodes(root: Path, n: int = 8) -> tuple[Path, set[str]]:
    files = {"data/s.csv": "id\n1\n2\n", "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n"}
    for k in range(n):
        files[f"nodes/t{k}.yml"] = (f"kind: transform\nname: t{k}\ninputs:\n  - ref: source.s\n"
                                    f"transform: SELECT id + {k} AS id FROM input_0\n")
    return write_project(root, files), {"source.s", *(f"transform.t{k}" for k in range(n))}


def test_node_paths_typo_is_refused_and_drops_nothing(tmp_path):
    p, ids = many_nodes(tmp_path / "proj")
    assert cli("run", "-p", str(p)).exit_code == 0
    tables = all_tables(p)
    (p / "seekrun_project.yml").write_text("name: testproj\nnode_paths: [node]\n")
    before = target_snapshot(p)
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    assert "node path 'node' does not exist" in res.stderr, res.output
    assert all_tables(p) == tables
    assert target_snapshot(p) == before
    res = cli_proc("run", "-p", str(p), "--allow-removals")  # a missing folder is never "no nodes"
    assert res.exit_code == 2 and "node path 'node' does not exist" in res.stderr, res.output
    assert all_tables(p) == tables


def test_deleting_most_node_files_is_refused_unless_allowed(tmp_path):
    p, ids = many_nodes(tmp_path / "proj")
    assert cli("run", "-p", str(p)).exit_code == 0
    tables = all_tables(p)
    for k in range(1, 8):
        (p / "nodes" / f"t{k}.yml").unlink()
    gone = sorted(f"transform.t{k}" for k in range(1, 8))

    before = target_snapshot(p)
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    lines = [ln for ln in res.stderr.splitlines() if "would remove" in ln]
    assert len(lines) == 1, res.output
    assert "would remove 7 of the 9 built nodes" in lines[0]
    assert ", ".join(gone[:5]) in lines[0] and "and 2 more" in lines[0], lines[0]
    assert "--allow-removals" in lines[0]
    assert all_tables(p) == tables
    assert target_snapshot(p) == before

    res = cli_proc("run", "-p", str(p), "--dry-run")
    assert res.exit_code == 0, res.output
    for nid in gone:
        assert any(ln.split()[:2] == ["DROP", nid] for ln in res.stdout.splitlines()), (nid, res.stdout)
    assert "warning" in res.stderr and "would remove 7 of the 9 built nodes" in res.stderr, res.output
    assert all_tables(p) == tables

    res = cli_proc("run", "-p", str(p), "--allow-removals")
    assert res.exit_code == 0, res.output
    for nid in gone:
        assert any(ln.split()[:2] == ["DROP", nid] and "removed from the project" in ln
                   for ln in res.stdout.splitlines()), (nid, res.stdout)
    assert set(all_tables(p)) == {"source.s", "transform.t0"}
    state = json.loads((p / "target" / "state" / "execution_state.json").read_text())
    assert set(state["nodes"]) == {"source.s", "transform.t0"}


def test_removing_a_few_nodes_needs_no_flag(tmp_path):
    p, ids = many_nodes(tmp_path / "proj")
    assert cli("run", "-p", str(p)).exit_code == 0
    (p / "nodes" / "t7.yml").unlink()
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert any(ln.split()[:2] == ["DROP", "transform.t7"] for ln in res.stdout.splitlines()), res.stdout
    assert "transform.t7" not in all_tables(p)


# ---------------------------------------------------------------------------------------------
# 9. symlinked node folders

def test_symlinked_node_folder_inside_the_project_is_followed(tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/s.csv": "id\n1\n2\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "shared_nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT count(*) AS n FROM input_0\n",
    })
    os.symlink("../shared_nodes", p / "nodes" / "linked")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert ran(p) == {"source.s", "transform.t"}
    assert table(p, "transform.t") == [(2,)]


def test_symlink_loop_in_node_folders_does_not_hang(tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/s.csv": "id\n1\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "nodes/sub/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT * FROM input_0\n",
    })
    os.symlink("..", p / "nodes" / "sub" / "up")  # nodes/sub/up -> nodes (a loop)
    os.symlink(".", p / "nodes" / "self")
    res = cli_proc("run", "-p", str(p), timeout=60)
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert ran(p) == {"source.s", "transform.t"}  # each node once, despite the loops


def test_node_folder_symlinked_outside_the_project_is_refused(tmp_path):
    outside = write_project(tmp_path / "outside", {
        "t.yml": "kind: transform\nname: sneaky\ntransform: SELECT 1 AS x\n"}, marker=None)
    p = write_project(tmp_path / "proj", {"nodes/a.yml": "kind: transform\nname: a\ntransform: SELECT 1 AS x\n"})
    os.symlink(outside, p / "nodes" / "ext")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    assert "nodes/ext: folder is a symlink to outside the project" in res.stderr, res.output
    assert not (p / "target" / "seekrun.duckdb").exists()
    # node_paths itself pointing at a link to outside
    os.unlink(p / "nodes" / "ext")
    os.symlink(outside, p / "ext")
    (p / "seekrun_project.yml").write_text("name: testproj\nnode_paths: [nodes, ext]\n")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "outside the project" in res.stderr, res.output


# ---------------------------------------------------------------------------------------------
# 10. an in-place edit that keeps the size and puts the old mtime back

@pytest.mark.parametrize("what", ["data", "node"])
def test_same_size_edit_with_the_old_mtime_put_back_reruns(what, tmp_path):
    p = write_project(tmp_path / "proj", {
        "data/s.csv": "id,v\n1,1\n2,2\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT sum(v) AS v FROM input_0\n",
    })
    path, old, new = ((p / "data" / "s.csv", "2,2", "2,7") if what == "data" else
                      (p / "nodes" / "t.yml", "sum(v)", "max(v)"))
    # an mtime long past: seekrun's caches trust a stat signature only once the file is not
    # being written any more (a file modified seconds ago is always read)
    os.utime(path, (1_600_000_000, 1_600_000_000))
    assert cli("run", "-p", str(p)).exit_code == 0
    st = os.stat(path)
    text = path.read_text()
    with open(path, "r+") as f:  # in place: same inode, same size
        f.write(text.replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(path)
    assert (st2.st_size, st2.st_mtime_ns, st2.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    if what == "data":
        assert reasons(p) == {"source.s": "source data changed", "transform.t": "upstream source.s changed"}
        assert table(p, "transform.t") == [(8,)]
    else:
        assert reasons(p) == {"transform.t": "config changed: transform SQL"}
        assert table(p, "transform.t") == [(2,)]


# ---------------------------------------------------------------------------------------------
# 13. a torn last journal line does not swallow the next record

def test_record_appended_after_a_torn_journal_line_survives_reload(tmp_path):
    from seekrun.state import StateStore

    state_dir = tmp_path / "state"
    store = StateStore(state_dir)
    store.load()
    store.record("transform.a", {"status": "success", "config_hash": "c1", "output_hash": "o1"})
    store.close()
    journal = state_dir / "execution_state.journal"
    with open(journal, "ab") as f:  # a killed run's half-written line
        f.write(b'{"entry":{"status":"succ')

    store = StateStore(state_dir)
    assert set(store.load()) == {"transform.a"}
    store.record("transform.b", {"status": "success", "config_hash": "c2", "output_hash": "o2"})
    store.record("transform.c", {"status": "success", "config_hash": "c3", "output_hash": "o3"})
    store.close()

    reloaded = StateStore(state_dir).load()
    assert set(reloaded) == {"transform.a", "transform.b", "transform.c"}
    assert reloaded["transform.b"]["output_hash"] == "o2"


def test_torn_journal_line_from_a_killed_run_loses_only_what_was_in_flight(tmp_path):
    """The same through the CLI: a run killed mid-journal-line, then a run killed after one more
    node: every node journaled by the second run is kept by the third."""
    p = kill_project(tmp_path)
    edit(p, "nodes/a_side.yml", "v + 100", "v + 200")
    edit(p, "nodes/t.yml", "v * 2", "v * 3")
    killed_run(p, "after_commit:transform.t")
    journal = p / "target" / "state" / "execution_state.journal"
    with open(journal, "ab") as f:
        f.write(b'{"entry":{"status":"success","output_hash":"x')  # torn, no newline
    finished = killed_run(p, "after_commit:transform.u")
    assert "transform.t" in finished, finished
    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert ran(p) == {"transform.u", "exposure.out"} - set(finished), res.output
    assert_converged(p, tmp_path)
