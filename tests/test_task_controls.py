"""Run controls on tasks, with real processes: timeouts (no orphan, checked with ps), retries and
their waits, continue_on with exit codes, run_always, preconditions, captured values."""
from __future__ import annotations

import os
import time

from conftest import alive, cli, reasons, run_results, write_project


def test_timeout_stops_the_whole_group_and_keeps_the_last_good_output(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEKRUN_KILL_GRACE", "1")
    nodes = """\
    kind: task
    name: slow
    script: |
      echo ${WORD} > data/out.txt
      if [ "${WORD}" = new ]; then
        sh -c 'trap "" TERM; sleep 300' &
        echo $! > target/child.pid
        echo $$ > target/task.pid
        wait
      fi
    params: {WORD: old}
    outputs: [data/out.txt]
    timeout: 1s
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "data/.keep": ""})
    assert cli("run", cwd=p).exit_code == 0
    assert (p / "data" / "out.txt").read_text() == "old\n"
    (p / "nodes" / "t.yml").write_text((p / "nodes" / "t.yml").read_text().replace("WORD: old", "WORD: new"))
    t0 = time.monotonic()
    res = cli("run", cwd=p)
    took = time.monotonic() - t0
    assert res.exit_code == 1, res.output
    assert "timed out after 1s" in res.output
    assert run_results(p)["task.slow"]["status"] == "failed"
    assert took < 1 + 1 + 5, took  # the timeout, the grace (the child ignores SIGTERM), slack
    pids = [int((p / "target" / f).read_text()) for f in ("task.pid", "child.pid")]
    deadline = time.monotonic() + 3
    while any(alive(x) for x in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(x) for x in pids)
    assert (p / "data" / "out.txt").read_text() == "old\n"  # the last good output is back


def test_retry_counts_and_backoff_waits(tmp_path):
    nodes = """\
    kind: task
    name: flaky
    script: |
      n=$(cat target/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > target/count
      [ $n -ge 3 ] || exit 75
      echo ok > target/flaky.txt
    outputs: [target/flaky.txt]
    retry: {limit: 3, interval: 0.3s, backoff: 2, exit_codes: [75]}
    ---
    kind: task
    name: broken
    command: exit 1
    always: true
    retry: {limit: 3, interval: 0.1s, exit_codes: [75]}
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "target/.keep": ""})
    t0 = time.monotonic()
    res = cli("run", "--continue-on-error", cwd=p)
    took = time.monotonic() - t0
    assert res.exit_code == 1, res.output
    r = run_results(p)
    assert r["task.flaky"]["status"] == "success" and r["task.flaky"]["attempts"] == 3
    assert r["task.flaky"]["retry_waits"] == [0.3, 0.6]
    assert took >= 0.9 - 0.05
    assert r["task.broken"]["attempts"] == 1  # exit 1 is not in exit_codes: not retried
    assert (p / "target" / "count").read_text() == "3\n"


def test_continue_on_exit_code_lets_dependents_see_status_and_an_empty_value(tmp_path):
    nodes = """\
    kind: task
    name: check
    command: echo partial; exit 3
    params: {X: "1"}
    output: RESULT
    continue_on: {exit_codes: [3]}
    ---
    kind: task
    name: after
    depends_on: [{ref: task.check}]
    command: echo "status=${check.status} code=${check.exit_code} value=[${RESULT}]" > target/after.txt
    outputs: [target/after.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "target/.keep": ""})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output  # the failure is covered by continue_on
    r = run_results(p)
    assert r["task.check"]["status"] == "failed" and r["task.after"]["status"] == "success"
    assert (p / "target" / "after.txt").read_text() == "status=failed code=3 value=[]\n"


def test_run_always_cleans_up_after_a_failure(tmp_path):
    nodes = """\
    kind: task
    name: load
    command: touch target/lockfile; exit 2
    always: true
    ---
    kind: task
    name: cleanup
    depends_on: [{ref: task.load}]
    command: rm -f target/lockfile; echo cleaned > target/cleanup.txt
    outputs: [target/cleanup.txt]
    run_always: true
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "target/.keep": ""})
    res = cli("run", cwd=p)
    assert res.exit_code == 1
    assert not (p / "target" / "lockfile").exists()
    assert run_results(p)["task.cleanup"]["status"] == "success"


def test_preconditions_on_a_task(tmp_path):
    nodes = """\
    kind: task
    name: deploy
    command: echo deployed > target/deployed.txt
    outputs: [target/deployed.txt]
    params: {ENV: dev}
    preconditions:
      - {condition: "${ENV}", expected: production}
    ---
    kind: task
    name: today
    command: echo ran > target/today.txt
    outputs: [target/today.txt]
    preconditions:
      - {condition: "test -f data/today.csv"}
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "target/.keep": ""})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    r = run_results(p)
    assert r["task.deploy"]["status"] == "skipped" and "precondition not met" in r["task.deploy"]["error"]
    assert r["task.today"]["status"] == "skipped"
    assert not (p / "target" / "deployed.txt").exists()
    os.makedirs(p / "data", exist_ok=True)
    (p / "data" / "today.csv").write_text("x\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and "task.today" in reasons(p), res.output
    assert (p / "target" / "today.txt").read_text() == "ran\n"
