"""Run params (params:, --param, KEY=VALUE after --), {{ var() }} in SQL, and the project
environment (env:, dotenv:): real CLI, real processes, real DuckDB."""
from __future__ import annotations

import json

from conftest import cli, cli_proc, ran, reasons, table, write_project

MARKER = """\
name: testproj
params:
  DAY: "2026-01-01"
  REGION: eu
"""

NODES = """\
kind: task
name: stamp
command: mkdir -p out && echo "day=${DAY}" > out/stamp.txt
outputs: [out/stamp.txt]
---
kind: source
name: stamped
source: csv
table: out/stamp.txt
---
kind: transform
name: on_day
transform: SELECT '{{ var('DAY') }}' AS day, 1 AS n
---
kind: transform
name: after_day
inputs: [{ref: transform.on_day}]
transform: SELECT day, n + 1 AS n FROM ref('transform.on_day')
---
kind: transform
name: in_region
transform: SELECT '{{ var('REGION') }}' AS region
---
kind: transform
name: plain
transform: SELECT 42 AS answer
---
kind: task
name: regional
command: mkdir -p out && echo "${REGION}" > out/region.txt
outputs: [out/region.txt]
"""


def project(tmp_path, marker=MARKER, nodes=NODES, **files):
    return write_project(tmp_path / "p", {"seekrun_project.yml": marker, "nodes/all.yml": nodes, **files})


