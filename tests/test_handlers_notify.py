"""Handlers (on_success, on_failure, on_cancel, on_exit) and notifications (notify:) at the end
of a run: which run for each status, what they see, what a failure of theirs does, and a
webhook delivered to (or refused by) a local HTTP server."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import cli, cli_proc, write_project

RECORD = 'echo "{w} $SEEKRUN_RUN_STATUS $DAG_STATUS" >> handlers.log'
HANDLERS = "".join(f"on_{w}: '{RECORD.format(w=w)}'\n" for w in ("success", "failure", "cancel", "exit"))
OK = "kind: task\nname: ok\ncommand: echo fine\n"
BAD = "kind: task\nname: bad\ncommand: echo first-error-line; echo more; exit 5\n"


def project(tmp_path, nodes: dict, extra: str = "", name: str = "p"):
    return write_project(tmp_path / name, nodes, marker=f"name: demo\n{extra}")


def log(p) -> list[str]:
    return (p / "handlers.log").read_text().splitlines() if (p / "handlers.log").exists() else []


def results(p) -> dict:
    return json.loads((p / "target" / "run_results.json").read_text())


def test_on_success_then_on_exit_with_the_run_env(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, HANDLERS.replace(f"on_exit: '{RECORD.format(w='exit')}'\n", "") + """
on_exit:
  command: >-
    echo "$SEEKRUN_RUN_ID|$SEEKRUN_RUN_RESULTS|$DAG_RUN_ID|$DAG_NAME|$DAG_RUN_STEP_NAME" > env.txt;
    cp "$SEEKRUN_RUN_RESULTS" seen_results.json; echo "exit $SEEKRUN_RUN_STATUS $DAG_STATUS" >> handlers.log
""")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert log(p) == ["success success succeeded", "exit success succeeded"]
    run_id, path, dag_id, name, step = (p / "env.txt").read_text().strip().split("|")
    assert run_id and run_id == dag_id and (p / "target" / "runs" / run_id / "logs" / "task.ok.log").exists()
    assert path == str(p / "target" / "run_results.json") and (name, step) == ("demo", "onExit")
    seen = json.loads((p / "seen_results.json").read_text())  # written before the handlers ran
    assert seen["status"] == "success" and [r["node_id"] for r in seen["results"]] == ["task.ok"]
    assert [h["status"] for h in results(p)["handlers"]] == ["success", "success"]
    assert "handlers    : on_success success, on_exit success" in res.stdout


def test_a_failed_node_runs_on_failure_and_on_exit(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": BAD}, HANDLERS)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 1
    assert log(p) == ["failure failed failed", "exit failed failed"]
    assert results(p)["status"] == "failed"


def test_a_failure_continue_on_covers_is_partial_and_runs_on_success(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": BAD + "continue_on: {failure: true}\n"}, HANDLERS)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert log(p) == ["success partial succeeded", "exit partial succeeded"]
    assert results(p)["status"] == "partial"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_cancelled_run_runs_on_cancel_and_on_exit(tmp_path, sig):
    slow = "kind: task\nname: slow\ncommand: touch started; sleep 30\n"
    p = project(tmp_path, {"nodes/a.yml": slow}, HANDLERS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run", "-p", str(p)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while not (p / "started").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert (p / "started").exists(), proc.communicate()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    assert log(p) == ["cancel cancelled cancelled", "exit cancelled cancelled"]
    assert results(p)["status"] == "cancelled"


def test_a_failing_handler_is_reported_and_fails_the_exit_code_not_the_status(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, "on_exit:\n  command: echo handler-tail-words; exit 3\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 1
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("HANDLER FAILED"))
    assert "on_exit" in line and "the run itself: success" in line and "exited 3" in line
    assert "| handler-tail-words" in res.stdout  # the tail of its log
    data = results(p)
    assert data["status"] == "success" and data["results"][0]["status"] == "success"
    assert data["handlers"][0]["status"] == "failed" and "exited 3" in data["handlers"][0]["error"]
    # a failed run keeps its own exit code and status
    q = project(tmp_path, {"nodes/a.yml": BAD}, "on_failure: exit 9\n", name="q")
    res = cli("run", "-p", str(q), "--json")
    assert res.exit_code == 1
    summary = json.loads(res.stdout)
    assert summary["status"] == "failed" and summary["handlers"][0]["error"].startswith("handler.failure")


def test_a_handler_retries_and_has_a_timeout(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, """
on_success:
  script: |
    echo x >> tries; [ "$(wc -l < tries)" -ge 3 ]
  retry: {limit: 2, interval: 0s}
