"""Fan-out (foreach / matrix): one node, many tracked instances, real processes."""
from __future__ import annotations

import json
import sys

from conftest import cli, run_results, write_project

PY = sys.executable

# each instance writes its file and appends its key to log.txt (so a test counts what ran)
PROCESS = """\
kind: task
name: process
foreach: {items}
command: mkdir -p out && echo "region=${{ITEM}}" > out/${{ITEM}}.txt && echo ${{ITEM}} >> log.txt && echo "done-${{ITEM}}"
outputs: ["out/${{ITEM}}.txt"]
output: MAP_RESULTS
---
kind: task
name: reduce
depends_on: [task.process]
command: echo '${{MAP_RESULTS.outputs}}' > reduced.json
outputs: [reduced.json]
"""


def project(tmp_path, items="[us-east, eu-west, ap-south]", nodes=PROCESS, extra=None):
    text = nodes.format(items=items) if "{items}" in nodes else nodes  # (PROCESS and its variants)
    return write_project(tmp_path / "p", {"nodes/fan.yml": text, **(extra or {})})


def ran_log(p) -> list[str]:
    path = p / "log.txt"
    out = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return out


def traces(p, nid="task.process") -> dict:
    return json.loads((p / "target" / "state" / "instances" / f"{nid}.json").read_text())["instances"]


def set_items(p, items: str, nodes=PROCESS) -> None:
    (p / "nodes" / "fan.yml").write_text(nodes.format(items=items))


def test_every_instance_runs_with_its_item_and_a_second_run_runs_nothing(tmp_path):
    p = project(tmp_path)
    res = cli("run", "--dry-run", cwd=p)
    assert "fans out over 3 items" in res.output, res.output
    assert "outputs: out/ap-south.txt, out/eu-west.txt, out/us-east.txt" in res.output
    assert "$ mkdir -p out && echo \"region=${ITEM}\"" in res.output
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert "3 instances: 3 ran" in res.output
    for region in ("us-east", "eu-west", "ap-south"):
        assert (p / "out" / f"{region}.txt").read_text() == f"region={region}\n"
    assert sorted(ran_log(p)) == ["ap-south", "eu-west", "us-east"]
    assert json.loads((p / "reduced.json").read_text()) == ["done-us-east", "done-eu-west", "done-ap-south"]
    results = run_results(p)
    assert results["task.process"]["instances"] == {"us-east": "success", "eu-west": "success",
                                                     "ap-south": "success"}
    assert set(traces(p)) == {"us-east", "eu-west", "ap-south"}
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.output
    assert ran_log(p) == []


