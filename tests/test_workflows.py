"""Dagu-format workflow files and kind: dag: what a user sees (exit codes, messages, files)."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import cli_proc, run_results, write_project


def flow(folder: Path, text: str, name: str = "flow.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def results(folder: Path, stem: str = "flow") -> dict[str, dict]:
    data = json.loads((folder / "target" / f"{stem}.yaml" / "run_results.json").read_text())
    return {r["node_id"]: r for r in data["results"]}


BAD = {
    "unknown step in depends": ("""
        steps:
          - name: a
            command: echo a
          - name: b
            command: echo b
            depends: [aa]
        """, ":7: step b: depends on 'aa', which is not a step of this workflow (did you mean 'a'?)"),
    "a cycle": ("""
        steps:
          - name: a
            command: echo a
            depends: b
          - name: b
            command: echo b
            depends: a
        """, "cycle"),
    "duplicate step names": ("""
        steps:
          - name: a
            command: echo a
          - name: a
            command: echo again
        """, ":5: duplicate step name 'a' (also at line 3)"),
    "a missing child DAG": ("""
        steps:
          - name: child
            run: nowhere/child.yaml
        """, "child DAG 'nowhere/child.yaml' not found"),
    "maxConcurrent not a positive integer": ("""
        steps:
          - name: fan
            command: echo ${ITEM}
            parallel: {items: [a, b], maxConcurrent: 0}
        """, "parallel.maxConcurrent must be a positive integer"),
    "parallel items of the wrong shape": ("""
        steps:
          - name: fan
            command: echo ${ITEM}
            parallel: [[a, b], c]
        """, "parallel takes a list of items"),
    "a step without a name": ("""
        steps:
          - command: echo a
        """, "step 1 needs a name"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_workflows_are_refused_with_a_clear_error_and_exit_2(tmp_path, case):
    text, expected = BAD[case]
    path = flow(tmp_path, text)
    res = cli_proc("run", str(path), cwd=tmp_path)
    assert res.exit_code == 2, res.output
    assert expected in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "target" / "flow.yaml" / "state" / "execution_state.json").exists()


def test_errors_are_reported_together(tmp_path):
    path = flow(tmp_path, """
        steps:
          - name: a
            command: echo a
            depends: zz
          - name: a
            command: echo b
          - name: c
            run: missing.yaml
        """)
    res = cli_proc("parse", str(path), cwd=tmp_path)
    assert res.exit_code == 2
    assert "depends on 'zz'" in res.stderr and "duplicate step name 'a'" in res.stderr
    assert "child DAG 'missing.yaml' not found" in res.stderr


def test_a_workflow_runs_in_its_folder_with_dagu_variables_and_step_references(tmp_path):
    path = flow(tmp_path / "wf", """
        name: vars
        steps:
          - name: first
            command: |
              pwd > where.txt
              echo "$DAG_NAME $DAG_RUN_STEP_NAME" > names.txt
              test -n "$DAG_RUN_ID" && test -n "$DAG_RUN_LOG_FILE"
              echo hello
            output: GREETING
          - name: second
            command: echo "${GREETING} ${first.exitCode} ${first.status} ${first.output}" > refs.txt; cat ${first.stdout} > copied.txt
            depends: first
        """)
    res = cli_proc("run", str(path), cwd=tmp_path)
    assert res.exit_code == 0, res.output
    wf = tmp_path / "wf"
    assert (wf / "where.txt").read_text().strip() == str(wf)
    assert (wf / "names.txt").read_text().strip() == "vars first"
    assert (wf / "refs.txt").read_text().strip() == "hello 0 success hello"
    assert "hello" in (wf / "copied.txt").read_text()
    assert (wf / "target" / "flow.yaml" / "run_results.json").exists()  # state is named by the file
    assert set(results(wf)) == {"task.first", "task.second"}


def test_steps_without_depends_may_run_at_once_and_type_chain_orders_them(tmp_path):
    text = """
        {chain}
        steps:
          - name: a
            command: echo "$(date +%s.%N) a" >> log.txt; sleep 0.4; echo "$(date +%s.%N) a" >> log.txt
          - name: b
            command: echo "$(date +%s.%N) b" >> log.txt; sleep 0.4; echo "$(date +%s.%N) b" >> log.txt
        """

    def spans(folder):
        times: dict[str, list[float]] = {}
        for line in (folder / "log.txt").read_text().splitlines():
            t, who = line.split()
            times.setdefault(who, []).append(float(t))
        return times
    free = tmp_path / "free"
    assert cli_proc("run", str(flow(free, text.format(chain=""))), "--threads", "2").exit_code == 0
    t = spans(free)
    assert t["a"][0] < t["b"][1] and t["b"][0] < t["a"][1]  # they overlapped
    chained = tmp_path / "chained"
    assert cli_proc("run", str(flow(chained, text.format(chain="type: chain"))), "--threads", "2").exit_code == 0
    t = spans(chained)
    assert t["a"][1] <= t["b"][0]  # b waited for a


def test_handlers_run_after_the_steps_and_see_the_status(tmp_path):
    text = """
        steps:
          - name: work
            command: {cmd}
        handlerOn:
          success:
            command: echo "success $DAG_STATUS" >> handlers.log
          failure:
            command: echo "failure $DAG_STATUS" >> handlers.log
          exit:
            command: echo "exit $DAG_STATUS" >> handlers.log
        """
    ok = tmp_path / "ok"
    assert cli_proc("run", str(flow(ok, text.format(cmd="'true'")))).exit_code == 0
    assert (ok / "handlers.log").read_text().splitlines() == ["success succeeded", "exit succeeded"]
    bad = tmp_path / "bad"
    res = cli_proc("run", str(flow(bad, text.format(cmd="'false'"))))
    assert res.exit_code == 1
    assert (bad / "handlers.log").read_text().splitlines() == ["failure failed", "exit failed"]


def test_a_failing_handler_fails_the_run(tmp_path):
    path = flow(tmp_path, """
        steps:
          - name: work
            command: "true"
        handlerOn:
          exit:
            command: exit 4
        """)
    res = cli_proc("run", str(path))
    assert res.exit_code == 1
    assert json.loads((tmp_path / "target" / "flow.yaml" / "outputs.json").read_text())["status"] == "failed"


def test_local_dags_in_one_file_are_called_by_name(tmp_path):
    path = flow(tmp_path, """
        name: main-workflow
        steps:
          - name: run-local
            executor: dag
            command: data-processor
            output: OUT

        ---

        name: data-processor
        steps:
          - name: process
            command: echo "Processing data" > processed.txt
        """)
    res = cli_proc("run", str(path))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "processed.txt").read_text() == "Processing data\n"
    assert results(tmp_path)["dag.run-local"]["status"] == "success"


def test_a_project_calls_a_workflow_and_a_workflow_calls_a_project(tmp_path):
    project = write_project(tmp_path / "proj", {
        "nodes/extract.yml": "kind: dag\nname: extract\nrun: flows/extract.yaml\noutput: EXTRACTED\n",
        "nodes/use.yml": "kind: task\nname: use\ncommand: echo ${EXTRACTED.outputs.rows} > rows.txt\n"
                         "depends_on: [dag.extract]\n",
        "flows/extract.yaml": "steps:\n  - name: count\n    command: echo 42\n    output: rows\n",
    })
    res = cli_proc("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert (project / "rows.txt").read_text() == "42\n"
    assert run_results(project)["dag.extract"]["status"] == "success"
    # ... and a workflow that runs that project as a child (its tables in the child's own state)
    child = write_project(tmp_path / "tables", {
        "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
        "data/a.csv": "x\n1\n2\n",
        "nodes/b.yml": "kind: transform\nname: b\ninputs: [{ref: source.a}]\ntransform: SELECT sum(x) AS s FROM ref('source.a')\n",
        "nodes/t.yml": "kind: task\nname: report\ninputs: [{ref: transform.b}]\n"
                       "command: echo done\noutput: REPORT\n",
    })
    wf = flow(tmp_path, "steps:\n  - name: build\n    run: tables\n    output: BUILT\n", "parent.yaml")
    res = cli_proc("run", str(wf))
    assert res.exit_code == 0, res.output
    built = json.loads(json.loads((tmp_path / "target" / "parent.yaml" / "outputs.json").read_text())["outputs"]["BUILT"])
    assert built["status"] == "succeeded" and built["outputs"] == {"REPORT": "done"}
    states = list((tmp_path / "target" / "parent.yaml" / "dags").glob("tables-*"))
    assert len(states) == 1 and (states[0] / "seekrun.duckdb").exists()
    assert not (child / "target" / "seekrun.duckdb").exists()  # the child's build lives in its state
    # nothing changed: the child builds nothing (its nodes are cached), the parent's step still runs
    res = cli_proc("run", str(wf))
    assert res.exit_code == 0
    child_results = json.loads((states[0] / "run_results.json").read_text())["results"]
    assert {r["status"] for r in child_results} == {"cached"}
    assert results(tmp_path, "parent")["dag.build"]["detail"] == "child: 3 cached"


def test_continue_on_mark_success_lets_the_run_succeed_and_the_step_reruns(tmp_path):
    path = flow(tmp_path, """
        steps:
          - name: flaky
            command: echo tried >> tries.log; exit 3
            files: [input.txt]
            continueOn: {failure: true, markSuccess: true}
          - name: after
            command: echo "${flaky.status}" > after.txt
            depends: flaky
        """)
    (tmp_path / "input.txt").write_text("x")
    res = cli_proc("run", str(path))
    assert res.exit_code == 0, res.output
    got = results(tmp_path)
    assert got["task.flaky"]["status"] == "success"
    assert "marked success" in got["task.flaky"]["warnings"][0] and "exited 3" in got["task.flaky"]["warnings"][0]
    assert (tmp_path / "after.txt").read_text() == "success\n"
    assert cli_proc("run", str(path)).exit_code == 0
    assert (tmp_path / "tries.log").read_text().splitlines() == ["tried", "tried"]  # it failed: it runs again


def test_a_timed_out_child_dag_leaves_no_process_running(tmp_path):
    from tests.conftest import alive

    flow(tmp_path, """
        steps:
          - name: slow
            command: echo $$ > slow.pid; exec sleep 30
        """, "child.yaml")
    path = flow(tmp_path, """
        steps:
          - name: call
            run: child.yaml
            timeoutSec: 2
        """, "parent.yaml")
    res = cli_proc("run", str(path), timeout=60)
    assert res.exit_code == 1
    got = results(tmp_path, "parent")["dag.call"]
    assert got["status"] == "failed" and "timed out after 2s" in got["error"]
    import time

    pid = int((tmp_path / "slow.pid").read_text())
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid)


def test_a_workflow_file_among_the_node_files_is_not_a_broken_node(tmp_path):
    project = write_project(tmp_path / "proj", {
        "nodes/flow.yaml": "steps:\n  - name: hi\n    command: echo hi > hi.txt\n",
        "nodes/call.yml": "kind: dag\nname: call\nrun: nodes/flow.yaml\n",
    })
    res = cli_proc("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert "not a node" not in res.stderr
    assert (project / "nodes" / "hi.txt").read_text() == "hi\n"


def test_max_active_steps_and_pools_cap_what_runs_at_once(tmp_path):
    steps = "".join(f"""
          - name: s{i}
            command: echo "$(date +%s.%N) start" >> s{i}.log; sleep 0.3; echo "$(date +%s.%N) end" >> s{i}.log
            {'pool: api' if i < 3 else ''}""" for i in range(5))

    def peak(folder, names):
        events = []
        for n in names:
            start, end = [float(line.split()[0]) for line in (folder / f"{n}.log").read_text().splitlines()]
            events += [(start, 1), (end, -1)]
        level = top = 0
        for _, d in sorted(events, key=lambda e: (e[0], e[1])):
            level += d
            top = max(top, level)
        return top
    one = tmp_path / "one"
    assert cli_proc("run", str(flow(one, "maxActiveSteps: 1\npools: {api: 5}\nsteps:" + steps)), "--threads", "4").exit_code == 0
    assert peak(one, [f"s{i}" for i in range(5)]) == 1
    pooled = tmp_path / "pooled"
    res = cli_proc("run", str(flow(pooled, "pools: {api: 1}\nsteps:" + steps)), "--threads", "4")
    assert res.exit_code == 0, res.output
    assert peak(pooled, ["s0", "s1", "s2"]) == 1
    assert peak(pooled, [f"s{i}" for i in range(5)]) >= 2


def test_dagu_variables_in_braces_are_this_runs_and_a_childs_own(tmp_path):
    flow(tmp_path, """
        name: childwf
        steps:
          - name: c
            command: echo "name=${DAG_NAME} step=${DAG_RUN_STEP_NAME}" > child.txt; echo K=from-child >> ${DAG_RUN_OUTPUT_FILE}
        """, "child.yaml")
    path = flow(tmp_path, """
        name: parentwf
        steps:
          - name: p
            command: echo "${DAG_NAME} ${DAG_RUN_ID}" > parent.txt
          - name: call
            run: child.yaml
            output: C
        """, "parent.yaml")
    res = cli_proc("run", str(path))
    assert res.exit_code == 0, res.output
    assert (tmp_path / "parent.txt").read_text().split()[0] == "parentwf"
    assert (tmp_path / "child.txt").read_text() == "name=childwf step=c\n"
    out = json.loads((tmp_path / "target" / "parent.yaml" / "outputs.json").read_text())["outputs"]
    assert "K" not in out and json.loads(out["C"])["outputs"] == {"K": "from-child"}


def test_a_child_that_fails_early_is_failed_not_its_last_result(tmp_path):
    child = flow(tmp_path, "steps:\n  - name: c\n    command: echo X=ran >> $DAG_RUN_OUTPUT_FILE\n", "child.yaml")
    path = flow(tmp_path, """
        steps:
          - name: c
            run: child.yaml
            output: C
            continueOn: {failure: true}
          - name: b
            command: echo "${C.status}" > status.txt
            depends: c
        """, "parent.yaml")
    assert cli_proc("run", str(path)).exit_code == 0
    assert (tmp_path / "status.txt").read_text() == "succeeded\n"
    child.write_text("steps:\n  - name: c\n    command: echo hi\n    depends: nope\n")  # the child now fails to parse
    res = cli_proc("run", str(path))
    got = results(tmp_path, "parent")["dag.c"]
    assert got["status"] == "failed" and "child DAG child.yaml failed" in got["error"], res.output
    assert (tmp_path / "status.txt").read_text() == "failed\n"


def test_a_child_that_rewrites_a_file_dirties_the_parents_downstream(tmp_path):
    flow(tmp_path, """
        steps:
          - name: copy
            command: cp in.txt copy.txt && echo copy.txt
            files: [in.txt]
            outputs: [copy.txt]
            output: COPIED
        """, "child.yaml")
    path = flow(tmp_path, """
        steps:
          - name: c
            run: child.yaml
            output: C
          - name: down
            command: cat ${C.outputs.COPIED} > down.txt
            outputs: [down.txt]
            depends: c
        """, "parent.yaml")
    (tmp_path / "in.txt").write_text("data1\n")
    assert cli_proc("run", str(path)).exit_code == 0
    assert (tmp_path / "down.txt").read_text() == "data1\n"
    (tmp_path / "in.txt").write_text("data2\n")
    assert cli_proc("run", str(path)).exit_code == 0
    assert (tmp_path / "down.txt").read_text() == "data2\n"


def test_a_skipped_step_gives_no_value_and_no_output(tmp_path):
    path = flow(tmp_path, """
        params:
          - GO: "1"
        steps:
          - name: a
            command: echo value-a; echo K=k >> $DAG_RUN_OUTPUT_FILE
            output: A
            preconditions: [{condition: "${GO}", expected: "1"}]
            continueOn: {skipped: true}
          - name: b
            command: echo "a=${A}" > b.txt
            depends: a
        """)
    assert cli_proc("run", str(path)).exit_code == 0
    assert (tmp_path / "b.txt").read_text() == "a=value-a\n"
    assert cli_proc("run", str(path), "--", "GO=0").exit_code == 0
    assert (tmp_path / "b.txt").read_text() == "a=\n"
    out = json.loads((tmp_path / "target" / "flow.yaml" / "outputs.json").read_text())["outputs"]
    assert "A" not in out and "K" not in out


def test_an_executor_seekrun_does_not_run_is_refused(tmp_path):
    path = flow(tmp_path, "steps:\n  - name: a\n    executor: docker\n    command: echo hi\n")
    res = cli_proc("run", str(path))
    assert res.exit_code == 2 and "executor 'docker' is not one seekrun runs" in res.stderr


def test_secrets_never_reach_outputs_or_a_childs_command_line(tmp_path):
    (tmp_path / ".env").write_text("DOTSECRET=s3cr3t-dotenv-value\n")
    flow(tmp_path, "params:\n  - P: ''\nsteps:\n  - name: c\n    command: echo ok\n", "child.yaml")
    path = flow(tmp_path, """
        dotenv: .env
        steps:
          - name: direct
            command: echo TOK=$DOTSECRET >> $DAG_RUN_OUTPUT_FILE
          - name: call
            run: child.yaml
            params: "P=${DOTSECRET}"
        handlerOn:
          exit:
            command: echo "handler sees $DOTSECRET"
        """, "parent.yaml")
    res = cli_proc("run", str(path), "--continue-on-error")  # (both steps run, whichever fails first)
    assert res.exit_code == 1
    got = results(tmp_path, "parent")
    assert "holds a secret" in got["task.direct"]["error"] and "holds a secret" in got["dag.call"]["error"]
    for f in (tmp_path / "target").rglob("*"):
        if f.is_file():
            assert b"s3cr3t-dotenv-value" not in f.read_bytes(), f
    assert "s3cr3t-dotenv-value" not in res.output


def test_a_childs_handler_never_outlives_a_parent_timeout(tmp_path):
    import time

    from tests.conftest import alive

    flow(tmp_path, """
        steps:
          - name: slow
            command: sleep 300
        handlerOn:
          cancel:
            command: echo $$ > handler.pid; sleep 6; echo late >> late.txt
        """, "child.yaml")
    path = flow(tmp_path, "timeoutSec: 2\nsteps:\n  - name: call\n    run: child.yaml\n", "parent.yaml")
    res = cli_proc("run", str(path), timeout=60)
    assert res.exit_code == 1 and "timed out" in res.stderr
    deadline = time.monotonic() + 10
    pid_file = tmp_path / "handler.pid"
    while time.monotonic() < deadline and pid_file.exists() and alive(int(pid_file.read_text() or 0)):
        time.sleep(0.1)
    assert not pid_file.exists() or not alive(int(pid_file.read_text()))
    time.sleep(1)
    assert not (tmp_path / "late.txt").exists()
