"""Pools and max_active_nodes: real task processes, real SQL nodes, the real CLI.

How many nodes ran at once is read from run_results.json (each node's started_at/ended_at)
and cross-checked against the processes' own clocks: each task appends `date +%s.%N` to a
file when it starts and when it ends.
"""
from __future__ import annotations

import json
from datetime import datetime

from conftest import cli, run_results, write_project

WORK = """\
echo "start $1 $(date +%s.%N)" >> stamps.txt
sleep ${2:-0.3}
echo "end $1 $(date +%s.%N)" >> stamps.txt
mkdir -p out && echo "$1" > "out/$1.txt"
"""


def task(name: str, pool: str | None = None, slots: int | None = None, sleep: float = 0.3, extra: str = "") -> str:
    lines = ["kind: task", f"name: {name}", f"command: sh bin/work.sh {name} {sleep}",
             "files: [bin/work.sh]", f"outputs: [out/{name}.txt]"]
    if pool:
        lines.append(f"pool: {pool}")
    if slots:
        lines.append(f"slots: {slots}")
    return "\n".join(lines) + "\n" + extra


def project(tmp_path, marker: str, nodes: list[str], more: dict | None = None):
    return write_project(tmp_path / "p", {"nodes/all.yml": "---\n".join(nodes), "bin/work.sh": WORK, **(more or {})},
                         marker=marker)


def intervals_from_results(p, ids) -> dict[str, tuple[float, float]]:
    out = {}
    for nid, r in run_results(p).items():
        if nid in ids:
            assert r["started_at"] and r["ended_at"], r
            out[nid] = (datetime.fromisoformat(r["started_at"]).timestamp(),
                        datetime.fromisoformat(r["ended_at"]).timestamp())
    assert set(out) == set(ids)
    return out


def intervals_from_stamps(p) -> dict[str, tuple[float, float]]:
    seen: dict[str, dict[str, float]] = {}
    for line in (p / "stamps.txt").read_text().splitlines():
        what, name, at = line.split()
        seen.setdefault(f"task.{name}", {})[what] = float(at)
    return {n: (v["start"], v["end"]) for n, v in seen.items()}


def peak(intervals: dict[str, tuple[float, float]], weight=lambda n: 1) -> int:
    """The most (weighted) nodes running at one instant: an end at the same instant as a start
    comes first."""
    events = sorted([(s, 1, n) for n, (s, _) in intervals.items()] + [(e, -1, n) for n, (_, e) in intervals.items()],
                    key=lambda ev: (ev[0], ev[1]))
    now = most = 0
    for _, delta, n in events:
        now += delta * weight(n)
        most = max(most, now)
    return most


def overlapping(intervals, nid) -> list[str]:
    s, e = intervals[nid]
    return [n for n, (s2, e2) in intervals.items() if n != nid and s2 < e and s < e2]


POOLED = [task("a", "api"), task("b", "api"), task("c", "api"), task("d", "api"), task("e", "api", slots=2),
          task("free", sleep=0.9)]
POOL_IDS = ["task.a", "task.b", "task.c", "task.d", "task.e"]


def test_no_more_than_the_pool_size_ran_at_once_but_more_than_one_did(tmp_path):
    p = project(tmp_path, "name: pools\npools: {api: 2, heavy: 1}\n", POOLED)
    res = cli("run", "-p", str(p), "--threads", "6")
    assert res.exit_code == 0, res.output
    slots = {"task.e": 2}
    for intervals in (intervals_from_results(p, POOL_IDS + ["task.free"]), intervals_from_stamps(p)):
        pool = {n: iv for n, iv in intervals.items() if n in POOL_IDS}
        assert peak(pool, lambda n: slots.get(n, 1)) == 2, pool  # never 3 slots: the cap holds
        assert peak(pool) == 2  # and two did run together: not just one after another
        assert [n for n in overlapping(intervals, "task.e") if n in POOL_IDS] == []  # e holds both slots
        assert peak(intervals) >= 3  # task.free (in no pool) ran beside the pool's two
    # each process's own start and end lie within what run_results.json recorded for it
    recorded, real = intervals_from_results(p, POOL_IDS), intervals_from_stamps(p)
    for nid in POOL_IDS:
        assert recorded[nid][0] <= real[nid][0] and real[nid][1] <= recorded[nid][1], (nid, recorded[nid], real[nid])