def test_adding_an_item_runs_only_it_and_removing_one_drops_it(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    ran_log(p)
    set_items(p, "[us-east, eu-west, ap-south, sa-east]")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran_log(p) == ["sa-east"]
    assert "4 instances: 1 ran, 3 unchanged" in res.output
    assert run_results(p)["task.process"]["instances"]["us-east"] == "cached"
    assert json.loads((p / "reduced.json").read_text())[-1] == "done-sa-east"
    set_items(p, "[us-east, ap-south, sa-east]")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran_log(p) == []
    assert json.loads((p / "reduced.json").read_text()) == ["done-us-east", "done-ap-south", "done-sa-east"]
    assert set(traces(p)) == {"us-east", "ap-south", "sa-east"}
    # the same list in the same order again: nothing runs
    assert "Nothing to do" in cli("run", cwd=p).output


def test_an_output_changed_by_hand_reruns_only_its_instance(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    ran_log(p)
    (p / "out" / "eu-west.txt").write_text("edited\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran_log(p) == ["eu-west"]
    assert (p / "out" / "eu-west.txt").read_text() == "region=eu-west\n"
    # it wrote what it wrote before: the reduce step stays cached (early cutoff)
    assert run_results(p)["task.reduce"]["status"] == "cached"


MATRIX = """\
kind: task
name: deploy
matrix: {region: [us, eu], tier: [a, b, c]}
command: mkdir -p out && echo "${matrix.region}-${matrix.tier} ${ITEM.tier}" > out/${matrix.region}_${matrix.tier}.txt
outputs: ["out/${matrix.region}_${matrix.tier}.txt"]
output: DEPLOYED
---
kind: task
name: collect
depends_on: [task.deploy]
command: echo '${DEPLOYED}' > deployed.json
outputs: [deployed.json]
"""


def test_matrix_is_the_cartesian_product_in_key_order(tmp_path):
    p = project(tmp_path, nodes=MATRIX)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    value = json.loads((p / "deployed.json").read_text())
    assert [r["key"] for r in value["results"]] == ["us,a", "us,b", "us,c", "eu,a", "eu,b", "eu,c"]
    assert value["results"][1]["item"] == {"region": "us", "tier": "b"}
    assert value["summary"] == {"total": 6, "succeeded": 6, "failed": 0, "skipped": 0}
    assert (p / "out" / "eu_b.txt").read_text() == "eu-b b\n"
    assert len(list((p / "out").iterdir())) == 6


LIMITED = f"""\
kind: task
name: slow
foreach: [a, b, c, d, e, f]
max_concurrent: 2
command: ["{PY}", "-c", "import time, sys; s = time.time(); time.sleep(0.3); open('times_' + sys.argv[1], 'w').write(f'{{s}} {{time.time()}}')", "${{ITEM}}"]
outputs: ["times_${{ITEM}}"]
"""


def test_max_concurrent_is_respected(tmp_path):
    p = project(tmp_path, nodes=LIMITED)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    spans = [tuple(map(float, (p / f"times_{k}").read_text().split())) for k in "abcdef"]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2, spans  # two at once (never three), and not one at a time
    # a run control: changing it rebuilds nothing
    (p / "nodes" / "fan.yml").write_text(LIMITED.replace("max_concurrent: 2", "max_concurrent: 3"))
    assert "Nothing to do" in cli("run", cwd=p).output


MAP_REDUCE = f"""\
kind: task
name: split
files: [data/input.txt]
command: ["{PY}", "-c", "import json; lines = open('data/input.txt').read().split(); print(json.dumps([lines[i:i + 2] and ','.join(lines[i:i + 2]) for i in range(0, len(lines), 2)]))"]
output: CHUNKS
---
kind: task
name: mapper
depends_on: [task.split]
foreach: "${{CHUNKS}}"
command: echo ${{ITEM}} >> log.txt; echo ${{ITEM}} | tr ',' '\\n' | wc -l | tr -d ' '
output: MAP_RESULTS
---
kind: task
name: reducer
depends_on: [task.mapper]
command: ["{PY}", "-c", "import json, sys; print(sum(int(x) for x in json.loads(sys.argv[1])))", "${{MAP_RESULTS.outputs}}"]
output: TOTAL
---
kind: task
name: report
depends_on: [task.reducer]
command: echo "total=${{TOTAL}}" > total.txt
outputs: [total.txt]
"""


def test_the_seeds_map_reduce_split_foreach_reduce(tmp_path):
    p = project(tmp_path, nodes=MAP_REDUCE, extra={"data/input.txt": "a b c d e\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert (p / "total.txt").read_text() == "total=5\n"
    assert sorted(ran_log(p)) == ["a,b", "c,d", "e"]
    assert run_results(p)["task.mapper"]["instances"] == {"a,b": "success", "c,d": "success", "e": "success"}
    # one more line: only the new chunk is mapped ("decide late, not never")
    (p / "data" / "input.txt").write_text("a b c d e f g\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert sorted(ran_log(p)) == ["e,f", "g"]
    assert (p / "total.txt").read_text() == "total=7\n"
    res = cli("show", "task.mapper", cwd=p)
    assert "fans out over ${CHUNKS} (known when it runs)" in res.output, res.output
    (p / "data" / "input.txt").write_text("a b c d e f g \n")  # the same chunks
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran_log(p) == []
    assert run_results(p)["task.reducer"]["status"] == "cached"


def test_zero_items_succeed_with_an_empty_list(tmp_path):
    p = project(tmp_path, items="[]")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert json.loads((p / "reduced.json").read_text()) == []
    assert run_results(p)["task.process"]["instances"] == {}


def test_a_failed_instance_fails_the_node_and_the_next_run_redoes_only_it(tmp_path):
    nodes = PROCESS.replace('command: mkdir', 'command: test ! -e fail_${{ITEM}} && mkdir')
    p = project(tmp_path, nodes=nodes, extra={"fail_eu-west": ""})
    res = cli("run", cwd=p)
    assert res.exit_code == 1, res.output
    assert "task.process[eu-west] exited 1" in res.output
    assert "3 instances: 2 ran, 1 failed" in res.output
    assert sorted(ran_log(p)) == ["ap-south", "us-east"]
    assert run_results(p)["task.reduce"]["status"] == "skipped"
    assert traces(p)["eu-west"]["status"] == "failed"
    (p / "fail_eu-west").unlink()
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran_log(p) == ["eu-west"]
    assert json.loads((p / "reduced.json").read_text()) == ["done-us-east", "done-eu-west", "done-ap-south"]


def test_retry_reruns_only_the_failed_instance(tmp_path):
    # eu-west fails once (it leaves a mark), then succeeds on the retry
    nodes = PROCESS.replace('command: mkdir',
                            'retry: {{limit: 1, interval: 0}}\ncommand: '
                            'if [ ${{ITEM}} = eu-west ] && [ ! -e tried ]; then touch tried; exit 3; fi; mkdir')
    p = project(tmp_path, nodes=nodes)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert run_results(p)["task.process"]["attempts"] == 2
    assert sorted(ran_log(p)) == ["ap-south", "eu-west", "us-east"]  # each ran once


def test_duplicate_keys_fail_the_node_naming_them(tmp_path):
    p = project(tmp_path, nodes=MAP_REDUCE.replace("lines[i:i + 2] and ','.join(lines[i:i + 2])", "'same'"),
                extra={"data/input.txt": "a b c\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 1
    assert "items 0 and 1 are both 'same'" in res.output


def test_bad_shapes_exit_2_naming_file_and_line(tmp_path):
    cases = {
        "foreach: {a: 1}": "foreach must be a list",
        "foreach: [a, [b, c]]": "foreach item 1 is a list",
        "matrix: {region: us}": "matrix.region must be a list of values",
        "max_concurrent: 0\nforeach: [a]": "max_concurrent must be a positive integer",
        "max_concurrent: two\nforeach: [a]": "max_concurrent must be a positive integer",
        "foreach: [a]\nmatrix: {r: [x]}": "not both",
    }
    for i, (keys, message) in enumerate(cases.items()):
        p = write_project(tmp_path / f"p{i}", {"nodes/bad.yml": f"kind: task\nname: t\n{keys}\n"
                                               "command: echo ${ITEM}\n"})
        res = cli("parse", cwd=p)
        assert res.exit_code == 2, (keys, res.output)
        assert "nodes/bad.yml:3" in res.output or "nodes/bad.yml:4" in res.output, (keys, res.output)
        assert message in res.output, (keys, res.output)
        assert "Traceback" not in res.output


def test_item_names_without_a_fan_out_stay_errors(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/t.yml": "kind: task\nname: t\ncommand: echo ${ITEM}\n"})
    res = cli("parse", cwd=p)
    assert res.exit_code == 2
    assert "'${ITEM}' in command has no value" in res.output


def test_an_output_every_instance_would_write_is_refused(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/t.yml": "kind: task\nname: t\nforeach: [a, b]\n"
                                                      "command: echo ${ITEM} > all.txt\noutputs: [all.txt]\n"})
    res = cli("parse", cwd=p)
    assert res.exit_code == 2
    assert "nodes/t.yml:5" in res.output and "would be written by every instance" in res.output


def test_foreach_from_a_param_and_per_instance_preconditions(tmp_path):
    nodes = """\
    kind: task
    name: each
    params: {REGIONS: "us eu ap"}
    foreach: "${REGIONS}"
    preconditions: [{condition: "${ITEM}", expected: "re:^(us|ap)$"}]
    command: echo ${ITEM} >> log.txt; echo ok > out_${ITEM}.txt
    outputs: ["out_${ITEM}.txt"]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert sorted(ran_log(p)) == ["ap", "us"]
    assert run_results(p)["task.each"]["instances"] == {"us": "success", "eu": "skipped", "ap": "success"}
    (p / "nodes" / "t.yml").write_text(nodes.replace('"us eu ap"', '"us eu ap au"').replace("\n    ", "\n")
                                       .lstrip())
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran_log(p) == []  # au is skipped by its precondition; the others are unchanged
    assert run_results(p)["task.each"]["instances"]["au"] == "skipped"


def test_a_timeout_stops_every_instance(tmp_path):
    import subprocess
    import time

    marker = f"fanout_sleep_{tmp_path.name}"
    nodes = f"""\
    kind: task
    name: sleepy
    foreach: [a, b, c]
    timeout: 1s
    command: ["{PY}", "-c", "import time; time.sleep(30)", "{marker}", "${{ITEM}}"]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    t0 = time.monotonic()
    res = cli("run", cwd=p)
    assert res.exit_code == 1, res.output
    assert time.monotonic() - t0 < 15
    assert "timed out after 1s" in res.output
    time.sleep(0.5)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert marker not in ps


def test_foreach_from_an_environment_variable_is_hashed(tmp_path):
    from conftest import cli_proc

    nodes = """\
    kind: task
    name: each
    foreach: "${FANOUT_REGIONS}"
    command: echo ${ITEM} >> log.txt; echo ok > out_${ITEM}.txt
    outputs: ["out_${ITEM}.txt"]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli_proc("run", cwd=p, env={"FANOUT_REGIONS": '["us", "eu"]'})
    assert res.exit_code == 0, res.output
    assert sorted(ran_log(p)) == ["eu", "us"]
    res = cli_proc("run", cwd=p, env={"FANOUT_REGIONS": '["us", "eu"]'})
    assert "Nothing to do" in res.output
    res = cli_proc("run", cwd=p, env={"FANOUT_REGIONS": "us eu ap"})
    assert res.exit_code == 0, res.output
    assert ran_log(p) == ["ap"]  # only the added item: the list's own value is not in the others' hash
    assert (p / "out_ap.txt").exists()
    res = cli_proc("run", cwd=p, env={"FANOUT_REGIONS": '{"not": "a list"}'})
    assert res.exit_code == 1
    assert "is a JSON dict, not a list of items" in res.output


def test_items_made_of_a_secret_are_never_stored(tmp_path):
    from conftest import cli_proc

    nodes = """\
    kind: task
    name: each
    params: {LIST: "{{ env_var('FANOUT_SECRET') }}"}
    foreach: "${LIST}"
    command: echo hi > out_${ITEM_INDEX}.txt
    outputs: ["out_${ITEM_INDEX}.txt"]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    res = cli_proc("run", cwd=p, env={"FANOUT_SECRET": "hunter2words"})
    assert res.exit_code == 1, res.output
    assert "hold a secret" in res.output
    assert "hunter2words" not in res.output
    for path in (p / "target").rglob("*"):
        if path.is_file():
            assert b"hunter2words" not in path.read_bytes(), path


def test_ctrl_c_stops_every_instance_and_the_next_run_redoes_only_the_unfinished(tmp_path):
    import os
    import signal
    import subprocess
    import time

    from conftest import alive

    nodes = """\
    kind: task
    name: each
    foreach: [quick, slow1, slow2]
    max_concurrent: 3
    script: |
      echo ${ITEM} >> log.txt
      if [ ${ITEM} != quick ] && [ ! -e go ]; then sleep 300 & echo $! > pid_${ITEM}; wait; fi
      echo ok > out_${ITEM}.txt
    outputs: ["out_${ITEM}.txt"]
    """
    p = write_project(tmp_path / "p", {"nodes/t.yml": nodes})
    proc = subprocess.Popen([sys.executable, "-m", "seekrun", "run"], cwd=p, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "SEEKRUN_KILL_GRACE": "1"})
    deadline = time.monotonic() + 60
    while not ((p / "pid_slow1").exists() and (p / "pid_slow2").exists() and (p / "out_quick.txt").exists()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the instances never started"
        time.sleep(0.05)
    time.sleep(0.2)
    children = [int((p / f"pid_{k}").read_text()) for k in ("slow1", "slow2")]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, out + err
    deadline = time.monotonic() + 5
    while any(alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(c) for c in children)
    ran_log(p)
    (p / "go").write_text("")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert sorted(ran_log(p)) == ["slow1", "slow2"]  # quick finished before the stop: recorded
