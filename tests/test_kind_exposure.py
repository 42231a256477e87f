"""Issue 4: kind exposure (type: file) writes its input's table to a file inside the project.

Real projects in tmp_path, the real CLI, real DuckDB; assertions are on what a user sees:
exit codes, `path:line:` messages, the written files' bytes and rows, run_results reasons.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import duckdb
import pytest

from conftest import cli, ran, run_results, target_snapshot, write_project

pytestmark = pytest.mark.usefixtures("kind_engine")  # DuckDB, then Spark (tests/engine_matrix.py)

CSV_TEXT = "id,name,v\n1,ann,10\n2,bob,20\n3,\"c, d\",30\n"

FILES = {
    "seekrun_project.yml": "name: testproj\nexposure_paths: [output]\n",
    "data/a.csv": CSV_TEXT,
    "nodes/sources/a.yml": """\
        kind: source
        name: a
        source: csv
        table: data/a.csv
        """,
    "nodes/transforms/t.yml": """\
        kind: transform
        name: t
        inputs:
          - ref: source.a
        transform: SELECT id, name, v * 2 AS v2 FROM source.a ORDER BY id
        """,
    "nodes/transforms/other.yml": """\
        kind: transform
        name: other
        inputs:
          - ref: source.a
        transform: SELECT count(*) AS n FROM source.a
        """,
    "nodes/exposures/to_csv.yml": """\
        kind: exposure
        name: to_csv
        description: t for the spreadsheet
        type: file
        depends_on:
          - ref: transform.t
        params:
          format: csv
          path: output/t.csv
        """,
    "nodes/exposures/to_parquet.yml": """\
        kind: exposure
        name: to_parquet
        type: file
        inputs:
          - ref: transform.t
        path: output/t.parquet
        format: parquet
        """,
    "nodes/exposures/to_jsonl.yml": """\
        kind: exposure
        name: to_jsonl
        type: file
        depends_on:
          - ref: transform.t
        params:
          path: output/lines/t.jsonl
        """,
    "nodes/exposures/to_json.yml": """\
        kind: exposure
        name: to_json
        type: file
        depends_on:
          - ref: source.a
        params:
          path: output/a.json
        """,
}
EXPOSURES = {"exposure.to_csv", "exposure.to_parquet", "exposure.to_jsonl", "exposure.to_json"}
T_ROWS = [(1, "ann", 20), (2, "bob", 40), (3, "c, d", 60)]


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return write_project(tmp_path / "proj", FILES)


def run(proj: Path, *args: str):
    return cli("run", "-p", str(proj), *args)


def read_parquet(path: Path) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute("SELECT * FROM read_parquet(?) ORDER BY 1", [str(path)]).fetchall()
    finally:
        con.close()


def edit(proj: Path, rel: str, old: str, new: str) -> None:
    path = proj / rel
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


# ---- writing -------------------------------------------------------------------------------
def test_writes_csv_parquet_json_and_jsonl_with_the_input_rows(proj: Path):
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert (proj / "output" / "t.csv").read_text() == 'id,name,v2\n1,ann,20\n2,bob,40\n3,"c, d",60\n'
    assert read_parquet(proj / "output" / "t.parquet") == T_ROWS
    lines = (proj / "output" / "lines" / "t.jsonl").read_text().splitlines()
    assert [json.loads(ln) for ln in lines] == [{"id": i, "name": n, "v2": v} for i, n, v in T_ROWS]
    assert json.loads((proj / "output" / "a.json").read_text()) == [
        {"id": 1, "name": "ann", "v": 10}, {"id": 2, "name": "bob", "v": 20}, {"id": 3, "name": "c, d", "v": 30}]
    results = run_results(proj)
    for nid in EXPOSURES:
        assert results[nid]["status"] == "success" and results[nid]["row_count"] == 3, results[nid]
    # Atomic writes leave no temporary files (only the list of files seekrun wrote, one per
    # folder); an exposure has no table of its own.
    assert sorted(p.relative_to(proj / "output").as_posix() for p in (proj / "output").rglob("*")) == [
        ".seekrun-outputs", "a.json", "lines", "lines/.seekrun-outputs", "lines/t.jsonl", "t.csv", "t.parquet"]
    con = duckdb.connect(str(proj / "target" / "seekrun.duckdb"), read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()
    finally:
        con.close()
    assert not [t for t in tables if t[0] == "exposure"]


def test_second_run_has_nothing_to_do(proj: Path):
    assert run(proj).exit_code == 0
    before = (proj / "output" / "t.csv").stat().st_mtime_ns
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.output
    assert ran(proj) == set()
    assert (proj / "output" / "t.csv").stat().st_mtime_ns == before


def test_an_exposure_needs_no_table_when_the_database_is_inspected(proj: Path):
    assert run(proj).exit_code == 0
    db = proj / "target" / "seekrun.duckdb"
    st = db.stat()
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # seekrun must look inside
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.output and ran(proj) == set()


def test_tsv_extension_and_csv_options(tmp_path: Path):
    proj = write_project(tmp_path / "p", {**FILES, "nodes/exposures/to_csv.yml": """\
        kind: exposure
        name: to_csv
        type: file
        depends_on: [transform.t]
        params:
          path: output/out.tsv
          header: false
        """})
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert (proj / "output" / "out.tsv").read_text() == "1\tann\t20\n2\tbob\t40\n3\tc, d\t60\n"


# ---- what reruns ----------------------------------------------------------------------------
def test_deleting_the_output_file_reruns_only_that_exposure(proj: Path):
    assert run(proj).exit_code == 0
    first = (proj / "output" / "t.csv").read_bytes()
    (proj / "output" / "t.csv").unlink()
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"exposure.to_csv"}
    assert run_results(proj)["exposure.to_csv"]["reason"] == "output missing"
    assert (proj / "output" / "t.csv").read_bytes() == first
    assert run(proj).exit_code == 0 and ran(proj) == set()


def test_dry_run_shows_output_missing_and_writes_nothing(proj: Path):
    assert run(proj).exit_code == 0
    (proj / "output" / "t.parquet").unlink()
    res = run(proj, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "exposure.to_parquet" in res.output and "output missing" in res.output
    assert not (proj / "output" / "t.parquet").exists()


def test_changing_the_path_reruns_it_and_writes_the_new_file(proj: Path):
    assert run(proj).exit_code == 0
    edit(proj, "nodes/exposures/to_csv.yml", "path: output/t.csv", "path: output/renamed.csv")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"exposure.to_csv"}
    assert run_results(proj)["exposure.to_csv"]["reason"] == "config changed: params"
    assert (proj / "output" / "renamed.csv").read_text() == 'id,name,v2\n1,ann,20\n2,bob,40\n3,"c, d",60\n'


def test_changing_the_format_reruns_it_in_the_new_format(proj: Path):
    assert run(proj).exit_code == 0
    edit(proj, "nodes/exposures/to_parquet.yml", "path: output/t.parquet\nformat: parquet",
         "path: output/t.parquet\nformat: csv")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"exposure.to_parquet"}
    assert run_results(proj)["exposure.to_parquet"]["reason"] == "config changed: format"
    data = (proj / "output" / "t.parquet").read_bytes()
    assert not data.startswith(b"PAR1")
    assert list(csv.reader(io.StringIO(data.decode()))) == [["id", "name", "v2"], ["1", "ann", "20"],
                                                             ["2", "bob", "40"], ["3", "c, d", "60"]]


def test_changing_another_param_reruns_it(proj: Path):
    assert run(proj).exit_code == 0
    edit(proj, "nodes/exposures/to_csv.yml", "format: csv\n", "format: csv\n  delimiter: ';'\n")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"exposure.to_csv"}
    assert (proj / "output" / "t.csv").read_text() == "id;name;v2\n1;ann;20\n2;bob;40\n3;c, d;60\n"


def test_an_unknown_compression_is_a_parse_error(proj: Path):
    assert run(proj).exit_code == 0
    edit(proj, "nodes/exposures/to_csv.yml", "format: csv\n", "format: csv\n  compression: no_such_codec\n")
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert ("nodes/exposures/to_csv.yml:9: exposure.to_csv: compression 'no_such_codec' is not one DuckDB "
            "writes for csv: use one of none, auto, gzip, zstd") in res.stderr


def test_a_failed_write_keeps_the_last_good_file_and_leaves_no_temp_file(proj: Path, monkeypatch):
    from seekrun import faults

    assert run(proj).exit_code == 0
    good = (proj / "output" / "t.csv").read_bytes()
    edit(proj, "nodes/exposures/to_csv.yml", "format: csv\n", "format: csv\n  compression: gzip\n")
    # the write fails after DuckDB wrote the temp file, before it is renamed into place
    monkeypatch.setattr(faults, "_SPEC", "raise@exposure_write:exposure.to_csv")
    res = run(proj)
    assert res.exit_code == 1, res.output
    result = run_results(proj)["exposure.to_csv"]
    assert result["status"] == "failed" and "fault injected at exposure_write" in result["error"], result
    assert (proj / "output" / "t.csv").read_bytes() == good
    assert sorted(p.name for p in (proj / "output").iterdir()) == [".seekrun-outputs", "a.json", "lines", "t.csv",
                                                                   "t.parquet"]
    monkeypatch.setattr(faults, "_SPEC", None)
    res = run(proj)
    assert res.exit_code == 0, res.output
    import gzip

    assert gzip.decompress((proj / "output" / "t.csv").read_bytes()).decode().startswith("id,name,v2\n1,ann,20")


def test_description_edit_reruns_nothing(proj: Path):
    assert run(proj).exit_code == 0
    edit(proj, "nodes/exposures/to_csv.yml", "description: t for the spreadsheet",
         "description: t, for the finance spreadsheet  # with a comment")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == set()


def test_upstream_change_rewrites_the_file(proj: Path):
    assert run(proj).exit_code == 0
    (proj / "data" / "a.csv").write_text(CSV_TEXT + "4,dan,40\n")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"source.a", "transform.t", "transform.other"} | EXPOSURES
    assert run_results(proj)["exposure.to_csv"]["reason"] == "upstream transform.t changed"
    assert (proj / "output" / "t.csv").read_text().splitlines()[-1] == "4,dan,80"
    assert len(read_parquet(proj / "output" / "t.parquet")) == 4


# ---- the path stays inside the project ----------------------------------------------------------
ESCAPE_YML = """\
kind: exposure
name: leak
type: file
depends_on:
  - ref: transform.t