on_exit:
  command: sleep 20
  timeout: 1s
""")
    started = time.monotonic()
    res = cli("run", "-p", str(p))
    assert time.monotonic() - started < 15
    assert res.exit_code == 1
    assert (p / "tries").read_text().count("x") == 3
    success, exit_ = results(p)["handlers"]
    assert success["status"] == "success" and success["attempts"] == 3
    assert exit_["status"] == "failed" and "timed out" in exit_["error"]


def test_handlers_never_run_on_a_dry_run(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, HANDLERS + "notify:\n  - when: always\n    command: touch notified\n")
    assert cli("run", "-p", str(p), "--dry-run").exit_code == 0
    assert log(p) == [] and not (p / "notified").exists()


def test_bad_handler_and_notify_config_is_exit_2_with_every_line(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, """on_success:
  comand: echo hi
on_failure:
  command: echo x
  timeout: soon
on_cancel:
  command: echo x
  outputs: [a.txt]
notify:
  - on: [failure]
    webhook: https://example.invalid/x
  - when: [failur]
    command: echo x
  - when: [success]
    webhook: ftp://example.invalid/x
  - when: [success]
""")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2 and "Traceback" not in res.output
    err = res.stderr
    for at, words in ((3, "has no 'comand' (did you mean 'command'?)"), (6, "timeout 'soon'"),
                      (9, "'outputs' is for a node"), (11, "'on' reads as true"),
                      (13, "when has no 'failur' (did you mean 'failure'?)"), (16, "http:// or https://"),
                      (17, "needs one of webhook")):
        assert any(f"seekrun_project.yml:{at}" in ln and words in ln for ln in err.splitlines()), (at, words, err)
    assert not (p / "target" / "run_results.json").exists()


class Hook:
    """A webhook on 127.0.0.1: records each POST's path and body; answers with ``code``."""

    def __init__(self, code: int = 200):
        self.bodies, self.paths, self.code = [], [], code
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hook.paths.append(self.path)
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(hook.code)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/hush-{os.urandom(4).hex()}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


NOTIFY = """notify:
  - when: [failure]
    webhook: "{{ env_var('SEEKRUN_TEST_HOOK') }}"
  - when: [success]
    webhook: "{{ env_var('SEEKRUN_TEST_HOOK') }}/never"
"""


ONE = """notify:
  - when: [always]
    webhook: "{{ env_var('SEEKRUN_TEST_HOOK') }}"
"""


def no_url_anywhere(p, res, url):
    assert url not in res.output
    for f in (p / "target").rglob("*"):
        if f.is_file():
            assert url.encode() not in f.read_bytes(), f
    secret = url.rsplit("/", 1)[1]
    assert secret not in res.output


def test_a_webhook_gets_one_post_of_the_summary(tmp_path, hook):
    p = project(tmp_path, {"nodes/a.yml": OK, "nodes/b.yml": BAD}, NOTIFY)
    res = cli_proc("run", "-p", str(p), env={"SEEKRUN_TEST_HOOK": hook.url})
    assert res.exit_code == 1
    assert len(hook.bodies) == 1 and hook.paths == ["/" + hook.url.split("/", 3)[3]]
    body = hook.bodies[0]
    run_id = next((p / "target" / "runs").iterdir()).name
    assert (body["project"], body["run_id"], body["status"]) == ("demo", run_id, "failed")
    assert body["counts"] == {"total": 2, "succeeded": 1, "failed": 1, "cached": 0, "skipped": 0, "cancelled": 0}
    assert body["failed_nodes"] == [{"node_id": "task.bad", "error": body["failed_nodes"][0]["error"]}]
    assert body["failed_nodes"][0]["error"].startswith("task.bad") and "\n" not in body["failed_nodes"][0]["error"]
    assert isinstance(body["duration"], float) and "demo: failed" in body["text"]
    no_url_anywhere(p, res, hook.url)
    assert "{{ env_var('SEEKRUN_TEST_HOOK') }}" not in json.dumps(results(p))


