"""Issue 5: corrupt state, Ctrl-C, the project lock and secrets in env vars.

Real projects, real DuckDB, the real CLI (as a separate process where signals, locks or the
environment matter).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import (all_tables, clean_build, cli, cli_proc, journal_successes, ran, run_results, table,
                      target_snapshot, write_project, ENDLESS, slow_count, slow_sql)

BASE = Path(__file__).resolve().parent / "bad_inputs" / "_base"
BASE_IDS = {"source.customers", "source.orders", "source.payments", "transform.clean_orders",
            "transform.customer_totals", "transform.payment_summary"}


def no_traceback(res) -> None:
    """For a cli_proc result: only a real process runs seekrun.cli.main, whose handler turns a
    crash into "internal error" (in-process, cli() would raise the exception instead)."""
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output


def built_base(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    shutil.copytree(BASE, proj)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    return proj


# ---------------------------------------------------------------------------------------------
# (a) corrupt state and caches

CORRUPTIONS = {
    "truncated": lambda good: good[: len(good) // 2],
    "not_json": lambda good: b"not json\n",
    "json_but_not_a_state": lambda good: b"[1, 2, 3]\n",
    "not_utf8": lambda good: b"\xff\xfe\x00\x81garbage",
    "empty": lambda good: b"",
}


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_state_is_moved_aside_and_everything_rebuilds(how, tmp_path):
    proj = built_base(tmp_path)
    # new data too: a stale table must never be reported as cached
    (proj / "data" / "orders.csv").write_text(
        "order_id,customer_id,amount,status\n10,1,12.50,completed\n12,2,30.00,completed\n"
        "13,3,5.00,completed\n14,3,4.00,completed\n")
    state = proj / "target" / "state" / "execution_state.json"
    bad = CORRUPTIONS[how](state.read_bytes())
    state.write_bytes(bad)

    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    no_traceback(res)
    warning = [ln for ln in res.output.splitlines() if "warning" in ln.lower() and "execution_state.json" in ln]
    assert warning and "corrupt" in warning[0], res.output

    aside = [p for p in state.parent.iterdir() if p.name.startswith("execution_state.json.corrupt-")]
    assert len(aside) == 1, sorted(p.name for p in state.parent.iterdir())
    assert re.fullmatch(r"execution_state\.json\.corrupt-[\w:.+-]*\d[\w:.+-]*", aside[0].name), aside[0].name
    assert aside[0].read_bytes() == bad

    results = run_results(proj)
    assert set(results) == BASE_IDS
    assert {nid: r["status"] for nid, r in results.items()} == {nid: "success" for nid in BASE_IDS}
    assert re.search(r"^\s*cached\s*:\s*0$", res.stdout, re.M), res.stdout
    assert table(proj, "transform.customer_totals") == [(1, "Ada", 12.5), (2, "Bob", 30.0), (3, "Cy", 9.0)]
    assert all_tables(proj) == clean_build(proj, tmp_path)

    data = json.loads(state.read_text())
    assert {nid for nid, e in data["nodes"].items() if e["status"] == "success"} == BASE_IDS

    again = cli("run", "-p", str(proj))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    assert "corrupt" not in again.output
    assert aside[0].read_bytes() == bad


def test_corrupt_state_dry_run_leaves_it_in_place_and_plans_everything(tmp_path):
    proj = built_base(tmp_path)
    state = proj / "target" / "state" / "execution_state.json"
    state.write_bytes(b"not json\n")
    before = target_snapshot(proj)
    res = cli_proc("run", "-p", str(proj), "--dry-run")
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert "corrupt" in res.output
    planned = {ln.split()[1] for ln in res.stdout.splitlines() if ln.startswith("RUN ")}
    assert planned == BASE_IDS, res.stdout
    assert target_snapshot(proj) == before


@pytest.mark.parametrize("rel", ["manifest.json", "state/parse_cache/meta.json", "state/file_hashes.json"])
@pytest.mark.parametrize("garbage", [b"not json\n", b'{"version": 1, "files": '])
def test_corrupt_manifest_or_cache_never_crashes_nor_reruns(rel, garbage, tmp_path):
    proj = built_base(tmp_path)
    tables = all_tables(proj)
    path = proj / "target" / rel
    assert path.is_file()
    path.write_bytes(garbage)
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    no_traceback(res)
    assert ran(proj) == set(), res.output  # the state is intact: nothing needs to run
    assert all_tables(proj) == tables
    manifest = json.loads((proj / "target" / "manifest.json").read_text())
    assert set(manifest["nodes"]) == BASE_IDS
    again = cli("run", "-p", str(proj))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    assert "warning" not in again.output.lower()


# ---------------------------------------------------------------------------------------------
# slow projects for Ctrl-C and the lock

def slow_project(root: Path, n: int = 4) -> tuple[Path, set[str]]:
    """transform.a_quick (instant), n slow transforms (conftest.slow_sql: endless under ENDLESS,
    quick otherwise), and `total` over all of them."""
    files = {"nodes/a_quick.yml": "kind: transform\nname: a_quick\ntransform: SELECT 42 AS answer\n"}
    for k in range(n):
        files[f"nodes/slow_{k}.yml"] = f"kind: transform\nname: slow_{k}\ntransform: \"{slow_sql(k)}\"\n"
    refs = "".join(f"  - ref: transform.slow_{k}\n" for k in range(n))
    union = " UNION ALL ".join(f"SELECT c FROM input_{k}" for k in range(n))
    files["nodes/total.yml"] = (f"kind: transform\nname: total\ninputs:\n{refs}"
                                f"transform: SELECT sum(c) AS c FROM ({union})\n")
    ids = {"transform.a_quick", *(f"transform.slow_{k}" for k in range(n)), "transform.total"}
    return write_project(root, files), ids


def expected_slow_tables(n: int = 4) -> dict[str, list[tuple]]:
    out = {f"transform.slow_{k}": [(slow_count(k),)] for k in range(n)}
    out["transform.total"] = [(sum(slow_count(k) for k in range(n)),)]
    out["transform.a_quick"] = [(42,)]
    return out


def start_run(project: Path, *args: str) -> subprocess.Popen:
    """A real run whose slow nodes never finish on their own (see conftest.slow_sql)."""
    return subprocess.Popen([sys.executable, "-m", "seekrun", "run", "-p", str(project), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **ENDLESS})


def wait_for(cond, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"seekrun exited ({proc.returncode}) before {what}\n{out}{err}")
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------
# (b) Ctrl-C


@pytest.mark.parametrize("threads", ["1", "2"])
def test_ctrl_c_stops_cleanly_and_the_next_run_finishes_the_rest(threads, tmp_path):
    proj, ids = slow_project(tmp_path / "proj")
    proc = start_run(proj, "--threads", threads)
    try:
        wait_for(lambda: "transform.a_quick" in journal_successes(proj), proc, "a node finished")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)  # a hang guard only: the slow nodes run for minutes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    shown = f"exit {proc.returncode}\n--- stdout\n{out}--- stderr\n{err}"
    assert proc.returncode == 130, shown
    assert "Traceback" not in out + err, shown

    results = run_results(proj)
    assert set(results) == ids
    done = {nid for nid, r in results.items() if r["status"] == "success"}
    undone = ids - done
    assert done == {"transform.a_quick"}, shown  # the slow ones cannot finish on their own
    assert all(results[nid]["status"] != "success" for nid in undone)
    assert json.loads((proj / "target" / "run_results.json").read_text())["metadata"]["interrupted"] is True
    # a message says what was left undone, naming every such node
    lines = [ln for ln in (out + err).splitlines() if all(nid in ln for nid in undone)]
    assert any(("undone" in ln or "interrupted" in ln.lower()) for ln in lines), shown

    state = json.loads((proj / "target" / "state" / "execution_state.json").read_text())
    recorded = {nid for nid, e in state["nodes"].items() if e.get("status") == "success"}
    assert recorded == done, (recorded, done)

    res = cli("run", "-p", str(proj), "--threads", "2")
    assert res.exit_code == 0, res.output
    assert ran(proj) == undone, res.output
    assert {nid: table(proj, nid) for nid in ids} == expected_slow_tables()


# ---------------------------------------------------------------------------------------------
# (c) the project lock


def test_second_run_or_parse_is_refused_while_one_runs_and_a_dead_holder_is_taken_over(tmp_path):
    proj, ids = slow_project(tmp_path / "proj")  # runs until the test kills it
    lock = proj / "target" / ".seekrun.lock"
    proc = start_run(proj, "--threads", "1")
    try:
        wait_for(lambda: lock.exists() and lock.read_text().startswith(f"{proc.pid} "), proc, "the lock was taken")
        for args in (["run"], ["parse"], ["run", "--full"]):
            # as a separate process: the real refusal...
            res = cli_proc(*args, "-p", str(proj), timeout=30)
            shown = f"$ seekrun {' '.join(args)}: exit {res.exit_code}\n{res.output}"
            assert res.exit_code == 2, shown
            assert re.search(rf"project is locked by pid {proc.pid} \(.*seekrun run.*\) since \S+ \S+ UTC", res.stderr), shown
            assert "Traceback" not in res.output, shown
            # ...and in-process: refused at once, not after waiting for the lock (the holder,
            # which runs far longer than this test, is still running when the refusal comes)
            res = cli(*args, "-p", str(proj))
            assert res.exit_code == 2 and f"project is locked by pid {proc.pid} (" in res.stderr, res.output
            assert proc.poll() is None, f"$ seekrun {' '.join(args)} waited for the lock"
        assert proc.poll() is None, "the first run was disturbed"
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert lock.read_text().startswith(f"{proc.pid} ")  # the dead process's lock is still on disk

    res = cli_proc("run", "-p", str(proj), "--threads", "2")  # without ENDLESS: quick
    assert res.exit_code == 0, res.output
    assert "locked" not in res.output
    assert {nid: table(proj, nid) for nid in ids} == expected_slow_tables()
    assert all(r["status"] in ("success", "cached") for r in run_results(proj).values()), res.output


def test_dry_run_while_a_run_is_going_works_and_says_so(tmp_path):
    """`seekrun run --dry-run` while a run holds the lock: the plan from the last committed
    state, with a note naming the run in progress (issue 11; it used to be refused)."""
    proj, ids = slow_project(tmp_path / "proj")
    lock = proj / "target" / ".seekrun.lock"
    proc = start_run(proj, "--threads", "1")
    try:
        wait_for(lambda: lock.exists() and lock.read_text().startswith(f"{proc.pid} "), proc, "the lock was taken")
        res = cli_proc("run", "-p", str(proj), "--dry-run", timeout=30)
        alive = proc.poll() is None
    finally:
        proc.kill()
        proc.communicate()
    shown = f"exit {res.exit_code}\n{res.output}"
    assert alive, "the first run was disturbed"
    assert res.exit_code == 0, shown
    assert f"a run is in progress (pid {proc.pid} (" in res.stderr, shown
    assert "RUN    transform.total" in res.stdout, shown


# ---------------------------------------------------------------------------------------------
# (d) secrets in env vars


def secret_project(root: Path) -> Path:
    return write_project(root, {
        "data/people.csv": "id,name,score\n1,ann,10\n2,bob,NA\n3,cy,n/a\n",
        "nodes/people.yml": "kind: source\nname: people\nsource: csv\ntable: data/people.csv\n",
        "nodes/filtered.yml": """\
            kind: transform
            name: filtered
            inputs:
              - ref: source.people
            transform: |
              SELECT id, name FROM input_0 WHERE name <> '{{ env_var('SEEKRUN_TEST_SECRET') }}'
            """,
        "nodes/leaky.yml": """\
            kind: transform
            name: leaky
            transform: SELECT CAST('{{ env_var('SEEKRUN_TEST_SECRET') }}' AS INTEGER) AS n
            """,
    })


def assert_secret_nowhere(project: Path, secret: str, *outputs) -> None:
    """Not in any file under target/ but the database itself, nor in any command's output."""
    target = project / "target"
    checked = []
    for path in sorted(target.rglob("*")):
        if not path.is_file() or path.name.startswith("seekrun.duckdb"):
            continue
        checked.append(path.relative_to(project).as_posix())
        assert secret.encode() not in path.read_bytes(), f"the secret is in {path}"
    assert {"target/manifest.json", "target/run_results.json", "target/state/execution_state.json",
            "target/state/parse_cache/meta.json"} <= set(checked), checked
    for res in outputs:
        assert secret not in res.output, f"the secret is in the output:\n{res.output}"


