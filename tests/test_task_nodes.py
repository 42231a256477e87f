"""Task nodes: programs as incremental nodes (real processes, the real CLI, real DuckDB)."""
from __future__ import annotations

import json
import os
import sys
import textwrap

from conftest import cli, reasons, run_results, table, write_project

PY = sys.executable

EXTRACT = """\
#!/bin/sh
# writes the staged sales file
mkdir -p data/staged
printf 'id,amount\\n1,10\\n2,20\\n' > data/staged/sales.csv
"""

NODES = f"""\
kind: task
name: extract
command: sh bin/extract.sh
files: [bin/extract.sh]
outputs: [data/staged/sales.csv]
---
kind: source
name: sales
source: csv
table: data/staged/sales.csv
---
kind: transform
name: total
inputs: [{{ref: source.sales}}]
transform: SELECT sum(amount) AS total FROM ref('source.sales')
---
kind: task
name: report
inputs: [{{ref: transform.total}}]
command: ["{PY}", "-c", "import duckdb, sys; print(duckdb.sql(\\"SELECT total FROM '${{inputs.0}}'\\").fetchall()[0][0])"]
output: TOTAL
---
kind: task
name: announce
depends_on: [{{ref: task.report}}]
command: echo "total=${{TOTAL}} status=${{report.status}} code=${{report.exit_code}}" > target/announce.txt
outputs: [target/announce.txt]
"""


def project(tmp_path, nodes=NODES, script=EXTRACT):
    return write_project(tmp_path / "p", {"nodes/all.yml": nodes, "bin/extract.sh": script})


def test_task_feeds_a_source_and_consumes_a_table(tmp_path):
    p = project(tmp_path)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert table(p, "transform.total") == [(30,)]
    assert (p / "target" / "announce.txt").read_text() == "total=30.0 status=success code=0\n"
    results = run_results(p)
    assert all(r["status"] == "success" for r in results.values())
    # the source got its edge from the task automatically: it ran after it
    again = cli("run", cwd=p)
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    # the exported input was removed after the task succeeded
    assert not (p / "target" / "tasks" / "task.report").exists()


