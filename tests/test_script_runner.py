"""Python Script Runner workflow files (a top-level ``tasks:`` mapping), and the WorkflowEngine
API: the seed's examples as written (tests/fixtures/script_runner/, with one stub script,
stub.py, standing in for every script they call), run as real processes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "script_runner"


def fixture(tmp_path: Path, name: str) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "sr", symlinks=True)  # the scripts call ../../stub.py
    return tmp_path / "sr" / name


def run(folder: Path, *args: str, fail: str = "", env: dict | None = None):
    proc = subprocess.run([sys.executable, "-m", "seekrun", "run", "workflow.yaml", *args], cwd=folder,
                          env={**os.environ, "STUB_FAIL": fail, **(env or {})}, capture_output=True, text=True,
                          timeout=120)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def results(folder: Path, file: str = "workflow.yaml") -> dict[str, dict]:
    data = json.loads((folder / "target" / file / "run_results.json").read_text())
    return {r["node_id"].partition(".")[2]: r for r in data["results"]}


def statuses(folder: Path, file: str = "workflow.yaml") -> dict[str, str]:
    return {n: r["status"] for n, r in results(folder, file).items()}


def trace(folder: Path) -> list[str]:
    """What the stubs recorded, in the order they ran: 'name KEY=value...'."""
    path = folder / "out" / "trace.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.partition(".")[2] for line in lines]


def names(folder: Path) -> list[str]:
    return [line.split()[0] for line in trace(folder)]


def before(order: list[str], first: str, then: str) -> bool:
    return order.index(first) < order.index(then)


def write(folder: Path, workflow: str, scripts: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "workflow.yaml").write_text(textwrap.dedent(workflow))
    for rel, text in scripts.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(textwrap.dedent(text))
    return folder


def test_quick_start_runs_in_order_and_again(tmp_path):
    folder = fixture(tmp_path, "quick_start")
    first = run(folder)
    assert first.returncode == 0, first.stdout + first.stderr
    order = ["extract_data", "transform_data", "validate_data", "load_data", "notify_completion"]
    assert names(folder) == order
    assert set(statuses(folder).values()) == {"success"}
    manifest = json.loads((folder / "target" / "workflow.yaml" / "manifest.json").read_text())
    assert manifest["metadata"]["project_name"] == "Data Processing Pipeline"
    node = manifest["nodes"]["task.extract_data"]
    assert node["timeout"] == 1800 and node["retry"]["limit"] == 2
    assert manifest["nodes"]["task.notify_completion"]["run_always"] is True
    again = run(folder)  # a script says nothing of what it reads: every task runs every run
    assert again.returncode == 0 and names(folder) == order * 2


def test_quick_start_notify_runs_after_a_failure(tmp_path):
    folder = fixture(tmp_path, "quick_start")
    proc = run(folder, fail="load_data")
    assert proc.returncode == 1
    assert statuses(folder) == {"extract_data": "success", "transform_data": "success", "validate_data": "success",
                                "load_data": "failed", "notify_completion": "success"}
    assert names(folder)[-2:] == ["load_data", "notify_completion"]
    assert json.loads((folder / "target" / "workflow.yaml" / "run_results.json").read_text())["status"] == "failed"


def test_etl_pipeline(tmp_path):
    folder = fixture(tmp_path, "etl")
    proc = run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in trace(folder))
    assert lines["fetch_from_api"] == "API_ENDPOINT=https://api.example.com/v1"
    assert lines["transform_api_data"] == "SOURCE=api" and lines["transform_db_data"] == "SOURCE=db"
    order = names(folder)
    assert len(order) == 7 and order[-3:] == ["validate_and_merge", "load_warehouse", "send_report"]
    assert before(order, "fetch_from_api", "transform_api_data") and before(order, "fetch_from_db",
                                                                             "transform_db_data")
    # a failed merge: the load is not started, the report still runs
    failed = run(folder, fail="validate_and_merge")
    assert failed.returncode == 1
    got = results(folder)
    assert got["load_warehouse"]["status"] == "skipped" and got["load_warehouse"]["skip"] == "after_failure"
    assert got["send_report"]["status"] == "success" and names(folder)[-1] == "send_report"


def test_batch_processing_runs_16_instances(tmp_path):
    folder = fixture(tmp_path, "batch")
    proc = run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = trace(folder)
    batches = [line for line in lines if line.startswith("process_batch[")]
    assert sorted(batches, key=lambda s: int(s.split("[")[1].split("]")[0])) == [
        f"process_batch[{i}] BATCH_NUM={i}" for i in range(16)]
    order = names(folder)
    assert order[0] == "prepare_batches" and order[-2:] == ["aggregate_results", "publish_results"]
    got = results(folder)["process_batch"]
    assert got["status"] == "success" and len(got["instances"]) == 16
    assert set(got["instances"].values()) == {"success"}
    assert "16 instances: 16 ran" in proc.stdout
    manifest = json.loads((folder / "target" / "workflow.yaml" / "manifest.json").read_text())
    assert manifest["nodes"]["task.process_batch"]["fanout"]["max_concurrent"] == 16  # parallelism: 16


def test_deployment_pipeline(tmp_path):
    folder = fixture(tmp_path, "deploy")
    proc = run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = trace(folder)
    assert "deploy_staging ENVIRONMENT=staging" in lines and "deploy_production ENVIRONMENT=production" in lines
    order = names(folder)
    assert order[2:] == ["build_artifacts", "deploy_staging", "smoke_tests", "deploy_production", "notify_team"]
    # failed smoke tests: production is never deployed, the team is told
    failed = run(folder, fail="smoke_tests")
    assert failed.returncode == 1
    assert statuses(folder) == {"run_tests": "success", "security_scan": "success", "build_artifacts": "success",
                                "deploy_staging": "success", "smoke_tests": "failed",
                                "deploy_production": "skipped", "notify_team": "success"}
    assert trace(folder).count("deploy_production ENVIRONMENT=production") == 1  # the first run's only


@pytest.mark.parametrize("fail, ran, skipped", [("", "generate_report", "send_alert"),
                                                 ("process_data", "send_alert", "generate_report")])
def test_condition_picks_the_branch(tmp_path, fail, ran, skipped):
    folder = fixture(tmp_path, "conditional")
    proc = run(folder, fail=fail)
    assert proc.returncode == (1 if fail else 0), proc.stdout + proc.stderr
    got = results(folder)
    assert got[ran]["status"] == "success" and ran in names(folder)
    assert got[skipped]["status"] == "skipped" and got[skipped]["skip"] == "precondition"
    assert skipped not in names(folder)
    assert "process_data.exit_code" in got[skipped]["error"]
    run_status = json.loads((folder / "target" / "workflow.yaml" / "run_results.json").read_text())["status"]
    assert run_status == ("failed" if fail else "success")  # a skip by condition is a normal outcome


FLAKY = """\
    import sys
    from pathlib import Path
    p = Path("attempts.txt")
    n = int(p.read_text()) + 1 if p.exists() else 1
    p.write_text(str(n))
    sys.exit(0 if n >= int(sys.argv[0].split("_")[-1].split(".")[0]) else 4)
