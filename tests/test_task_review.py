"""Task bugs an independent review found, each as a user would meet it (real processes, the CLI)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import alive, cli, reasons, write_project


def age(p, seconds=10):
    """Make every node file look old, so the parse cache serves it (a fresh file is re-read)."""
    old = time.time() - seconds
    for path in (p / "nodes").rglob("*.yml"):
        os.utime(path, (old, old))


def test_a_consumer_that_ran_on_a_failed_producer_reruns_when_the_producer_recovers(tmp_path):
    nodes = """\
    kind: task
    name: a
    command: "test -f FAIL && exit 3; cat in.txt"
    files: [in.txt]
    output: VAL
    continue_on: {failure: true}
    ---
    kind: task
    name: b
    inputs: [{ref: task.a}]
    command: "echo 'val=${VAL} status=${a.status}' > out_b.txt"
    outputs: [out_b.txt]
    files: [b.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "in.txt": "hello\n", "b.txt": "1\n"})
    assert cli("run", cwd=p).exit_code == 0
    assert (p / "out_b.txt").read_text() == "val=hello status=success\n"
    (p / "FAIL").write_text("")
    (p / "b.txt").write_text("2\n")
    (p / "in.txt").write_text("changed\n")
    assert cli("run", cwd=p).exit_code == 0
    assert (p / "out_b.txt").read_text() == "val= status=failed\n"
    (p / "FAIL").unlink()
    (p / "in.txt").write_text("hello\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "out_b.txt").read_text() == "val=hello status=success\n"  # as a clean build gives


def test_swapping_which_input_captures_a_name_reruns_the_consumer(tmp_path):
    nodes = """\
    kind: task
    name: a
    command: echo 1
    output: V
    ---
    kind: task
    name: c
    command: echo 2
    output: W
    ---
    kind: task
    name: b
    inputs: [{ref: task.a}, {ref: task.c}]
    command: echo ${V} > b.txt
    outputs: [b.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    assert cli("run", cwd=p).exit_code == 0 and (p / "b.txt").read_text() == "1\n"
    text = (p / "nodes" / "t.yml").read_text()
    (p / "nodes" / "t.yml").write_text(text.replace("output: V", "output: X").replace("output: W", "output: V")
                                       .replace("output: X", "output: W"))
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "b.txt").read_text() == "2\n"


def test_environment_values_in_dir_outputs_and_defaults_are_looked_up_on_every_parse(tmp_path, monkeypatch):
    nodes = """\
    kind: task
    name: a
    dir: ${WD}
    command: echo ${GREETING:-hi} > where.txt
    outputs: ["${WD}/where.txt"]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "d1/.keep": "", "d2/.keep": ""})
    monkeypatch.setenv("WD", "d1")
    monkeypatch.setenv("GREETING", "one")
    age(p)
    assert cli("run", cwd=p).exit_code == 0
    assert (p / "d1" / "where.txt").read_text() == "one\n"
    monkeypatch.setenv("WD", "d2")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "d2" / "where.txt").read_text() == "one\n"
    monkeypatch.setenv("GREETING", "two")
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and reasons(p) == {"task.a": "config changed: environment variable value"}, res.output
    assert (p / "d2" / "where.txt").read_text() == "two\n"
    monkeypatch.delenv("GREETING")
    assert cli("run", cwd=p).exit_code == 0
    assert (p / "d2" / "where.txt").read_text() == "hi\n"


def test_what_a_task_leaves_running_is_stopped_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEKRUN_KILL_GRACE", "1")
    nodes = """\
    kind: task
    name: a
    command: "exec >/dev/null 2>&1; sleep 417 & echo $! > child.pid; sleep 0.2"
    outputs: [child.pid]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    assert cli("run", cwd=p).exit_code == 0
    assert not alive(int((p / "child.pid").read_text()))


def test_a_python_task_runs_its_script_wherever_dir_is(tmp_path):
    nodes = "kind: task\nname: a\npython: scripts/x.py\ndir: work\noutputs: [work/out.txt]\n"
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "work/.keep": "",
                                       "scripts/x.py": "open('out.txt', 'w').write('here')\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "work" / "out.txt").read_text() == "here"


def test_a_precondition_whose_command_leaves_a_child_does_not_wait_for_it(tmp_path):
    nodes = """\
    kind: task
    name: a
    command: echo ran > a.txt
    outputs: [a.txt]
    preconditions: [{condition: "sleep 20 & true"}]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    t0 = time.monotonic()
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert time.monotonic() - t0 < 10


