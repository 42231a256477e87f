"""Nodes decided after a database source is re-read (cached on the guess that it reads what it
read last time), and nodes that stop being executable: what the user sees in the plan, the run's
lines, run_results.json, and tables equal to a clean build."""
from __future__ import annotations

import json

import pytest

import pgserver
from conftest import all_tables, clean_build, cli, reasons, run_results, write_project

pg = pgserver.fixture()

PROFILE = pgserver.profile_yaml("rr")

SOURCE_T = "kind: source\nname: t\nsource: postgresql\ntable: public.t\nconnection: local_pg\n"


def transform(name: str, of: str, sql: str | None = None) -> str:
    return (f"kind: transform\nname: {name}\ninputs: [{of}]\n"
            f"transform: {sql or f'SELECT * FROM ref({chr(39)}{of}{chr(39)})'}\n")


@pytest.fixture
def rr(pg, tmp_path, monkeypatch):
    """A fresh database `rr` with public.t (w int): 1, 2."""
    pgserver.fresh_database(pg, "rr", "CREATE TABLE public.t (w int); INSERT INTO public.t VALUES (1), (2);",
                            monkeypatch, tmp_path / "home_seeknal")
    return tmp_path


def project(root, nodes: list[str], files: dict | None = None):
    return write_project(root / "proj", {"profiles.yml": PROFILE, "nodes/all.yml": "---\n".join(nodes),
                                         **(files or {})})


def test_run_stopped_by_a_failure_does_not_call_an_unstarted_recheck_node_cached(rr, pg):
    proj = project(rr, [SOURCE_T, transform("m", "source.t"),
                        "kind: source\nname: f\nsource: csv\ntable: data/f.csv\n",
                        transform("e", "source.f", "SELECT CASE WHEN w > 100 THEN error('boom') ELSE w END AS w "
                                                   "FROM ref('source.f')")],
                   {"data/f.csv": "w\n1\n"})
    assert cli("run", "-p", str(proj)).exit_code == 0
    (proj / "data" / "f.csv").write_text("w\n500\n")
    pg.sql("UPDATE public.t SET w = w * 10", "rr")
    res = cli("run", "-p", str(proj), "--threads", "1")
    assert res.exit_code == 1, res.output
    results = run_results(proj)
    assert results["transform.e"]["status"] == "failed"
    assert results["source.t"]["status"] == "success"  # re-read: t's table holds the new rows now
    m = results["transform.m"]
    assert (m["status"], m["skip"]) == ("skipped", "after_failure"), m
    assert m["reason"] == "upstream source.t changed"
    assert "Not run because of the failure: transform.m" in res.stdout
    assert "cached      : 0" in res.stdout

    (proj / "data" / "f.csv").write_text("w\n5\n")
    fixed = cli("run", "-p", str(proj))
    assert fixed.exit_code == 0, fixed.output
    assert reasons(proj)["transform.m"] == "upstream source.t changed"
    assert all_tables(proj) == clean_build(proj, rr)


def test_filter_leaves_out_a_dependent_whose_reread_input_changed(rr, pg):
    proj = project(rr, [SOURCE_T, transform("m", "source.t"), transform("n", "transform.m")])
    assert cli("run", "-p", str(proj)).exit_code == 0

    same = cli("run", "-p", str(proj), "--types", "source")  # the same rows: nothing else needs to run
    assert same.exit_code == 0, same.output
    assert {k: r["status"] for k, r in run_results(proj).items()} == \
        {"source.t": "success", "transform.m": "cached", "transform.n": "cached"}

    pg.sql("INSERT INTO public.t VALUES (3)", "rr")
    res = cli("run", "-p", str(proj), "--types", "source")
    assert res.exit_code == 0, res.output
    m = run_results(proj)["transform.m"]
    assert (m["status"], m["skip"], m["error"]) == ("skipped", "filtered", "left out by the filter: still needs to run")
    assert m["reason"] == "upstream source.t changed"
    assert "OK     transform.m" not in res.stdout
    assert "Left out by the filter, still to run: transform.m" in res.stdout
    assert "skipped     : 1 (1 left out by a filter)" in res.stdout

    again = cli("run", "-p", str(proj), "--types", "source")  # still to run, by the plan now
    assert run_results(proj)["transform.m"]["skip"] == "filtered", again.output
    full = cli("run", "-p", str(proj))
    assert full.exit_code == 0, full.output
    assert reasons(proj)["transform.m"] == "upstream source.t changed"
    assert all_tables(proj) == clean_build(proj, rr)