"""


@pytest.mark.parametrize("backoff, waits", [("exponential", [0.05, 0.1, 0.2]), ("linear", [0.05, 0.1, 0.15]),
                                             ("constant", [0.05, 0.05, 0.05])])
def test_retries_with_backoff(tmp_path, backoff, waits):
    folder = write(tmp_path / "w", f"""\
        tasks:
          risky_operation:
            script: ./flaky_4.py
            retries: 3
            retry_backoff: {backoff}
            retry_delay_ms: 50
    """, {"flaky_4.py": FLAKY})
    proc = run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = results(folder)["risky_operation"]
    assert got["attempts"] == 4 and (folder / "attempts.txt").read_text() == "4"
    assert got["retry_waits"] == pytest.approx(waits)


def test_retries_run_out(tmp_path):
    folder = write(tmp_path / "w", """\
        tasks:
          risky_operation:
            script: ./flaky_9.py
            retries: 2
            retry_delay_ms: 10
          recovery_task:
            script: ./recover.sh
            depends_on: [risky_operation]
            run_always: true
    """, {"flaky_9.py": FLAKY, "recover.sh": "echo recovered > recovered.txt\n"})
    proc = run(folder)
    assert proc.returncode == 1
    got = results(folder)
    assert got["risky_operation"]["status"] == "failed" and got["risky_operation"]["attempts"] == 3
    assert (folder / "attempts.txt").read_text() == "3"
    assert got["recovery_task"]["status"] == "success" and (folder / "recovered.txt").read_text() == "recovered\n"


def test_timeout_stops_the_script(tmp_path):
    folder = write(tmp_path / "w", """\
        tasks:
          slow:
            script: ./slow.py
            timeout_minutes: 0.01
    """, {"slow.py": "import time, pathlib\npathlib.Path('started').touch()\ntime.sleep(30)\n"
                     "pathlib.Path('finished').touch()\n"})
    t0 = time.monotonic()
    proc = run(folder)
    assert proc.returncode == 1 and time.monotonic() - t0 < 20
    got = results(folder)["slow"]
    assert got["status"] == "failed" and "timed out after 600ms" in got["error"]
    assert (folder / "started").exists() and not (folder / "finished").exists()


def test_skip_if_env_and_secrets(tmp_path):
    folder = write(tmp_path / "w", """\
        tasks:
          check:
            script: ./check.sh
          publish:
            script: ./publish.py
            depends_on: [check]
            environment:
              TOKEN: '{{ env.API_TOKEN }}'
          cleanup:
            script: ./check.sh
            skip_if: '{{ check.succeeded }} and {{ env.KEEP }} == "yes"'
    """, {"check.sh": "exit 0\n", "publish.py": "import os, pathlib\n"
          "pathlib.Path('token.txt').write_text(os.environ['TOKEN'])\nprint('token', os.environ['TOKEN'])\n"})
    proc = run(folder, env={"API_TOKEN": "s3cr3t-value", "KEEP": "yes"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (folder / "token.txt").read_text() == "s3cr3t-value"  # the script gets the value...
    for path in (folder / "target").rglob("*"):  # ... which never reaches target/ (logs included)
        if path.is_file() and path.suffix != ".duckdb":
            assert b"s3cr3t-value" not in path.read_bytes(), path
    assert "s3cr3t-value" not in proc.stdout + proc.stderr
    got = results(folder)
    assert got["cleanup"]["status"] == "skipped" and got["cleanup"]["skip"] == "precondition"
    again = run(folder, env={"API_TOKEN": "s3cr3t-value", "KEEP": "no"})
    assert again.returncode == 0 and results(folder)["cleanup"]["status"] == "success"


def test_api_in_the_seed_shape(tmp_path):
    from seekrun.workflows import WorkflowEngine, WorkflowParser

    folder = fixture(tmp_path, "conditional")
    workflow = WorkflowParser().parse_yaml(str(folder / "workflow.yaml"))
    assert workflow.task_names == ["process_data", "send_alert", "generate_report"]
    engine = WorkflowEngine()
    result = engine.run(workflow)
    assert (result.status, result.completed_count, result.total_count) == ("success", 2, 3)
    assert result.duration_seconds > 0
    report, alert = result.task("generate_report"), result.task("send_alert")
    assert (report.status, report.attempts, report.exit_code) == ("success", 1, 0) and report.duration > 0
    assert (alert.status, alert.skip, alert.exit_code) == ("skipped", "precondition", None)
    os.environ["STUB_FAIL"] = "process_data"
    try:
        failed = engine.run(workflow)
    finally:
        del os.environ["STUB_FAIL"]
    assert failed.status == "failed" and failed.exit_code == 1
    assert failed.task("process_data").exit_code == 1 and failed.task("send_alert").status == "success"
    assert statuses(folder) == {t.name: t.status for t in failed.tasks}  # what run_results.json says
    os.environ["STUB_FAIL"] = "process_data"
    try:
        seen = [(e.type, e.task_name) for e in engine.stream_events(workflow)]
    finally:
        del os.environ["STUB_FAIL"]
    assert seen.index(("task_started", "process_data")) < seen.index(("task_failed", "process_data"))
    assert seen.index(("task_failed", "process_data")) < seen.index(("task_started", "send_alert"))
    assert ("task_completed", "send_alert") in seen and ("task_skipped", "generate_report") in seen
    assert engine.result.status == "failed"
    failed_event = next(e for e in engine.stream_events(workflow) if e.type != "task_started")
    assert failed_event.type == "task_completed" and failed_event.duration is not None


def test_api_partial_run(tmp_path):
    from seekrun.workflows import WorkflowEngine, WorkflowParser

    folder = write(tmp_path / "w", """\
        name: Partial
        version: 2.1
        tasks:
          optional:
            script: ./fail.sh
            continue_on: {failure: true}
          main:
            script: ./ok.sh
            depends_on: [optional]
    """, {"fail.sh": "exit 3\n", "ok.sh": "exit 0\n"})
    workflow = WorkflowParser().parse_yaml(folder / "workflow.yaml")
    assert (workflow.name, workflow.version) == ("Partial", "2.1")
    result = WorkflowEngine().run(workflow)
    assert result.status == "partial" and result.task("optional").exit_code == 3
    assert result.task("main").status == "success" and (result.completed_count, result.total_count) == (1, 2)


def test_notifications(tmp_path):
    from seekrun.project import find_project

    folder = write(tmp_path / "w", """\
        workflow:
          name: Important Pipeline

          tasks:
            main_task:
              script: ./scripts/main.py

          notifications:
            on_success:
              - type: slack
                webhook: '{{ env.SLACK_WEBHOOK }}'
                message: 'Pipeline completed successfully'

            on_failure:
              - type: email
                recipients: ['ops@example.com']
                subject: 'Pipeline failed'

              - type: pagerduty
                integration_key: '{{ env.PD_KEY }}'
    """, {"scripts/main.py": "print('main')\n"})
    project = find_project(folder / "workflow.yaml")
    assert project.name == "Important Pipeline"
    assert project.notify == [{"when": ["success"], "webhook": "{{ env_var('SLACK_WEBHOOK') }}", "command": None,
                               "line": 10}]
    proc = run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warned = [line for line in proc.stderr.splitlines() if "not supported" in line]
    assert len(warned) == 1 and "email (line 15)" in warned[0] and "pagerduty (line 19)" in warned[0]
    assert warned[0].startswith("workflow.yaml:8: warning:")


def test_resource_hints_take_pool_slots(tmp_path):
    folder = write(tmp_path / "w", """\
        pools: {cpu: 8}
        tasks:
          memory_intensive_task:
            script: ./a.sh
            cpu_cores: 8
            memory_mb: 32768
            disk_gb: 100
            timeout_minutes: 180
          io_bound_task:
            script: ./a.sh
            cpu_cores: 1.5
            memory_mb: 512
    """, {"a.sh": "exit 0\n"})
    proc = run(folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    nodes = json.loads((folder / "target" / "workflow.yaml" / "manifest.json").read_text())["nodes"]
    assert (nodes["task.memory_intensive_task"]["pool"], nodes["task.memory_intensive_task"]["slots"]) == ("cpu", 8)
    assert nodes["task.io_bound_task"]["slots"] == 2


BAD = {
    "unknown depends_on": ("""\
        tasks:
          a:
            script: ./a.sh
          b:
            script: ./a.sh
            depends_on: [a, c]
    """, 6, "depends on 'c', which is not a task of this workflow"),
    "cycle": ("""\
        tasks:
          a:
            script: ./a.sh
            depends_on: [b]
          b:
            script: ./a.sh
            depends_on: [a]
    """, 4, "dependency cycle"),
    "bad expression": ("""\
        tasks:
          a:
            script: ./a.sh
          b:
            script: ./a.sh
            depends_on: [a]
            condition: '{{ a.exit_code = 0 }}'
    """, 7, "condition: bad expression"),
    "eval is never used": ("""\
        tasks:
          a:
            script: ./a.sh
          b:
            script: ./a.sh
            condition: '{{ __import__("os").system("touch pwned") }}'
    """, 6, "bad expression"),
    "expression names no task": ("""\
        tasks:
          a:
            script: ./a.sh
          b:
            script: ./a.sh
            skip_if: '{{ previous_task.failed }}'
    """, 6, "reads 'previous_task', which is not a task of this workflow"),
    "nesting past the limit": ("""\
        tasks:
          a:
            script: ./a.sh
          b:
            script: ./a.sh
            condition: '{{ ((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((a.failed)))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))) }}'
    """, 6, "more than 50 parentheses"),
    "bad backoff": ("""\
        tasks:
          a:
            script: ./a.sh
            retries: 2
            retry_backoff: fibonacci
    """, 5, "retry_backoff 'fibonacci' is not one of exponential, linear or constant"),
    "missing script": ("""\
        tasks:
          a:
            script: ./scripts/nope.py
    """, 3, "script './scripts/nope.py' does not exist"),
    "bad timeout": ("""\
        tasks:
          a:
            script: ./a.sh
            timeout_minutes: soon
    """, 4, "timeout_minutes must be a number above 0"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(tmp_path, case):
    from seekrun.errors import ProjectError
    from seekrun.workflows import WorkflowParser

    text, line, message = BAD[case]
    folder = write(tmp_path / "w", text, {"a.sh": "touch ran\n"})
    for command in ("run", "parse"):
        proc = subprocess.run([sys.executable, "-m", "seekrun", command, "workflow.yaml"], cwd=folder,
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"workflow.yaml:{line}:" in proc.stderr and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (folder / "ran").exists() and not (folder / "pwned").exists()
    with pytest.raises(ProjectError) as exc:
        WorkflowParser().parse_yaml(folder / "workflow.yaml")
    assert any(d.line == line and message in d.message for d in exc.value.diagnostics)


def test_expression_parser():
    from seekrun.workflows.expr import BadExpression, evaluate, parse, tasks

    up = {"a": {"status": "failed", "exit_code": 2}, "b": {"status": "success", "exit_code": 0},
          "c": {"status": "skipped", "exit_code": 5}}
    cases = {"{{ a.exit_code != 0 }}": True, "{{ a.exit_code == '2' }}": True, "a.failed and not b.failed": True,
             "{{ b.status == 'success' }} and ({{ c.skipped }} or a.exit_code > 3)": True,
             "c.exit_code == none": True, "not (a.failed or b.failed)": False, "b.exit_code >= 1": False,
             "true": True}
    for text, want in cases.items():
        assert evaluate(parse(text), up, {}) is want, text
    assert tasks(parse("a.failed or {{ b.exit_code == 0 }} or a.skipped")) == ["a", "b"]
    for bad in ("a.exit_code ==", "a.exit_code = 1", "a.bogus", "(a.failed", "a.failed b.failed", "1 + 2",
                "{{ a.failed", "a.failed()", "", "os.system('x')"):
        with pytest.raises(BadExpression):
            parse(bad)


def test_spaces_inside_a_condition_literal_are_kept(tmp_path):
    folder = write(tmp_path / "w", """\
        tasks:
          a:
            script: ./a.sh
            condition: "{{ env.MODE == 'blue  green' }}"
    """, {"a.sh": "touch ran\n"})
    proc = run(folder, env={"MODE": "blue  green"})
    assert proc.returncode == 0 and (folder / "ran").exists(), proc.stdout + proc.stderr


def test_leaving_the_stream_early_cancels_the_run_and_no_argument_streams_the_last_workflow(tmp_path):
    import time

    from seekrun.workflows import WorkflowEngine

    folder = write(tmp_path / "w", """\
        tasks:
          quick:
            script: ./quick.sh
          slow:
            script: ./slow.sh
            depends_on: [quick]
    """, {"quick.sh": "echo q\n", "slow.sh": "sleep 20\n"})
    engine = WorkflowEngine()
    with pytest.raises(ValueError):
        next(engine.stream_events())  # nothing run yet: which workflow?
    started = time.monotonic()
    for event in engine.stream_events(folder / "workflow.yaml"):
        if (event.type, event.task_name) == ("task_started", "slow"):
            break
    assert time.monotonic() - started < 10  # not the 20 s the task sleeps
    ran = json.loads((folder / "target" / "workflow.yaml" / "run_results.json").read_text())
    assert ran["status"] == "cancelled"
    (folder / "slow.sh").write_text("echo s\n")
    seen = [(e.type, e.task_name) for e in engine.stream_events()]  # the workflow last streamed, again
    assert seen[-1] == ("task_completed", "slow") and engine.result.status == "success"


def test_expr_precondition_on_a_task_node(tmp_path):
    """seekrun's own task nodes (here in a Dagu file) take the same expressions: {expr: ...}."""
    folder = tmp_path / "w"
    folder.mkdir()
    (folder / "flow.yaml").write_text(textwrap.dedent("""\
        steps:
          - name: a
            command: exit 3
            continueOn: {failure: true}
          - name: b
            command: touch b_ran
            depends: a
            preconditions: [{expr: "a.exit_code == 3 and a.failed"}]
          - name: c
            command: touch c_ran
            depends: a
            preconditions: [{expr: "a.succeeded"}]
    """))
    proc = subprocess.run([sys.executable, "-m", "seekrun", "run", "flow.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (folder / "b_ran").exists() and not (folder / "c_ran").exists()
    assert statuses(folder, "flow.yaml") == {"a": "failed", "b": "success", "c": "skipped"}
    (folder / "flow.yaml").write_text("steps:\n  - name: a\n    command: 'true'\n  - name: b\n    command: 'true'\n"
                                      "    preconditions: [{expr: \"a.failed\"}]\n")
    proc = subprocess.run([sys.executable, "-m", "seekrun", "run", "flow.yaml"], cwd=folder, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "flow.yaml:6:" in proc.stderr and "reads 'a', which is not an input" in \
        proc.stderr, proc.stderr


def test_parse_and_dry_run(tmp_path):
    folder = fixture(tmp_path, "conditional")
    parsed = subprocess.run([sys.executable, "-m", "seekrun", "parse", "workflow.yaml"], cwd=folder,
                            capture_output=True, text=True, timeout=60)
    assert parsed.returncode == 0 and "3 nodes (3 task)" in parsed.stdout, parsed.stdout + parsed.stderr
    dry = run(folder, "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "runs if process_data.exit_code != 0" in dry.stdout and "alert.sh" in dry.stdout
    assert "Plan: 3 to run" in dry.stdout
    assert trace(folder) == [] and not (folder / "target" / "workflow.yaml" / "run_results.json").exists()
