"""Issue 3: kill -9 in the middle of a run loses at most the nodes in flight.

A real `python -m seekrun run` process is SIGKILLed after some nodes have finished
(as recorded in target/state/execution_state.journal) while others run (they cannot
finish on their own: conftest.slow_sql); the next run must not redo the finished ones,
and must converge to the tables of a clean build.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


from conftest import (ENDLESS, all_tables, clean_build, cli, journal_successes, ran, run_results, slow_sql,
                      target_snapshot, write_project)

QUICK = ["q0", "q1", "q2", "q3"]  # q1 reads q0, q3 reads q2
SLOW = ["s0", "s1", "s2"]  # endless under ENDLESS (conftest.slow_sql): the kill always finds them running


def slow_project(root: Path) -> tuple[Path, set[str]]:
    files = {
        "data/s.csv": "id,v\n1,1\n2,2\n3,3\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
    }
    for k, name in enumerate(QUICK):
        parent = "source.s" if k % 2 == 0 else f"transform.{QUICK[k - 1]}"
        files[f"nodes/{name}.yml"] = (f"kind: transform\nname: {name}\ninputs:\n  - ref: {parent}\n"
                                      f"transform: SELECT id, v + {k} AS v FROM input_0\n")
    for k, name in enumerate(SLOW):
        files[f"nodes/{name}.yml"] = (f"kind: transform\nname: {name}\ninputs:\n  - ref: source.s\n"
                                      f"transform: \"SELECT id, v + ({slow_sql(k)}) AS v FROM input_0\"\n")
    leaves = [f"transform.{n}" for n in ("q1", "q3", *SLOW)]
    refs = "".join(f"  - ref: {r}\n" for r in leaves)
    union = " UNION ALL ".join(f"SELECT id, v FROM input_{i}" for i in range(len(leaves)))
    files["nodes/total.yml"] = (f"kind: transform\nname: total\ninputs:\n{refs}"
                                f"transform: \"SELECT id, sum(v) AS v FROM ({union}) GROUP BY id\"\n")
    ids = {"source.s", "transform.total", *(f"transform.{n}" for n in QUICK + SLOW)}
    return write_project(root, files), ids


def run_and_kill(project: Path, finished_before_kill: set[str], threads: str = "1") -> list[str]:
    """Start a real seekrun process whose slow nodes never finish on their own; SIGKILL it once
    the given nodes are recorded as finished."""
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run", "-p", str(project), "--threads", threads],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **ENDLESS})
    try:
        deadline = time.monotonic() + 60
        while not finished_before_kill <= set(journal_successes(project)):
            assert proc.poll() is None, f"seekrun exited ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no progress recorded in the journal"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return journal_successes(project)


def assert_state_file_valid(project: Path, ids: set[str]) -> None:
    data = json.loads((project / "target" / "state" / "execution_state.json").read_text())
    nodes = data.get("nodes", data)
    assert set(nodes) == ids
    assert all(e["status"] == "success" for e in nodes.values())


QUICK_IDS = {"source.s", *(f"transform.{n}" for n in QUICK)}


def test_kill_during_first_build_then_rerun_converges(tmp_path):
    p, ids = slow_project(tmp_path / "proj")
    finished = run_and_kill(p, QUICK_IDS, threads="2")
    assert set(finished) == QUICK_IDS  # the slow ones cannot finish on their own
    # a state file, if the killed run left one, is whole JSON (atomic writes)
    state = p / "target" / "state" / "execution_state.json"
    if state.exists():
        json.loads(state.read_text())

    # a dry run now plans exactly the unfinished nodes, and writes nothing (even with a WAL left over)
    before = target_snapshot(p)
    res = cli("run", "-p", str(p), "--dry-run")
    assert res.exit_code == 0, res.output
    planned = {nid for nid in ids if any(nid in ln.split() for ln in res.stdout.splitlines())}
    assert planned == ids - set(finished), res.stdout
    assert target_snapshot(p) == before

    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    # the finished nodes were kept; exactly the rest ran
    assert not (ran(p) & set(finished)), (finished, ran(p))
    assert ran(p) == ids - set(finished)
    for nid in finished:
        assert run_results(p)[nid]["status"] == "cached"
    assert_state_file_valid(p, ids)
    assert all_tables(p) == clean_build(p, tmp_path)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output


def test_kill_during_incremental_build_then_rerun_converges(tmp_path):
    p, ids = slow_project(tmp_path / "proj")
    res = cli("run", "-p", str(p), "--threads", "2")
    assert res.exit_code == 0, res.output
    assert ran(p) == ids
    # a data change: everything downstream of source.s must rebuild
    (p / "data" / "s.csv").write_text("id,v\n1,10\n2,20\n3,30\n4,40\n")
    finished = run_and_kill(p, QUICK_IDS)
    assert set(finished) == QUICK_IDS
    json.loads((p / "target" / "state" / "execution_state.json").read_text())  # still whole

    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert not (ran(p) & set(finished)), (finished, ran(p))
    assert ran(p) == ids - set(finished)
    assert_state_file_valid(p, ids)
    assert all_tables(p) == clean_build(p, tmp_path)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output