params:
  format: csv
  path: {path}
"""


@pytest.mark.parametrize("how", ["dotdot", "dotdot_inside_first", "absolute", "symlink_dir", "symlink_file"])
def test_a_path_outside_the_project_is_a_parse_error(tmp_path: Path, how: str):
    outside = tmp_path / "outside"
    outside.mkdir()
    proj = write_project(tmp_path / "proj", FILES)
    path = {"dotdot": "../outside/x.csv", "dotdot_inside_first": "output/../../outside/x.csv",
            "absolute": str(outside / "x.csv"), "symlink_dir": "link/x.csv", "symlink_file": "out.csv"}[how]
    if how == "symlink_dir":
        os.symlink(outside, proj / "link")
    if how == "symlink_file":
        os.symlink(outside / "x.csv", proj / "out.csv")
    (proj / "nodes" / "exposures" / "leak.yml").write_text(ESCAPE_YML.format(path=path))
    for command in ("parse", "run"):
        res = cli(command, "-p", str(proj))
        assert res.exit_code == 2, res.output
        assert (f"nodes/exposures/leak.yml:8: exposure.leak: path '{path}' resolves outside the project "
                "directory") in res.output
        assert "Traceback" not in res.output
    assert list(outside.iterdir()) == []
    assert not (proj / "target" / "seekrun.duckdb").exists()
    assert not (proj / "output").exists()


def test_a_path_that_goes_up_and_back_inside_is_fine(tmp_path: Path):
    proj = write_project(tmp_path / "proj", FILES)
    (proj / "nodes" / "exposures" / "leak.yml").write_text(ESCAPE_YML.format(path="target/../output/proj_out.csv"))
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert (proj / "output" / "proj_out.csv").read_text().startswith("id,name,v2\n")


@pytest.mark.parametrize("body, line, message", [
    ("type: file\ndepends_on: [transform.t]\nparams:\n  format: csv\n", 5,
     "type: file needs a path: add 'params: {path: output/<file>.csv}'"),
    ("type: file\ndepends_on: [transform.t]\npath: output/t.txt\n", 5,
     "cannot tell the format of 'output/t.txt' from its extension"),
    ("type: file\ndepends_on: [transform.t]\npath: output/t.csv\nformat: xlsx\n", 6,
     "format 'xlsx' is not supported: use one of csv, parquet, json, jsonl"),
    ("type: file\nparams:\n  path: output/t.csv\n", 3, "an exposure writes its input: add 'inputs:'"),
    ("type: file\ndepends_on: [transform.t]\npath: output\n", 5, "path 'output' is a folder"),
    # issue 11: what run refused (or did silently) is refused at parse
    ("type: file\ninputs: [transform.t, exposure.to_csv]\npath: output/x.csv\n", 4,
     "input exposure.to_csv has no table to write (an exposure writes files): remove it from inputs"),
    ("type: file\ndepends_on: [transform.t]\nparams:\n  path: output/x\n  format: csv\n  partition_by: {a: 1}\n", 8,
     "partition_by must be a column name or a list of them, e.g. partition_by: [region]"),
])
def test_bad_file_settings_are_parse_errors_with_their_line(tmp_path: Path, body: str, line: int, message: str):
    proj = write_project(tmp_path / "proj", FILES)
    (proj / "output").mkdir()
    (proj / "nodes" / "exposures" / "bad.yml").write_text("kind: exposure\nname: bad\n" + body)
    before = target_snapshot(proj)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert f"nodes/exposures/bad.yml:{line}: exposure.bad: {message}" in res.output
    assert target_snapshot(proj) == before


# ---- types seekrun cannot run ------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["api", "database", "notification"])
def test_other_types_are_not_executable_and_the_rest_builds(tmp_path: Path, kind: str):
    """Issue 11 (compatibility 8): parse says so; run skips the node with that reason, builds
    the rest and exits 0."""
    proj = write_project(tmp_path / "proj", {**FILES, "nodes/exposures/push.yml": f"""\
        kind: exposure
        name: push
        type: {kind}
        depends_on:
          - ref: transform.t
        params:
          url: https://example.invalid/hook
        """})
    why = f"exposure type '{kind}' is not supported (seekrun writes only 'type: file' exposures)"
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert f"nodes/exposures/push.yml:1: warning: exposure.push: not executable by seekrun: {why}" in res.stderr
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert f"SKIP   exposure.push  (not executable by seekrun: {why})" in res.stdout
    assert "exposure.push" not in ran(proj) and {"source.a", "transform.t", "transform.other"} <= ran(proj)
    result = run_results(proj)["exposure.push"]
    assert (result["status"], result["reason"]) == ("skipped", f"not executable by seekrun: {why}")
    built = len(ran(proj))
    res = run(proj)  # never built: skipped again, and the rest is up to date
    assert res.exit_code == 0, res.output
    assert f"Nothing to do: all {built} nodes seekrun can build are up to date" in res.stdout


def test_sample_project_exposure_writes_customer_360(sample: Path):
    res = run(sample)
    assert res.exit_code == 0, res.output
    out = sample / "output" / "customer_360.csv"
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    con = duckdb.connect(str(sample / "target" / "seekrun.duckdb"), read_only=True)
    try:
        expected = con.execute('SELECT customer_id, name, segment, total_spent FROM "transform"."customer_360"'
                               ).fetchall()
    finally:
        con.close()
    assert len(rows) == len(expected) == 12
    assert sorted((int(r["customer_id"]), r["name"], r["segment"], r["total_spent"]) for r in rows) == \
        sorted((i, n, s, f"{t:.2f}") for i, n, s, t in expected)
    out.unlink()
    res = run(sample)
    assert res.exit_code == 0, res.output
    assert ran(sample) == {"exposure.customer_360_csv"}
    assert run_results(sample)["exposure.customer_360_csv"]["reason"] == "output missing"
    assert len(out.read_text().splitlines()) == 13


# ---- issue 11: several inputs, partition_by ---------------------------------------------------
def test_several_inputs_each_go_to_a_file_named_after_the_input(tmp_path: Path):
    proj = write_project(tmp_path / "proj", {**FILES, "nodes/exposures/both.yml": """\
        kind: exposure
        name: both
        type: file
        inputs:
          - ref: transform.t
          - ref: transform.other
        params:
          path: output/both.csv.gz
        """})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    out = proj / "output"
    assert not (out / "both.csv.gz").exists()
    con = duckdb.connect()
    assert con.execute(f"SELECT * FROM read_csv('{out / 'both_t.csv.gz'}') ORDER BY id").fetchall() == [
        (1, "ann", 20), (2, "bob", 40), (3, "c, d", 60)]
    assert con.execute(f"SELECT * FROM read_csv('{out / 'both_other.csv.gz'}')").fetchall() == [(3,)]
    assert "writes     : output/both_t.csv.gz, output/both_other.csv.gz" in cli(
        "show", "-p", str(proj), "exposure.both").output
    # one input left: the file takes the path as written, and the per-input files go
    node = proj / "nodes/exposures/both.yml"
    node.write_text(node.read_text().replace("  - ref: transform.other\n", ""))
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert sorted(p.name for p in out.glob("both*")) == ["both.csv.gz"]


def test_partition_by_a_single_column_name_and_back_to_one_file(tmp_path: Path):
    proj = write_project(tmp_path / "proj", {**FILES, "nodes/exposures/parts.yml": """\
        kind: exposure
        name: parts
        type: file
        inputs: [transform.t]
        params:
          path: output/parts
          format: csv
          partition_by: name
        """})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    folder = proj / "output" / "parts"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.csv")) == [
        "name=ann/data_0.csv", "name=bob/data_0.csv", "name=c%2C%20d/data_0.csv"]
    assert (folder / "name=ann" / "data_0.csv").read_text() == "id,v2\n1,20\n"
    assert "parts" in (proj / "output" / ".seekrun-outputs").read_text()  # known as seekrun's
    assert cli("run", "-p", str(proj)).output.startswith("Nothing to do")
    # an upstream change rewrites the folder whole: a partition that is gone goes
    (proj / "data/a.csv").write_text("id,name,v\n1,ann,10\n")
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.csv")) == ["name=ann/data_0.csv"]
