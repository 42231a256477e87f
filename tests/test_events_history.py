"""The event stream and the run history: typed events from the Python API (a callback, an
iterator), `seekrun run --log-format json`, target/runs/<run_id>/ (events, results, logs) and
its retention (real processes, the real CLI, real DuckDB)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import cli, cli_proc, run_results, write_project

# hello runs; flaky fails once, then passes on its retry; bad fails (exit 4); after_bad is skipped
NODES = """\
kind: task
name: hello
command: echo hello world
---
kind: task
name: flaky
depends_on: [{ref: task.hello}]
script: |
  if [ -f target/flaky.ok ]; then echo fine now; else touch target/flaky.ok; echo broke >&2; exit 3; fi
retry: {limit: 2, interval: 0.01}
---
kind: task
name: bad
command: exit 4
---
kind: task
name: after_bad
depends_on: [{ref: task.bad}]
command: echo never
"""

QUICK = """\
kind: task
name: one
command: echo one
"""


def lines_of(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]  # every line parses, or this fails


def runner_for(p: Path):
    from seekrun.parser.parse import parse_project
    from seekrun.runner import DAGRunner

    return DAGRunner(parse_project(p).manifest, project_dir=p)


def test_log_format_json_prints_only_events_in_order(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    res = cli_proc("run", "--log-format", "json", "--continue-on-error", cwd=p)
    assert res.exit_code == 1, res.output  # a failure: the same exit code as ever
    events = lines_of(res.stdout)
    assert events, res.output
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and kinds.count("run_finished") == 1
    run_id = events[0]["run_id"]
    assert all(e["run_id"] == run_id and e["ts"].endswith("+00:00") for e in events)
    flaky = [(e["event"], e.get("attempt")) for e in events if e.get("node_id") == "task.flaky"]
    assert flaky == [("node_started", None), ("node_retrying", 1), ("node_finished", None)]
    by = {(e["event"], e.get("node_id")): e for e in events}
    done = by[("node_finished", "task.flaky")]
    assert done["status"] == "success" and done["attempts"] == 2
    assert by[("node_retrying", "task.flaky")]["exit_code"] == 3
    # the flaky node's parent finished before it started
    assert kinds.index("node_finished") < kinds.index("node_retrying")
    assert events.index(by[("node_finished", "task.hello")]) < events.index(by[("node_started", "task.flaky")])
    bad = by[("node_finished", "task.bad")]
    assert bad["status"] == "failed" and "exited 4" in bad["error"] and bad["attempts"] == 1
    skipped = by[("node_skipped", "task.after_bad")]
    assert skipped["skip"] == "after_failure" and "task.bad" in skipped["reason"]
    end = events[-1]
    assert end["status"] == "failed" and end["exit_code"] == 1
    assert end["counts"] == {"ran": 2, "cached": 0, "failed": 1, "skipped": 1, "cancelled": 0}
    # the same events, in the same order, in the run's events file
    folder = p / "target" / "runs" / run_id
    assert lines_of((folder / "events.jsonl").read_text()) == events
    # with text (the default), the summary instead
    res = cli_proc("run", "--continue-on-error", cwd=p)
    assert res.exit_code == 1 and "FAILED task.bad" in res.stdout and '"event"' not in res.stdout, res.output


def test_log_format_is_checked(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": QUICK})
    res = cli("run", "--log-format", "xml", cwd=p)
    assert res.exit_code == 2 and "--log-format" in res.stderr, res.output
    res = cli("run", "--log-format", "json", "--json", cwd=p)
    assert res.exit_code == 2, res.output
    assert not (p / "target" / "runs").exists()


def test_each_run_keeps_its_results_events_and_logs(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    first = cli("run", "--continue-on-error", cwd=p)
    assert first.exit_code == 1, first.output
    ids = sorted(os.listdir(p / "target" / "runs"))
    assert len(ids) == 1
    folder = p / "target" / "runs" / ids[0]
    assert json.loads((folder / "run_results.json").read_text()) == json.loads(
        (p / "target" / "run_results.json").read_text())
    assert "hello world" in (folder / "logs" / "task.hello.log").read_text()
    assert "fine now" in (folder / "logs" / "task.flaky.log").read_text()  # the last attempt's
    assert (folder / "logs" / "task.bad.log").exists()
    assert f"target/runs/{ids[0]}/logs/task.bad.log" in run_results(p)["task.bad"]["error"]
    assert not (p / "target" / "logs").exists()  # the old per-run folder is gone
    (p / "nodes" / "all.yml").write_text(QUICK)
    second = cli("run", "--allow-removals", cwd=p)
    assert second.exit_code == 0, second.output
    ids2 = sorted(os.listdir(p / "target" / "runs"))
    assert len(ids2) == 2 and ids2[0] == ids[0]  # ids sort by time: the new one last
    # target/run_results.json is the latest run's
    assert json.loads((p / "target" / "run_results.json").read_text()) == json.loads(
        (p / "target" / "runs" / ids2[1] / "run_results.json").read_text())


def test_a_dry_run_keeps_no_history(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": QUICK})
    res = cli("run", "--dry-run", cwd=p)
    assert res.exit_code == 0, res.output
    res = cli("run", "--dry-run", "--log-format", "json", cwd=p)
    events = lines_of(res.stdout)
    assert events[0]["event"] == "run_started" and events[0]["dry_run"] is True
    assert [(e["node_id"], e["status"]) for e in events if e["event"] == "node_finished"] == [("task.one", "pending")]
    assert not (p / "target" / "runs").exists()


def test_retention_keeps_the_newest_runs(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": QUICK}, marker="name: t\nhistory: {keep_runs: 2}\n")
    made = []
    for i in range(4):
        res = cli("run", "--full", cwd=p)
        assert res.exit_code == 0, res.output
        made.append(json.loads((p / "target" / "runs" / sorted(os.listdir(p / "target" / "runs"))[-1]
                                / "events.jsonl").read_text().splitlines()[0])["run_id"])
    assert len(set(made)) == 4
    assert sorted(os.listdir(p / "target" / "runs")) == sorted(made)[-2:]
    listed = json.loads(cli("runs", "--json", cwd=p).stdout)
    assert [r["run_id"] for r in listed] == sorted(made, reverse=True)[:2]


@pytest.mark.parametrize("bad", ["{keep_runs: 0}", "{keep_runs: many}", "{keep_runs: 2.5}", "[1]", "{keep: 3}"])
def test_keep_runs_is_validated(tmp_path, bad):
    p = write_project(tmp_path / "p", {"nodes/all.yml": QUICK}, marker=f"name: t\n\nhistory: {bad}\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 2, res.output
    assert "seekrun_project.yml:3" in res.stderr and "history" in res.stderr, res.stderr
    assert "Traceback" not in res.output
    assert not (p / "target" / "runs").exists()


def test_callback_gets_typed_events_and_a_raising_one_cancels_the_run(tmp_path):
    from seekrun.events import NodeFinished, RunFinished, RunStarted

    chain = "".join(f"---\nkind: task\nname: s{i}\n" + (f"depends_on: [{{ref: task.s{i - 1}}}]\n" if i else "")
                    + f"command: echo {i} > target/s{i}.txt\noutputs: [target/s{i}.txt]\n" for i in range(4))
    p = write_project(tmp_path / "p", {"nodes/all.yml": chain})
    seen = []
    summary = runner_for(p).run(on_event=seen.append)
    assert summary.status == "success"
    assert isinstance(seen[0], RunStarted) and isinstance(seen[-1], RunFinished)
    assert [e.node_id for e in seen if isinstance(e, NodeFinished)] == ["task.s0", "task.s1", "task.s2", "task.s3"]
    assert seen[-1].to_dict()["event"] == "run_finished" and seen[-1].counts["ran"] == 4

    for i in range(4):
        (p / "target" / f"s{i}.txt").unlink()

    def boom(event):
        if event.event == "node_finished" and event.node_id == "task.s1":
            raise RuntimeError("the dashboard is down")
    summary = runner_for(p).run(full=True, on_event=boom)
    assert summary.status == "cancelled" and summary.interrupted and summary.exit_code == 130
    assert isinstance(summary.event_error, RuntimeError)
    assert any("the dashboard is down" in w for w in summary.warnings), summary.warnings
    results = run_results(p)
    assert [results[f"task.s{i}"]["status"] for i in range(4)] == ["success", "success", "skipped", "skipped"]
    assert results["task.s2"]["skip"] == "interrupted"
    assert not (p / "target" / "s2.txt").exists()
    data = json.loads((p / "target" / "run_results.json").read_text())
    assert data["status"] == "cancelled"
    # the state is intact: the next run builds only what was left undone
    summary = runner_for(p).run()
    assert summary.status == "success"
    assert sorted(summary.ran) == ["task.s2", "task.s3"]


def test_stream_events_yields_as_the_run_goes_and_the_summary_after(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/all.yml": NODES})
    runner = runner_for(p)
    got = []
    for event in runner.stream_events(continue_on_error=True):
        got.append(event.event)
        if event.event == "node_started":
            assert runner.summary is None  # still running
    assert got[0] == "run_started" and got[-1] == "run_finished"
    assert "node_retrying" in got and runner.summary.status == "failed"
    assert runner.summary.failed_nodes == 1


def test_leaving_the_stream_early_cancels_the_run(tmp_path):
    nodes = QUICK + "---\nkind: task\nname: slow\ndepends_on: [{ref: task.one}]\ncommand: sleep 30\n"
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes})
    runner = runner_for(p)
    import time

    t0 = time.monotonic()
    for event in runner.stream_events():
        if event.event == "node_started" and event.node_id == "task.slow":
            break
    assert time.monotonic() - t0 < 15
    assert runner.summary.status == "cancelled"
    assert run_results(p)["task.slow"]["skip"] == "interrupted"
    events = [json.loads(x) for x in (p / "target" / "runs" / runner.run_id / "events.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "run_finished" and events[-1]["status"] == "cancelled"


def test_secrets_never_reach_the_events(tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "s3cr3t-t0ken-value")
    nodes = """\
    kind: task
    name: leak
    env: {TOKEN: "{{ env_var('API_TOKEN') }}"}
    command: sh -c 'echo "$TOKEN" >&2; exit 2'
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes})
    res = cli_proc("run", "--log-format", "json", cwd=p)
    assert res.exit_code == 1, res.output
    assert "s3cr3t-t0ken-value" not in res.stdout
    for path in (p / "target" / "runs").rglob("*"):
        if path.is_file():
            assert "s3cr3t-t0ken-value" not in path.read_text(errors="replace"), path


