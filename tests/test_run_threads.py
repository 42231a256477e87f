"""Issue 3: --threads 4 gives exactly the tables --threads 1 gives (full and incremental)."""
from __future__ import annotations

import shutil
from pathlib import Path


from conftest import all_tables, cli, ran, run_results, table, write_project


def wide_project(root: Path) -> tuple[Path, set[str]]:
    """3 sources and 30 transforms in several branches, with joins across branches.

    Each transform does a little real work (a generated range) so that workers overlap.
    """
    files: dict[str, str] = {}
    ids: set[str] = set()
    for s in range(3):
        rows = "".join(f"{i},{(i * (s + 3)) % 17}\n" for i in range(1, 41))
        files[f"data/s{s}.csv"] = "id,v\n" + rows
        files[f"nodes/sources/s{s}.yml"] = f"kind: source\nname: s{s}\nsource: csv\ntable: data/s{s}.csv\n"
        ids.add(f"source.s{s}")
    # 3 branches x 8 levels; every level reads the previous level of its branch, and every
    # third level also joins the previous level of the next branch.
    for b in range(3):
        for lvl in range(8):
            name = f"b{b}_l{lvl}"
            if lvl == 0:
                inputs = [f"source.s{b}"]
            else:
                inputs = [f"transform.b{b}_l{lvl - 1}"]
                if lvl % 3 == 0:
                    inputs.append(f"transform.b{(b + 1) % 3}_l{lvl - 1}")
            work = f"(SELECT count(*) FROM range({200_000 + 10_000 * lvl}) r(i) WHERE i % {lvl + 3} = 0)"
            if len(inputs) == 1:
                sql = f"SELECT id, (v * {lvl + 2} + {b} + {work} % 5) % 1000 AS v FROM input_0"
            else:
                sql = (f"SELECT x.id, (x.v + y.v + {work} % 3) % 1000 AS v "
                       f"FROM input_0 x JOIN input_1 y ON x.id = y.id")
            refs = "".join(f"  - ref: {r}\n" for r in inputs)
            files[f"nodes/b{b}/{name}.yml"] = (f"kind: transform\nname: {name}\ninputs:\n{refs}"
                                              f"transform: \"{sql}\"\n")
            ids.add(f"transform.{name}")
    # 6 leaves that fan in across branches
    for k in range(6):
        a, c = f"transform.b{k % 3}_l7", f"transform.b{(k + 1) % 3}_l{7 - k}"
        sql = (f"SELECT x.id, x.v * {k + 1} - y.v AS v, count(*) OVER () AS n "
               f"FROM input_0 x LEFT JOIN input_1 y ON x.id = y.id")
        files[f"nodes/leaves/leaf{k}.yml"] = (f"kind: transform\nname: leaf{k}\ninputs:\n"
                                             f"  - ref: {a}\n  - ref: {c}\ntransform: \"{sql}\"\n")
        ids.add(f"transform.leaf{k}")
    return write_project(root, files), ids


def copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("target"))
    return dest


def test_threads_4_equals_threads_1(tmp_path):
    p1, ids = wide_project(tmp_path / "one")
    assert len(ids) == 33
    p4 = copy(p1, tmp_path / "four")

    r1 = cli("run", "-p", str(p1), "--threads", "1")
    assert r1.exit_code == 0, r1.output
    r4 = cli("run", "-p", str(p4), "--threads", "4")
    assert r4.exit_code == 0, r4.output
    assert ran(p1) == ran(p4) == ids
    t1, t4 = all_tables(p1), all_tables(p4)
    assert set(t1) == ids
    assert t1 == t4
    rows1 = {n: r["row_count"] for n, r in run_results(p1).items()}
    rows4 = {n: r["row_count"] for n, r in run_results(p4).items()}
    assert rows1 == rows4

    # an incremental run after the same edit, in both copies
    for p in (p1, p4):
        f = p / "data" / "s1.csv"
        f.write_text(f.read_text().replace("\n5,", "\n5000,"))
        y = p / "nodes" / "b0" / "b0_l2.yml"
        y.write_text(y.read_text().replace("* 4 +", "* 9 +"))
    r1 = cli("run", "-p", str(p1), "--threads", "1")
    assert r1.exit_code == 0, r1.output
    r4 = cli("run", "-p", str(p4), "--threads", "4")
    assert r4.exit_code == 0, r4.output
    assert ran(p1) == ran(p4)
    assert "source.s1" in ran(p1) and "transform.b0_l2" in ran(p1)
    assert "source.s0" not in ran(p1) and "transform.b0_l1" not in ran(p1)
    assert all_tables(p1) == all_tables(p4)
    # both equal a clean build of the edited project
    clean = copy(p1, tmp_path / "clean")
    assert cli("run", "-p", str(clean), "--threads", "3").exit_code == 0
    assert all_tables(clean) == all_tables(p4)


