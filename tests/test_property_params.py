"""Issue 13: a property test for run params. Hypothesis draws a small project whose nodes use
random params (tasks as ${P}, SQL as {{ var('P') }}, some use none; SQL nodes read earlier
ones, sources read what tasks wrote), then a sequence of runs, each with random param values
on the command line (a value left out is its default; a value may equal the last one).

After every run:
1. it exits 0;
2. every table and every file the tasks wrote equals a clean build of a fresh copy run with
   the same params;
3. exactly the nodes that use a param whose value changed since the last run ran, and their
   downstream; nothing else.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import all_tables, cli, examples, ran

PARAMS = ("P0", "P1", "P2")
DEFAULTS = {"P0": "a", "P1": "b", "P2": "c"}
VALUES = st.sampled_from(["a", "b", "c", "x1", "7"])


@st.composite
def projects(draw):
    """[(id, kind, param or None, inputs)]: tasks t<i> (each feeding a source s<i>) and
    transforms x<i> reading earlier tables."""
    nodes = []
    tables: list[str] = []
    for i in range(draw(st.integers(2, 5))):
        param = draw(st.sampled_from([None, *PARAMS]))
        if draw(st.booleans()):
            nodes.append((f"task.t{i}", "task", param, []))
            nodes.append((f"source.s{i}", "source", None, [f"task.t{i}"]))
            tables.append(f"source.s{i}")
        else:
            ins = draw(st.lists(st.sampled_from(tables), max_size=min(2, len(tables)), unique=True)) if tables else []
            nodes.append((f"transform.x{i}", "transform", param, ins))
            tables.append(f"transform.x{i}")
    return nodes


def write(root: Path, nodes) -> None:
    docs = []
    for nid, kind, param, ins in nodes:
        name = nid.split(".")[1]
        if kind == "task":
            value = f"${{{param}}}" if param else "fixed"
            docs.append(f"kind: task\nname: {name}\ncommand: mkdir -p out && printf 'v\\n{value}\\n' > out/{name}.csv\n"
                        f"outputs: [out/{name}.csv]\n")
        elif kind == "source":
            docs.append(f"kind: source\nname: {name}\nsource: csv\ntable: out/t{name[1:]}.csv\n")
        else:
            value = f"{{{{ var('{param}') }}}}" if param else "none"
            parts = [f"SELECT '{value}' AS v"] + [f"SELECT CAST(v AS VARCHAR) FROM ref('{r}')" for r in ins]
            refs = "".join(f"\n  - ref: {r}" for r in ins)
            docs.append(f"kind: transform\nname: {name}\n" + (f"inputs:{refs}\n" if ins else "")
                        + "transform: " + " UNION ALL ".join(parts) + "\n")
    root.mkdir(parents=True, exist_ok=True)
    (root / "seekrun_project.yml").write_text("name: prop\nparams:\n" + "".join(f"  {k}: {v}\n" for k, v in
                                                                               DEFAULTS.items()))
    (root / "nodes").mkdir(exist_ok=True)
    (root / "nodes" / "all.yml").write_text("---\n".join(docs))


def outputs(root: Path) -> dict:
    files = {p.name: p.read_text() for p in sorted((root / "out").glob("*"))} if (root / "out").exists() else {}
    return {"tables": all_tables(root), "files": files}


def args_for(given_values: dict) -> list[str]:
    return [w for k, v in given_values.items() for w in ("--param", f"{k}={v}")]


def expected(nodes, changed: set[str]) -> set[str]:
    out: set[str] = set()
    for nid, _, param, ins in nodes:  # in order: inputs come first
        if param in changed or any(i in out for i in ins):
            out.add(nid)
    return out


@settings(max_examples=examples(6), deadline=None)
@given(nodes=projects(), runs=st.lists(st.dictionaries(st.sampled_from(PARAMS), VALUES, max_size=3),
                                       min_size=1, max_size=3))
def test_params_edited_between_runs(nodes, runs):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "p"
        write(root, nodes)
        res = cli("run", "-p", str(root))
        assert res.exit_code == 0, res.output
        last = dict(DEFAULTS)
        for given_values in runs:
            now = {**DEFAULTS, **given_values}
            res = cli("run", "-p", str(root), *args_for(given_values))
            assert res.exit_code == 0, res.output
            changed = {k for k in PARAMS if now[k] != last[k]}
            assert ran(root) == expected(nodes, changed), (changed, res.output)
            fresh = Path(tmp) / "fresh"
            shutil.rmtree(fresh, ignore_errors=True)
            write(fresh, nodes)
            clean = cli("run", "-p", str(fresh), "--full", *args_for(given_values))
            assert clean.exit_code == 0, clean.output
            assert outputs(root) == outputs(fresh)
            last = now