def test_max_active_nodes_1_runs_everything_one_at_a_time_sql_nodes_included(tmp_path):
    sql = ["kind: source\nname: nums\nsource: csv\ntable: data/nums.csv\n",
           *(f"kind: transform\nname: t{i}\ninputs: [{{ref: source.nums}}]\n"
             f"transform: SELECT sum(n) * {i} AS s FROM ref('source.nums')\n" for i in range(3))]
    p = project(tmp_path, "name: serial\nmax_active_nodes: 1\n", [task("a", sleep=0.1), task("b", sleep=0.1), *sql],
                {"data/nums.csv": "n\n1\n2\n"})
    res = cli("run", "-p", str(p), "--threads", "4")  # more threads than the cap: the cap still holds
    assert res.exit_code == 0, res.output
    ids = ["task.a", "task.b", "source.nums", "transform.t0", "transform.t1", "transform.t2"]
    assert peak(intervals_from_results(p, ids)) == 1
    assert peak(intervals_from_stamps(p)) == 1
    # without --threads, the worker count follows max_active_nodes
    again = cli("run", "-p", str(p), "--full")
    assert again.exit_code == 0, again.output
    args = json.loads((p / "target" / "run_results.json").read_text())["metadata"]["args"]
    assert args["threads"] == 1


def test_the_default_thread_count_follows_max_active_nodes_and_threads_wins(tmp_path):
    nodes = [task(n, sleep=0.5) for n in "abcdef"]
    p = project(tmp_path, "name: wide\nmax_active_nodes: 5\n", nodes)
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    data = json.loads((p / "target" / "run_results.json").read_text())
    assert data["metadata"]["args"]["threads"] == 5  # more than this machine's default when it has few cores
    intervals = intervals_from_results(p, [f"task.{n}" for n in "abcdef"])
    assert peak(intervals) == 5  # tasks waiting on processes: five at once, never six
    assert peak(intervals_from_stamps(p)) == 5
    again = cli("run", "-p", str(p), "--full", "--threads", "2")
    assert again.exit_code == 0, again.output
    assert json.loads((p / "target" / "run_results.json").read_text())["metadata"]["args"]["threads"] == 2


def test_an_unknown_pool_is_an_error_naming_the_node_file_and_line_with_a_suggestion(tmp_path):
    p = project(tmp_path, "name: typo\npools: {api: 2, heavy: 1}\n", [task("a", "apii"), task("b", "api")])
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "nodes/all.yml:6: task.a: unknown pool 'apii' (did you mean 'api'?)" in res.output
    assert "declares api (2), heavy (1)" in res.output
    assert "Traceback" not in res.output
    assert not (p / "stamps.txt").exists()  # nothing ran


def test_a_pool_removed_from_the_project_file_is_caught_though_the_node_file_did_not_change(tmp_path):
    p = project(tmp_path, "name: gone\npools: {api: 2}\n", [task("a", "api")])
    assert cli("run", "-p", str(p)).exit_code == 0
    (p / "seekrun_project.yml").write_text("name: gone\n")  # the node file's cached parse is still good
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "task.a: unknown pool 'api': the project file declares no pools; add 'pools: {api: 2}'" in res.output


def test_slots_more_than_the_pool_has_or_not_a_positive_number_or_without_a_pool_exit_2(tmp_path):
    p = project(tmp_path, "name: big\npools: {api: 2}\n",
                [task("a", "api", slots=3), task("b", "api", extra="slots: 0\n"), task("c", extra="slots: 2\n"),
                 task("d", extra="pool: [api]\n")])
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    out = res.output
    assert "nodes/all.yml:7: task.a: slots 3 is more than pool 'api' has (2)" in out
    assert "task.b: slots '0' must be a whole number from 1" in out
    assert "task.c: slots needs a pool: add 'pool: NAME'" in out
    assert "task.d: pool must be the name of a pool" in out
    assert "Traceback" not in out


