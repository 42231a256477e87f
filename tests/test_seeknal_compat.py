"""The whole Seeknal project of tests/seeknal_compat/, built at once.

Each area's test (tests/test_seeknal_compat_<area>.py) builds its own folder and checks its
tables against what Seeknal 2.13 gave on the same files.  This one builds every area together,
as a user's project would be: all of it runs in one run (only the `api` exposure, which seekrun
cannot execute, is skipped), a second run re-reads only the database sources and leaves the
rest cached, and every table is the same as when its area is built alone and as in a clean
build.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import pgserver
from conftest import all_tables, cli, run_results

COMPAT = Path(__file__).resolve().parent / "seeknal_compat"
DATES = ("--run-date", "2024-01-31", "--start-date", "2024-01-01", "--end-date", "2024-01-15")
# area -> its node folders (under seeknal/) and the prefix of its data files
AREAS = {
    "agg": (["agg"], "agg_"), "expprof": (["expprof"], "expprof_"), "pg": (["pg"], "pg_"),
    "py": (["pipelines", "py_sources"], "py_"), "semantic": (["semantic"], "sem_"),
    "tmpl": (["tmpl"], "tmpl_"), "yaml": (["yaml"], "yaml_"),
}
NOT_EXECUTABLE = {"exposure.yaml_webhook"}  # type: api

pg = pgserver.fixture()


@pytest.fixture
def env(pg, tmp_path, monkeypatch):
    pgserver.fresh_database(pg, "compat", (COMPAT / "data" / "pg_seed.sql").read_text(), monkeypatch,
                            tmp_path / "no_home", prefix="SEEKNAL_COMPAT_PG")
    monkeypatch.setenv("TMPL_REGION", "US")
    return tmp_path


def copy_project(dest: Path, areas=None) -> Path:
    """The compat project (or only these areas of it), with the PostgreSQL profile in place."""
    if areas is None:
        shutil.copytree(COMPAT, dest, ignore=shutil.ignore_patterns("target"))
    else:
        (dest / "seeknal").mkdir(parents=True)
        (dest / "data").mkdir()
        shutil.copy(COMPAT / "seeknal_project.yml", dest)
        for area in areas:
            folders, prefix = AREAS[area]
            for folder in folders:
                shutil.copytree(COMPAT / "seeknal" / folder, dest / "seeknal" / folder)
            for f in (COMPAT / "data").glob(prefix + "*"):
                shutil.copy(f, dest / "data")
    shutil.copy(COMPAT / "data" / "pg_profiles.yml", dest / "profiles.yml")
    return dest


TIMELY = ("profiled_at", "freshness_hours")  # a profile's rows that depend on when it ran


def tables_of(root: Path) -> dict:
    """Every table, without the profile rows that say when the profile ran."""
    out = {}
    for name, (cols, rows) in all_tables(root).items():
        if name.startswith("profile."):
            rows = [r for r in rows if not any(v in TIMELY for v in r)]
        out[name] = (cols, rows)
    return out


def build(root: Path, *extra: str):
    res = cli("run", "-p", str(root), *DATES, *extra)
    assert res.exit_code == 0, res.output
    return res


def test_every_area_is_covered_and_folders_match():
    """A folder added to the compat project without an entry here would go unchecked."""
    on_disk = {p.name for p in (COMPAT / "seeknal").iterdir() if p.is_dir()}
    assert on_disk == {f for folders, _ in AREAS.values() for f in folders}


def test_whole_project_builds_in_one_run_then_only_rereads_databases(env):
    root = copy_project(env / "all")
    res = build(root)
    results = run_results(root)
    failed = {n for n, r in results.items() if r["status"] == "failed"}
    skipped = {n for n, r in results.items() if r["status"] == "skipped"}
    assert not failed and skipped == NOT_EXECUTABLE, res.output
    assert results["exposure.yaml_webhook"]["skip"] == "not_executable"
    kinds = {n.split(".")[0] for n in results}
    assert {"source", "transform", "feature_group", "aggregation", "second_order_aggregation", "profile",
            "rule", "exposure", "semantic_model", "metric"} <= kinds
    # the second run: the database sources are re-read (their data cannot be stat'ed); their
    # data did not change, so nothing downstream runs
    build(root)
    again = run_results(root)
    ran = {n for n, r in again.items() if r["status"] == "success"}
    assert ran == {"source.pg_customers", "source.pg_open_subscriptions", "source.pg_subscriptions"}
    assert {again[n]["reason"] for n in ran} == {"re-read (database source)"}


def test_each_area_gives_the_same_tables_alone_and_together(env):
    together = copy_project(env / "all")
    build(together)
    tables = tables_of(together)
    seen: set[str] = set()
    for area in AREAS:
        alone = copy_project(env / f"only_{area}", [area])
        build(alone)
        own = tables_of(alone)
        assert own, area
        for name, content in own.items():
            assert tables[name] == content, (area, name)
        seen |= set(own)
    assert seen == set(tables)  # every table of the whole project belongs to one area


def test_an_edit_rebuilds_like_a_clean_build(env):
    root = copy_project(env / "all")
    build(root)
    orders = root / "data" / "agg_tx.csv"
    lines = orders.read_text().splitlines()
    orders.write_text("\n".join(lines[:-1]) + "\n")  # one transaction fewer
    build(root)
    ran = {n for n, r in run_results(root).items() if r["status"] == "success"}
    assert "source.agg_tx" in ran and not any(n.split(".")[1].startswith(("sem_", "tmpl_", "py_")) for n in ran)
    fresh = copy_project(env / "fresh")
    shutil.copy(orders, fresh / "data" / "agg_tx.csv")
    build(fresh, "--full")
    assert tables_of(root) == tables_of(fresh)