def test_a_changed_param_reruns_exactly_the_nodes_that_use_it(tmp_path):
    p = project(tmp_path)
    first = cli("run", cwd=p)
    assert first.exit_code == 0, first.output
    assert (p / "out" / "stamp.txt").read_text() == "day=2026-01-01\n"  # the default
    assert table(p, "transform.on_day") == [("2026-01-01", 1)]
    manifest = json.loads((p / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["params"] == {"DAY": "2026-01-01", "REGION": "eu"}
    assert manifest["nodes"]["task.stamp"]["run_params"] == {"DAY": "2026-01-01"}
    assert "run_params" not in manifest["nodes"]["task.regional"]["hashes"]["fields"] or \
        manifest["nodes"]["task.regional"]["run_params"] == {"REGION": "eu"}

    res = cli("run", "--param", "DAY=2026-01-02", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == {"task.stamp", "source.stamped", "transform.on_day", "transform.after_day"}
    assert (p / "out" / "stamp.txt").read_text() == "day=2026-01-02\n"
    assert "DAY changed ('2026-01-01' -> '2026-01-02')" in res.output
    assert reasons(p)["transform.after_day"] is not None
    assert table(p, "transform.after_day") == [("2026-01-02", 2)]
    assert table(p, "transform.in_region") == [("eu",)]

    again = cli("run", "--param", "DAY=2026-01-02", cwd=p)  # the same value: nothing runs
    assert again.exit_code == 0, again.output
    assert ran(p) == set()

    back = cli("run", cwd=p)  # the default again
    assert back.exit_code == 0, back.output
    assert ran(p) == {"task.stamp", "source.stamped", "transform.on_day", "transform.after_day"}
    assert table(p, "transform.on_day") == [("2026-01-01", 1)]


def test_words_after_double_dash_set_params(tmp_path):
    p = project(tmp_path)
    res = cli_proc("run", "-p", str(p), "--", "REGION=us", "DAY=2026-03-04")
    assert res.exit_code == 0, res.output
    assert table(p, "transform.in_region") == [("us",)]
    assert (p / "out" / "region.txt").read_text() == "us\n"
    assert (p / "out" / "stamp.txt").read_text() == "day=2026-03-04\n"
    res = cli("run", "--", "REGION=us", "DAY=2026-03-04", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == set()
    res = cli("run", "--", "REGION=eu", "DAY=2026-03-04", cwd=p)
    assert ran(p) == {"transform.in_region", "task.regional"}


def test_dry_run_parse_and_show_take_params(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    dry = cli("run", "--dry-run", "--param", "DAY=2026-02-02", cwd=p)
    assert dry.exit_code == 0, dry.output
    assert "transform.on_day" in dry.stdout and "transform.plain" not in dry.stdout.split("Would run")[-1] \
        or "transform.on_day" in dry.stdout
    assert (p / "out" / "stamp.txt").read_text() == "day=2026-01-01\n"  # nothing was run
    shown = cli("show", "task.stamp", "--param", "DAY=2026-02-02", cwd=p)
    assert shown.exit_code == 0, shown.output
    assert "day=2026-02-02" in shown.stdout
    parsed = cli("parse", "--", "DAY=2026-02-03", cwd=p)
    assert parsed.exit_code == 0, parsed.output
    manifest = json.loads((p / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["params"]["DAY"] == "2026-02-03"


def test_unknown_param_is_exit_2_with_a_suggestion(tmp_path):
    p = project(tmp_path)
    res = cli_proc("run", "-p", str(p), "--param", "DAYY=2026-01-02")
    assert res.exit_code == 2
    assert "unknown param 'DAYY': did you mean DAY? (the project declares DAY, REGION)" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli_proc("run", "-p", str(p), "--", "DAY")
    assert res.exit_code == 2
    assert "'DAY' is not a param: write NAME=VALUE" in res.stderr
    assert not (p / "out").exists()


def test_a_dagu_list_of_params_and_values_as_written(tmp_path):
    marker = """\
    name: testproj
    params:
      - DAY: 2026-01-01
      - RATE: 1.50
      - FLAG: true
      - NONE: null
    """
    nodes = """\
    kind: transform
    name: values
    transform: SELECT '{{ var('DAY') }}|{{ var('RATE') }}|{{ var('FLAG') }}|{{ var('NONE') }}' AS v
    """
    p = project(tmp_path, marker=marker, nodes=nodes)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert table(p, "transform.values") == [("2026-01-01|1.50|true|",)]


def test_a_bad_params_shape_names_the_line(tmp_path):
    marker = "name: testproj\nparams:\n  - DAY: a\n  - [1, 2]\n"
    p = project(tmp_path, marker=marker, nodes="kind: transform\nname: t\ntransform: SELECT 1 AS x\n")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2
    assert "seekrun_project.yml:4:" in res.stderr and "params" in res.stderr
    assert "Traceback" not in res.stderr
    p2 = write_project(tmp_path / "q", {"seekrun_project.yml": "name: x\nparams: 5\n",
                                        "nodes/a.yml": "kind: transform\nname: t\ntransform: SELECT 1 AS x\n"})
    res = cli_proc("parse", "-p", str(p2))
    assert res.exit_code == 2 and "seekrun_project.yml:2: params must be a mapping" in res.stderr


def test_var_with_a_default_and_an_undeclared_var(tmp_path):
    nodes = """\
    kind: transform
    name: with_default
    transform: SELECT '{{ var('LIMIT', '10') }}' AS l, {{ var("N", 3) }} AS n
    """
    p = project(tmp_path, nodes=nodes)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert table(p, "transform.with_default") == [("10", 3)]

    bad = project(tmp_path / "b", nodes="kind: transform\nname: t\ntransform: SELECT '{{ var('DAYS') }}' AS d\n")
    res = cli_proc("run", "-p", str(bad))
    assert res.exit_code == 2
    assert "nodes/all.yml:3: transform.t: var('DAYS') is not a param: did you mean DAY?" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_var_in_a_description_reruns_nothing(tmp_path):
    nodes = "kind: transform\nname: t\ndescription: for {{ var('DAY') }}\ntransform: SELECT 1 AS x\n"
    p = project(tmp_path, nodes=nodes)
    assert cli("run", cwd=p).exit_code == 0
    res = cli("run", "--param", "DAY=2030-01-01", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == set()


ENV_NODES = """\
kind: task
name: show_env
command: mkdir -p out && echo "$REGION $TOKEN $GREETING ${DAY}" > out/env.txt && echo "token is $TOKEN"
outputs: [out/env.txt]
---
kind: transform
name: sql_env
transform: SELECT '{{ env_var('REGION') }}' AS region
"""


def test_env_and_dotenv_reach_a_task_and_a_change_reruns_it(tmp_path):
    marker = """\
    name: testproj
    params: {DAY: "2026-01-01"}
    dotenv: .env
    env:
      - REGION: eu-west
      - GREETING: hello-${DAY}-${REGION}
    """
    p = project(tmp_path, marker=marker, nodes=ENV_NODES,
                **{".env": "# secrets\nexport TOKEN='s3cr3t-token-value'\nREGION=ignored\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "out" / "env.txt").read_text() == "eu-west s3cr3t-token-value hello-2026-01-01-eu-west 2026-01-01\n"
    assert table(p, "transform.sql_env") == [("eu-west",)]
    assert cli("run", cwd=p).exit_code == 0
    assert ran(p) == set()
    (p / ".env").write_text("TOKEN=another-secret-value\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == {"task.show_env"}
    assert "another-secret-value" in (p / "out" / "env.txt").read_text()
    # the dotenv values never reach target/ (manifest, state, results, logs)
    for path in (p / "target").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"another-secret-value" not in data and b"s3cr3t-token-value" not in data, path


def test_process_env_is_below_dotenv_and_env(tmp_path):
    marker = "name: testproj\ndotenv: [.env]\nenv: {A: from-env}\n"
    nodes = "kind: task\nname: t\ncommand: mkdir -p out && echo \"$A $B $C\" > out/t.txt\noutputs: [out/t.txt]\n"
    p = project(tmp_path, marker=marker, nodes=nodes, **{".env": "A=from-dotenv\nB=\"from dotenv\"\n"})
    res = cli_proc("run", "-p", str(p), env={"A": "proc", "B": "proc", "C": "proc"})
    assert res.exit_code == 0, res.output
    assert (p / "out" / "t.txt").read_text() == "from-env from dotenv proc\n"


def test_a_missing_dotenv_file_is_exit_2(tmp_path):
    p = project(tmp_path, marker="name: testproj\ndotenv: conf/.env\n",
                nodes="kind: transform\nname: t\ntransform: SELECT 1 AS x\n")
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 2
    assert "seekrun_project.yml:2: dotenv file 'conf/.env' not found" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_run_param_in_a_task_output_path_and_precondition(tmp_path):
    nodes = """\
    kind: task
    name: daily
    command: mkdir -p out && echo "${REGION}" > out/${DAY}.txt
    outputs: ["out/${DAY}.txt"]
    preconditions:
      - condition: "${DAY}"
        expected: "re:^d[0-9]$"
    """
    p = project(tmp_path, nodes=nodes)
    res = cli("run", "--param", "DAY=d1", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "out" / "d1.txt").read_text() == "eu\n"
    res = cli("run", "--param", "DAY=d2", "--param", "REGION=us", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == {"task.daily"}
    assert (p / "out" / "d2.txt").read_text() == "us\n"
    res = cli("run", "--param", "DAY=dx", cwd=p)  # the precondition sees the run param
    assert res.exit_code == 0, res.output
    assert ran(p) == set() and not (p / "out" / "dx.txt").exists()
    assert "precondition not met: ${DAY} matches ^d[0-9]$" in res.output


def test_a_param_only_a_precondition_reads_reruns_nothing(tmp_path):
    nodes = """\
    kind: task
    name: gated
    command: mkdir -p out && date +%s%N > out/g.txt
    outputs: [out/g.txt]
    preconditions:
      - condition: "${REGION}"
        expected: "re:^(eu|us)$"
    """
    p = project(tmp_path, nodes=nodes)
    assert cli("run", cwd=p).exit_code == 0
    res = cli("run", "--param", "REGION=us", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == set()  # a run control: never in the build hash
    res = cli("run", "--param", "REGION=xx", "--full", cwd=p)
    assert "precondition not met: ${REGION} matches ^(eu|us)$" in res.output