def test_threads_4_failure_handling_matches_threads_1(tmp_path):
    """With --continue-on-error, the same nodes succeed, fail and are skipped at any thread count."""
    p1, ids = wide_project(tmp_path / "one")
    y = p1 / "nodes" / "b1" / "b1_l3.yml"
    text = y.read_text()
    assert "FROM input_0 x JOIN" in text
    y.write_text(text.replace("SELECT x.id,", "SELECT CAST('x' AS INT) AS bad, x.id,"))
    p4 = copy(p1, tmp_path / "four")
    r1 = cli("run", "-p", str(p1), "--threads", "1", "--continue-on-error")
    r4 = cli("run", "-p", str(p4), "--threads", "4", "--continue-on-error")
    assert r1.exit_code == r4.exit_code == 1
    s1 = {n: r["status"] for n, r in run_results(p1).items()}
    s4 = {n: r["status"] for n, r in run_results(p4).items()}
    assert s1 == s4
    assert s1["transform.b1_l3"] == "failed"
    assert s1["transform.b1_l4"] == "skipped"
    assert s1["transform.b0_l0"] == "success"
    assert all_tables(p1) == all_tables(p4)


SYNC_PY = """\
import os
import time


def slow(ctx):
    # runs until b_quick has run: so b_quick always runs while this node runs
    deadline = time.monotonic() + 120
    while not os.path.exists(ctx.params["flag"]):
        if time.monotonic() > deadline:
            raise RuntimeError("b_quick never ran")
        time.sleep(0.01)
    return ctx.con.sql("SELECT current_setting('threads') AS t")


def quick(ctx):
    threads = ctx.con.sql("SELECT current_setting('threads') AS t").fetchall()[0][0]  # now, while a_slow runs
    open(ctx.params["flag"], "w").close()
    return ctx.con.sql(f"SELECT {int(threads)} AS t")
"""


def test_nodes_running_at_once_share_duckdbs_threads(tmp_path):
    """Two nodes at once get half of DuckDB's threads each; a node running alone gets them all.
    The nodes wait on each other (files), not on time: b_quick runs while a_slow runs."""
    import duckdb

    all_threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    flag = tmp_path / "b_quick_ran"
    proj = write_project(tmp_path / "p", {
        "models/sync.py": SYNC_PY,
        "nodes/a_slow.yml": f"kind: model\nname: a_slow\npython: models/sync.py:slow\nparams: {{flag: '{flag}'}}\n",
        "nodes/b_quick.yml": f"kind: model\nname: b_quick\npython: models/sync.py:quick\nparams: {{flag: '{flag}'}}\n",
        "nodes/c_last.yml": "kind: transform\nname: c_last\ninputs:\n  - ref: model.a_slow\n"
                            "  - ref: model.b_quick\n"
                            "transform: SELECT current_setting('threads') AS t FROM input_0\n",
    })
    res = cli("run", "-p", str(proj), "--threads", "2")
    assert res.exit_code == 0, res.output
    t = {nid: table(proj, nid)[0][0] for nid in ("model.a_slow", "model.b_quick", "transform.c_last")}
    # a_slow is first in the ready queue, so it is running when b_quick starts: two at once
    assert t["model.b_quick"] == max(1, all_threads // 2), t
    assert t["transform.c_last"] == all_threads, t  # alone at the end: every thread back



def test_with_one_worker_every_node_gets_all_of_duckdbs_threads(tmp_path):
    import duckdb

    all_threads = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    files = {f"nodes/n{k}.yml": f"kind: transform\nname: n{k}\ntransform: SELECT current_setting('threads') AS t\n"
             for k in range(3)}
    proj = write_project(tmp_path / "p", files)
    res = cli("run", "-p", str(proj), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert {table(proj, f"transform.n{k}")[0][0] for k in range(3)} == {all_threads}
