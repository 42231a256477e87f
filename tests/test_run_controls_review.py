"""Run-control bugs an independent review found, each as a user would meet it."""
from __future__ import annotations

from conftest import cli, run_results, write_project
from seekrun.scheduler import KahnQueue, Outcome, run_queue


def test_a_run_always_node_below_another_waits_for_it_after_a_stop():
    parents = {"extract": [], "z_cleanup": ["extract"], "report": ["z_cleanup"], "a_notify": ["report"]}
    for threads in (1, 4):
        events: list[tuple[str, str]] = []
        queue = KahnQueue(list(parents), parents, run_always={"z_cleanup", "a_notify"})
        run_queue(queue, lambda n: (events.append(("start", n)), Outcome(n != "extract"))[1],
                  lambda n: None, lambda n, o: events.append(("done", n)), lambda s, f: None,
                  threads=threads, continue_on_error=False)
        assert [n for e, n in events if e == "start"] == ["extract", "z_cleanup", "a_notify"]
        assert events.index(("done", "z_cleanup")) < events.index(("start", "a_notify"))


def test_decorated_python_nodes_honour_run_controls(tmp_path):
    code = '''from seekrun.pipeline import transform


@transform(name="p", inputs=["source.s"], preconditions=[{"condition": "false"}])
def p(ctx):
    return ctx.ref("source.s")
'''
    p = write_project(tmp_path / "p", {"data/s.csv": "a\n1\n", "nodes/s.yml":
                                       "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
                                       "nodes/p.py": code})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert run_results(p)["transform.p"]["status"] == "skipped"
    (p / "nodes" / "p.py").write_text(code.replace('preconditions=[{"condition": "false"}]', 'timeout="abc"'))
    res = cli("run", cwd=p)
    assert res.exit_code == 2 and "timeout 'abc'" in res.output, res.output


def test_a_tasks_precondition_sees_its_input_tasks_values(tmp_path):
    nodes = """\
    kind: task
    name: a
    command: |-
      echo '{"n": 3}'
    params: {X: "1"}
    output: AVAL
    ---
    kind: task
    name: b
    depends_on: [{ref: task.a}]
    command: echo ran > b.txt
    outputs: [b.txt]
    preconditions: [{condition: "${AVAL.n}", expected: "3"}, {condition: "${a.status}", expected: success}]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "b.txt").read_text() == "ran\n"


def test_env_var_in_a_python_nodes_precondition_is_refused_at_parse(tmp_path, monkeypatch):
    monkeypatch.setenv("TOKEN", "abc")
    p = write_project(tmp_path / "p", {
        "nodes/t.yml": "kind: transform\nname: t\npython: f.py:f\npreconditions:\n"
                       "  - {condition: \"{{ env_var('TOKEN') }}\", expected: nope}\n",
        "f.py": "def f(ctx):\n    return ctx.con.sql('SELECT 1 AS x')\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 2 and "env_var() is filled in only" in res.output, res.output
