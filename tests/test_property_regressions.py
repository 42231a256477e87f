"""Regressions found by the property tests (tests/test_property_wide.py), each as a plain test
with the minimal example hypothesis shrank it to."""
from __future__ import annotations

from conftest import cli, cli_proc, exposure_yaml, write_project

FILES = {
    "seekrun_project.yml": "name: tmpfiles\nexposure_paths: [output]\n",
    "data/a.csv": "id,v\n1,2\n",
    "nodes/a.yml": """\
        kind: source
        name: a
        source: csv
        table: data/a.csv
        """,
    "nodes/x.yml": exposure_yaml("x", "target/exports/x.csv"),
    "nodes/y.yml": exposure_yaml("y", "output/y.csv"),
}


def leftovers(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob(".seekrun-tmp-*"))


def test_exposure_temp_files_of_a_killed_run_are_removed_under_target_and_where_exposures_wrote(tmp_path):
    """A run killed while an exposure's temp file is written (SEEKRUN_FAULT=exposure_write)
    leaves .seekrun-tmp-<id>-<name> next to the exposure's file.  The next run removed it only in
    the folders of today's exposure files outside target/: one under target/exports stayed for
    good, and so did one in a folder no exposure writes to any more."""
    root = write_project(tmp_path / "p", FILES)
    assert cli("run", "-p", str(root)).exit_code == 0
    (root / "data" / "a.csv").write_text("id,v\n1,3\n")
    res = cli_proc("run", "-p", str(root), "--threads", "1", env={"SEEKRUN_FAULT": "exposure_write:exposure.y"})
    assert res.exit_code == -9, res.output
    assert [p.split("/")[0] for p in leftovers(root)] == ["output"]
    # y now writes under target/: no exposure writes to output/ any more
    y = root / "nodes" / "y.yml"
    y.write_text(y.read_text().replace("output/y.csv", "target/exports/y.csv"))
    res = cli_proc("run", "-p", str(root), "--threads", "1", env={"SEEKRUN_FAULT": "exposure_write:exposure.y"})
    assert res.exit_code == -9, res.output
    assert "target/exports" in [p.rsplit("/", 1)[0] for p in leftovers(root)]
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert leftovers(root) == []
    assert (root / "target" / "exports" / "x.csv").read_text() == "id,v\n1,3\n"  # before y, in id order
    assert (root / "target" / "exports" / "y.csv").read_text() == "id,v\n1,3\n"
    assert not (root / "output" / "y.csv").exists()