def test_dry_run_and_header_say_what_runs_only_if_reread_data_changed(rr, pg):
    proj = project(rr, [SOURCE_T] + [transform(x, "source.t") for x in "abcd"])
    assert cli("run", "-p", str(proj)).exit_code == 0
    plan = cli("run", "-p", str(proj), "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "RUN    source.t  (re-read (database source))" in plan.stdout
    assert ("MAYBE  transform.a  (runs if what source.t reads has changed: database sources are re-read "
            "every run)") in plan.stdout
    assert "Plan: 1 to run, 4 to check after re-reading, 0 cached, 0 skipped" in plan.stdout
    assert "CACHED" not in cli("run", "-p", str(proj), "--dry-run", "--verbose").stdout
    shown = cli("show", "-p", str(proj), "transform.a")
    assert "transform.a  [may run (runs if what source.t reads has changed" in shown.stdout, shown.output

    data = json.loads(cli("run", "-p", str(proj), "--dry-run", "--json").stdout)
    a = next(r for r in data["results"] if r["node_id"] == "transform.a")
    assert (a["status"], a["after_reread"]) == ("cached", ["source.t"])
    assert data["cached_nodes"] == 4 and data["recheck_nodes"] == 4
    t = next(r for r in data["results"] if r["node_id"] == "source.t")
    assert (t["status"], t["after_reread"]) == ("pending", [])

    pg.sql("UPDATE public.t SET w = -w", "rr")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Running 1 of 5 nodes (and up to 4 more if re-read data changed)" in res.stdout
    assert all(f"OK     transform.{x}" in res.stdout for x in "abcd")
    assert all_tables(proj) == clean_build(proj, rr)

    same = cli("run", "-p", str(proj))
    assert "Running 1 of 5 nodes (and up to 4 more if re-read data changed)" in same.stdout
    assert "OK     transform.a" not in same.stdout and "cached      : 4" in same.stdout
    assert run_results(proj)["transform.a"]["after_reread"] == ["source.t"]


def _state(proj) -> dict:
    from seekrun.state import StateStore

    store = StateStore(proj / "target" / "state")
    try:
        return store.load(repair=False)
    finally:
        store.close()


def test_node_that_becomes_not_executable_loses_its_build(tmp_path):
    csv = "kind: source\nname: x\nsource: csv\ntable: data/x.csv\n"
    others = [f"kind: source\nname: z{i}\nsource: csv\ntable: data/x.csv\n" for i in range(3)]
    files = {"seekrun_project.yml": "name: testproj\nexposure_paths: [out]\n", "data/x.csv": "a\n1\n",
             "nodes/x.yml": csv, "nodes/y.yml": transform("y", "source.x"),
             "nodes/z.yml": "---\n".join(others),
             "nodes/out.yml": "kind: exposure\nname: out\ntype: file\ndepends_on:\n  - ref: transform.y\n"
                              "params:\n  format: csv\n  path: out/y.csv\n"}
    proj = write_project(tmp_path / "p", files)
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert (proj / "out" / "y.csv").exists()

    (proj / "nodes" / "x.yml").write_text(csv.replace("source: csv", "source: excel"))
    plan = cli("run", "-p", str(proj), "--dry-run")
    assert "DROP   source.x  (not executable by seekrun)" in plan.stdout, plan.output
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    for nid in ("source.x", "transform.y", "exposure.out"):
        assert f"DROP   {nid}  (not executable by seekrun)" in res.stdout
        assert run_results(proj)[nid]["skip"] == "not_executable"
        assert nid not in _state(proj)
    assert not (proj / "out" / "y.csv").exists()
    assert all_tables(proj) == clean_build(proj, tmp_path)
    assert json.loads((proj / "target" / "run_results.json").read_text())["dropped"] == \
        ["exposure.out", "source.x", "transform.y"]
    quiet = cli("run", "-p", str(proj))  # said once: nothing more to drop
    assert quiet.exit_code == 0 and "DROP" not in quiet.stdout, quiet.output

    (proj / "nodes" / "x.yml").write_text(csv)
    back = cli("run", "-p", str(proj))
    assert back.exit_code == 0, back.output
    assert reasons(proj) == {"source.x": "new", "transform.y": "new", "exposure.out": "new"}
    assert (proj / "out" / "y.csv").exists()
    assert all_tables(proj) == clean_build(proj, tmp_path)


def test_removal_guard_counts_nodes_that_became_not_executable(tmp_path):
    csv = "kind: source\nname: x\nsource: csv\ntable: data/x.csv\n"
    proj = write_project(tmp_path / "p", {"data/x.csv": "a\n1\n", "nodes/x.yml": csv,
                                          "nodes/y.yml": transform("y", "source.x")})
    assert cli("run", "-p", str(proj)).exit_code == 0
    (proj / "nodes" / "x.yml").write_text(csv.replace("source: csv", "source: excel"))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2 and "--allow-removals" in res.stderr, res.output
    assert "this run would remove 2 of the 2 built nodes (source.x, transform.y) and drop their tables " \
           "(not executable by seekrun now)" in res.stderr
    assert "source.x" in _state(proj)
    ok = cli("run", "-p", str(proj), "--allow-removals")
    assert ok.exit_code == 0, ok.output
    assert _state(proj) == {} and all_tables(proj) == {}


def test_interrupted_run_does_not_call_an_unstarted_recheck_node_cached(rr, pg, monkeypatch):
    proj = project(rr, [SOURCE_T, transform("m", "source.t")])
    assert cli("run", "-p", str(proj)).exit_code == 0
    pg.sql("UPDATE public.t SET w = w + 1", "rr")
    from seekrun.output import ConsoleReporter

    shown = ConsoleReporter.result

    def ctrl_c_after_t(self, r):  # Ctrl-C once source.t has read the new rows, before m starts
        shown(self, r)
        if r.node_id == "source.t":
            raise KeyboardInterrupt

    monkeypatch.setattr(ConsoleReporter, "result", ctrl_c_after_t)
    res = cli("run", "-p", str(proj), "--threads", "1")
    assert res.exit_code == 130, res.output
    m = run_results(proj)["transform.m"]
    assert (m["status"], m["skip"]) == ("skipped", "interrupted"), m
    assert "Interrupted: 1 node left undone: transform.m" in res.stdout
    monkeypatch.setattr(ConsoleReporter, "result", shown)
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert reasons(proj)["transform.m"] == "upstream source.t changed"
    assert all_tables(proj) == clean_build(proj, rr)