def test_bad_limits_in_the_project_file_exit_2_naming_the_line(tmp_path):
    p = project(tmp_path, "name: bad\nmax_active_nodes: -1\npools: {api: 0, ok: 2}\n", [task("a")])
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "seekrun_project.yml:2: max_active_nodes '-1' must be a whole number from 1" in res.output
    assert "seekrun_project.yml:3: pool 'api' has size '0'" in res.output
    (p / "seekrun_project.yml").write_text("name: bad\npools: [api]\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2 and "seekrun_project.yml:2: pools must be a mapping" in res.output, res.output


def test_changing_pools_slots_or_the_cap_reruns_nothing(tmp_path):
    marker = "name: calm\npools: {api: 2, heavy: 1}\n"
    p = project(tmp_path, marker, [task("a", "api"), task("b", "api", slots=2), task("c", sleep=0.1)])
    assert cli("run", "-p", str(p)).exit_code == 0
    edits = [
        ("seekrun_project.yml", marker, "name: calm\npools: {api: 3, heavy: 2}\nmax_active_nodes: 2\n"),
        ("nodes/all.yml", "pool: api\nslots: 2", "pool: heavy\nslots: 1"),
        ("nodes/all.yml", "name: c\n", "name: c\npool: api\n"),
        ("nodes/all.yml", "pool: heavy\nslots: 1", "pool: api"),
    ]
    for rel, old, new in edits:
        path = p / rel
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
        res = cli("run", "-p", str(p))
        assert res.exit_code == 0 and "Nothing to do" in res.stdout, (rel, new, res.output)
    manifest = json.loads((p / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["pools"] == {"api": 3, "heavy": 2}
    assert manifest["metadata"]["max_active_nodes"] == 2
    nodes = manifest["nodes"]
    assert (nodes["task.b"]["pool"], nodes["task.b"]["slots"]) == ("api", 1)
    assert (nodes["task.c"]["pool"], nodes["task.c"]["slots"]) == ("api", 1)
    assert "pool" not in nodes["task.a"]["hashes"]["fields"]


def test_show_names_the_pool_and_a_dry_run_plans_as_before(tmp_path):
    p = project(tmp_path, "name: shown\npools: {api: 2}\n", [task("a", "api", slots=2), task("b")])
    res = cli("show", "task.a", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert "api (2 slots)" in res.stdout
    dry = cli("run", "--dry-run", "-p", str(p))
    assert dry.exit_code == 0 and "task.a" in dry.stdout, dry.output
    assert not (p / "stamps.txt").exists()


def test_cached_and_skipped_nodes_have_no_start_or_end(tmp_path):
    p = project(tmp_path, "name: times\n", [task("a", sleep=0)])
    assert cli("run", "-p", str(p)).exit_code == 0
    r = run_results(p)["task.a"]
    start, end = datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["ended_at"])
    assert start <= end and start.tzinfo is not None and "." in r["started_at"]  # UTC, microseconds
    assert cli("run", "-p", str(p)).exit_code == 0
    r = run_results(p)["task.a"]
    assert r["status"] == "cached" and r["started_at"] is None and r["ended_at"] is None


def test_a_decorated_python_node_takes_a_pool_too(tmp_path):
    code = '''from seekrun.pipeline import transform


@transform(name="p", inputs=["source.s"],
           pool="db")
def p(ctx):
    return ctx.ref("source.s")
'''
    files = {"data/s.csv": "a\n1\n", "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
             "nodes/p.py": code}
    p = write_project(tmp_path / "p", files, marker="name: py\npools: {dbs: 1}\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 2, res.output
    assert "nodes/p.py:5: transform.p: unknown pool 'db' (did you mean 'dbs'?)" in res.output
    assert "unknown key" not in res.output
    (p / "seekrun_project.yml").write_text("name: py\npools: {db: 1}\n")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert "unknown key" not in res.output
    assert json.loads((p / "target" / "manifest.json").read_text())["nodes"]["transform.p"]["pool"] == "db"


def test_parse_says_a_pool_change_is_a_run_control(tmp_path):
    p = project(tmp_path, "name: diff\npools: {api: 2, heavy: 1}\n", [task("a", "api")])
    assert cli("parse", "-p", str(p)).exit_code == 0
    (p / "nodes" / "all.yml").write_text((p / "nodes" / "all.yml").read_text().replace("pool: api", "pool: heavy"))
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 0 and "~ task.a (pool, a run control [metadata])" in res.stdout, res.output
