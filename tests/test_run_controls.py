"""Issue 12, run controls for every kind of node: preconditions, timeout (a node's, the
project's), retry policies, continue_on and run_always; their parse errors; and that none of
them rebuilds anything. Real DuckDB, real processes, the real CLI.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import cli, cli_proc, run_results, table, write_project

SOURCE = {"data/s.csv": "id,v\n1,1\n2,2\n3,3\n",
          "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n"}


def transform(name: str, sql: str = "SELECT id, v FROM input_0", inputs=("source.s",), extra: str = "") -> str:
    refs = ", ".join(f"{{ref: {i}}}" for i in inputs)
    return f"kind: transform\nname: {name}\ninputs: [{refs}]\ntransform: {sql}\n{extra}"


def project(tmp_path: Path, nodes: dict[str, str], marker: str = "name: controls\n") -> Path:
    return write_project(tmp_path / "p", {**SOURCE, **{f"nodes/{k}.yml": v for k, v in nodes.items()}}, marker)


def run(proj: Path, *args: str):
    return cli("run", "-p", str(proj), *args)


# ---- preconditions ----------------------------------------------------------------------------
def test_value_preconditions_from_params_and_environment(tmp_path: Path, monkeypatch):
    proj = project(tmp_path, {
        "by_env": transform("by_env", extra='preconditions:\n  - {condition: "${DEPLOY_ENV}", expected: production}\n'),
        "by_param": transform("by_param", extra='params: {MODE: full}\n'
                                                'preconditions:\n  - {condition: "${MODE}", expected: full}\n'),
        "by_regex": transform("by_regex", extra='preconditions:\n  - {condition: "v${DEPLOY_ENV}", '
                                                'expected: "re:prod"}\n'),
    })
    monkeypatch.setenv("DEPLOY_ENV", "staging")
    res = run(proj)
    assert res.exit_code == 0, res.output
    rr = run_results(proj)
    assert rr["transform.by_env"]["status"] == "skipped"
    assert rr["transform.by_env"]["skip"] == "precondition"
    assert rr["transform.by_env"]["error"] == "precondition not met: ${DEPLOY_ENV} is production"
    assert rr["transform.by_regex"]["error"] == "precondition not met: v${DEPLOY_ENV} matches prod"
    assert rr["transform.by_param"]["status"] == "success"
    assert "SKIP   transform.by_env  (precondition not met: ${DEPLOY_ENV} is production)" in res.stdout
    # not met: its record is not updated, so it still needs to run, and runs once it holds
    monkeypatch.setenv("DEPLOY_ENV", "preproduction")  # the regex is unanchored: it matches
    res = run(proj)
    assert res.exit_code == 0, res.output
    rr = run_results(proj)
    assert rr["transform.by_regex"]["status"] == "success" and rr["transform.by_regex"]["reason"] == "new"
    assert rr["transform.by_env"]["status"] == "skipped"
    assert rr["transform.by_param"]["status"] == "cached"
    monkeypatch.setenv("DEPLOY_ENV", "production")
    assert run(proj).exit_code == 0
    assert run_results(proj)["transform.by_env"]["status"] == "success"
    assert table(proj, "transform.by_env") == [(1, 1), (2, 2), (3, 3)]


def test_command_negate_and_backtick_preconditions(tmp_path: Path):
    proj = project(tmp_path, {
        "has_file": transform("has_file", extra='preconditions:\n  - {condition: "test -f data/today.csv"}\n'),
        "no_stop": transform("no_stop", extra='preconditions:\n  - {condition: "test -f STOP", negate: true}\n'),
        "weekday": transform("weekday", extra='preconditions:\n  - {condition: "`cat data/day.txt`", '
                                              'expected: "re:^[1-5]$"}\n'),
    })
    (proj / "data/day.txt").write_text("6\n")
    (proj / "STOP").write_text("")
    assert run(proj).exit_code == 0
    rr = run_results(proj)
    assert rr["transform.has_file"]["error"] == "precondition not met: test -f data/today.csv"
    assert rr["transform.no_stop"]["error"] == "precondition not met: not (test -f STOP)"
    assert rr["transform.weekday"]["error"] == "precondition not met: `cat data/day.txt` matches ^[1-5]$"
    assert {r["status"] for r in rr.values() if r["node_id"] != "source.s"} == {"skipped"}
    (proj / "data/today.csv").write_text("x\n")
    (proj / "STOP").unlink()
    (proj / "data/day.txt").write_text("3\n")  # output trimmed: "3", not "3\n"
    assert run(proj).exit_code == 0
    rr = run_results(proj)
    assert [rr[f"transform.{n}"]["status"] for n in ("has_file", "no_stop", "weekday")] == ["success"] * 3


def test_sql_precondition_reads_the_inputs(tmp_path: Path):
    proj = project(tmp_path, {
        "big": transform("big", extra='preconditions:\n  - {sql: "SELECT count(*) > 3 FROM source.s"}\n'),
        "small": transform("small", extra='preconditions:\n  - {sql: "SELECT count(*) > 3 FROM input_0", '
                                          'negate: true}\n'),
    })
    assert run(proj).exit_code == 0
    rr = run_results(proj)
    assert rr["transform.big"]["error"] == "precondition not met: SELECT count(*) > 3 FROM source.s"
    assert rr["transform.small"]["status"] == "success"
    (proj / "data/s.csv").write_text("id,v\n1,1\n2,2\n3,3\n4,4\n")
    assert run(proj).exit_code == 0
    rr = run_results(proj)
    assert rr["transform.big"]["status"] == "success"
    assert rr["transform.small"]["status"] == "skipped"
    assert table(proj, "transform.big") == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert table(proj, "transform.small") == [(1, 1), (2, 2), (3, 3)]  # the last good table stays


def test_a_precondition_that_cannot_be_evaluated_fails_the_node(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    proj = project(tmp_path, {"t": transform("t", extra='preconditions:\n  - {condition: "${NOT_SET_ANYWHERE}", '
                                                       'expected: x}\n')})
    res = run(proj)
    assert res.exit_code == 1, res.output
    err = run_results(proj)["transform.t"]["error"]
    assert "${NOT_SET_ANYWHERE} has no value" in err and "${NOT_SET_ANYWHERE:-default}" in err


def test_dry_run_shows_preconditions_without_evaluating_them(tmp_path: Path):
    proj = project(tmp_path, {"t": transform("t", extra='preconditions:\n  - {condition: "touch evaluated"}\n'
                                                       '  - {condition: "${X:-a}", expected: a}\n')})
    res = run(proj, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "RUN    transform.t  (new; runs if touch evaluated and ${X:-a} is a)" in res.stdout
    assert not (proj / "evaluated").exists()
    assert run(proj).exit_code == 0
    assert (proj / "evaluated").exists()


def test_secret_values_never_reach_messages(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "s3cr3t-token-value")
    proj = project(tmp_path, {"t": transform("t", extra='preconditions:\n  - {condition: "${API_TOKEN}", '
                                                       'expected: other}\n')})
    res = run(proj)
    assert res.exit_code == 0
    text = (proj / "target/run_results.json").read_text()
    assert "${API_TOKEN}" in text and "s3cr3t" not in text and "s3cr3t" not in res.output


def test_upstream_skip_and_continue_on_skipped(tmp_path: Path):
    pre = 'preconditions:\n  - {condition: "false"}\n'
    proj = project(tmp_path, {
        "gate": transform("gate", extra=pre),
        "after_gate": transform("after_gate", inputs=("transform.gate",)),
        "soft_gate": transform("soft_gate", extra=pre + "continue_on: {skipped: true}\n"),
        "after_soft": transform("after_soft", sql="SELECT count(*) AS n FROM input_0", inputs=("source.s",
                                                                                            "transform.soft_gate")),
    })
    res = run(proj)
    assert res.exit_code == 0, res.output
    rr = run_results(proj)
    assert rr["transform.after_gate"]["status"] == "skipped"
    assert rr["transform.after_gate"]["error"] == "upstream transform.gate skipped"
    assert rr["transform.after_gate"]["skip"] == "upstream_skipped"
    assert rr["transform.soft_gate"]["status"] == "skipped" and rr["transform.soft_gate"]["continued"]
    assert rr["transform.after_soft"]["status"] == "success"  # soft_gate's skip did not stop it
    assert table(proj, "transform.after_soft") == [(3,)]


# ---- continue_on and run_always ----------------------------------------------------------------
BREAKABLE = "SELECT id, v FROM input_0"
BROKEN = "SELECT id, CAST('x' || v AS INT) AS v FROM input_0"


def test_continue_on_failure_runs_dependents_on_the_last_good_output(tmp_path: Path):
    nodes = {"a": transform("a", BREAKABLE, extra="continue_on: {failure: true}\n"),
             "b": transform("b", "SELECT sum(v) AS total FROM input_0", inputs=("transform.a",)),
             "c": transform("c", BREAKABLE),
             "d": transform("d", "SELECT count(*) AS n FROM input_0", inputs=("transform.c",))}
    proj = project(tmp_path, nodes)
    assert run(proj).exit_code == 0
    (proj / "data/s.csv").write_text("id,v\n1,10\n2,20\n3,30\n")
    (proj / "nodes/a.yml").write_text(transform("a", BROKEN, extra="continue_on: {failure: true}\n"))
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0, res.output  # the only failure is covered
    rr = run_results(proj)
    assert rr["transform.a"]["status"] == "failed" and rr["transform.a"]["continued"] is True
    assert rr["transform.b"]["status"] == "success"
    assert table(proj, "transform.b") == [(6,)]  # from a's last good table
    assert rr["transform.c"]["status"] == rr["transform.d"]["status"] == "success"
    assert "FAILED transform.a:" in res.stdout and "not counted as a failure of the run" in res.stdout
    assert run_status(proj) == "partial"  # Dagu's partial success
    # without continue_on the same failure fails the run and skips b
    (proj / "nodes/a.yml").write_text(transform("a", BROKEN))
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 1
    rr = run_results(proj)
    assert rr["transform.b"]["status"] == "skipped" and rr["transform.b"]["error"] == "upstream transform.a failed"
    assert run_status(proj) == "failed"
    (proj / "nodes/a.yml").write_text(transform("a", BREAKABLE))
    assert cli_proc("run", "-p", str(proj)).exit_code == 0
    assert run_status(proj) == "success"


def run_status(proj: Path) -> str:
    import json

    return json.loads((proj / "target" / "run_results.json").read_text())["status"]


def test_run_always_after_a_failure_a_skip_and_the_stop_after_failure(tmp_path: Path):
    proj = project(tmp_path, {
        "a_bad": transform("a_bad", BROKEN),
        "b_child": transform("b_child", inputs=("transform.a_bad",)),
        "c_cleanup": transform("c_cleanup", "SELECT 'cleaned' AS what", inputs=("transform.b_child",),
                               extra="run_always: true\n"),
        "m_other": transform("m_other"),  # never started: the run stops after a_bad fails
        "n_next": transform("n_next", inputs=("transform.m_other",)),
        "z_notify": transform("z_notify", "SELECT 'sent' AS what", inputs=("transform.n_next",),
                              extra="run_always: true\n"),
        "g_gate": transform("g_gate", extra='preconditions:\n  - {condition: "false"}\n'),
        "h_after": transform("h_after", "SELECT 'ran' AS what", inputs=("transform.g_gate",),
                             extra="run_always: true\n"),
    })
    res = cli_proc("run", "-p", str(proj), "--threads", "1")
    assert res.exit_code == 1, res.output
    rr = run_results(proj)
    assert rr["transform.a_bad"]["status"] == "failed"
    assert rr["transform.b_child"]["error"] == "upstream transform.a_bad failed"
    assert rr["transform.c_cleanup"]["status"] == "success"
    assert table(proj, "transform.c_cleanup") == [("cleaned",)]
    assert rr["transform.m_other"]["error"] == rr["transform.n_next"]["error"] == \
        "not started: the run stopped after a failure"
    assert rr["transform.z_notify"]["status"] == "success"
    assert rr["transform.g_gate"]["error"] == "not started: the run stopped after a failure"
    assert rr["transform.h_after"]["status"] == "success"  # its parent is resolved: never started


def test_run_always_after_a_skip(tmp_path: Path):
    proj = project(tmp_path, {
        "g_gate": transform("g_gate", extra='preconditions:\n  - {condition: "false"}\n'),
        "h_mid": transform("h_mid", inputs=("transform.g_gate",)),
        "i_always": transform("i_always", "SELECT 'ran' AS what", inputs=("transform.h_mid",),
                              extra="run_always: true\n"),
    })
    assert run(proj).exit_code == 0
    rr = run_results(proj)
    assert rr["transform.g_gate"]["status"] == rr["transform.h_mid"]["status"] == "skipped"
    assert rr["transform.i_always"]["status"] == "success"
    # run_always does not make a cached node run
    (proj / "nodes/g_gate.yml").write_text(transform("g_gate"))
    assert run(proj).exit_code == 0
    rr = run_results(proj)
    assert rr["transform.g_gate"]["status"] == rr["transform.h_mid"]["status"] == "success"
    assert rr["transform.i_always"]["status"] == "success"  # its input changed
    assert run(proj).exit_code == 0
    assert run_results(proj)["transform.i_always"]["status"] == "cached"


# ---- what enters the hash, and what is refused --------------------------------------------------
def test_changing_controls_rebuilds_nothing(tmp_path: Path):
    proj = project(tmp_path, {"t": transform("t"), "u": transform("u", inputs=("transform.t",))})
    assert run(proj).exit_code == 0
    (proj / "nodes/t.yml").write_text(transform("t", extra="timeout: 10m\nretry: {limit: 3, interval: 2s}\n"
                                                          "continue_on: {failure: true}\nrun_always: true\n"
                                                          'preconditions:\n  - {condition: "true"}\n'))
    (proj / "nodes/s.yml").write_text("kind: source\nname: s\nsource: csv\ntable: data/s.csv\ntimeout: 1h30m\n")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout
    assert {r["status"] for r in run_results(proj).values()} == {"cached"}


BAD = {
    "timeout": ("timeout: soon\n", "timeout 'soon' is not a duration above 0"),
    "timeout_zero": ("timeout: 0\n", "timeout '0' is not a duration above 0"),
    "retry_value": ("retry: {limit: many}\n", "retry.limit must be a whole number of retries from 0 to 100"),
    "retry_interval": ("retry: {limit: 2, interval: 3 parsecs}\n", "retry.interval '3 parsecs' is not a duration"),
    "retry_key": ("retry: {limit: 2, delay: 1s}\n", "retry has no key 'delay'"),
    "retry_backoff": ("retry: {limit: 2, backoff: 0.5}\n", "retry.backoff '0.5' must be a number from 1"),
    "pre_shape": ("preconditions:\n  - {command: ls}\n", "preconditions[0] has no key 'command': write one of"),
    "pre_both": ("preconditions:\n  - {condition: a, sql: SELECT true}\n", "gives both 'condition' and 'sql'"),
    "pre_text": ("preconditions:\n  - just text\n", "preconditions[0] is not a condition"),
    "pre_sql_input": ('preconditions:\n  - {sql: "SELECT count(*) > 0 FROM transform.elsewhere"}\n',
                      "transform.elsewhere is not an input of this node"),
    "pre_regex": ('preconditions:\n  - {condition: a, expected: "re:("}\n', "bad regular expression"),
    "continue_key": ("continue_on: {failure: true, error: true}\n",
                     "continue_on has no key 'error': the keys are failure, skipped, exit_codes"),
    "continue_codes": ("continue_on: {exit_codes: [one]}\n", "continue_on.exit_codes must be a list of exit codes"),
    "run_always": ("run_always: sometimes\n", "run_always must be true or false"),
}


def test_bad_controls_are_parse_errors(tmp_path: Path):
    proj = project(tmp_path, {name: transform(name, extra=extra) for name, (extra, _) in BAD.items()})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    for name, (extra, message) in BAD.items():
        line = 5 + (1 if extra.startswith("preconditions") else 0)
        hit = [x for x in lines if x.startswith(f"nodes/{name}.yml:{line}: transform.{name}: ") and message in x]
        assert hit, (name, res.stderr)
    assert not (proj / "target/manifest.json").exists()


def test_bad_project_timeout_is_a_parse_error(tmp_path: Path):
    proj = project(tmp_path, {"t": transform("t")}, marker="name: controls\ntimeout: whenever\n")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2
    assert "seekrun_project.yml:2: timeout 'whenever' is not a duration above 0" in res.stderr


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), (45, 45),
                                           ("500ms", 0.5), ("1.5s", 1.5), ("2", 2)])
def test_durations(text, seconds):
    from seekrun.controls import parse_duration

    assert parse_duration(text) == seconds


def test_continue_on_exit_codes_policy():
    from seekrun.controls import covers

    policy = {"failure": False, "skipped": False, "exit_codes": [3]}
    assert covers(policy, False, 3) and not covers(policy, False, 1) and not covers(policy, False, None)
    assert not covers(policy, True, None)
    assert covers({"failure": True, "skipped": False, "exit_codes": None}, False, None)


def test_show_prints_the_controls(tmp_path: Path):
    proj = project(tmp_path, {"t": transform("t", extra="timeout: 1h30m\nretry: {limit: 3, interval: 2s, "
                                                       "max_interval: 1m, exit_codes: [75]}\n"
                                                       "continue_on: {skipped: true}\nrun_always: true\n"
                                                       'preconditions:\n  - {condition: "${ENV}", '
                                                       'expected: prod}\n')})
    res = cli("show", "transform.t", "-p", str(proj))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "  timeout    : 1h30m" in out
    assert "  retry      : up to 3 retries, waits 2s x2 each time (at most 1m), only on exit codes 75" in out
    assert "  runs if    : ${ENV} is prod" in out
    assert "  continue on: skipped" in out
    assert "  run always : yes" in out
