"""Issue 3, property: an incremental build always equals a clean build, and does no work
outside the downstream closure of what changed.

Hypothesis draws a random DAG (1-3 CSV sources, transforms reading 1-2 earlier nodes)
and a random sequence of edits. After every edit, `seekrun run` runs in the project;
then every table must equal the table a clean `--full` build gives in a fresh copy,
and the nodes that ran must lie inside the downstream closure of the changed nodes
(computed here from the edit, independently of seekrun).
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import all_tables, clean_build, cli, ran, run_results


@dataclass
class Node:
    name: str
    kind: str  # "source" | "transform"
    rows: list[tuple[int, int]] = field(default_factory=list)  # sources
    inputs: list[str] = field(default_factory=list)  # transforms: node ids
    k: int = 0  # the SQL constant
    comments: int = 0
    description: str = "a node"
    tags: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.kind}.{self.name}"

    def build_signature(self) -> tuple:
        """What the node's table depends on (besides its inputs' tables)."""
        return (self.kind, tuple(self.rows), tuple(self.inputs), self.k)


class Model:
    """The project as the test sees it; renders itself to files."""

    def __init__(self):
        self.nodes: dict[str, Node] = {}  # insertion order = a topological order
        self.counter = 0

    def order(self) -> list[str]:
        return list(self.nodes)

    def children(self, nid: str) -> list[str]:
        return [n.id for n in self.nodes.values() if nid in n.inputs]

    def downstream(self, roots: set[str]) -> set[str]:
        out, stack = set(), [r for r in roots if r in self.nodes]
        while stack:
            n = stack.pop()
            if n in out:
                continue
            out.add(n)
            stack.extend(self.children(n))
        return out

    def sources(self) -> list[str]:
        return [n for n, v in self.nodes.items() if v.kind == "source"]

    def transforms(self) -> list[str]:
        return [n for n, v in self.nodes.items() if v.kind == "transform"]

    def leaves(self) -> list[str]:
        return [n for n in self.nodes if not self.children(n)]

    # ---- rendering ----
    @staticmethod
    def csv(rows) -> str:
        return "id,v\n" + "".join(f"{i},{v}\n" for i, v in rows)

    @staticmethod
    def sql(node: Node) -> str:
        head = "".join(f"-- note {c}\n" for c in range(node.comments))
        if len(node.inputs) == 1:
            body = f"SELECT id, v + {node.k} AS v FROM input_0"
        else:
            body = ("SELECT a.id, a.v + b.v + {k} AS v\nFROM input_0 a JOIN input_1 b ON a.id = b.id"
                    .format(k=node.k))
        return head + body

    def write_node(self, root: Path, node: Node) -> None:
        if node.kind == "source":
            text = (f"kind: source\nname: {node.name}\ndescription: {node.description}\n"
                    f"tags: [{', '.join(node.tags)}]\nsource: csv\ntable: data/{node.name}.csv\n")
        else:
            refs = "".join(f"  - ref: {r}\n" for r in node.inputs)
            sql = "".join(f"  {line}\n" for line in self.sql(node).splitlines())
            text = (f"kind: transform\nname: {node.name}\ndescription: {node.description}\n"
                    f"tags: [{', '.join(node.tags)}]\ninputs:\n{refs}transform: |\n{sql}")
        (root / "nodes" / f"{node.name}.yml").write_text(text)

    def write_csv(self, root: Path, node: Node) -> None:
        (root / "data" / f"{node.name}.csv").write_text(self.csv(node.rows))

    def write_all(self, root: Path) -> None:
        (root / "nodes").mkdir(parents=True, exist_ok=True)
        (root / "data").mkdir(parents=True, exist_ok=True)
        (root / "seekrun_project.yml").write_text("name: prop\n")
        for node in self.nodes.values():
            self.write_node(root, node)
            if node.kind == "source":
                self.write_csv(root, node)


# ---- strategies ------------------------------------------------------------------------------

tag_lists = st.lists(st.sampled_from(["red", "blue"]), max_size=2, unique=True)
row_lists = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 99)), min_size=1, max_size=4)


@st.composite
def dags(draw) -> Model:
    m = Model()
    n_sources = draw(st.integers(1, 3))
    n_total = draw(st.integers(max(3, n_sources + 1), 8))
    for i in range(n_sources):
        node = Node(f"s{i}", "source", rows=draw(row_lists), tags=draw(tag_lists))
        m.nodes[node.id] = node
    for i in range(n_total - n_sources):
        earlier = m.order()
        n_inputs = draw(st.integers(1, min(2, len(earlier))))
        inputs = draw(st.lists(st.sampled_from(earlier), min_size=n_inputs, max_size=n_inputs, unique=True))
        node = Node(f"t{i}", "transform", inputs=inputs, k=draw(st.integers(0, 9)), tags=draw(tag_lists))
        m.nodes[node.id] = node
    m.counter = n_total
    return m


EDITS = ["sql", "csv", "csv_same_size", "touch", "comment", "description", "add", "remove_leaf", "rewire"]


def apply_edit(draw, m: Model, root: Path, kind: str) -> tuple[str, set[str]] | None:
    """Apply one edit to the model and the files. Returns (label, changed node ids), or None
    if the edit does not apply to this project."""
    if kind == "sql":
        nid = draw(st.sampled_from(m.transforms())) if m.transforms() else None
        if nid is None:
            return None
        node = m.nodes[nid]
        node.k = draw(st.integers(0, 9).filter(lambda v: v != node.k))
        m.write_node(root, node)
        return f"sql {nid} k={node.k}", {nid}
    if kind in ("csv", "csv_same_size"):
        nid = draw(st.sampled_from(m.sources()))
        node = m.nodes[nid]
        old = m.csv(node.rows)
        if kind == "csv":
            rows = draw(row_lists.filter(lambda r: m.csv(r) != old))
        else:  # same byte count: change one value to another of the same width
            i = draw(st.integers(0, len(node.rows) - 1))
            ident, v = node.rows[i]
            width = len(str(v))
            lo, hi = (0, 9) if width == 1 else (10, 99)
            new_v = draw(st.integers(lo, hi).filter(lambda x: x != v))
            rows = list(node.rows)
            rows[i] = (ident, new_v)
            assert len(m.csv(rows)) == len(old)
        node.rows = rows
        m.write_csv(root, node)
        return f"{kind} {nid} {rows}", {nid}
    if kind == "touch":
        nid = draw(st.sampled_from(m.sources()))
        path = root / "data" / f"{m.nodes[nid].name}.csv"
        st_ = os.stat(path)
        later = st_.st_mtime_ns + draw(st.sampled_from([1, 1_000_000, 3_000_000_000]))
        os.utime(path, ns=(later, later))
        return f"touch {nid}", set()
    if kind == "comment":
        if not m.transforms():
            return None
        nid = draw(st.sampled_from(m.transforms()))
        m.nodes[nid].comments += 1
        m.write_node(root, m.nodes[nid])
        return f"comment {nid}", set()
    if kind == "description":
        nid = draw(st.sampled_from(m.order()))
        m.nodes[nid].description += " more"
        m.write_node(root, m.nodes[nid])
        return f"description {nid}", set()
    if kind == "add":
        earlier = m.order()
        n_inputs = draw(st.integers(1, min(2, len(earlier))))
        inputs = draw(st.lists(st.sampled_from(earlier), min_size=n_inputs, max_size=n_inputs, unique=True))
        node = Node(f"t{m.counter}", "transform", inputs=inputs, k=draw(st.integers(0, 9)),
                    tags=draw(tag_lists))
        m.counter += 1
        m.nodes[node.id] = node
        m.write_node(root, node)
        return f"add {node.id} <- {inputs}", {node.id}
    if kind == "remove_leaf":
        candidates = [n for n in m.leaves()
                      if not (m.nodes[n].kind == "source" and len(m.sources()) == 1)]
        if len(m.nodes) <= 2 or not candidates:
            return None
        nid = draw(st.sampled_from(candidates))
        node = m.nodes.pop(nid)
        (root / "nodes" / f"{node.name}.yml").unlink()
        if node.kind == "source":
            (root / "data" / f"{node.name}.csv").unlink()
        return f"remove {nid}", set()
    if kind == "rewire":
        order = m.order()
        options = []
        for nid in m.transforms():
            pos = order.index(nid)
            node = m.nodes[nid]
            for slot in range(len(node.inputs)):
                targets = [e for e in order[:pos] if e not in node.inputs]
                if targets:
                    options.append((nid, slot, targets))
        if not options:
            return None
        nid, slot, targets = draw(st.sampled_from(options))
        new = draw(st.sampled_from(targets))
        node = m.nodes[nid]
        node.inputs[slot] = new
        m.write_node(root, node)
        return f"rewire {nid} input_{slot} -> {new}", {nid}
    raise AssertionError(kind)


# ---- checks ------------------------------------------------------------------------------------

@contextmanager
def first_build(model: Model):
    """The model written to a scratch folder and built once: (scratch folder, project)."""
    with tempfile.TemporaryDirectory(prefix="seekrun-prop-") as tmp:
        scratch = Path(tmp)
        root = scratch / "proj"
        model.write_all(root)
        res = cli("run", "-p", str(root))
        assert res.exit_code == 0, res.output
        yield scratch, root


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=dags(), data=st.data())
def test_incremental_run_equals_clean_build(model: Model, data):
    with first_build(model) as (scratch, root):
        assert ran(root) == set(model.nodes)
        assert all_tables(root) == clean_build(root, scratch)

        history: list[str] = []
        n_steps = data.draw(st.integers(1, 5), label="steps")
        for _ in range(n_steps):
            labels: list[str] = []
            declared: set[str] = set()
            before = {nid: node.build_signature() for nid, node in model.nodes.items()}
            for _ in range(data.draw(st.integers(1, 2), label="edits in this step")):
                kind = data.draw(st.sampled_from(EDITS), label="edit")
                applied = apply_edit(data.draw, model, root, kind)
                if applied is None:
                    continue
                labels.append(applied[0])
                declared |= applied[1]
            history.append("; ".join(labels) or "(no edit)")
            # changed: new nodes, and nodes whose own build inputs differ from the last build
            # (two edits in one step may cancel out, so compare states, not edits)
            changed = {nid for nid, node in model.nodes.items()
                       if before.get(nid) != node.build_signature()}
            assert changed <= declared  # (a check on this test's model)
            res = cli("run", "-p", str(root))
            assert res.exit_code == 0, (history, res.output)
            did = ran(root)
            allowed = model.downstream(changed)
            assert did <= allowed, (history, "ran outside the changed closure:", did - allowed)
            assert changed <= did, (history, "changed nodes that did not run:", changed - did)
            results = run_results(root)
            assert set(results) == set(model.nodes), (history, set(results) ^ set(model.nodes))
            assert all(r["status"] in ("success", "cached") for r in results.values()), (history, results)
            if not changed and set(model.nodes) == set(before):
                assert "Nothing to do" in res.stdout, (history, res.output)
            assert all_tables(root) == clean_build(root, scratch), history


# ---- filtered runs never leave anything stale ----------------------------------------------------

def draw_filter(draw, m: Model) -> tuple[list[str], set[str]]:
    """A random filter valid for the project: (CLI args, the node ids it selects)."""
    tags = sorted({t for n in m.nodes.values() for t in n.tags})
    choices = ["types", "nodes"] + (["tags", "exclude-tags"] if tags else [])
    which = draw(st.sampled_from(choices))
    if which == "types":
        kind = draw(st.sampled_from(["source", "transform"] if m.transforms() else ["source"]))
        return ["--types", kind], {n for n, v in m.nodes.items() if v.kind == kind}
    if which == "nodes":
        nid = draw(st.sampled_from(m.order()))
        return ["--nodes", nid], m.downstream({nid})
    tag = draw(st.sampled_from(tags))
    with_tag = {n for n, v in m.nodes.items() if tag in v.tags}
    if which == "tags":
        return ["--tags", tag], with_tag
    return ["--exclude-tags", tag], set(m.nodes) - with_tag


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=dags(), data=st.data())
def test_filtered_runs_then_a_plain_run_equal_a_clean_build(model: Model, data):
    with first_build(model) as (scratch, root):

        history: list[str] = []
        built = {nid: node.build_signature() for nid, node in model.nodes.items()}
        for _ in range(data.draw(st.integers(1, 4), label="rounds")):
            # some edits (content edits only: the graph shape stays, so filters stay valid)
            for _ in range(data.draw(st.integers(1, 3), label="edits")):
                kind = data.draw(st.sampled_from(["sql", "csv", "csv_same_size", "touch", "comment"]),
                                 label="edit")
                applied = apply_edit(data.draw, model, root, kind)
                if applied is not None:
                    history.append(applied[0])
            # everything changed since the last plain run, and its downstream, may run; nothing else
            changed = {nid for nid, node in model.nodes.items() if built.get(nid) != node.build_signature()}
            allowed = model.downstream(changed)
            # one or two filtered runs: only selected nodes run
            for _ in range(data.draw(st.integers(1, 2), label="filtered runs")):
                args, selected = draw_filter(data.draw, model)
                history.append(" ".join(args))
                res = cli("run", "-p", str(root), *args)
                assert res.exit_code == 0, (history, res.output)
                did = ran(root)
                assert did <= selected, (history, "ran unselected:", did - selected)
                assert did <= allowed, (history, "ran outside the changed closure:", did - allowed)
            # a plain run finishes the job
            history.append("(plain run)")
            res = cli("run", "-p", str(root))
            assert res.exit_code == 0, (history, res.output)
            assert ran(root) <= allowed, (history, ran(root) - allowed)
            assert all_tables(root) == clean_build(root, scratch), history
            built = {nid: node.build_signature() for nid, node in model.nodes.items()}
            res = cli("run", "-p", str(root))
            assert res.exit_code == 0 and "Nothing to do" in res.stdout, (history, res.output)