def test_env_var_secret_in_sql_never_leaks_and_a_change_reruns(tmp_path, monkeypatch):
    monkeypatch.delenv("SEEKRUN_TEST_SECRET", raising=False)
    proj = secret_project(tmp_path / "proj")
    first = f"tok-{uuid.uuid4().hex}"
    env = {"SEEKRUN_TEST_SECRET": first}

    res = cli_proc("run", "-p", str(proj), "--continue-on-error", env=env)
    assert res.exit_code == 1, res.output  # transform.leaky fails
    no_traceback(res)
    results = run_results(proj)
    assert results["transform.leaky"]["status"] == "failed"
    # DuckDB's message quotes the string it could not convert: the value must be redacted from it
    assert "Could not convert string" in results["transform.leaky"]["error"], results["transform.leaky"]
    assert "transform.leaky" in res.stdout and "Could not convert string" in res.output, res.output
    assert results["transform.filtered"]["status"] == "success", res.output
    assert table(proj, "transform.filtered") == [(1, "ann"), (2, "bob"), (3, "cy")]
    monkeypatch.setenv("SEEKRUN_TEST_SECRET", first)
    parse = cli("parse", "-p", str(proj), "--json")
    assert parse.exit_code == 0, parse.output
    dry = cli("run", "-p", str(proj), "--dry-run", "-v")
    assert dry.exit_code == 0, dry.output
    assert_secret_nowhere(proj, first, res, parse, dry)

    # a new value reruns the node that uses it
    second = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("SEEKRUN_TEST_SECRET", second)
    res = cli("run", "-p", str(proj), "--continue-on-error")
    assert res.exit_code == 1, res.output
    results = run_results(proj)
    assert results["transform.filtered"]["status"] == "success", res.output
    assert "environment variable" in results["transform.filtered"]["reason"], results["transform.filtered"]
    assert results["source.people"]["status"] == "cached"
    assert_secret_nowhere(proj, first, res)
    assert_secret_nowhere(proj, second, res)

    # the same value again: nothing that succeeded reruns
    res = cli("run", "-p", str(proj), "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert ran(proj) == {"transform.leaky"}, res.output

    # unset, with no default: a project error naming the variable; nothing changes
    monkeypatch.delenv("SEEKRUN_TEST_SECRET")
    before = target_snapshot(proj)
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    no_traceback(res)
    assert re.search(r"^nodes/(filtered|leaky)\.yml:\d+: .*SEEKRUN_TEST_SECRET is not set", res.stderr, re.M), \
        res.output
    assert target_snapshot(proj) == before
    assert_secret_nowhere(proj, second, res)


def test_env_var_hash_in_the_manifest_is_keyed_per_project(tmp_path, monkeypatch):
    """manifest.json gets shared and uploaded: the hash it holds of a secret must not let anyone
    test guesses offline. It is a keyed hash, with a key kept in target/state (owner-only), so the
    same secret gives unrelated hashes in two projects, and trying the value without the key fails."""
    import hashlib
    import stat

    import xxhash

    from seekrun.hashing import hash_parts

    secret = "hunter2"  # short on purpose: easy to guess if the hash were unkeyed
    monkeypatch.setenv("SEEKRUN_TEST_SECRET", secret)

    def env_field(proj: Path) -> str:
        node = json.loads((proj / "target" / "manifest.json").read_text())["nodes"]["transform.filtered"]
        found = [v for k, v in node["hashes"]["fields"].items() if "env" in k]
        assert len(found) == 1, node["hashes"]
        return found[0]

    hashes = []
    for name in ("one", "two"):
        proj = secret_project(tmp_path / name)
        res = cli("parse", "-p", str(proj))
        assert res.exit_code == 0, res.output
        key_file = proj / "target" / "state" / "env_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = bytes.fromhex(key_file.read_text().strip())
        assert len(key) == 32
        hashes.append(env_field(proj))
        # no unkeyed hash of the value is in the manifest
        manifest = (proj / "target" / "manifest.json").read_text()
        for unkeyed in (hash_parts("env", "SEEKRUN_TEST_SECRET", secret),  # the first version's scheme
                        xxhash.xxh3_64_hexdigest(secret.encode()),
                        hashlib.blake2b(secret.encode(), digest_size=16).hexdigest(),
                        hashlib.sha256(secret.encode()).hexdigest()):
            assert unkeyed not in manifest
    assert hashes[0] != hashes[1]

    # the key is kept: parsing again (and a run) gives the same hash, so nothing reruns for it
    proj = tmp_path / "one"
    assert cli("parse", "-p", str(proj)).exit_code == 0
    assert env_field(proj) == hashes[0]
    assert cli("run", "-p", str(proj), "--continue-on-error").exit_code == 1  # transform.leaky fails
    again = cli("run", "-p", str(proj), "--continue-on-error")
    assert ran(proj) == {"transform.leaky"}, again.output


@pytest.mark.parametrize("quote", ["'", '"'])
def test_env_var_with_default_in_source_params(quote, tmp_path, monkeypatch):
    """`{{ env_var('NAME', 'default') }}` in a reader param: the default when unset, the value when
    set (a change reruns the source), and the value never leaks."""
    monkeypatch.delenv("SEEKRUN_TEST_NULLSTR", raising=False)
    q = quote
    outer = '"' if q == "'" else "'"
    proj = write_project(tmp_path / "proj", {
        "data/people.csv": "id,name,score\n1,ann,10\n2,bob,NA\n3,cy,n/a\n",
        "nodes/people.yml": (
            "kind: source\nname: people\nsource: csv\ntable: data/people.csv\n"
            f"params:\n  nullstr: {outer}{{{{ env_var({q}SEEKRUN_TEST_NULLSTR{q}, {q}NA{q}) }}}}{outer}\n"),
        "nodes/scores.yml": ("kind: transform\nname: scores\ninputs:\n  - ref: source.people\n"
                             "transform: SELECT name, score FROM input_0 WHERE score IS NOT NULL\n"),
    })
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert table(proj, "source.people") == [(1, "ann", "10"), (2, "bob", None), (3, "cy", "n/a")]

    value = f"nul-{uuid.uuid4().hex[:8]}"
    (proj / "data" / "people.csv").write_text(f"id,name,score\n1,ann,10\n2,bob,NA\n3,cy,{value}\n")
    monkeypatch.setenv("SEEKRUN_TEST_NULLSTR", "n/a")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    monkeypatch.setenv("SEEKRUN_TEST_NULLSTR", value)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    results = run_results(proj)
    assert results["source.people"]["status"] == "success"
    assert "environment variable" in results["source.people"]["reason"], results["source.people"]
    assert table(proj, "source.people") == [(1, "ann", "10"), (2, "bob", "NA"), (3, "cy", None)]
    assert table(proj, "transform.scores") == [("ann", "10"), ("bob", "NA")]
    for path in (proj / "target").rglob("*"):
        if path.is_file() and not path.name.startswith("seekrun.duckdb"):
            assert value.encode() not in path.read_bytes(), f"the value is in {path}"
    assert value not in res.output


def test_env_var_key_is_kept_when_the_python_api_runs_without_parse(tmp_path, monkeypatch):
    """parse_project + DAGRunner (no `seekrun parse`): the run saves the key it hashed with, so the
    next parse hashes the same value the same way and nothing reruns for it."""
    from seekrun import DAGRunner, parse_project

    monkeypatch.setenv("SEEKRUN_TEST_SECRET", "hunter2")
    proj = secret_project(tmp_path / "p")
    first = DAGRunner(parse_project(proj).manifest, project_dir=proj).run(continue_on_error=True)
    assert first.failed_nodes == 1  # transform.leaky
    assert (proj / "target" / "state" / "env_key").is_file()
    second = DAGRunner(parse_project(proj).manifest, project_dir=proj).run(continue_on_error=True)
    assert {r.node_id for r in second.results if r.status.value in ("success", "failed")} == {"transform.leaky"}
