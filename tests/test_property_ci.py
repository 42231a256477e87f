"""Issue 15, as a property: random DAGs of CSV sources and SQL transforms, random edits (SQL,
CSV data, description only), a production build, and the CI recipe in a fresh folder:

    seekrun run -s state:modified+ --defer --state prod

must build exactly the edited nodes (a description is not an edit) and their downstream, read
every other input it needs from production, give the tables a clean build of the edited project
gives; and a plain run afterwards must bring the CI folder to that clean build, building only
what was deferred or left out.
"""
from __future__ import annotations

import shutil

from hypothesis import given, settings, strategies as st

from conftest import all_tables, cli, examples, ran, run_results, write_project


@st.composite
def projects(draw):
    n_src = draw(st.integers(1, 3))
    n_tf = draw(st.integers(1, 6))
    nodes = []  # (id, inputs)
    for i in range(n_src):
        nodes.append((f"source.s{i}", []))
    for j in range(n_tf):
        pool = [nid for nid, _ in nodes]
        k = draw(st.integers(1, min(2, len(pool))))
        inputs = draw(st.lists(st.sampled_from(pool), min_size=k, max_size=k, unique=True))
        nodes.append((f"transform.t{j}", inputs))
    edits = draw(st.lists(st.tuples(st.sampled_from([nid for nid, _ in nodes]),
                                    st.sampled_from(["body", "meta"])), max_size=3, unique_by=lambda e: e[0]))
    return nodes, edits


def files(nodes, edited: dict[str, str]) -> dict[str, str]:
    out = {}
    for nid, inputs in nodes:
        name = nid.split(".")[1]
        how = edited.get(nid)
        desc = "description: edited words\n" if how == "meta" else ""
        if nid.startswith("source."):
            bump = 5 if how == "body" else 0
            out[f"data/{name}.csv"] = "id,v\n" + "".join(f"{i},{i * 10 + bump}\n" for i in range(1, 4))
            out[f"nodes/{name}.yml"] = f"kind: source\nname: {name}\nsource: csv\ntable: data/{name}.csv\n{desc}"
        else:
            add = 7 if how == "body" else 1
            parts = " + ".join(f"coalesce((SELECT sum(v) FROM input_{i}), 0)" for i in range(len(inputs)))
            refs = ", ".join(f"{{ref: {p}}}" for p in inputs)
            out[f"nodes/{name}.yml"] = (f"kind: transform\nname: {name}\n{desc}inputs: [{refs}]\n"
                                        f"transform: SELECT id, v + {add} + ({parts}) AS v FROM input_0\n")
    return out


def downstream(nodes, roots: set[str]) -> set[str]:
    out = set(roots)
    for nid, inputs in nodes:  # nodes are in topological order
        if out & set(inputs):
            out.add(nid)
    return out


@settings(max_examples=examples(8), deadline=None)
@given(projects())
def test_ci_recipe_equals_a_clean_build(tmp_path_factory, drawn):
    nodes, edits = drawn
    tmp = tmp_path_factory.mktemp("ci")
    prod = write_project(tmp / "prod", files(nodes, {}))
    assert cli("run", "-p", str(prod)).exit_code == 0
    edited = dict(edits)
    pr = write_project(tmp / "pr", files(nodes, edited))
    res = cli("run", "-p", str(pr))
    assert res.exit_code == 0, res.output
    clean = all_tables(pr)
    ci = tmp / "ci"
    shutil.copytree(pr, ci, ignore=shutil.ignore_patterns("target"))
    shutil.copytree(prod / "target", ci / "prod")

    res = cli("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    assert res.exit_code == 0, res.output
    want = downstream(nodes, {nid for nid, how in edits if how == "body"})
    if not want:
        assert "Nothing selected" in res.output, res.output
        return
    assert ran(ci) == want
    results = run_results(ci)
    parents = {p for nid, inputs in nodes if nid in want for p in inputs}
    assert {n for n, r in results.items() if r["deferred_from"]} == parents - want
    built = all_tables(ci)
    assert set(built) == want
    assert all(built[nid] == clean[nid] for nid in want)
    # then a plain run: exactly what was not built here, and the clean build's tables
    res = cli("run", "-p", str(ci))
    assert res.exit_code == 0, res.output
    assert ran(ci) == {nid for nid, _ in nodes} - want
    assert all_tables(ci) == clean
