"""`seekrun runs`, `logs`, `status` and `cancel`, against a real seekrun running in another
process (a slow task), and after it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import alive, cli, cli_proc, run_results, write_project

NODES = """\
kind: task
name: quick
command: echo quick says hi > target/quick.txt; echo "logged line"
outputs: [target/quick.txt]
---
kind: task
name: slow
depends_on: [{ref: task.quick}]
script: |
  echo $$ > target/slow.pid
  echo "slow started"
  sleep 30
outputs: [target/slow.txt]
---
kind: task
name: later
depends_on: [{ref: task.slow}]
command: echo later
"""


def start(p: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run"], cwd=p, env={**os.environ},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (p / "target" / "slow.pid").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the slow task never started"
        time.sleep(0.05)
    return proc


def test_status_runs_logs_and_cancel_of_a_running_seekrun(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    proc = start(p)
    try:
        task_pid = int((p / "target" / "slow.pid").read_text())
        res = cli("status", cwd=p)
        assert res.exit_code == 0, res.output
        assert "is running" in res.stdout and f"pid {proc.pid}" in res.stdout and "task.slow" in res.stdout, res.stdout
        status = json.loads(cli("status", "--json", cwd=p).stdout)
        assert status["running"] and status["pid"] == proc.pid
        assert (status["done"], status["running_nodes"], status["pending"]) == (1, ["task.slow"], 1), status
        assert status["phase"] == "building"
        listed = json.loads(cli("runs", "--json", cwd=p).stdout)
        assert len(listed) == 1 and listed[0]["status"] == "running" and listed[0]["run_id"] == status["run_id"]
        res = cli("logs", "quick", cwd=p)  # a node that finished in the run going on
        assert res.exit_code == 0 and "logged line" in res.stdout, res.output
        res = cli_proc("cancel", cwd=p)
        assert res.exit_code == 0, res.output
        assert f"pid {proc.pid}" in res.stdout and "stopped" in res.stdout, res.stdout
        proc.wait(10)  # cancel waited for it: it is gone
        assert proc.returncode == 130
        deadline = time.monotonic() + 5
        while alive(task_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(task_pid)  # its task went with it
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert json.loads((p / "target" / "run_results.json").read_text())["status"] == "cancelled"
    assert run_results(p)["task.slow"]["skip"] == "interrupted"
    assert run_results(p)["task.slow"]["status"] == "cancelled"  # it was running
    listed = json.loads(cli("runs", "--json", cwd=p).stdout)
    assert listed[0]["status"] == "cancelled"
    assert listed[0]["counts"] == {"ran": 1, "cached": 0, "failed": 0, "skipped": 1, "cancelled": 1}
    assert set(listed[0]) == {"run_id", "started_at", "duration", "status", "counts"}
    res = cli("status", cwd=p)
    assert "No run in progress" in res.stdout and "cancelled" in res.stdout, res.stdout
    res = cli("logs", "task.slow", cwd=p)
    assert res.exit_code == 0 and "slow started" in res.stdout, res.output  # what it logged before it stopped
    res = cli("cancel", cwd=p)
    assert res.exit_code == 1 and "No run in progress" in res.stderr, res.output


def test_runs_lists_newest_first_and_logs_picks_the_run(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": "kind: task\nname: hi\ncommand: echo run-$RUN\n"})
    for i in range(3):
        res = cli_proc("run", cwd=p, env={"RUN": str(i)})
        assert res.exit_code == 0, res.output
    res = cli("runs", cwd=p)
    assert res.exit_code == 0, res.output
    rows = res.stdout.splitlines()
    assert rows[0].split()[:3] == ["RUN", "ID", "STARTED"] and rows[0].split()[-1] == "CANCELLED" and len(rows) == 4
    assert rows[1].split()[-5:] == ["1", "0", "0", "0", "0"]  # ran, cached, failed, skipped, cancelled
    listed = json.loads(cli("runs", "--json", cwd=p).stdout)
    ids = [r["run_id"] for r in listed]
    assert ids == sorted(ids, reverse=True) and all(r["status"] == "success" for r in listed)
    assert [row.split()[0] for row in rows[1:]] == ids
    assert cli("logs", "task.hi", cwd=p).stdout.strip() == "run-2"  # the last run that ran it
    assert cli("logs", "hi", "--run", ids[2], cwd=p).stdout.strip() == "run-0"
    as_json = json.loads(cli("logs", "hi", "--run", ids[1], "--json", cwd=p).stdout)
    assert as_json["run_id"] == ids[1] and as_json["node"] == "task.hi" and as_json["log"].strip() == "run-1"
    assert Path(as_json["path"]).read_text() == as_json["log"]
    res = cli("logs", "task.hi", "--run", ids[2][:-1] + "x", cwd=p)
    assert res.exit_code == 2 and f"did you mean {ids[2]}" in res.stderr, res.output
    res = cli("logs", "task.ho", cwd=p)
    assert res.exit_code == 2 and "unknown node 'task.ho'" in res.stderr and "task.hi" in res.stderr, res.output


def test_logs_of_a_node_that_writes_none(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": "kind: transform\nname: t\ntransform: SELECT 1 AS x\n"
                                                        "---\nkind: task\nname: t\ncommand: echo task-t\n"})
    assert cli("run", cwd=p).exit_code == 0
    res = cli("logs", "transform.t", cwd=p)
    assert res.exit_code == 2 and "no log for transform.t" in res.stderr and "Traceback" not in res.output, res.output
    res = cli("logs", "t", cwd=p)  # two nodes have that name
    assert res.exit_code == 2 and "'t' is ambiguous: use one of task.t, transform.t" in res.stderr, res.output
    assert cli("logs", "task.t", cwd=p).stdout.strip() == "task-t"


def test_status_and_runs_before_any_run(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": "kind: task\nname: hi\ncommand: echo hi\n"})
    assert "No run recorded yet" in cli("status", cwd=p).stdout
    assert json.loads(cli("runs", "--json", cwd=p).stdout) == []
    res = cli("runs", cwd=p)
    assert res.exit_code == 0 and "No runs recorded yet" in res.stdout


def test_a_killed_run_shows_unfinished(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    proc = start(p)
    task_pid = int((p / "target" / "slow.pid").read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while alive(task_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    listed = json.loads(cli("runs", "--json", cwd=p).stdout)
    assert listed[0]["status"] == "unfinished" and listed[0]["counts"]["ran"] == 1, listed
    res = cli("status", cwd=p)
    assert "did not finish" in res.stdout, res.stdout
    from seekrun.lock import ProjectLock

    with ProjectLock(p / "target"):  # a new run holds the lock, its folder not made yet
        listed = json.loads(cli_proc("runs", "--json", cwd=p).stdout)
        assert listed[0]["status"] == "unfinished", listed  # not taken for the new run


def test_status_while_a_new_run_is_starting(tmp_path):
    from seekrun.lock import ProjectLock

    p = write_project(tmp_path / "p", {"nodes/all.yml": "kind: task\nname: hi\ncommand: echo hi\n"})
    assert cli("run", cwd=p).exit_code == 0
    last = json.loads(cli("runs", "--json", cwd=p).stdout)[0]["run_id"]
    with ProjectLock(p / "target"):  # a run that holds the lock but has not started a node yet
        status = json.loads(cli_proc("status", "--json", cwd=p).stdout)
        assert (status["running"], status["phase"], status["run_id"]) == (True, "starting", None), status
        assert status["last_run"]["run_id"] == last and status["pid"] == os.getpid()
        assert "A run is starting" in cli_proc("status", cwd=p).stdout
