"""Promises the README makes that no other test checked.

Real projects in tmp_path, real DuckDB, the real CLI (in-process, or as a `python -m seekrun`
process where signals, the environment or main()'s error handling matter). Every assertion is
on what a user sees: exit codes, stdout/stderr, files, tables, processes.
"""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ENDLESS, cli, cli_proc, journal_successes, ran, run_results, slow_count, slow_sql, table, write_project

# ---------------------------------------------------------------------------------------------
# a small project: source.a -> transform.clean -> transform.report, source.a -> transform.other

SMALL = {
    "seekrun_project.yml": "name: testproj\nexposure_paths: [output]\n",
    "data/a.csv": "id,v\n1,10\n2,20\n3,30\n",
    "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
    "nodes/clean.yml": ("kind: transform\nname: clean\ninputs: [{ref: source.a}]\n"
                        "transform: SELECT id, v FROM input_0 WHERE v > 10\n"),
    "nodes/report.yml": ("kind: transform\nname: report\ninputs: [{ref: transform.clean}]\n"
                         "transform: SELECT sum(v) AS total FROM input_0\n"),
    "nodes/other.yml": ("kind: transform\nname: other\ninputs: [{ref: source.a}]\n"
                        "transform: SELECT count(*) AS n FROM input_0\n"),
}
SMALL_IDS = {"source.a", "transform.clean", "transform.report", "transform.other"}


def small_project(root: Path, extra: dict | None = None) -> Path:
    return write_project(root, {**SMALL, **(extra or {})})


def edit(proj: Path, rel: str, old: str, new: str) -> None:
    path = proj / rel
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def run_ok(proj: Path, *args: str):
    res = cli("run", "-p", str(proj), *args)
    assert res.exit_code == 0, res.output
    return res


# ---------------------------------------------------------------------------------------------
# 1. `seekrun run --json`


def test_run_json_prints_the_summary_as_json_on_stdout(tmp_path):
    proj = small_project(tmp_path / "p")
    res = cli_proc("run", "-p", str(proj), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)  # the whole of stdout is the JSON document: no progress lines
    assert data["total_nodes"] == 4
    assert data["successful_nodes"] == 4 and data["failed_nodes"] == 0 and data["dry_run"] is False
    statuses = {r["node_id"]: r["status"] for r in data["results"]}
    assert statuses == {nid: "success" for nid in SMALL_IDS}
    assert {r["node_id"]: r["reason"] for r in data["results"]} == {nid: "new" for nid in SMALL_IDS}
    assert {r["node_id"]: r["row_count"] for r in data["results"]} == {
        "source.a": 3, "transform.clean": 2, "transform.report": 1, "transform.other": 1}

    # a node that fails at run time: exit 1, and the JSON says which
    (proj / "nodes" / "bad.yml").write_text(
        "kind: transform\nname: bad\ninputs: [{ref: source.a}]\n"
        "transform: SELECT id, CAST('not a number' AS INTEGER) AS v FROM input_0\n"
        "---\nkind: transform\nname: after_bad\ninputs: [{ref: transform.bad}]\n"
        "transform: SELECT count(*) AS n FROM input_0\n")
    res = cli_proc("run", "-p", str(proj), "--json")
    assert res.exit_code == 1, res.output
    data = json.loads(res.stdout)
    assert data["total_nodes"] == 6 and data["failed_nodes"] == 1
    by_id = {r["node_id"]: r for r in data["results"]}
    assert by_id["transform.bad"]["status"] == "failed"
    assert "Could not convert string" in by_id["transform.bad"]["error"], by_id["transform.bad"]
    assert by_id["transform.after_bad"]["status"] == "skipped"
    assert {nid: by_id[nid]["status"] for nid in SMALL_IDS} == {nid: "cached" for nid in SMALL_IDS}



