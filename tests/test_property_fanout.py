"""Issue 13: a property test for fan-out.  Hypothesis draws a foreach list (given in the node, or
through a task param ``${LIST}``), a command that reads ``${ITEM_INDEX}`` or not, and a sequence
of edits between runs: items added, removed, reordered, replaced, and sometimes the command.

After every run:
1. it exits 0;
2. every instance's file and the collected outputs (``${RESULTS.outputs}``, written by a
   reduce task) equal a clean build of a fresh copy;
3. exactly the instances the model says ran: those whose key is new (with ``${ITEM_INDEX}``:
   whose key moved, too), or all of them when the command changed;
4. an immediate second run runs nothing.

Runtime: examples scale with HYPOTHESIS_PROFILE (tests/conftest.py).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import cli, examples, query, run_results, write_project

WORDS = ["ant", "bee", "cat", "dog", "eel", "fox", "gnu", "hen"]


def nodes(items: list[str], param: bool, index: bool, variant: int) -> str:
    listed = '"${LIST}"' if param else "[" + ", ".join(items) + "]"
    params = f'params: {{LIST: "{" ".join(items)}"}}\n' if param else ""
    seen = "${ITEM}-${ITEM_INDEX}" if index else "${ITEM}"
    return (f"kind: task\nname: each\n{params}foreach: {listed}\n"
            f"command: mkdir -p out && echo v{variant} {seen} > out/${{ITEM}}.txt && echo ${{ITEM}} >> log.txt"
            f" && echo v{variant}-{seen}\n"
            'outputs: ["out/${ITEM}.txt"]\noutput: RESULTS\n---\n'
            "kind: task\nname: reduce\ndepends_on: [task.each]\n"
            "command: echo '${RESULTS.outputs}' > reduced.json\noutputs: [reduced.json]\n")


def run(p: Path) -> list[str]:
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    log = p / "log.txt"
    out = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return out


def outputs(p: Path, items: list[str]) -> dict:
    return {"reduced": json.loads((p / "reduced.json").read_text()),
            **{i: (p / "out" / f"{i}.txt").read_text() for i in items}}


lists = st.lists(st.sampled_from(WORDS), unique=True, max_size=6)


@settings(max_examples=examples(6))
@given(first=lists, edits=st.lists(st.tuples(lists, st.booleans()), min_size=1, max_size=4),
       param=st.booleans(), index=st.booleans())
def test_incremental_fan_out_equals_a_clean_build_and_runs_only_what_changed(first, edits, param, index):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = write_project(tmp / "p", {"nodes/each.yml": nodes(first, param, index, 0)})
        assert sorted(run(p)) == sorted(first)
        before, variant = first, 0
        for items, change_command in edits:
            variant += change_command
            (p / "nodes" / "each.yml").write_text(nodes(items, param, index, variant))
            ran = run(p)
            if change_command:
                expected = set(items)
            elif index:
                expected = {k for i, k in enumerate(items) if k not in before or before.index(k) != i}
            else:
                expected = set(items) - set(before)
            assert sorted(ran) == sorted(expected), (before, items)
            clean = tmp / f"clean{variant}_{len(items)}"
            shutil.rmtree(clean, ignore_errors=True)
            write_project(clean, {"nodes/each.yml": nodes(items, param, index, variant)})
            run(clean)
            assert outputs(p, items) == outputs(clean, items)
            assert run(p) == []  # nothing left to do
            res = cli("run", cwd=p)
            assert "Nothing to do" in res.output, res.output
            before = items


# -- the same for a table node: each item an instance node, the node their union ---------------

def table_nodes(items: list[str], param: bool, index: bool, variant: int) -> str:
    listed = '"${LIST}"' if param else "[" + ", ".join(items) + "]"
    seen = "{{ var('ITEM_INDEX') }}" if index else "0"
    return ("kind: source\nname: words\nsource: csv\ntable: data/words.csv\n---\n"
            f"kind: transform\nname: each\nforeach: {listed}\ninputs: [{{ref: source.words}}]\n"
            f"transform: SELECT '{{{{ var('ITEM') }}}}' AS k, {seen} AS i, {variant} AS v, count(*) AS n "
            "FROM ref('source.words') WHERE w = '{{ var('ITEM') }}'\n---\n"
            "kind: transform\nname: total\ninputs: [{ref: transform.each}]\n"
            "transform: SELECT k, i, v, n FROM ref('transform.each')\n")


def table_project(root: Path, items: list[str], param: bool, index: bool, variant: int) -> Path:
    marker = "name: p\n" + (f'params: {{LIST: "{" ".join(items)}"}}\n' if param else "")
    return write_project(root, {"nodes/all.yml": table_nodes(items, param, index, variant),
                                "data/words.csv": "w\n" + "\n".join(WORDS + WORDS[:3]) + "\n"}, marker=marker)


def table_run(p: Path) -> set[str]:
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    return {n for n, r in run_results(p).items() if r["status"] == "success"}


@settings(max_examples=examples(6))
@given(first=lists, edits=st.lists(st.tuples(lists, st.booleans()), min_size=1, max_size=4),
       param=st.booleans(), index=st.booleans())
def test_incremental_table_fan_out_equals_a_clean_build_and_builds_only_the_affected_instances(
        first, edits, param, index):
    inst = "transform.each[{}]".format
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        p = table_project(tmp / "p", first, param, index, 0)
        assert {inst(k) for k in first} <= table_run(p)
        before, variant = first, 0
        for items, change_sql in edits:
            variant += change_sql
            table_project(p, items, param, index, variant)
            ran = table_run(p)
            if change_sql:
                expected = set(items)
            elif index:
                expected = {k for i, k in enumerate(items) if k not in before or before.index(k) != i}
            else:
                expected = set(items) - set(before)
            assert {n for n in ran if n.startswith("transform.each[")} == {inst(k) for k in expected}, (before, items)
            # (with no items the node's own SQL gives its empty table's columns)
            rebuilt = bool(expected) or items != before or (change_sql and not items)
            assert ("transform.each" in ran) == rebuilt, (before, items)
            clean = table_project(tmp / f"clean{variant}_{len(items)}", items, param, index, variant)
            shutil.rmtree(clean / "target", ignore_errors=True)
            table_run(clean)
            got = query(p, "SELECT * FROM transform.total")
            assert got == query(clean, "SELECT * FROM transform.total")
            assert [r[0] for r in got] == items  # in item order
            assert "Nothing to do" in cli("run", cwd=p).output
            before = items