def test_retention_keeps_a_run_whose_log_a_cached_task_still_points_at(tmp_path):
    nodes = "kind: task\nname: made\ncommand: echo made > target/made.txt; echo built-once\noutputs: [target/made.txt]\n"
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes}, marker="name: t\nhistory: {keep_runs: 1}\n")
    for _ in range(3):
        assert cli("run", cwd=p).exit_code == 0
    ids = sorted(os.listdir(p / "target" / "runs"))
    assert len(ids) == 2  # the newest, and the first: task.made's log (its ${made.stdout}) is there
    assert "built-once" in (p / "target" / "runs" / ids[0] / "logs" / "task.made.log").read_text()
    assert cli("logs", "made", cwd=p).stdout.strip() == "built-once"
    assert run_results(p)["task.made"]["status"] == "cached"


def test_log_format_json_keeps_what_python_nodes_print_off_stdout(tmp_path):
    code = ("from seekrun.pipeline import transform\n\n\n@transform(name='talky', inputs=['source.s'])\n"
            "def talky(ctx):\n    print('hello from user code')\n    return ctx.ref(0)\n")
    p = write_project(tmp_path / "p", {"data/s.csv": "id\n1\n", "nodes/s.yml":
                                       "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
                                       "nodes/talky.py": code})
    res = cli_proc("run", "--log-format", "json", cwd=p)
    assert res.exit_code == 0, res.output
    assert all(line.startswith("{") for line in res.stdout.splitlines()), res.stdout
    assert [json.loads(line)["event"] for line in res.stdout.splitlines()][-1] == "run_finished"
    assert "hello from user code" in res.stderr
