"""Issue 3: filters only limit what runs now; they never leave a node stale.

Also: unknown filter values are usage errors with a suggestion (exit 2, nothing run),
--threads 0 is refused, and --dry-run prints every reason and writes nothing.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import all_tables, clean_build, cli, ran, reasons, table, target_snapshot, write_project

#   source.a -> transform.a1 (daily) -> transform.a2 (nightly) --\
#                                                                  > transform.ab (nightly)
#   source.b -> transform.b1 (daily) ----------------------------/
#   source.b -> transform.b2 (no tags)
FILES = {
    "data/a.csv": "id,v\n1,1\n2,2\n3,3\n",
    "data/b.csv": "id,w\n1,10\n2,20\n3,30\n",
    "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
    "nodes/b.yml": "kind: source\nname: b\nsource: csv\ntable: data/b.csv\n",
    "nodes/a1.yml": """\
        kind: transform
        name: a1
        tags: [daily]
        inputs: [{ref: source.a}]
        transform: SELECT id, v + 100 AS v FROM input_0
        """,
    "nodes/a2.yml": """\
        kind: transform
        name: a2
        tags: [nightly]
        inputs: [{ref: transform.a1}]
        transform: SELECT id, v * 2 AS v FROM input_0
        """,
    "nodes/b1.yml": """\
        kind: transform
        name: b1
        tags: [daily]
        inputs: [{ref: source.b}]
        transform: SELECT id, w + 1 AS w FROM input_0
        """,
    "nodes/b2.yml": """\
        kind: transform
        name: b2
        inputs: [{ref: source.b}]
        transform: SELECT max(w) AS m FROM input_0
        """,
    "nodes/ab.yml": """\
        kind: transform
        name: ab
        tags: [nightly]
        inputs: [{ref: transform.a2}, {ref: transform.b1}]
        transform: SELECT x.id, x.v + y.w AS s FROM input_0 x JOIN input_1 y USING (id)
        """,
}
ALL = {"source.a", "source.b", "transform.a1", "transform.a2", "transform.b1", "transform.b2", "transform.ab"}


def edit(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text()
    assert old in text, f"{old!r} not in {rel}"
    path.write_text(text.replace(old, new))


def run_ok(project: Path, *args: str):
    res = cli("run", "-p", str(project), *args)
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    p = write_project(tmp_path / "proj", FILES)
    run_ok(p)
    assert ran(p) == ALL
    return p


def assert_converged(project: Path, tmp_path: Path) -> None:
    assert all_tables(project) == clean_build(project, tmp_path)
    res = run_ok(project)
    assert "Nothing to do" in res.stdout
    assert ran(project) == set()


# ---- filters never cause staleness ---------------------------------------------------------

def test_types_filter_then_plain_run_finishes_the_rest(proj, tmp_path):
    (proj / "data" / "a.csv").write_text("id,v\n1,5\n2,2\n3,3\n")
    edit(proj, "nodes/b1.yml", "w + 1", "w + 2")
    run_ok(proj, "--types", "transform")
    # source.a is not a transform: it does not run, so a1/a2 still see the old source.a table
    assert reasons(proj) == {"transform.b1": "config changed: transform SQL",
                             "transform.ab": "upstream transform.b1 changed"}
    assert "source.a" not in ran(proj)
    assert table(proj, "source.a") == [(1, 1), (2, 2), (3, 3)]  # still the old data

    run_ok(proj)
    assert reasons(proj) == {"source.a": "source data changed",
                             "transform.a1": "upstream source.a changed",
                             "transform.a2": "upstream transform.a1 changed",
                             "transform.ab": "upstream transform.a2 changed"}
    assert_converged(proj, tmp_path)


def test_types_filter_on_sources_leaves_transforms_for_the_next_run(proj, tmp_path):
    (proj / "data" / "b.csv").write_text("id,w\n1,10\n2,20\n3,31\n")
    run_ok(proj, "--types", "source")
    assert ran(proj) == {"source.b"}
    assert reasons(proj) == {"source.b": "source data changed"}
    # the transforms downstream of source.b were filtered out: they still need to run
    run_ok(proj)
    assert ran(proj) == {"transform.b1", "transform.b2", "transform.ab"}
    assert reasons(proj)["transform.b1"] == "upstream source.b changed"
    assert reasons(proj)["transform.b2"] == "upstream source.b changed"
    assert_converged(proj, tmp_path)


def test_types_accepts_comma_separated_and_repeated(proj, tmp_path):
    (proj / "data" / "b.csv").write_text("id,w\n1,10\n2,20\n3,32\n")
    run_ok(proj, "--types", "source,transform")
    assert ran(proj) == {"source.b", "transform.b1", "transform.b2", "transform.ab"}
    (proj / "data" / "b.csv").write_text("id,w\n1,10\n2,20\n3,33\n")
    run_ok(proj, "--types", "source", "--types", "transform")
    assert ran(proj) == {"source.b", "transform.b1", "transform.b2", "transform.ab"}
    assert_converged(proj, tmp_path)


def test_nodes_filter_runs_named_node_and_downstream_only(proj, tmp_path):
    edit(proj, "nodes/a1.yml", "v + 100", "v + 200")
    edit(proj, "nodes/b1.yml", "w + 1", "w + 3")
    run_ok(proj, "--nodes", "transform.a1")
    assert reasons(proj) == {"transform.a1": "config changed: transform SQL",
                             "transform.a2": "upstream transform.a1 changed",
                             "transform.ab": "upstream transform.a2 changed"}
    run_ok(proj)
    assert reasons(proj) == {"transform.b1": "config changed: transform SQL",
                             "transform.ab": "upstream transform.b1 changed"}
    assert_converged(proj, tmp_path)


def test_nodes_filter_with_full_runs_exactly_the_node_and_its_downstream(proj):
    run_ok(proj, "--nodes", "transform.a1", "--full")
    assert ran(proj) == {"transform.a1", "transform.a2", "transform.ab"}
    assert all(r == "--full" for r in reasons(proj).values())
    # by bare name too
    run_ok(proj, "--nodes", "b1", "--full")
    assert ran(proj) == {"transform.b1", "transform.ab"}


def test_tags_filter_then_plain_run_finishes_the_rest(proj, tmp_path):
    edit(proj, "nodes/a1.yml", "v + 100", "v + 300")
    edit(proj, "nodes/a2.yml", "v * 2", "v * 5")
    run_ok(proj, "--tags", "daily")
    assert reasons(proj) == {"transform.a1": "config changed: transform SQL"}
    run_ok(proj)
    assert ran(proj) == {"transform.a2", "transform.ab"}
    assert reasons(proj)["transform.a2"].startswith(("config changed", "upstream transform.a1"))
    assert reasons(proj)["transform.ab"] == "upstream transform.a2 changed"
    assert_converged(proj, tmp_path)


def test_exclude_tags_then_plain_run_finishes_the_rest(proj, tmp_path):
    edit(proj, "nodes/a1.yml", "v + 100", "v + 400")
    run_ok(proj, "--exclude-tags", "nightly")
    assert reasons(proj) == {"transform.a1": "config changed: transform SQL"}
    assert table(proj, "transform.a1") == [(1, 401), (2, 402), (3, 403)]
    assert table(proj, "transform.a2") == [(1, 202), (2, 204), (3, 206)]  # still the old one
    run_ok(proj)
    assert reasons(proj) == {"transform.a2": "upstream transform.a1 changed",
                             "transform.ab": "upstream transform.a2 changed"}
    assert table(proj, "transform.a2") == [(1, 802), (2, 804), (3, 806)]
    assert_converged(proj, tmp_path)


def test_filtered_out_nodes_keep_needing_to_run_across_several_filtered_runs(proj, tmp_path):
    """Two filtered runs in a row must not forget what the first one left out."""
    edit(proj, "nodes/a1.yml", "v + 100", "v + 500")
    run_ok(proj, "--exclude-tags", "nightly")
    assert ran(proj) == {"transform.a1"}
    run_ok(proj, "--exclude-tags", "nightly")
    assert ran(proj) == set()
    run_ok(proj, "--tags", "daily")
    assert ran(proj) == set()
    run_ok(proj)
    assert ran(proj) == {"transform.a2", "transform.ab"}
    assert_converged(proj, tmp_path)


def test_filter_on_a_project_never_built_then_plain_run(tmp_path):
    p = write_project(tmp_path / "proj", FILES)
    run_ok(p, "--types", "source")
    assert ran(p) == {"source.a", "source.b"}
    run_ok(p)
    assert ran(p) == ALL - {"source.a", "source.b"}
    assert_converged(p, tmp_path)


# ---- bad filter values -----------------------------------------------------------------------

@pytest.mark.parametrize("flag,value,suggestion", [
    ("--nodes", "transform.a11", "transform.a1"),
    ("--types", "transfrom", "transform"),
    ("--tags", "dayly", "daily"),
    ("--exclude-tags", "nigthly", "nightly"),
])
def test_unknown_filter_value_is_exit_2_with_suggestion_and_nothing_runs(proj, flag, value, suggestion):
    edit(proj, "nodes/a1.yml", "v + 100", "v + 600")  # something is pending
    db = (proj / "target" / "seekrun.duckdb").read_bytes()
    results = (proj / "target" / "run_results.json").read_bytes()
    state = (proj / "target" / "state" / "execution_state.json").read_bytes()
    res = cli("run", "-p", str(proj), flag, value)
    assert res.exit_code == 2, res.output
    assert "did you mean" in res.output
    assert suggestion in res.output
    assert value in res.output
    assert (proj / "target" / "seekrun.duckdb").read_bytes() == db
    assert (proj / "target" / "run_results.json").read_bytes() == results
    assert (proj / "target" / "state" / "execution_state.json").read_bytes() == state
    assert table(proj, "transform.a1") == [(1, 101), (2, 102), (3, 103)]
    # the edit is still pending
    run_ok(proj)
    assert "transform.a1" in ran(proj)


@pytest.mark.parametrize("flag,value", [("--nodes", "transform.a11"), ("--types", "transfrom"),
                                        ("--tags", "dayly"), ("--exclude-tags", "nigthly")])
def test_unknown_filter_value_changes_nothing_in_target(proj, flag, value):
    """The error message says 'nothing was changed in target/': that must be true."""
    edit(proj, "nodes/a1.yml", "v + 100", "v + 700")
    before = target_snapshot(proj)
    res = cli("run", "-p", str(proj), flag, value)
    assert res.exit_code == 2, res.output
    assert target_snapshot(proj) == before


def test_unknown_node_on_a_fresh_project_creates_nothing(tmp_path):
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p), "--nodes", "transform.zz")
    assert res.exit_code == 2, res.output
    assert not (p / "target" / "seekrun.duckdb").exists()
    assert not (p / "target" / "run_results.json").exists()


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_threads_below_one_is_a_usage_error(proj, threads):
    edit(proj, "nodes/a1.yml", "v + 100", "v + 800")
    before = target_snapshot(proj)
    res = cli("run", "-p", str(proj), "--threads", threads)
    assert res.exit_code == 2, res.output
    assert "--threads" in res.output
    assert target_snapshot(proj) == before


# ---- --dry-run --------------------------------------------------------------------------------

def test_dry_run_on_fresh_project_prints_plan_and_writes_nothing(tmp_path):
    p = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(p), "--dry-run")
    assert res.exit_code == 0, res.output
    for nid in ALL:
        line = next((ln for ln in res.stdout.splitlines() if nid in ln.split()), None)
        assert line is not None, (nid, res.stdout)
        assert "new" in line
    target = p / "target"
    assert not (target / "manifest.json").exists()
    assert target_snapshot(p) == {}
    assert not target.exists() or not any(target.iterdir()), list(target.rglob("*"))


def test_dry_run_after_edit_prints_each_reason_and_changes_nothing(proj):
    edit(proj, "nodes/a1.yml", "v + 100", "v + 900")
    (proj / "data" / "b.csv").write_text("id,w\n1,10\n2,20\n3,39\n")
    before = target_snapshot(proj)
    res = cli("run", "-p", str(proj), "--dry-run")
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()

    def line_for(nid):
        found = [ln for ln in lines if nid in ln.split()]
        assert found, (nid, res.stdout)
        return found[0]

    assert "config changed: transform SQL" in line_for("transform.a1")
    assert "upstream transform.a1 changed" in line_for("transform.a2")
    assert "source data changed" in line_for("source.b")
    assert "upstream source.b changed" in line_for("transform.b1")
    assert "upstream source.b changed" in line_for("transform.b2")
    assert not any("source.a" in ln.split() for ln in lines)  # cached: not in the plan
    assert target_snapshot(proj) == before
    # the dry run consumed nothing: the real run does exactly the plan
    run_ok(proj)
    assert ran(proj) == {"transform.a1", "transform.a2", "transform.ab", "source.b", "transform.b1",
                         "transform.b2"}


def test_dry_run_with_deleted_database_says_output_missing_and_creates_nothing(proj):
    (proj / "target" / "seekrun.duckdb").unlink()
    before = target_snapshot(proj)
    res = cli("run", "-p", str(proj), "--dry-run")
    assert res.exit_code == 0, res.output
    assert res.stdout.count("output missing") == len(ALL), res.stdout
    assert target_snapshot(proj) == before
    assert not (proj / "target" / "seekrun.duckdb").exists()


def test_dry_run_with_nothing_to_do_says_so(proj):
    before = target_snapshot(proj)
    res = cli("run", "-p", str(proj), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout
    assert target_snapshot(proj) == before


def test_filtered_dry_run_does_not_claim_everything_is_up_to_date(proj):
    """A node left pending by a filter still needs to run: a dry run must not say all is up to date."""
    edit(proj, "nodes/a1.yml", "v + 100", "v + 1000")
    run_ok(proj, "--exclude-tags", "nightly")
    assert ran(proj) == {"transform.a1"}
    res = cli("run", "-p", str(proj), "--dry-run", "--exclude-tags", "nightly")
    assert res.exit_code == 0, res.output
    a2 = [ln for ln in res.stdout.splitlines() if "transform.a2" in ln.split()]
    assert a2 and "upstream transform.a1 changed" in a2[0], res.stdout
    assert "up to date" not in res.stdout, res.stdout
    # unfiltered, the plan runs it
    res = cli("run", "-p", str(proj), "--dry-run")
    assert res.exit_code == 0, res.output
    assert "up to date" not in res.stdout, res.stdout
    assert any("transform.a2" in ln.split() and "upstream transform.a1 changed" in ln
               for ln in res.stdout.splitlines()), res.stdout