def test_a_feature_store_temp_file_is_removed_even_when_its_feature_group_does_not_rebuild(tmp_path):
    """A feature group writes target/feature_store/.<name>.parquet.<pid>-<thread>.tmp before its
    commit; a run killed then leaves it.  Only a rebuild of that feature group removed it, so
    after a revert (nothing to rebuild) it stayed for good.  (No fault point stops a build
    between that write and the commit, so the file is made here as a killed build leaves it.)"""
    files = {
        "data/a.csv": "id,v\n1,2\n",
        "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "nodes/f.yml": """\
            kind: feature_group
            name: f
            entity: {name: thing, join_keys: [id]}
            materialization: {offline: {enabled: true, format: parquet}}
            inputs:
              - ref: source.a
            transform: SELECT id, v FROM input_0
            features: null
            """,
    }
    root = write_project(tmp_path / "p", files)
    assert cli("run", "-p", str(root)).exit_code == 0
    stale = root / "target" / "feature_store" / ".f.parquet.4242-4243.tmp"
    stale.write_bytes(b"half a parquet file")
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0 and "Nothing to do" in res.output, res.output
    assert not stale.exists()
    assert (root / "target" / "feature_store" / "f.parquet").exists()


FG_FILES = {
    "data/a.csv": "id,v,d\n1,2,2024-01-02\n",
    "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
    "nodes/f.yml": """\
        kind: feature_group
        name: f
        entity: {name: thing, join_keys: [id]}
        inputs:
          - ref: source.a
        transform: SELECT id, v, d FROM input_0
        features:
          v: {dtype: DOUBLE}
          d: {dtype: DATE}
        """,
}


def fg_columns(root) -> list[tuple[str, str]]:
    import duckdb

    con = duckdb.connect(str(root / "target" / "seekrun.duckdb"), read_only=True)
    try:
        return [(r[0], r[1]) for r in con.execute('DESCRIBE "feature_group"."f"').fetchall()]
    finally:
        con.close()


def test_feature_group_columns_keep_their_order_when_the_node_comes_from_the_parse_cache(tmp_path):
    """A feature group's output columns are its join keys, then its features in the order the
    YAML lists them.  An incremental rebuild (its input changed, its own file not) took the node
    from the parse cache, which is JSON written with sorted keys: `features: {v: ..., d: ...}`
    came back as {d, v}, and the table's columns became (id, d, v), unlike a clean build's
    (id, v, d).  The same held for a manifest loaded from target/manifest.json (Python API)."""
    import os
    import time

    root = write_project(tmp_path / "p", FG_FILES)
    old = time.time() - 3600  # not "racy": the parse cache keeps the record
    for f in (root / "nodes").iterdir():
        os.utime(f, (old, old))
    assert cli("run", "-p", str(root)).exit_code == 0
    want = [("id", "BIGINT"), ("v", "DOUBLE"), ("d", "DATE")]
    assert fg_columns(root) == want
    (root / "data" / "a.csv").write_text("id,v,d\n1,3,2024-01-02\n")
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0 and "feature_group.f" in res.output, res.output
    assert fg_columns(root) == want

    from seekrun import DAGRunner, Manifest

    manifest = Manifest.load(root / "target" / "manifest.json")
    summary = DAGRunner(manifest, state_dir=root / "target" / "state").run(full=True)
    assert summary.exit_code == 0
    assert fg_columns(root) == want


def outputs(root):
    """The files in output/, but seekrun's list of the files it wrote there (.seekrun-outputs)."""
    return sorted(p.name for p in (root / "output").iterdir() if p.name != ".seekrun-outputs")


def killed_after_moving_the_exposure(tmp_path):
    """exposure.e built to output/a.csv, moved to output/b.csv, and killed between writing
    b.csv and recording it."""
    files = {"seekrun_project.yml": "name: orphans\nexposure_paths: [output]\n", "data/a.csv": "id,v\n1,2\n",
             "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
             "nodes/e.yml": exposure_yaml("e", "output/a.csv", fmt=None)}
    root = write_project(tmp_path / "p", files)
    assert cli("run", "-p", str(root)).exit_code == 0
    (root / "nodes" / "e.yml").write_text(exposure_yaml("e", "output/b.csv", fmt=None))
    res = cli_proc("run", "-p", str(root), "--threads", "1", env={"SEEKRUN_FAULT": "after_commit:exposure.e"})
    assert res.exit_code == -9, res.output
    return root


def test_a_file_a_killed_build_wrote_for_a_path_given_up_since_is_removed_and_never_blocks_a_node(tmp_path):
    """An exposure whose path was changed was killed between writing its new file and
    recording it (after_commit); the change was then undone.  The file it wrote stayed for good,
    and once the exposure had run again its claim on the file was gone too: a new exposure
    with that path was refused (exit 2, "exists and was not written by seekrun").  The next
    run removes a file a killed build wrote when no node writes it any more."""
    root = killed_after_moving_the_exposure(tmp_path)
    assert (root / "output" / "b.csv").exists()
    (root / "nodes" / "e.yml").write_text(exposure_yaml("e", "output/a.csv", fmt=None))  # undone
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0 and "Nothing to do" in res.output, res.output
    assert outputs(root) == ["a.csv"]
    (root / "nodes" / "e.yml").write_text(exposure_yaml("e", "output/c.csv", fmt=None))
    (root / "nodes" / "f.yml").write_text(exposure_yaml("f", "output/b.csv", fmt=None))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert outputs(root) == ["b.csv", "c.csv"]


def test_a_claimed_file_another_node_now_writes_stays_seekruns_until_that_node_writes_it(tmp_path):
    """The same, with the abandoned path taken over at once by another exposure: the file is
    kept (some node writes it) and stays seekrun's, so that node may write over it."""
    root = killed_after_moving_the_exposure(tmp_path)
    (root / "nodes" / "e.yml").write_text(exposure_yaml("e", "output/a.csv", fmt=None))
    (root / "nodes" / "f.yml").write_text(exposure_yaml("f", "output/b.csv", fmt=None))
    res = cli("run", "-p", str(root), "--types", "source")  # f does not run yet
    assert res.exit_code == 0, res.output
    assert (root / "output" / "b.csv").exists()
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert outputs(root) == ["a.csv", "b.csv"]
    assert cli("run", "-p", str(root)).stdout.startswith("Nothing to do")
