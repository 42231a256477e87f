"""Issue 12: property tests for task nodes.  Hypothesis draws a DAG of 3 to 10 nodes mixing csv
sources, SQL transforms and tasks (tests/taskmodel.py: tasks that filter a glob of files
through sort/awk/sed/head, chain on another task's output file, turn a table input into a csv
with a Python script, capture a value that another task or a SQL node uses), then a sequence
of edits between runs: a task's script or command changed (its output changes, or stays
byte-identical: early cutoff), files touched, files a task reads changed (a glob part added,
removed, rewritten), a task's output deleted or edited by hand, SQL and source data changed,
descriptions and comments (no-ops).

After every run:
1. it exits 0 (every project drawn is valid);
2. every table and every file a task wrote equals a clean build of a fresh copy (sources only);
3. exactly the nodes the model says ran: a node runs iff it is new, its own definition
   changed, a file it reads changed content, its output is missing or not what it wrote, or
   an input's output changed, where a task's output is the content of what it wrote and
   printed (early cutoff) and a SQL node's output changes whenever it reruns.  The weaker
   bound is checked too: what ran lies between the nodes the edits touched directly and their
   downstream closure;
4. an immediate second run has nothing to do.

Runtime: examples scale with HYPOTHESIS_PROFILE (tests/conftest.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import event, given, settings
from hypothesis import strategies as st

from conftest import all_tables, cli, examples
from taskmodel import (CHAINS, COUNTS, CSV_TASKS, FILTERS, ONE_INPUT, TABLES, TWO_INPUTS, VALUES, WORDS, Model,
                       Node)


# ---- drawing a project --------------------------------------------------------------------
def rows(draw, lo=1, hi=4) -> str:
    line = st.tuples(st.integers(1, 6), st.integers(0, 20), st.sampled_from(WORDS))
    return "".join(f"{i},{v},{w}\n" for i, v, w in draw(st.lists(line, min_size=lo, max_size=hi)))


def numbers(draw) -> str:
    return "".join(f"{i}\n" for i in draw(st.lists(st.integers(0, 9), min_size=1, max_size=3)))


def add_node(draw, m: Model, shape: str) -> None:
    name, tables, csv_tasks = m.fresh(), m.of(*TABLES), m.of(*CSV_TASKS)
    if shape == "src":
        m.add(Node("src", name))
        m.data[f"data/{name}.csv"] = "id,v,w\n" + rows(draw)
    elif shape == "xf":
        two = len(tables) >= 2 and draw(st.booleans())
        tmpl = draw(st.sampled_from(TWO_INPUTS if two else ONE_INPUT))
        ins = draw(st.lists(st.sampled_from(tables), min_size=1 + two, max_size=1 + two, unique=True))
        m.add(Node("xf", name, ins, tmpl=tmpl, k=draw(st.integers(0, 9))))
    elif shape == "xtag":
        m.add(Node("xtag", name, [draw(st.sampled_from(tables)), draw(st.sampled_from(m.of("tval")))],
                   k=draw(st.integers(0, 9))))
    elif shape == "tval":
        count = bool(csv_tasks) and draw(st.booleans())
        m.add(Node("tval", name, [draw(st.sampled_from(csv_tasks))] if count else [], count=count,
                   variant=draw(st.integers(0, 1))))
        if not count:
            m.data[f"data/raw/{name}.txt"] = numbers(draw)
    else:
        if shape == "tfiles":
            n = Node("tfiles", name, variant=draw(st.integers(0, len(FILTERS) - 1)))
            for i in range(draw(st.integers(1, 3))):
                m.data[f"data/raw/{name}/p{i}.txt"] = rows(draw)
        elif shape == "tchain":
            n = Node("tchain", name, [draw(st.sampled_from(csv_tasks))], variant=draw(st.integers(0, len(CHAINS) - 1)))
        elif shape == "texport":
            n = Node("texport", name, [draw(st.sampled_from(tables))], k=draw(st.integers(0, 9)),
                     argv=draw(st.booleans()))
        else:
            n = Node("tuse", name, [draw(st.sampled_from(m.of("tval")))], k=draw(st.integers(0, 9)))
        m.add(n)
        if draw(st.integers(0, 4)) > 0:  # most task outputs are read by a source
            m.add(Node("tsrc", m.fresh(), [n.id]))


@st.composite
def projects(draw) -> Model:
    m = Model()
    add_node(draw, m, draw(st.sampled_from(["src", "tfiles"])))
    size = draw(st.integers(3, 10))
    while len(m.nodes) < size:
        add_node(draw, m, draw(st.sampled_from(shapes(m))))
    return m


def shapes(m: Model) -> list[str]:
    """What can be added now (weighted)."""
    return ["src", "tfiles", "tval"] + (["xf", "xf", "texport"] if m.of(*TABLES) else []) \
        + (["tchain", "tchain"] if m.of(*CSV_TASKS) else []) + (["tuse", "tuse"] if m.of("tval") else []) \
        + (["xtag", "xtag"] if m.of("tval") and m.of(*TABLES) else [])


# ---- edits -------------------------------------------------------------------------------
EDITS = ("script", "noop_task", "touch", "raw", "del_out", "hand_out", "sql", "data", "meta", "add", "rewire", "fail")
READS = {"tsrc": CSV_TASKS, "tchain": CSV_TASKS, "tval": CSV_TASKS, "xf": TABLES, "xtag": TABLES, "texport": TABLES,
         "tuse": ("tval",)}


def edit(draw, m: Model, root: Path, later: list) -> str:
    """Change the model (written by World.sync) or queue a change on disk (``later``)."""
    kind = draw(st.sampled_from(EDITS))
    event(f"edit {kind}")
    pick = lambda ids: m.nodes[draw(st.sampled_from(ids))]  # noqa: E731
    if kind == "script" and m.of("tfiles", "tchain", "texport", "tuse", "tval"):
        n = pick(m.of("tfiles", "tchain", "texport", "tuse", "tval"))
        if n.shape in ("texport", "tuse"):
            n.k = (n.k + draw(st.integers(1, 9))) % 10
        else:
            size = {"tfiles": len(FILTERS), "tchain": len(CHAINS), "tval": len(COUNTS if n.count else VALUES)}
            n.variant = (n.variant + draw(st.integers(1, size[n.shape] - 1))) % size[n.shape]
        return f"script of {n.id}"
    if kind == "fail" and m.of("tfiles", "tchain", "texport", "tuse", "tval"):
        n = pick(m.of("tfiles", "tchain", "texport", "tuse", "tval"))
        n.fail = not n.fail
        return f"{n.id} {'fails (exit 3)' if n.fail else 'fixed'}"
    if kind == "noop_task" and m.of("tfiles", "tchain", "texport", "tuse", "tval"):
        n = pick(m.of("tfiles", "tchain", "texport", "tuse", "tval"))
        n.noop += 1
        return f"no-op program edit of {n.id}"
    if kind == "touch":
        rels = sorted(p.relative_to(root).as_posix() for d in ("data", "bin", "scripts", "out", "nodes")
                      if (root / d).exists() for p in (root / d).rglob("*") if p.is_file())
        rel = draw(st.sampled_from(rels))
        later.append(("touch", rel))
        return f"touch {rel}"
    if kind == "raw" and m.of("tfiles") + [n for n in m.of("tval") if not m.nodes[n].count]:
        n = pick(m.of("tfiles") + [n for n in m.of("tval") if not m.nodes[n].count])
        if n.shape == "tval":
            m.data[f"data/raw/{n.name}.txt"] = numbers(draw)
            return f"rewrite data/raw/{n.name}.txt"
        parts = sorted(p for p in m.data if p.startswith(f"data/raw/{n.name}/"))
        how = draw(st.sampled_from(["rewrite", "add"] + (["remove"] if len(parts) > 1 else [])))
        if how == "rewrite":
            rel = draw(st.sampled_from(parts))
            m.data[rel] = rows(draw)
        elif how == "add":
            rel = f"data/raw/{n.name}/p{int(parts[-1].rsplit('p', 1)[1].split('.')[0]) + 1}.txt"
            m.data[rel] = rows(draw)
        else:
            rel = draw(st.sampled_from(parts))
            del m.data[rel]
        return f"{how} {rel}"
    if kind in ("del_out", "hand_out") and m.of(*CSV_TASKS):
        n = pick(m.of(*CSV_TASKS))
        later.append((kind, n.out))
        return f"{kind} {n.out}"
    if kind == "sql" and m.of("xf", "xtag"):
        n = pick(m.of("xf", "xtag"))
        if n.shape == "xf" and draw(st.booleans()):
            group = ONE_INPUT if n.tmpl in ONE_INPUT else TWO_INPUTS
            n.tmpl = draw(st.sampled_from([t for t in group if t != n.tmpl]))
        else:
            n.k = (n.k + draw(st.integers(1, 9))) % 10
        return f"SQL of {n.id}"
    if kind == "data" and m.of("src"):
        n = pick(m.of("src"))
        m.data[f"data/{n.name}.csv"] = "id,v,w\n" + rows(draw)
        return f"data of {n.id}"
    if kind == "add" and len(m.nodes) < 12:
        had = len(m.nodes)
        add_node(draw, m, draw(st.sampled_from(shapes(m))))
        return f"add {', '.join(list(m.nodes)[had:])}"
    order = list(m.nodes)
    rewire = [(nid, [c for c in order[:order.index(nid)] if m.nodes[c].shape in READS[n.shape] and c not in n.inputs])
              for nid, n in m.nodes.items() if n.inputs]
    rewire = [(nid, options) for nid, options in rewire if options]
    if kind == "rewire" and rewire:  # what it reads now: another table, another task's file or value
        nid, options = draw(st.sampled_from(rewire))
        old, m.nodes[nid].inputs[0] = m.nodes[nid].inputs[0], draw(st.sampled_from(options))
        return f"{nid} reads {m.nodes[nid].inputs[0]} instead of {old}"
    n = pick(list(m.nodes))
    if draw(st.booleans()):
        n.desc += 1
    else:
        n.comments += 1
    return f"description or comment of {n.id}"


# ---- the world: files on disk, what seekrun recorded (as the model sees it) ---------------
def digest(obj) -> str:
    return hashlib.sha1(repr(obj).encode()).hexdigest()[:12]


class World:
    def __init__(self, m: Model, root: Path, scratch: Path):
        self.m, self.root, self.scratch = m, root, scratch
        self.record: dict[str, tuple] = {}  # nid -> (definition, data, inputs' versions, outputs written)
        self.version: dict[str, str] = {}  # nid -> its output as its dependents see it
        self.failed: set[str] = set()  # failed last time (their records are the last good builds)
        self.log: list[str] = []

    def why(self, *detail) -> str:
        nodes = [f"  {nid} ({n.shape}) <- {', '.join(n.inputs) or '-'}" for nid, n in self.m.nodes.items()]
        return "\n".join(["nodes:", *nodes, "steps:", *self.log, "", *(str(d) for d in detail)])

    def read(self, rel: str) -> bytes | None:
        p = self.root / rel
        return p.read_bytes() if p.is_file() else None

    def sync(self, later: list) -> None:
        want = self.m.files()
        have = {p.relative_to(self.root).as_posix() for d in ("data", "nodes", "bin", "scripts")
                if (self.root / d).exists() for p in (self.root / d).rglob("*") if p.is_file()}
        for rel in sorted(have - set(want)):
            (self.root / rel).unlink()
        for rel, text in want.items():
            if self.read(rel) != text.encode():  # unchanged files are not rewritten (no stat change)
                (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
                (self.root / rel).write_text(text)
        for what, rel in later:
            path = self.root / rel
            if what == "touch" and path.exists():
                st_ = path.stat()
                os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 7_000_000_000))
            elif what == "del_out":
                path.unlink(missing_ok=True)
            elif what == "hand_out" and path.exists():
                with open(path, "a") as f:
                    f.write("9,9,hand\n")

    def failing(self) -> bool:
        return any(n.fail for n in self.m.nodes.values())

    def inputs_now(self, n: Node) -> tuple:
        return (self.m.definition(n), tuple((rel, self.read(rel)) for rel in self.m.read_files(n)))

    def step(self, threads: int, edits: list[str]) -> None:
        m = self.m
        self.log.append(f"{' + '.join(edits) or 'first build'}  (--threads {threads})")
        before = {nid: (*self.inputs_now(n), self.read(n.out) if n.out else None) for nid, n in m.nodes.items()}
        touched = {nid for nid, now in before.items() if nid not in self.record or nid in self.failed
                   or self.record[nid][:2] != now[:2] or (m.nodes[nid].out and self.record[nid][3] != now[2])}
        args = ["run", "--threads", str(threads)] + (["--continue-on-error"] if self.failing() else [])
        res = cli(*args, cwd=self.root)
        results = json.loads((self.root / "target" / "run_results.json").read_text())["results"]
        status = {r["node_id"]: r["status"] for r in results}
        ran = {nid for nid, s in status.items() if s in ("success", "failed")}
        why = {r["node_id"]: r["reason"] for r in results if r["node_id"] in ran}
        # 3. the model's verdict, in topological order, with the task outputs as they came out;
        # every dependent of a failed task is skipped (what it reads was not built)
        expected, failed, blocked = set(), set(), set()
        for nid, n in m.nodes.items():
            if any(p in failed or p in blocked for p in n.inputs):
                blocked.add(nid)
                continue
            ins = tuple(self.version[p] for p in n.inputs)
            if nid in touched or self.record[nid][2] != ins:
                expected.add(nid)
                if n.fail:
                    failed.add(nid)
                    continue
                written = self.read(n.out) if n.out else None
                self.record[nid] = (*before[nid][:2], ins, written)
                value = m.captured(n, lambda rel: self.read(rel).decode())
                self.version[nid] = digest((written, value)) if n.kind == "task" else digest(self.record[nid][:3])
        self.failed = (self.failed | failed) - (expected - failed)
        assert res.exit_code == (1 if failed else 0), self.why(res.output)
        hi = m.closure(touched)
        assert touched - blocked <= ran <= hi, self.why("outside the bounds", touched - blocked - ran, ran - hi, why,
                                                        res.output)
        assert ran == expected, self.why("ran but should not", {n: why[n] for n in ran - expected},
                                         "should have run", expected - ran, res.output)
        event(f"early cutoff: {len(hi) - len(ran) - len(blocked) > 0}")
        if failed:
            event("a run with a failed task")
            assert {n: status[n] for n in failed} == dict.fromkeys(failed, "failed"), self.why(status)
            for nid in failed:  # the last good output is kept (what was there before the run)
                n = m.nodes[nid]
                if n.out and before[nid][2] is not None:
                    assert self.read(n.out) == before[nid][2], self.why(f"{nid} did not keep its last output")
                assert f"{nid} exited 3" in res.output, self.why(res.output)
            return
        # 4. nothing left to do
        again = cli("run", cwd=self.root)
        assert again.exit_code == 0 and "Nothing to do" in again.stdout, self.why("second run", again.output)
        # 2. a clean build of the same sources
        fresh = self.scratch / "fresh"
        shutil.rmtree(fresh, ignore_errors=True)
        shutil.copytree(self.root, fresh, ignore=shutil.ignore_patterns("target", "out"))
        clean = cli("run", cwd=fresh)
        assert clean.exit_code == 0, self.why("clean build", clean.output)
        assert all_tables(self.root) == all_tables(fresh), self.why("tables differ from a clean build")
        assert outputs(self.root) == outputs(fresh), self.why("task outputs differ from a clean build")


def outputs(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "out").rglob("*")) if p.is_file()}


@settings(max_examples=examples(12))
@given(model=projects(), data=st.data())
def test_task_dags_rebuild_exactly_what_changed_and_equal_a_clean_build(model: Model, data):
    with tempfile.TemporaryDirectory(prefix="seekrun-tasks-") as tmp:
        root = Path(tmp) / "p"
        root.mkdir()
        w = World(model, root, Path(tmp))
        w.sync([])
        w.step(data.draw(st.integers(1, 3), label="threads"), [])
        for _ in range(data.draw(st.integers(2, 5), label="steps")):
            later: list = []
            edits = [edit(data.draw, model, root, later) for _ in range(data.draw(st.integers(1, 3)))]
            w.sync(later)
            w.step(data.draw(st.integers(1, 3)), edits)
        if w.failing():  # the last run is a clean one
            for n in model.nodes.values():
                n.fail = False
            w.sync([])
            w.step(data.draw(st.integers(1, 3)), ["every failing task fixed"])
        for n in model.nodes.values():
            event(f"shape {n.shape}")