def test_no_op_edits_run_nothing(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    (p / "bin" / "extract.sh").touch()
    text = (p / "nodes" / "all.yml").read_text()
    (p / "nodes" / "all.yml").write_text("# a comment\n" + text.replace("name: report\n",
                                                                         "name: report\ndescription: says it\n"))
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output


def test_early_cutoff_when_a_rerun_writes_the_same_bytes(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    with open(p / "bin" / "extract.sh", "a") as f:
        f.write("# same output, different script\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert reasons(p) == {"task.extract": "a file it reads changed"}
    assert "task.extract ran, outputs unchanged: 4 dependents stay cached" in res.stdout


def test_changed_output_rebuilds_what_reads_it(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    (p / "bin" / "extract.sh").write_text(EXTRACT.replace("2,20", "2,20\\n3,5"))
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert set(reasons(p)) == {"task.extract", "source.sales", "transform.total", "task.report", "task.announce"}
    assert reasons(p)["source.sales"] == "upstream task.extract changed"
    assert table(p, "transform.total") == [(35,)]
    assert (p / "target" / "announce.txt").read_text() == "total=35.0 status=success code=0\n"


def test_output_missing_or_changed_outside_seekrun_reruns_the_task(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    (p / "data" / "staged" / "sales.csv").unlink()
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and reasons(p) == {"task.extract": "output missing"}, res.output
    assert "outputs unchanged: 4 dependents stay cached" in res.stdout
    with open(p / "data" / "staged" / "sales.csv", "a") as f:
        f.write("9,9\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert list(reasons(p)) == ["task.extract"] and "changed outside seekrun" in reasons(p)["task.extract"]
    assert table(p, "transform.total") == [(30,)]


def test_captured_value_reaches_tasks_and_sql_and_comes_back_from_state(tmp_path):
    nodes = """\
    kind: task
    name: pick
    command: |-
      echo '{"day": "2026-01-02", "n": 3}'
    params: {SEED: "1"}
    output: PICK
    ---
    kind: task
    name: use
    depends_on: [{ref: task.pick}]
    command: echo "${PICK.day} ${PICK.n}" > target/use.txt
    outputs: [target/use.txt]
    ---
    kind: source
    name: one
    source: csv
    table: data/one.csv
    ---
    kind: transform
    name: tagged
    inputs: [{ref: source.one}, {ref: task.pick}]
    transform: SELECT a, '{{ output('PICK') }}' AS pick FROM ref('source.one')
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes, "data/one.csv": "a\n1\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "target" / "use.txt").read_text() == "2026-01-02 3\n"
    assert table(p, "transform.tagged") == [(1, '{"day": "2026-01-02", "n": 3}')]
    # only the consumer changes: the producer stays cached and its value comes from the state
    (p / "nodes" / "all.yml").write_text((p / "nodes" / "all.yml").read_text().replace(
        'echo "${PICK.day} ${PICK.n}"', 'echo "day=${PICK.day}"'))
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and list(reasons(p)) == ["task.use"], res.output
    assert (p / "target" / "use.txt").read_text() == "day=2026-01-02\n"


def test_a_task_that_declares_nothing_runs_every_time(tmp_path):
    nodes = """\
    kind: task
    name: ping
    command: "true"
    ---
    kind: task
    name: forced
    command: echo hi
    params: {A: "1"}
    always: true
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes})
    assert cli("run", cwd=p).exit_code == 0
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert reasons(p) == {"task.ping": "always (declares no inputs or outputs)",
                          "task.forced": "always (set by always: true)"}


def test_run_time_failures_are_one_line_and_keep_the_last_good_output(tmp_path):
    nodes = """\
    kind: task
    name: writer
    script: |
      mkdir -p data
      printf 'WORD' > data/out.txt
      echo "line one" >&2
      echo "it broke" >&2
      exit ${CODE}
    params: {CODE: "0"}
    outputs: [data/out.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes.replace("WORD", "good")})
    assert cli("run", cwd=p).exit_code == 0
    assert (p / "data" / "out.txt").read_text() == "good"
    (p / "nodes" / "all.yml").write_text(textwrap.dedent(nodes).replace('CODE: "0"', 'CODE: "3"')
                                         .replace("WORD", "broken"))
    res = cli("run", cwd=p)
    assert res.exit_code == 1
    assert "task.writer exited 3 (log: target/runs/" in res.output
    assert "| it broke" in res.output and "| line one" in res.output
    assert (p / "data" / "out.txt").read_text() == "good"  # the last good output is back
    logs = sorted((p / "target" / "runs").glob("*/logs/task.writer.log"))
    assert "it broke" in logs[-1].read_text()
    assert run_results(p)["task.writer"]["status"] == "failed"
    # a failed task runs again next time
    again = cli("run", cwd=p)
    assert again.exit_code == 1 and reasons(p) == {"task.writer": "previous run failed"}


def test_command_not_found_and_output_not_written(tmp_path):
    nodes = """\
    kind: task
    name: missing_sh
    command: no-such-program-xyz --flag
    ---
    kind: task
    name: missing_argv
    command: [no-such-program-xyz, --flag]
    ---
    kind: task
    name: lazy
    command: "true"
    outputs: [data/never.csv]
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes})
    res = cli("run", "--continue-on-error", cwd=p)
    assert res.exit_code == 1
    assert "task.missing_sh exited 127 (command not found)" in res.output
    assert "task.missing_argv: cannot start no-such-program-xyz" in res.output
    assert "task.lazy exited 0 but did not write data/never.csv" in res.output
    assert "Traceback" not in res.output


def test_context_variables_values_and_dir(tmp_path):
    nodes = """\
    kind: task
    name: ctx
    dir: sub
    command: echo "$SEEKRUN_NODE|$(basename $SEEKRUN_PROJECT_DIR)|${DAY}|"'$${LITERAL}'"|$REGION|$(basename $PWD)|${UNSET_X:-dflt}" > ../target/ctx.txt
    params: {DAY: "2026-01-01"}
    env: {REGION: eu}
    outputs: [target/ctx.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes, "sub/.keep": ""})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "target" / "ctx.txt").read_text() == "task.ctx|p|2026-01-01|${LITERAL}|eu|sub|dflt\n"
    rid = json.loads((p / "target" / "run_results.json").read_text())
    assert rid["results"][0]["status"] == "success"


def test_secrets_never_reach_logs_or_the_shown_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SALES_TOKEN", "s3cr3t-token-value")
    nodes = """\
    kind: task
    name: leak
    command: echo "token is $TOKEN and ${TOKEN}"
    env: {TOKEN: "{{ env_var('SALES_TOKEN') }}"}
    always: true
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes})
    plan = cli("run", "--dry-run", cwd=p)
    assert plan.exit_code == 0 and "s3cr3t" not in plan.output and 'echo "token is $TOKEN and ' in plan.output
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    for path in (p / "target").rglob("*"):
        if path.is_file():
            assert b"s3cr3t" not in path.read_bytes(), path
    log = next((p / "target" / "runs").glob("*/logs/task.leak.log")).read_text()
    assert "token is" in log


