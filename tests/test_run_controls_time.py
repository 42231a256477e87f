"""Issue 12, run controls: a node's timeout (SQL interrupted through DuckDB), the project's
timeout, and retry policies with their waits measured. Real DuckDB, real processes, the CLI.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import ENDLESS, cli_proc, run_results, slow_count, slow_sql, table
from test_run_controls import project, run, transform


# ---- timeouts ----------------------------------------------------------------------------------
def test_sql_node_timeout_keeps_the_last_good_table(tmp_path: Path):
    proj = project(tmp_path, {"slow": transform("slow", slow_sql(3), extra="timeout: 1s\n"),
                              "other": transform("other")})
    assert cli_proc("run", "-p", str(proj)).exit_code == 0
    assert table(proj, "transform.slow") == [(slow_count(3),)]
    t0 = time.monotonic()
    res = cli_proc("run", "-p", str(proj), env=ENDLESS)
    took = time.monotonic() - t0
    assert res.exit_code == 1, res.output
    assert took < 30
    rr = run_results(proj)
    assert rr["transform.slow"]["status"] == "failed"
    assert rr["transform.slow"]["error"] == "timed out after 1s"
    assert 0.9 < rr["transform.slow"]["duration"] < 10
    assert "FAILED transform.slow: timed out after 1s" in res.stdout
    assert table(proj, "transform.slow") == [(slow_count(3),)]  # rolled back: the old table is there
    res = cli_proc("run", "-p", str(proj))  # the next run retries it
    assert res.exit_code == 0, res.output
    assert run_results(proj)["transform.slow"]["reason"] == "previous run failed"


def test_timed_out_attempts_are_retried(tmp_path: Path):
    proj = project(tmp_path, {"slow": transform("slow", slow_sql(1),
                                                extra="timeout: 500ms\nretry: {limit: 2, interval: 0.1s}\n")})
    res = cli_proc("run", "-p", str(proj), env=ENDLESS)
    assert res.exit_code == 1, res.output
    r = run_results(proj)["transform.slow"]
    assert r["attempts"] == 3 and r["error"] == "timed out after 500ms"
    assert r["retry_waits"] == [0.1, 0.2]
    assert r["duration"] > 1.5


def test_project_timeout_stops_the_run(tmp_path: Path):
    proj = project(tmp_path, {"a_slow": transform("a_slow", slow_sql(2)), "b_next": transform("b_next")},
                   marker="name: controls\ntimeout: 2s\n")
    t0 = time.monotonic()
    res = cli_proc("run", "-p", str(proj), "--threads", "1", env=ENDLESS)
    took = time.monotonic() - t0
    assert res.exit_code == 1, res.output
    assert took < 30
    assert "seekrun: run timed out after 2s" in res.stderr
    rr = run_results(proj)
    assert rr["transform.a_slow"]["skip"] == rr["transform.b_next"]["skip"] == "interrupted"
    assert rr["transform.b_next"]["error"] == "run timed out after 2s"
    assert rr["source.s"]["status"] == "success"  # what finished is kept
    assert json.loads((proj / "target/run_results.json").read_text())["metadata"]["timed_out"] == "2s"
    res = cli_proc("run", "-p", str(proj), "--threads", "1")
    assert res.exit_code == 0, res.output
    rr = run_results(proj)
    assert rr["source.s"]["status"] == "cached" and rr["transform.a_slow"]["status"] == "success"


# ---- retry -------------------------------------------------------------------------------------
FLAKY_PY = '''\
import json, os, time


def flaky(ctx):
    log = ctx.params["log"]
    times = json.load(open(log)) if os.path.exists(log) else []
    times.append(time.time())
    json.dump(times, open(log, "w"))
    if len(times) <= ctx.params["fails"]:
        raise RuntimeError(f"attempt {len(times)} fails")
    return ctx.ref(0)
'''


def flaky_node(log: Path, fails: int, retry: str) -> str:
    return (f"kind: transform\nname: flaky\ninputs: [{{ref: source.s}}]\npython: lib/flaky.py:flaky\n"
            f"params: {{log: '{log}', fails: {fails}}}\nretry: {retry}\n")


def test_retry_policy_backoff_measured(tmp_path: Path):
    log = tmp_path / "attempts.json"
    proj = project(tmp_path, {"flaky": flaky_node(log, 3, "{limit: 4, interval: 0.3s, backoff: 2, max_interval: 1s}")})
    (proj / "lib").mkdir()
    (proj / "lib/flaky.py").write_text(FLAKY_PY)
    res = run(proj)
    assert res.exit_code == 0, res.output
    r = run_results(proj)["transform.flaky"]
    assert r["status"] == "success" and r["attempts"] == 4
    assert r["retry_waits"] == [0.3, 0.6, 1.0]  # 0.3, 0.6, then 1.2 capped at max_interval
    times = json.loads(log.read_text())
    gaps = [b - a for a, b in zip(times, times[1:])]
    for gap, want in zip(gaps, [0.3, 0.6, 1.0]):
        assert want - 0.05 <= gap <= want + 1.0, gaps
    assert "4 attempts" in res.stdout


def test_retry_limit_and_exit_codes(tmp_path: Path):
    log = tmp_path / "attempts.json"
    proj = project(tmp_path, {"flaky": flaky_node(log, 5, "{limit: 2, interval: 0, backoff: 1}")})
    (proj / "lib").mkdir()
    (proj / "lib/flaky.py").write_text(FLAKY_PY)
    assert run(proj).exit_code == 1
    r = run_results(proj)["transform.flaky"]
    assert r["attempts"] == 3 and r["retry_waits"] == [0.0, 0.0] and "attempt 3 fails" in r["error"]
    # exit_codes given: a failure without an exit code is not retried
    log.unlink()
    (proj / "nodes/flaky.yml").write_text(flaky_node(log, 5, "{limit: 2, interval: 0, exit_codes: [75]}"))
    assert run(proj).exit_code == 1
    r = run_results(proj)["transform.flaky"]
    assert r["attempts"] == 1 and r["retry_waits"] == []
    # --retry stays the default for nodes without retry:
    log.unlink()
    (proj / "nodes/flaky.yml").write_text(flaky_node(log, 1, "null"))
    assert run(proj, "--retry", "1").exit_code == 0
    r = run_results(proj)["transform.flaky"]
    assert r["attempts"] == 2 and r["retry_waits"] == [0.2]
