"""Stopping seekrun while a task runs: no process is left behind, the next run redoes only what
was in flight (real processes, checked with ps)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import alive, cli, reasons, write_project

NODES = """\
kind: task
name: quick
command: echo done > target/quick.txt
outputs: [target/quick.txt]
---
kind: task
name: slow
depends_on: [{ref: task.quick}]
script: |
  sleep 300 &
  echo $! > target/child.pid
  echo $$ > target/task.pid
  wait
outputs: [target/slow.txt]
"""


def start(p: Path) -> subprocess.Popen:
    env = {**os.environ, "SEEKRUN_KILL_GRACE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run"], cwd=p, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (p / "target" / "child.pid").exists() or not (p / "target" / "task.pid").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    time.sleep(0.1)
    return proc


def pids(p: Path) -> list[int]:
    return [int((p / "target" / f).read_text()) for f in ("task.pid", "child.pid")]


def wait_gone(pids_: list[int], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = [x for x in pids_ if alive(x)]
        if not left:
            return []
        time.sleep(0.1)
    return [x for x in pids_ if alive(x)]


def test_kill_9_of_seekrun_leaves_no_task_running(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    proc = start(p)
    running = pids(p)
    assert all(alive(x) for x in running)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert wait_gone(running, within=1 + 3) == []  # the grace (1 s) and some slack
    for f in ("child.pid", "task.pid"):
        (p / "target" / f).unlink()
    # the next run redoes only what was in flight
    (p / "nodes" / "all.yml").write_text(NODES.replace("sleep 300 &", "echo ok > target/slow.txt; sleep 0 &"))
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert set(reasons(p)) == {"task.slow"}


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_the_task_group_and_records_it_undone(tmp_path, sig):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    proc = start(p)
    running = pids(p)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert wait_gone(running, within=3) == []
    assert "Interrupted" in out and "task.slow" in out, out
    import json

    results = {r["node_id"]: r for r in json.loads((p / "target" / "run_results.json").read_text())["results"]}
    assert results["task.quick"]["status"] == "success"
    assert results["task.slow"]["status"] == "cancelled" and results["task.slow"]["skip"] == "interrupted"