@pytest.mark.parametrize("how", ["500", "refused"])
def test_a_webhook_that_fails_is_a_warning_after_two_retries(tmp_path, how):
    h = Hook(500)
    url = h.url
    if how == "refused":
        h.close()  # nothing listens on that port any more
    p = project(tmp_path, {"nodes/a.yml": OK}, ONE)
    try:
        res = cli_proc("run", "-p", str(p), env={"SEEKRUN_TEST_HOOK": url, "SEEKRUN_NOTIFY_TIMEOUT": "2"})
    finally:
        if how == "500":
            h.close()
    assert res.exit_code == 0, res.output
    assert results(p)["status"] == "success"
    warning = next(ln for ln in res.stderr.splitlines() if ln.startswith("warning: notify"))
    assert "seekrun_project.yml, line 3" in warning and "not delivered after 3 tries" in warning
    if how == "500":
        assert len(h.bodies) == 3 and "HTTP 500" in warning  # the first try and two retries
    no_url_anywhere(p, res, url)


def test_a_command_notification_gets_the_json_and_its_failure_is_a_warning(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": BAD + "continue_on: {failure: true}\n"}, """notify:
  - when: [partial]
    command: printf '%s' "$SEEKRUN_NOTIFY_JSON" > notified.json; echo "$SEEKRUN_RUN_STATUS" > status.txt
  - when: [success]
    command: touch wrong
  - when: [always]
    command: echo notifier-broke; exit 4
""")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    body = json.loads((p / "notified.json").read_text())
    assert body["status"] == "partial" and body["failed_nodes"][0]["node_id"] == "task.bad"
    assert (p / "status.txt").read_text().strip() == "partial" and not (p / "wrong").exists()
    assert "warning: notify (seekrun_project.yml, line 7): command exited 4" in res.stderr
    assert "| notifier-broke" in res.stderr and "notify.3.log" in res.stderr


def test_an_unset_webhook_variable_is_a_warning(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, ONE)
    env = {k: v for k, v in os.environ.items() if k != "SEEKRUN_TEST_HOOK"}
    proc = subprocess.run([sys.executable, "-m", "seekrun", "run", "-p", str(p)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0
    assert "SEEKRUN_TEST_HOOK is not set" in proc.stderr


def test_a_webhook_that_refuses_with_a_4xx_is_not_retried(tmp_path):
    h = Hook(404)
    try:
        p = project(tmp_path, {"nodes/a.yml": OK}, ONE)
        res = cli_proc("run", "-p", str(p), env={"SEEKRUN_TEST_HOOK": h.url})
    finally:
        h.close()
    assert res.exit_code == 0 and len(h.bodies) == 1
    assert "refused the notification (HTTP 404" in res.stderr and "not retried" in res.stderr
    no_url_anywhere(p, res, h.url)


def test_a_python_handler_and_an_argv_handler(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK, "bin/hook.py": "import os, pathlib\n"
                           "pathlib.Path('py.txt').write_text(os.environ['SEEKRUN_RUN_STATUS'] + os.environ['WHO'])\n"},
                "on_success:\n  python: bin/hook.py\n  env: {WHO: '-${NAME}'}\n  params: {NAME: me}\n"
                "on_exit:\n  command: [touch, argv.txt]\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert (p / "py.txt").read_text() == "success-me" and (p / "argv.txt").exists()


def test_a_webhook_url_that_a_task_prints_is_redacted_from_the_start(tmp_path, hook):
    leaky = "kind: task\nname: bad\ncommand: echo \"posting to $SEEKRUN_TEST_HOOK failed\"; exit 5\n"
    p = project(tmp_path, {"nodes/a.yml": leaky}, NOTIFY)
    res = cli_proc("run", "-p", str(p), "--log-format", "json", env={"SEEKRUN_TEST_HOOK": hook.url})
    assert res.exit_code == 1
    assert len(hook.bodies) == 1
    no_url_anywhere(p, res, hook.url)  # the task's log, events, results, state
    assert any("posting to ***" in f.read_text() for f in (p / "target" / "runs").rglob("task.bad.log"))


def test_handlers_are_in_the_event_stream_and_the_run_history(tmp_path):
    p = project(tmp_path, {"nodes/a.yml": OK}, "on_success: 'exit 3'\n")
    res = cli_proc("run", "-p", str(p), "--log-format", "json")
    assert res.exit_code == 1
    events = [json.loads(line) for line in res.stdout.splitlines()]
    handler = next(e for e in events if e.get("node_id") == "handler.success")
    assert handler["event"] == "node_finished" and handler["status"] == "failed"
    assert events[-1]["event"] == "run_finished" and events[-1]["exit_code"] == 1
    assert events.index(handler) < len(events) - 1
    run_id = events[0]["run_id"]
    kept = json.loads((p / "target" / "runs" / run_id / "run_results.json").read_text())
    assert [h["status"] for h in kept["handlers"]] == ["failed"] == [h["status"] for h in results(p)["handlers"]]
