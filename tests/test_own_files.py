"""Issue 10 §3: seekrun's own files under target/, garbled or valid JSON of the wrong shape.

A folder in place of one of them is refused (the bad-input catalogue, tests/bad_inputs/). A
file with the wrong content is not the user's problem: seekrun carries on (exit 0), warns
where it has something to say (a corrupt state is moved aside, a damaged record is dropped),
rebuilds what it can no longer trust, and gives the tables a clean build gives. Caches (file
hashes, parsed files, the manifest) only cost work when lost: nothing reruns for them.

Each test: build sample_project, damage one file, run seekrun as a real process (only there
does `main()` turn a crash into "internal error"), check exit 0, no traceback, which nodes ran,
the warning, the tables (and the exposure file) against conftest.clean_build, and that the next
run is "Nothing to do" with no warning left.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import SAMPLE, all_tables, clean_build, cli, cli_proc, journal_successes, ran, target_snapshot

EXPOSURE = "target/exports/customer_360.csv"  # where the exposure writes in these tests (see proj)


def copy_sample(dest: Path, exposure: str) -> Path:
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("target", "output"))
    path = dest / "nodes" / "exposures" / "customer_360_csv.yml"
    text = path.read_text()
    assert "path: output/customer_360.csv" in text
    path.write_text(text.replace("path: output/customer_360.csv", f"path: {exposure}"))
    return dest


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    """sample_project (every kind, a feature store, Python nodes) with its exposure writing
    under target/, built by a real run (all 25 nodes), and a second run that did nothing.
    (Outside target/, a lost record of the exposure's file makes it a file seekrun cannot prove
    it wrote: see test_a_lost_state_and_an_exposure_outside_target.)"""
    dest = copy_sample(tmp_path / "proj", EXPOSURE)
    res = cli("run", "-p", str(dest))
    assert res.exit_code == 0, res.output
    again = cli("run", "-p", str(dest))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    return dest


def node_ids(proj: Path) -> set[str]:
    return set(json.loads((proj / "target" / "manifest.json").read_text())["nodes"])


def state_path(proj: Path) -> Path:
    return proj / "target" / "state" / "execution_state.json"


def journal_path(proj: Path) -> Path:
    return proj / "target" / "state" / "execution_state.journal"


def read_state(proj: Path) -> dict:
    return json.loads(state_path(proj).read_text())


def write_state(proj: Path, data) -> None:
    state_path(proj).write_text(json.dumps(data))


def clean_expected(proj: Path, tmp_path: Path, exposure: str = EXPOSURE) -> tuple[dict, tuple[str, list[str]]]:
    """The tables and the exposure file of a clean --full build of a fresh copy (without
    target/ and without the exposure's previous output, which seekrun refuses to overwrite
    in a copy it did not write)."""
    where = tmp_path / "clean"
    where.mkdir(exist_ok=True)
    src = tmp_path / "checkout"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(proj, src, ignore=shutil.ignore_patterns("target", "output"))
    tables = clean_build(src, where)
    return tables, exposure_rows(where / "fresh_copy", exposure)


def exposure_rows(project: Path, exposure: str = EXPOSURE) -> tuple[str, list[str]]:
    """The exposure's CSV: its header and its rows as a set (DuckDB writes rows in no fixed
    order, so two identical builds may order them differently)."""
    header, *rows = (project / exposure).read_text().splitlines()
    return header, sorted(rows)


def carries_on(proj: Path, tmp_path: Path, *, ran_exactly: set[str] | None = None,
               must_run: set[str] = frozenset(), warning: str | None = None):
    """Run after the damage: exit 0, no traceback, the right nodes ran, the warning (if the
    damage deserves one) was given, the results equal a clean build, and the next run has
    nothing to do and nothing to warn about."""
    res = cli_proc("run", "-p", str(proj))
    shown = f"--- stdout\n{res.stdout}--- stderr\n{res.stderr}"
    assert res.exit_code == 0, shown
    assert "Traceback" not in res.output and "internal error" not in res.output, shown
    did = ran(proj)
    if ran_exactly is not None:
        assert did == ran_exactly, f"ran {sorted(did)}\n{shown}"
    assert must_run <= did, f"ran {sorted(did)}, expected at least {sorted(must_run)}\n{shown}"
    if warning is not None:
        warned = [ln for ln in res.output.splitlines() if "warning" in ln and warning in ln]
        assert warned, f"expected a warning holding {warning!r}\n{shown}"
    tables, exposure = clean_expected(proj, tmp_path)
    assert all_tables(proj) == tables, shown
    assert exposure_rows(proj) == exposure, shown
    again = cli_proc("run", "-p", str(proj))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    assert "warning" not in again.output.lower(), again.output
    return res


# ---------------------------------------------------------------------------------------------
# execution_state.json

@pytest.mark.parametrize("garbage", [b"not json\n", b'{"version": 1, "nodes": {"source.orders": {"st',
                                     b"\xff\xfe\x00garbage", b"", b"[" * 100_000 + b"]" * 100_000],
                         ids=["text", "truncated", "binary", "empty", "deeply_nested"])
def test_garbled_state_is_moved_aside_and_everything_rebuilds(proj, tmp_path, garbage):
    state_path(proj).write_bytes(garbage)
    carries_on(proj, tmp_path, ran_exactly=node_ids(proj), warning="state file is corrupt")
    aside = [p for p in state_path(proj).parent.iterdir() if p.name.startswith("execution_state.json.corrupt-")]
    assert [p.read_bytes() for p in aside] == [garbage]


@pytest.mark.parametrize("data", [{"nodes": []}, [], {"version": 1}, {"version": 1, "nodes": 5}, "nodes", None],
                         ids=["nodes_a_list", "a_list", "no_nodes", "nodes_an_int", "a_string", "null"])
def test_state_of_the_wrong_shape_is_moved_aside_and_everything_rebuilds(proj, tmp_path, data):
    write_state(proj, data)
    carries_on(proj, tmp_path, ran_exactly=node_ids(proj), warning="state file is corrupt")


DAMAGED_RECORDS = {
    "wrong_types": lambda rec: {**rec, "output_hash": [1], "inputs": 5},
    "output_hash_a_list": lambda rec: {**rec, "output_hash": [1]},
    "inputs_an_int": lambda rec: {**rec, "inputs": 5},
    "input_hash_a_dict": lambda rec: {**rec, "inputs": {k: {"x": 1} for k in rec.get("inputs") or {"a": 1}}},
    "status_missing": lambda rec: {k: v for k, v in rec.items() if k != "status"},
    "config_hash_an_int": lambda rec: {**rec, "config_hash": 12},
    "fields_a_list": lambda rec: {**rec, "fields": []},
    "output_files_a_string": lambda rec: {**rec, "output_files": "output/customer_360.csv"},
    "output_hashes_ints": lambda rec: {**rec, "output_hashes": {"output/customer_360.csv": 5}},
    "a_list": lambda rec: [rec],
    "an_int": lambda rec: 5,
    "null": lambda rec: None,
}


# every damage on a transform's record; the ones that touch output files on the exposure's too
RECORD_CASES = [*((how, "transform.clean_orders") for how in sorted(DAMAGED_RECORDS)),
                *((how, "exposure.customer_360_csv") for how in ("wrong_types", "output_files_a_string",
                                                                 "output_hashes_ints", "null"))]


@pytest.mark.parametrize("how, nid", RECORD_CASES)
def test_a_damaged_record_is_dropped_with_a_warning_and_its_node_rebuilt(proj, tmp_path, how, nid):
    data = read_state(proj)
    data["nodes"][nid] = DAMAGED_RECORDS[how](data["nodes"][nid])
    write_state(proj, data)
    res = carries_on(proj, tmp_path, must_run={nid}, warning="damaged record ignored")
    assert f"damaged record ignored ({nid})" in res.output
    kept = read_state(proj)["nodes"][nid]
    assert kept["status"] == "success" and isinstance(kept["output_hash"], str)


META_DAMAGE = {
    "database_tables_an_int": ("database.tables", 5),
    "database_tables_bad_values": ("database.tables.transform.clean_orders", [1]),
    "database_tables_stamp_a_dict": ("database.tables.source.orders", {"a": 1}),
    "database_an_int": ("database", 5),
    "database_sig_text": ("database.sig", "abc"),
    "database_id_a_list": ("database.id", [1]),
    "claimed_an_int": ("claimed", 5),
    "claimed_bad_values": ("claimed", {"exposure.customer_360_csv": 5}),
    "meta_a_list": ("", []),
}


@pytest.mark.parametrize("how", sorted(META_DAMAGE))
def test_damaged_run_metadata_in_the_state_costs_a_check_not_a_rebuild(proj, tmp_path, how):
    """meta (the database's signature, its tables' stamps, claimed output files) is only a
    shortcut: when it is damaged, the tables are checked in the database itself."""
    key, value = META_DAMAGE[how]
    data = read_state(proj)
    if not key:
        data["meta"] = value
    else:
        obj = data["meta"]
        parts = key.split(".")
        if parts[:2] == ["database", "tables"]:  # node ids hold a dot
            parts = [*parts[:2], ".".join(parts[2:])] if len(parts) > 2 else parts
        *parents, last = parts
        for part in parents:
            obj = obj[part]
        assert last in obj, key
        obj[last] = value
    write_state(proj, data)
    # a table stamp of the wrong type is a stamp that does not match: that node (only) rebuilds
    did = {"database_tables_bad_values": {"transform.clean_orders"},
           "database_tables_stamp_a_dict": {"source.orders"}}.get(how, set())
    carries_on(proj, tmp_path, ran_exactly=did)


# ---------------------------------------------------------------------------------------------
# the journal (left by a killed run)

def good_line(proj: Path, nid: str) -> bytes:
    return json.dumps({"id": nid, "entry": read_state(proj)["nodes"][nid]}).encode() + b"\n"


JOURNAL_LINES = {
    # (journal content, nodes that must rebuild, warning)
    "id_a_list": (b'{"id": [1], "entry": {}}\n', set(), None),
    "output_files_an_int": (b'{"id": "source.orders", "entry": {"output_files": 5}}\n', {"source.orders"},
                            "damaged record ignored"),
    "entry_an_int": (b'{"id": "source.orders", "entry": 5}\n', {"source.orders"}, "damaged record ignored"),
    "entry_null": (b'{"id": "source.orders", "entry": null}\n', {"source.orders"}, "damaged record ignored"),
    "claim_an_int": (b'{"id": "exposure.customer_360_csv", "claim": 5}\n', set(), None),
    "claim_with_ints": (b'{"id": "exposure.customer_360_csv", "claim": [1, {"a": 2}]}\n', set(), None),
    "a_list": (b"[1, 2, 3]\n", set(), None),
    "a_string": (b'"source.orders"\n', set(), None),
    "null": (b"null\n", set(), None),
    "no_entry": (b'{"id": "source.orders"}\n', set(), None),
    "binary": (b"\xff\xfe\x00\x01garbage\n", set(), None),
    "torn_only": (b'{"id": "source.orders", "entry": {"status": "succ', set(), None),
}


@pytest.mark.parametrize("how", sorted(JOURNAL_LINES))
def test_journal_lines_of_the_wrong_shape_are_skipped_or_dropped(proj, tmp_path, how):
    content, rebuilt, warning = JOURNAL_LINES[how]
    # a real record first: it must survive the bad line after it
    journal_path(proj).write_bytes(good_line(proj, "transform.clean_orders") + content)
    carries_on(proj, tmp_path, ran_exactly=rebuilt, warning=warning)
    assert not journal_path(proj).exists()  # folded into the state
    assert read_state(proj)["nodes"]["transform.clean_orders"]["status"] == "success"


def test_a_torn_last_journal_line_does_not_swallow_the_next_runs_record(proj, tmp_path):
    """Issue 10 §5: after a killed run's torn last line, the next record was appended onto it
    and lost on reload. Here: a torn line, then a run that rebuilds one node and is killed
    before it folds its journal; the record it appended must be on a line of its own, so the
    run after it has nothing to do."""
    path = proj / "nodes" / "transforms" / "product_sales.yml"
    assert "SELECT" in path.read_text()
    path.write_text(path.read_text().replace("SELECT", "SELECT 1 AS seekrun_test_marker,", 1))
    torn = b'{"entry":{"config_hash":"abc","status":"succ'  # a kill in the middle of a write
    journal_path(proj).write_bytes(good_line(proj, "source.orders") + torn)

    killed = cli_proc("run", "-p", str(proj), env={"SEEKRUN_FAULT": "state_fold"})
    assert killed.exit_code == -9, killed.output  # SIGKILLed before the journal is folded
    raw = journal_path(proj).read_bytes()
    lines = raw.split(b"\n")
    assert lines[1].startswith(torn), raw  # the torn line is left as it was...
    assert lines[1] == torn, raw  # ...and nothing was appended onto it
    recorded = journal_successes(proj)
    assert "transform.product_sales" in recorded, raw
    assert recorded[0] == "source.orders"

    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output
    assert not journal_path(proj).exists()
    state = read_state(proj)["nodes"]
    assert state["transform.product_sales"]["status"] == "success"
    tables, exposure = clean_expected(proj, tmp_path)
    assert all_tables(proj) == tables
    assert exposure_rows(proj) == exposure


# ---------------------------------------------------------------------------------------------
# caches: file hashes, parsed files, the manifest

def checked(obj) -> bytes:
    """A file as fsutil.write_checked writes it (a checksum line, then the JSON): valid for the
    checksum, of the wrong shape inside."""
    from seekrun.fsutil import dump_json
    from seekrun.hashing import hash_bytes

    body = dump_json(obj)
    return hash_bytes(body).encode() + b"\n" + body


def file_hash_damage(proj: Path) -> dict[str, bytes]:
    real = (proj / "target" / "state" / "file_hashes.json").read_bytes()
    body = json.loads(real.partition(b"\n")[2])
    files, version = body["files"], body["version"]  # the real version: only the shape is wrong
    assert files
    return {
        "garbled": b"not json\n",
        "truncated": real[: len(real) // 2],
        "ints_as_entries": json.dumps({"version": version, "files": {k: 5 for k in files}}).encode(),
        "checked_ints_as_entries": checked({"version": version, "files": {k: 5 for k in files}}),
        "checked_short_entries": checked({"version": version, "files": {k: v[:2] for k, v in files.items()}}),
        "checked_files_a_list": checked({"version": version, "files": list(files)}),
        "checked_a_list": checked([1, 2]),
    }


@pytest.mark.parametrize("how", ["garbled", "truncated", "ints_as_entries", "checked_ints_as_entries",
                                 "checked_short_entries", "checked_files_a_list", "checked_a_list"])
def test_damaged_file_hashes_cost_a_rehash_not_a_rebuild(proj, tmp_path, how):
    path = proj / "target" / "state" / "file_hashes.json"
    path.write_bytes(file_hash_damage(proj)[how])
    carries_on(proj, tmp_path, ran_exactly=set())


def shards(proj: Path) -> list[Path]:
    found = sorted((proj / "target" / "state" / "parse_cache").glob("[0-9][0-9].json"))
    assert len(found) == 32
    return found


def entry_damage(entry: dict, how: str) -> dict:
    if how == "records_an_int":
        return {**entry, "records": 5}
    if how == "records_of_ints":
        return {**entry, "records": [5, None]}
    if how == "warnings_an_int":
        return {**entry, "warnings": 5}
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["garbled", "truncated", "checked_entry_an_int", "checked_a_list",
                                 "checked_records_an_int", "checked_records_of_ints", "checked_warnings_an_int",
                                 "meta_garbled"])
def test_damaged_parse_cache_costs_a_reparse_not_a_rebuild(proj, tmp_path, how):
    """Every shard damaged the same way (entries keep their real stat signature, so a shape
    check is all that stands between them and the parser's output)."""
    for shard in shards(proj):
        raw = shard.read_bytes()
        entries = json.loads(raw.partition(b"\n")[2])
        if how == "garbled":
            shard.write_bytes(b"not json\n")
        elif how == "truncated":
            shard.write_bytes(raw[: len(raw) // 2])
        elif how == "checked_entry_an_int":
            shard.write_bytes(checked({k: 5 for k in entries}))
        elif how == "checked_a_list":
            shard.write_bytes(checked(list(entries)))
        elif how.startswith("checked_"):
            shard.write_bytes(checked({k: entry_damage(v, how[len("checked_"):]) for k, v in entries.items()}))
    if how == "meta_garbled":
        (proj / "target" / "state" / "parse_cache" / "meta.json").write_bytes(b'{"meta": {"digest"')
    carries_on(proj, tmp_path, ran_exactly=set())


@pytest.mark.parametrize("content", [
    b"not json\n",
    b'{"metadata": {"manifest_version": 1}, "nodes": {"x": 5}}',
    b'{"metadata": {"manifest_version": 1}, "nodes": [1, 2]}',
    b'{"metadata": 5, "nodes": {}}',
    b"[]",
    b"",
], ids=["garbled", "nodes_of_ints", "nodes_a_list", "metadata_an_int", "a_list", "empty"])
@pytest.mark.parametrize("rel", ["target/manifest.json", "target/manifest.json.old"])
def test_a_damaged_manifest_costs_a_rewrite_not_a_rebuild(proj, tmp_path, rel, content):
    (proj / rel).write_bytes(content)
    carries_on(proj, tmp_path, ran_exactly=set())
    manifest = json.loads((proj / "target" / "manifest.json").read_text())
    assert set(manifest["nodes"]) == node_ids(proj) and len(manifest["nodes"]) == 25


@pytest.mark.parametrize("content", [b"not json\n", b'{"results": 5}', b"[]", b"\xff\x00"],
                         ids=["garbled", "results_an_int", "a_list", "binary"])
def test_damaged_run_results_are_rewritten(proj, tmp_path, content):
    (proj / "target" / "run_results.json").write_bytes(content)
    carries_on(proj, tmp_path, ran_exactly=set())


def test_a_lock_file_with_garbage_in_it_is_taken_over(proj, tmp_path):
    (proj / "target" / ".seekrun.lock").write_bytes(b"\xff\xfe not a pid \x00\n" * 50)
    carries_on(proj, tmp_path, ran_exactly=set())


# ---------------------------------------------------------------------------------------------
# temp files a killed run left behind

STALE = ["target/.manifest.json.tmp-99999", "target/state/.execution_state.json.tmp-12345",
         "target/state/.file_hashes.json.tmp-4242", "target/state/parse_cache/.07.json.tmp-777",
         "target/.run_results.json.tmp-31337", "target/feature_store/.customer_features.parquet.4242-1234.tmp",
         "target/exports/.seekrun-tmp-0123456789ab-customer_360.csv"]
EXPOSURE_TEMP = STALE[-1]  # written next to an exposure's file: removed by a run (which knows where those are)


@pytest.mark.parametrize("command", ["run", "parse"])
def test_stale_temp_files_are_removed_by_the_next_command(proj, tmp_path, command):
    for rel in STALE:
        (proj / rel).write_bytes(b"half-written by a killed run")
    keep = proj / "target" / "state" / "notes.tmp-not-ours"  # not a name seekrun gives its temp files
    keep.write_bytes(b"keep me")
    dry = cli_proc("run", "-p", str(proj), "--dry-run")  # a dry run writes (and removes) nothing
    assert dry.exit_code == 0, dry.output
    assert all((proj / rel).exists() for rel in STALE)

    res = cli_proc(command, "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    left = [rel for rel in STALE if (proj / rel).exists()]
    if command == "parse":  # parse writes nothing next to exposure outputs: those wait for a run
        assert left == [EXPOSURE_TEMP], left
    else:
        assert left == [], left
    assert keep.read_bytes() == b"keep me"
    if command == "run":
        assert ran(proj) == set()
    tables, exposure = clean_expected(proj, tmp_path)
    assert all_tables(proj) == tables
    assert exposure_rows(proj) == exposure


# ---------------------------------------------------------------------------------------------
# an exposure outside target/ when the state that says seekrun wrote it is lost

OUTSIDE_EXPOSURE = "output/customer_360.csv"  # sample_project as it is (exposure_paths: [output])


@pytest.mark.parametrize("damage", ["garbled_state", "damaged_record", "target_deleted"])
def test_a_lost_state_and_an_exposure_outside_target(tmp_path, damage):
    """Outside target/, seekrun never writes over a file it did not write. It knows the files it
    wrote from its state, and from the list it keeps next to them (.seekrun-outputs in the
    folder), which survives a lost state or a deleted target/: so the run carries on and
    rebuilds, and a file seekrun never wrote is still refused."""
    proj = copy_sample(tmp_path / "proj", OUTSIDE_EXPOSURE)
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert (proj / "output" / ".seekrun-outputs").is_file()
    if damage == "garbled_state":
        state_path(proj).write_bytes(b"not json\n")
    elif damage == "damaged_record":
        data = read_state(proj)
        data["nodes"]["exposure.customer_360_csv"]["output_files"] = 5
        write_state(proj, data)
    else:
        shutil.rmtree(proj / "target")

    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    assert "exposure.customer_360_csv" in ran(proj)
    if damage != "target_deleted":
        assert ("state file is corrupt" if damage == "garbled_state" else "damaged record ignored") in res.output
    tables, exposure = clean_expected(proj, tmp_path, OUTSIDE_EXPOSURE)
    assert all_tables(proj) == tables
    assert exposure_rows(proj, OUTSIDE_EXPOSURE) == exposure
    again = cli_proc("run", "-p", str(proj))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


def test_a_hand_made_file_where_a_new_exposure_writes_is_refused_even_next_to_seekrun_files(tmp_path):
    proj = copy_sample(tmp_path / "proj", OUTSIDE_EXPOSURE)
    assert cli("run", "-p", str(proj)).exit_code == 0
    (proj / "output" / "mine.csv").write_text("hand made\n")
    (proj / "nodes" / "exposures" / "mine.yml").write_text(
        "kind: exposure\nname: mine\ntype: file\ninputs: [{ref: transform.customer_360}]\n"
        "params: {format: csv, path: output/mine.csv}\n")
    before = target_snapshot(proj)
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "exposure.mine: 'output/mine.csv' exists and was not written by seekrun" in res.stderr, res.stderr
    assert (proj / "output" / "mine.csv").read_text() == "hand made\n"
    assert target_snapshot(proj) == before


def test_a_stale_temp_file_next_to_an_exposure_outside_target_is_removed_by_the_next_run(tmp_path):
    proj = copy_sample(tmp_path / "proj", OUTSIDE_EXPOSURE)
    assert cli("run", "-p", str(proj)).exit_code == 0
    stale = proj / "output" / ".seekrun-tmp-0123456789ab-customer_360.csv"
    stale.write_bytes(b"half-written by a killed run")
    mine = proj / "output" / "notes.txt"  # the user's own file in that folder
    mine.write_bytes(b"keep me")
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output
    assert not stale.exists()
    assert mine.read_bytes() == b"keep me"
