"""Bad task definitions: exit 2 at parse, before anything runs, every error together."""
from __future__ import annotations

import pytest

from conftest import cli, target_snapshot, write_project

CASES = {
    "none": ("kind: task\nname: t\nfiles: [a.txt]\n", "a task runs exactly one of 'command'"),
    "two": ("kind: task\nname: t\ncommand: echo\nscript: echo\n", "it has command and script: keep one"),
    "unknown value": ("kind: task\nname: t\ncommand: echo ${NOPE_NOT_SET_ANYWHERE}\n",
                      "'${NOPE_NOT_SET_ANYWHERE}' in command has no value"),
    "unknown in env": ("kind: task\nname: t\ncommand: echo\nenv: {A: '${NOPE_NOT_SET_ANYWHERE}'}\n",
                       "'${NOPE_NOT_SET_ANYWHERE}' in env has no value"),
    "output outside": ("kind: task\nname: t\ncommand: echo\noutputs: [../elsewhere.csv]\n",
                       "output '../elsewhere.csv' is outside the project"),
    "dir outside": ("kind: task\nname: t\ncommand: echo\ndir: /tmp\n", "dir '/tmp' is outside the project"),
    "own file": ("kind: task\nname: t\ncommand: echo\noutputs: [target/manifest.json]\n",
                 "cannot write 'target/manifest.json': it is one of seekrun's own files"),
    "missing python": ("kind: task\nname: t\npython: scripts/nope.py\n", "python file 'scripts/nope.py' not found"),
    "missing file": ("kind: task\nname: t\ncommand: echo\nfiles: [bin/nope.sh]\n", "file 'bin/nope.sh' not found"),
    "bad output name": ("kind: task\nname: t\ncommand: echo\noutput: not a name\n", "output names the value"),
    "bad input index": ("kind: task\nname: t\ncommand: echo ${inputs.3}\n", "the task has 0 input(s)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_task_is_refused_at_parse(tmp_path, case):
    text, message = CASES[case]
    p = write_project(tmp_path / "p", {"nodes/t.yml": text})
    res = cli("run", cwd=p)
    assert res.exit_code == 2, res.output
    assert message in res.output, res.output
    assert "nodes/t.yml:" in res.output and "Traceback" not in res.output
    assert not (p / "target" / "run_results.json").exists()


def test_two_tasks_writing_one_file_and_every_error_together(tmp_path):
    p = write_project(tmp_path / "p", {
        "nodes/a.yml": "kind: task\nname: a\ncommand: echo\noutputs: [data/x.csv]\n",
        "nodes/b.yml": "kind: task\nname: b\ncommand: echo\noutputs: [data/x.csv]\n",
        "nodes/c.yml": "kind: task\nname: c\n",
    })
    res = cli("run", cwd=p)
    assert res.exit_code == 2
    assert "task.b: cannot write 'data/x.csv': task.a writes it too" in res.output
    assert "nodes/c.yml" in res.output and "exactly one of 'command'" in res.output


def test_a_value_from_a_task_that_is_not_an_input(tmp_path):
    p = write_project(tmp_path / "p", {
        "nodes/a.yml": "kind: task\nname: a\ncommand: echo 1\noutput: VAL\n",
        "nodes/b.yml": "kind: task\nname: b\ncommand: echo ${VAL}\n",
        "nodes/c.yml": "kind: transform\nname: c\ntransform: SELECT {{ output('VAL') }} AS v\n",
    })
    res = cli("run", cwd=p)
    assert res.exit_code == 2, res.output
    assert "task.b: '${VAL}' in command is the output of task.a, which is not an input of task.b" in res.output
    assert "transform.c: output('VAL') is the output of task.a, which is not an input of transform.c" in res.output


def test_a_parse_error_leaves_target_untouched(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/a.yml": "kind: task\nname: a\ncommand: echo hi\nalways: true\n"})
    assert cli("run", cwd=p).exit_code == 0
    before = target_snapshot(p)
    (p / "nodes" / "a.yml").write_text("kind: task\nname: a\ncommand: echo ${NOPE_NOT_SET_ANYWHERE}\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 2
    assert target_snapshot(p) == before