def test_python_script_task_reruns_when_its_helper_changes(tmp_path):
    nodes = """\
    kind: task
    name: py
    python: scripts/make.py
    outputs: [target/made.txt]
    """
    p = write_project(tmp_path / "p", {
        "nodes/all.yml": nodes,
        "scripts/make.py": "import helper\nopen('target/made.txt', 'w').write(helper.WORD)\n",
        "scripts/helper.py": "WORD = 'one'\n",
    })
    (p / "target").mkdir()
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "target" / "made.txt").read_text() == "one"
    assert "Nothing to do" in cli("run", cwd=p).stdout
    (p / "scripts" / "helper.py").write_text("WORD = 'two'\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and reasons(p) == {"task.py": "config changed: python script"}, res.output
    assert (p / "target" / "made.txt").read_text() == "two"


def test_show_and_dry_run_print_the_command_as_it_would_run(tmp_path):
    p = project(tmp_path)
    plan = cli("run", "--dry-run", cwd=p)
    assert plan.exit_code == 0, plan.output
    assert "RUN    task.extract  (new)\n       $ sh bin/extract.sh" in plan.stdout
    shown = cli("show", "task.extract", cwd=p)
    assert shown.exit_code == 0, shown.output
    assert "command    : sh bin/extract.sh" in shown.stdout
    assert "files      : bin/extract.sh" in shown.stdout
    assert "outputs    : data/staged/sales.csv" in shown.stdout


def test_a_task_reading_an_exposures_file_runs_after_it(tmp_path):
    nodes = """\
    kind: source
    name: a
    source: csv
    table: data/a.csv
    ---
    kind: exposure
    name: export
    type: file
    depends_on: [{ref: source.a}]
    params: {format: csv, path: target/export/a.csv}
    ---
    kind: task
    name: upload
    command: cp target/export/a.csv target/uploaded.csv
    files: [target/export/a.csv]
    outputs: [target/uploaded.csv]
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes, "data/a.csv": "x\n1\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "target" / "uploaded.csv").read_text() == (p / "target" / "export" / "a.csv").read_text()
    (p / "data" / "a.csv").write_text("x\n1\n2\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert set(reasons(p)) == {"source.a", "exposure.export", "task.upload"}
    assert (p / "target" / "uploaded.csv").read_text().split() == ["x", "1", "2"]


def test_a_python_script_task_runs_a_helper_edited_to_the_same_size_and_mtime(tmp_path):
    """Python trusts a __pycache__ file whose source has the same size and mtime second: the
    task's script must still import its helper as it is now."""
    import py_compile

    p = write_project(tmp_path / "p", {
        "nodes/all.yml": "kind: task\nname: py\npython: scripts/make.py\noutputs: [target/made.txt]\n",
        "scripts/make.py": "import helper\nopen('target/made.txt', 'w').write(helper.WORD)\n",
        "scripts/helper.py": "WORD = 'one'\n",
    })
    (p / "target").mkdir()
    assert cli("run", cwd=p).exit_code == 0
    helper = p / "scripts" / "helper.py"
    py_compile.compile(str(helper))  # a cache file for it (the script's own run may leave one too)
    st = helper.stat()
    helper.write_text("WORD = 'two'\n")  # same size, same mtime
    os.utime(helper, ns=(st.st_atime_ns, st.st_mtime_ns))
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and reasons(p) == {"task.py": "config changed: python script"}, res.output
    assert (p / "target" / "made.txt").read_text() == "two"