def test_a_killed_run_then_a_failed_run_keep_the_last_good_output(tmp_path):
    nodes = """\
    kind: task
    name: a
    script: |
      printf '${WORD}' > o.txt
      ${THEN}
    params: {WORD: v1, THEN: "true"}
    outputs: [o.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    assert cli("run", cwd=p).exit_code == 0 and (p / "o.txt").read_text() == "v1"
    text = (p / "nodes" / "t.yml").read_text()
    (p / "nodes" / "t.yml").write_text(text.replace("WORD: v1", "WORD: v2").replace('THEN: "true"', "THEN: sleep 300"))
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run"], cwd=p, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "SEEKRUN_KILL_GRACE": "1"})
    deadline = time.monotonic() + 30
    while (p / "o.txt").read_text() != "v2":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (p / "nodes" / "t.yml").write_text(text.replace("WORD: v1", "WORD: v3").replace('THEN: "true"', "THEN: exit 1"))
    res = cli("run", cwd=p)
    assert res.exit_code == 1
    assert (p / "o.txt").read_text() == "v1"  # not the killed run's half-made v2, nor the failed v3


def test_a_captured_value_holding_a_secret_fails_the_task_instead_of_passing_it_on(tmp_path, monkeypatch):
    monkeypatch.setenv("TOK", "sekrit-token-123")
    nodes = """\
    kind: task
    name: a
    command: echo "https://x/?t=$TOK"
    env: {TOK: "{{ env_var('TOK') }}"}
    output: URL
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli("run", cwd=p)
    assert res.exit_code == 1
    assert "its output value (URL) holds a secret" in res.output and "sekrit" not in res.output
    for path in (p / "target").rglob("*"):
        if path.is_file():
            assert b"sekrit" not in path.read_bytes(), path


def test_params_are_json_for_lists_and_maps_and_take_env_var_values(tmp_path, monkeypatch):
    monkeypatch.setenv("REGION_S", "eu-west")
    nodes = """\
    kind: task
    name: a
    command: "echo '${L}|${M.b}|${R}' > out.txt"
    params: {L: [1, 2], M: {b: 1}, R: "{{ env_var('REGION_S') }}"}
    outputs: [out.txt]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "out.txt").read_text() == "[1, 2]|1|eu-west\n"


def test_more_bad_input_is_refused_at_parse(tmp_path):
    p = write_project(tmp_path / "p", {
        "nodes/a.yml": "kind: task\nname: a\nscript: echo\nshell: \"'bash\"\n",
        "nodes/b.yml": "kind: task\nname: b\ncommand: echo\nalways: 'yes'\n",
        "nodes/c.yml": "kind: task\nname: c\ncommand: echo\noutputs: [seekrun_project.yml]\n",
    })
    res = cli("run", cwd=p)
    assert res.exit_code == 2, res.output
    assert "shell must name a program" in res.output
    assert "always must be true or false" in res.output
    assert "output 'seekrun_project.yml' is the project's own file" in res.output


def test_reordering_files_and_outputs_or_spelling_them_with_dot_slash_runs_nothing(tmp_path):
    nodes = "kind: task\nname: a\ncommand: cp x y; cp x z\nfiles: [x, w]\noutputs: [y, z]\n"
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes, "x": "1", "w": "2"})
    assert cli("run", cwd=p).exit_code == 0
    (p / "nodes" / "t.yml").write_text(nodes.replace("[x, w]", "[./w, x]").replace("[y, z]", "[z, ./y]")
                                       + "always: false\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output


def test_a_captured_value_larger_than_a_mebibyte_fails_with_what_to_do(tmp_path):
    nodes = "kind: task\nname: big\ncommand: head -c 2000000 /dev/zero | tr '\\\\0' x\noutput: BIG\n"
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli("run", cwd=p)
    assert res.exit_code == 1
    assert "its output value (BIG) is 2,000,000 bytes" in res.output and "write it to a file" in res.output