def test_run_json_still_warns_about_corrupt_state(tmp_path):
    """README: corrupt state is moved aside with a warning: with --json too, on stderr and in
    the JSON."""
    proj = small_project(tmp_path / "p")
    run_ok(proj)
    (proj / "target" / "state" / "execution_state.json").write_bytes(b"not json\n")
    res = cli_proc("run", "-p", str(proj), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["successful_nodes"] == 4  # rebuilt as if there were no state
    assert "state file is corrupt" in res.stderr, res.output
    assert any("state file is corrupt" in w for w in data["warnings"]), data["warnings"]

# ---------------------------------------------------------------------------------------------
# 2. SIGTERM stops a run like Ctrl-C

N_SLOW = 3
SLOW_COUNT = [slow_count(k) for k in range(N_SLOW)]  # after a quick run (see conftest.slow_sql)


def slow_project(root: Path) -> tuple[Path, set[str]]:
    """a_quick (instant), N_SLOW slow transforms (endless under ENDLESS), and `total` over all of them."""
    files = {"nodes/a_quick.yml": "kind: transform\nname: a_quick\ntransform: SELECT 42 AS answer\n"}
    for k in range(N_SLOW):
        files[f"nodes/slow_{k}.yml"] = f"kind: transform\nname: slow_{k}\ntransform: \"{slow_sql(k)}\"\n"
    refs = "".join(f"  - ref: transform.slow_{k}\n" for k in range(N_SLOW))
    union = " UNION ALL ".join(f"SELECT c FROM input_{k}" for k in range(N_SLOW))
    files["nodes/total.yml"] = f"kind: transform\nname: total\ninputs:\n{refs}transform: SELECT sum(c) AS c FROM ({union})\n"
    ids = {"transform.a_quick", "transform.total", *(f"transform.slow_{k}" for k in range(N_SLOW))}
    return write_project(root, files), ids


def process_group(pgid: int) -> set[int]:
    """Every live process whose process group is pgid (children stay in it when reparented)."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            out.add(int(entry))
    return out


def wait_for(cond, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"seekrun exited ({proc.returncode}) before {what}")
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("threads", ["1", "2"])
def test_sigterm_stops_cleanly_and_the_next_run_finishes_the_rest(threads, tmp_path):
    proj, ids = slow_project(tmp_path / "proj")
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    # Its own session, so its process group holds it and every process it starts; output to
    # files, not pipes, so waiting for it to exit never waits on a process it left behind.
    with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
        proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run", "-p", str(proj), "--threads", threads],
                                stdout=out_f, stderr=err_f, text=True, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **ENDLESS})
    try:
        wait_for(lambda: "transform.a_quick" in journal_successes(proj), proc, "a node finished")
        assert proc.pid in process_group(proc.pid)  # the check below looks in the right place
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        left = process_group(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if left:  # the group id stays reserved while any member lives: this kills only what seekrun left
        os.killpg(proc.pid, signal.SIGKILL)
    out, err = out_path.read_text(), err_path.read_text()
    shown = f"exit {proc.returncode}\n--- stdout\n{out}--- stderr\n{err}"
    assert proc.returncode == 130, shown
    assert "Traceback" not in out + err and "internal error" not in out + err, shown
    assert left == set(), f"processes left behind: {sorted(left)}\n{shown}"

    results = run_results(proj)
    assert set(results) == ids
    done = {nid for nid, r in results.items() if r["status"] == "success"}
    undone = ids - done
    assert done == {"transform.a_quick"}, shown  # the slow ones cannot finish on their own
    data = json.loads((proj / "target" / "run_results.json").read_text())
    assert data["metadata"]["interrupted"] is True and data["status"] == "cancelled"
    said = [ln for ln in (out + err).splitlines() if "left undone" in ln]
    assert said and all(nid in said[0] for nid in undone), shown
    assert not any(nid in said[0] for nid in done), shown

    res = cli("run", "-p", str(proj), "--threads", threads)
    assert res.exit_code == 0, res.output
    assert ran(proj) == undone, res.output  # what finished before the signal is cached
    assert {nid: r["status"] for nid, r in run_results(proj).items() if nid in done} == {
        nid: "cached" for nid in done}
    assert table(proj, "transform.a_quick") == [(42,)]
    assert [table(proj, f"transform.slow_{k}") for k in range(N_SLOW)] == [[(c,)] for c in SLOW_COUNT]
    assert table(proj, "transform.total") == [(sum(SLOW_COUNT),)]


# ---------------------------------------------------------------------------------------------
# 3. --retry N: a node that fails twice, then succeeds

FLAKY_PY = '''\
import time
from pathlib import Path

from seekrun.pipeline import transform

STAMPS = Path({stamps!r})


@transform(name="flaky", inputs=["source.a"])
def flaky(ctx):
    stamps = STAMPS.read_text().split() if STAMPS.exists() else []
    stamps.append(repr(time.monotonic()))
    STAMPS.write_text("\\n".join(stamps))
    if len(stamps) < 3:
        raise RuntimeError(f"flaky on attempt {{len(stamps)}}")
    return ctx.ref("source.a").project("id, v + 1 AS v")
'''


def test_retry_succeeds_on_a_later_attempt_after_a_backoff(tmp_path):
    from seekrun.runner import DAGRunner

    stamps = tmp_path / "attempts.txt"  # outside the project: writing it changes nothing seekrun hashes
    proj = small_project(tmp_path / "p", {
        "nodes/flaky.py": FLAKY_PY.format(stamps=str(stamps)),
        "nodes/after_flaky.yml": ("kind: transform\nname: after_flaky\ninputs: [{ref: transform.flaky}]\n"
                                  "transform: SELECT sum(v) AS s FROM input_0\n"),
    })
    res = cli("run", "-p", str(proj), "--retry", "3", "--threads", "1")
    assert res.exit_code == 0, res.output
    results = run_results(proj)
    assert results["transform.flaky"]["status"] == "success", results["transform.flaky"]
    assert results["transform.flaky"]["attempts"] == 3
    assert results["transform.flaky"]["error"] is None
    assert {nid: r["attempts"] for nid, r in results.items() if nid != "transform.flaky"} == {
        nid: 1 for nid in SMALL_IDS | {"transform.after_flaky"}}
    line = [ln for ln in res.stdout.splitlines() if "transform.flaky" in ln]
    assert len(line) == 1 and re.match(r"OK\s+transform\.flaky\s.*\b3 attempts\b", line[0]), res.stdout
    assert table(proj, "transform.flaky") == [(1, 11), (2, 21), (3, 31)]
    assert table(proj, "transform.after_flaky") == [(63,)]

    t = [float(x) for x in stamps.read_text().split()]
    assert len(t) == 3
    base = DAGRunner.retry_base_delay
    assert base > 0
    assert t[1] - t[0] >= base, t  # waited before the first retry...
    assert t[2] - t[1] >= 2 * base, t  # ...and longer before the second (backoff)

    assert "Nothing to do" in run_ok(proj).stdout
    assert len(stamps.read_text().split()) == 3


# ---------------------------------------------------------------------------------------------
# 4. `seekrun show NODE`


def test_show_says_whether_a_node_would_run_and_why(tmp_path):
    proj = small_project(tmp_path / "p")
    run_ok(proj)
    res = cli("show", "transform.clean", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "transform.clean  [up to date]", res.stdout

    edit(proj, "nodes/clean.yml", "v > 10", "v > 20")
    res = cli("show", "clean", "-p", str(proj))  # a unique bare name works too
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines()[0] == "transform.clean  [would run (config changed: transform SQL)]", res.stdout
    assert "WHERE v > 20" in res.stdout  # the SQL as it will run
    res = cli("show", "transform.report", "-p", str(proj))
    assert res.stdout.splitlines()[0] == "transform.report  [would run (upstream transform.clean changed)]"
    res = cli("show", "transform.other", "-p", str(proj))
    assert res.stdout.splitlines()[0] == "transform.other  [up to date]", res.stdout

    # show only looks: the run that follows still has the same work to do
    run_ok(proj)
    assert ran(proj) == {"transform.clean", "transform.report"}
    res = cli("show", "transform.clean", "-p", str(proj))
    assert res.stdout.splitlines()[0] == "transform.clean  [up to date]", res.stdout


def test_show_an_unknown_node_is_a_usage_error_with_a_suggestion(tmp_path):
    proj = small_project(tmp_path / "p")
    run_ok(proj)
    res = cli("show", "transform.claen", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "unknown node 'transform.claen'" in res.stderr
    assert "did you mean 'transform.clean'?" in res.stderr, res.stderr
    assert res.stdout == ""


# ---------------------------------------------------------------------------------------------
# 5. deleting target/state/env_key

ENV_FILES = {
    "data/b.csv": "id,w\n1,x\n2,NA\n",
    "nodes/b.yml": ("kind: source\nname: b\nsource: csv\ntable: data/b.csv\n"
                    "params:\n  nullstr: \"{{ env_var('SEEKRUN_PROMISE_NULLSTR', 'NA') }}\"\n"),
    "nodes/scaled.yml": ("kind: transform\nname: scaled\ninputs: [{ref: source.a}]\n"
                         "transform: SELECT id, v * {{ env_var('SEEKRUN_PROMISE_FACTOR', '3') }} AS v FROM input_0\n"),
}


def test_deleting_the_env_key_reruns_the_env_var_nodes_once(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEKRUN_PROMISE_NULLSTR", raising=False)
    monkeypatch.delenv("SEEKRUN_PROMISE_FACTOR", raising=False)
    proj = small_project(tmp_path / "p", ENV_FILES)
    run_ok(proj)
    key_file = proj / "target" / "state" / "env_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    old_key = key_file.read_text()
    tables = {nid: table(proj, nid) for nid in SMALL_IDS | {"source.b", "transform.scaled"}}
    assert tables["transform.scaled"] == [(1, 30), (2, 60), (3, 90)]
    assert tables["source.b"] == [(1, "x"), (2, None)]

    key_file.unlink()
    run_ok(proj)
    results = run_results(proj)
    env_nodes = {"source.b", "transform.scaled"}  # the only nodes that use env_var()
    assert ran(proj) == env_nodes, {nid: (r["status"], r["reason"]) for nid, r in results.items()}
    for nid in env_nodes:
        assert results[nid]["reason"] == "config changed: environment variable value", results[nid]
    assert {nid: results[nid]["status"] for nid in SMALL_IDS} == {nid: "cached" for nid in SMALL_IDS}
    assert {nid: table(proj, nid) for nid in tables} == tables

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600  # a new key, owner-only again
    assert key_file.read_text() != old_key
    again = run_ok(proj)
    assert "Nothing to do" in again.stdout, again.output
    assert ran(proj) == set()


# ---------------------------------------------------------------------------------------------
# 6. environment knobs: SEEKRUN_DUCKDB_THREADS and SEEKRUN_DEBUG


@pytest.mark.parametrize("n", ["1", "3"])
def test_seekrun_duckdb_threads_fixes_duckdbs_thread_count(n, tmp_path):
    proj = write_project(tmp_path / "p", {
        "nodes/t.yml": "kind: transform\nname: t\ntransform: SELECT current_setting('threads') AS t\n",
        "nodes/u.yml": "kind: transform\nname: u\ntransform: SELECT current_setting('threads') AS t\n",
    })
    res = cli_proc("run", "-p", str(proj), "--threads", "2", env={"SEEKRUN_DUCKDB_THREADS": n})
    assert res.exit_code == 0, res.output
    # alone or side by side, each node ran with exactly the fixed count
    assert table(proj, "transform.t") == [(int(n),)]
    assert table(proj, "transform.u") == [(int(n),)]


INTERNAL_ERROR = {"SEEKRUN_FAULT": "raise@plan"}  # seekrun's test hook: an exception after planning


def test_an_internal_error_is_one_line_with_exit_3_and_seekrun_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEKRUN_DEBUG", raising=False)
    proj = small_project(tmp_path / "p")
    run_ok(proj)

    res = cli_proc("run", "-p", str(proj), env=INTERNAL_ERROR)
    shown = f"exit {res.exit_code}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}"
    assert res.exit_code == 3, shown
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, shown
    assert lines[0].startswith("seekrun: internal error: ") and "SEEKRUN_DEBUG=1" in lines[0], shown
    assert "Traceback" not in res.output, shown

    res = cli_proc("run", "-p", str(proj), env={**INTERNAL_ERROR, "SEEKRUN_DEBUG": "1"})
    shown = f"exit {res.exit_code}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}"
    assert res.exit_code == 3, shown  # still "an internal error", not "a node failed"
    assert "Traceback (most recent call last):" in res.stderr, shown
    assert re.search(r'File ".*seekrun[/\\]', res.stderr), shown  # frames inside seekrun
    assert "RuntimeError: fault injected at plan" in res.stderr, shown


# ---------------------------------------------------------------------------------------------
# 7. an exposure whose path changes


def test_an_exposure_whose_path_changes_removes_its_old_file_and_writes_the_new_one(tmp_path):
    proj = small_project(tmp_path / "p", {
        "nodes/export.yml": ("kind: exposure\nname: export\ntype: file\ninputs: [{ref: transform.clean}]\n"
                             "params:\n  format: csv\n  path: output/old_name.csv\n"),
        "nodes/keep.yml": ("kind: exposure\nname: keep\ntype: file\ninputs: [{ref: transform.clean}]\n"
                           "params:\n  format: csv\n  path: output/kept.csv\n"),
    })
    run_ok(proj)
    old, new, kept = proj / "output" / "old_name.csv", proj / "output" / "new_name.csv", proj / "output" / "kept.csv"
    assert old.read_text() == "id,v\n2,20\n3,30\n"
    kept_bytes = kept.read_bytes()

    edit(proj, "nodes/export.yml", "path: output/old_name.csv", "path: output/new_name.csv")
    run_ok(proj)
    assert ran(proj) == {"exposure.export"}
    assert new.read_text() == "id,v\n2,20\n3,30\n"
    assert not old.exists(), "the file at the old path is still there"
    assert kept.read_bytes() == kept_bytes
    assert "Nothing to do" in run_ok(proj).stdout


# ---------------------------------------------------------------------------------------------
# 8. a Python @source node

GEN_PY = '''\
import pandas as pd

from seekrun.pipeline import source


@source(name="gen", description="rows made in Python")
def gen(ctx):
    return pd.DataFrame({"id": [1, 2, 3], "colour": ["red", "green", "blue"]})
'''


def test_a_python_source_builds_its_rows_and_a_transform_reads_them(tmp_path):
    proj = write_project(tmp_path / "p", {
        "nodes/gen.py": GEN_PY,
        "nodes/uses_gen.yml": ("kind: transform\nname: uses_gen\ninputs: [{ref: source.gen}]\n"
                               "transform: SELECT count(*) AS n, string_agg(colour, ',' ORDER BY id) AS c "
                               "FROM source.gen WHERE id > 1\n"),
    })
    run_ok(proj)
    results = run_results(proj)
    assert {nid: r["status"] for nid, r in results.items()} == {"source.gen": "success",
                                                               "transform.uses_gen": "success"}
    assert results["source.gen"]["row_count"] == 3
    assert table(proj, "source.gen") == [(1, "red"), (2, "green"), (3, "blue")]
    assert table(proj, "transform.uses_gen") == [(2, "green,blue")]
    assert "Nothing to do" in run_ok(proj).stdout


# ---------------------------------------------------------------------------------------------
# 9. --full


def test_full_reruns_every_selected_node_with_reason_full(tmp_path):
    proj = small_project(tmp_path / "p")
    run_ok(proj)
    tables = {nid: table(proj, nid) for nid in SMALL_IDS}
    run_ok(proj, "--full")
    assert ran(proj) == SMALL_IDS
    assert {nid: r["reason"] for nid, r in run_results(proj).items()} == {nid: "--full" for nid in SMALL_IDS}

    run_ok(proj, "--full", "--types", "transform")
    results = run_results(proj)
    transforms = SMALL_IDS - {"source.a"}
    assert ran(proj) == transforms
    assert {nid: results[nid]["reason"] for nid in transforms} == {nid: "--full" for nid in transforms}
    assert results["source.a"]["status"] != "success"  # not selected: not rebuilt
    assert {nid: table(proj, nid) for nid in SMALL_IDS} == tables
    assert "Nothing to do" in run_ok(proj).stdout


def test_full_with_a_filter_does_not_call_an_up_to_date_unselected_node_stale(tmp_path):
    """README: a node filtered out "still needs to" run only if it needed to run. An up-to-date
    node left out of a --full run does not: the next plain run has nothing to do."""
    proj = small_project(tmp_path / "p")
    run_ok(proj)
    dry = cli("run", "-p", str(proj), "--full", "--types", "transform", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "still needs to run" not in dry.stdout, dry.stdout
    run_ok(proj, "--full", "--types", "transform")
    assert run_results(proj)["source.a"]["status"] == "cached", run_results(proj)["source.a"]
