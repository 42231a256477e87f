"""The rebuild promise across engines, as a property: random DAGs of SQL nodes (and their CSV
sources), each on DuckDB or on Spark local[2], under random edits (a real SQL change, a node moved between engines, a source
row changed, and no-op edits: whitespace, a comment, a description, a touched file). After every
edit the incremental build's tables equal a clean build of the same files with every node on
DuckDB, no-op edits run nothing, and an edited node reruns.

One Spark session serves the whole module (``DAGRunner(spark_session=...)``: seekrun uses it and
never stops it), so each example costs Spark jobs, not JVM starts."""
from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import examples
from spark_helpers import build_in_process, needs_spark, spark_session  # noqa: F401 (a fixture)

pytestmark = needs_spark
WORDS = ("ab", "cd", "x y", "Zed")

# Each template reads one or two earlier nodes, all of columns (k VARCHAR, v integer), and
# means the same on both engines (what the transpiler passes unchanged in meaning).
TEMPLATES = {
    "shift": (1, "SELECT k, v + {c} AS v FROM ref('{a}')"),
    "filter": (1, "SELECT k, v FROM ref('{a}') WHERE v % {m} <> 0"),
    "total": (1, "SELECT k, sum(v) AS v FROM ref('{a}') GROUP BY k"),
    "count": (1, "SELECT lower(k) AS k, count(*) + {c} AS v FROM ref('{a}') GROUP BY lower(k)"),
    "join": (2, "SELECT x.k, x.v - y.v * {c} AS v FROM ref('{a}') AS x JOIN ref('{b}') AS y ON x.k = y.k"),
    "union": (2, "SELECT k, v FROM ref('{a}') UNION ALL SELECT k, v + {c} FROM ref('{b}')"),
    "case": (1, "SELECT k, CASE WHEN v > {c} THEN v ELSE -v END AS v FROM ref('{a}')"),
}


def _rows(draw, n: int) -> list[tuple]:
    return [(draw(st.sampled_from(WORDS)), draw(st.integers(0, 40))) for _ in range(n)]


@st.composite
def projects(draw):
    sources = {f"s{i}": _rows(draw, draw(st.integers(1, 6))) for i in range(2)}
    nodes = []
    for i in range(draw(st.integers(2, 5))):
        earlier = [f"source.{s}" for s in sources] + [f"transform.t{j}" for j in range(i)]
        tmpl = draw(st.sampled_from(sorted(TEMPLATES)))
        arity = TEMPLATES[tmpl][0]
        ins = [draw(st.sampled_from(earlier)) for _ in range(arity)]
        nodes.append({"name": f"t{i}", "tmpl": tmpl, "ins": ins, "c": draw(st.integers(1, 5)),
                      "engine": draw(st.sampled_from(["duckdb", "spark"])), "noise": 0})
    edits = draw(st.lists(st.tuples(st.sampled_from(["const", "engine", "noise", "touch", "data"]),
                                    st.integers(0, 99), st.integers(0, 40)), min_size=2, max_size=4))
    spark_sources = draw(st.sets(st.sampled_from(sorted(sources))))  # files read by Spark itself
    return sources, nodes, edits, spark_sources


def _sql(n: dict) -> str:
    return TEMPLATES[n["tmpl"]][1].format(a=n["ins"][0], b=n["ins"][-1], c=n["c"], m=n["c"] + 1)


def _render(root: Path, sources: dict, nodes: list[dict], all_duckdb: bool = False, spark_sources=()) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "nodes").mkdir(exist_ok=True)
    (root / "seekrun_project.yml").write_text("name: engines\n")
    for name, rows in sources.items():
        text = "k,v\n" + "".join(f"{k},{v}\n" for k, v in rows)
        path = root / "data" / f"{name}.csv"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        yml = root / "nodes" / f"{name}.yml"
        if not yml.exists():
            own = "engine: spark\n" if name in spark_sources and not all_duckdb else ""
            yml.write_text(f"kind: source\nname: {name}\n{own}source: csv\ntable: data/{name}.csv\n")
    for n in nodes:
        body = _sql(n)
        noise = n["noise"]
        text = "".join([
            "# edited\n" * (noise % 2),
            f"kind: transform\nname: {n['name']}\n",
            f"description: take {noise}\n" if noise else "",
            "" if all_duckdb else f"engine: {n['engine']}\n",
            "inputs:\n" + "".join(f"  - ref: {i}\n" for i in dict.fromkeys(n["ins"])),
            "transform: |\n  " + body.replace(" FROM ", "\n  " + " " * noise + "FROM ") + "\n",
        ])
        path = root / "nodes" / f"{n['name']}.yml"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)


def _build(root: Path, session=None) -> set[str]:
    seen, _ = build_in_process(root, session)
    bad = [(nid, error) for nid, (status, error, _) in seen.items() if status not in ("success", "cached")]
    assert not bad, bad
    return {nid for nid, (status, _, _) in seen.items() if status == "success"}


def _tables(root: Path, ids) -> dict:
    import duckdb

    con = duckdb.connect(str(root / "target" / "seekrun.duckdb"), read_only=True)
    try:
        out = {}
        for nid in ids:
            kind, name = nid.split(".")
            out[nid] = sorted((str(k), int(v)) for k, v in con.execute(f'SELECT k, v FROM "{kind}"."{name}"').fetchall())
        return out
    finally:
        con.close()


def _downstream(nodes: list[dict], start: set[str]) -> set[str]:
    out = set(start)
    for n in nodes:  # in order: a node's inputs come before it
        if any(i in out for i in n["ins"]):
            out.add(f"transform.{n['name']}")
    return out


@settings(max_examples=examples(8))
@given(case=projects())
def test_incremental_builds_across_engines_equal_a_clean_duckdb_build(case, spark_session, tmp_path_factory):
    sources, nodes, edits, spark_sources = case
    work = tmp_path_factory.mktemp("work")
    inc = work / "inc"
    _render(inc, sources, nodes, spark_sources=spark_sources)
    ids = [f"source.{s}" for s in sources] + [f"transform.{n['name']}" for n in nodes]
    assert _build(inc, spark_session) == set(ids)
    for what, pick, value in edits:
        node = nodes[pick % len(nodes)]
        nid = f"transform.{node['name']}"
        changed: set[str] = set()
        if what == "const":
            before = _sql(node)
            node["c"] += 1
            changed = {nid} if _sql(node) != before else set()  # (a template without the constant)
        elif what == "engine":
            node["engine"] = "spark" if node["engine"] == "duckdb" else "duckdb"
            changed = {nid}
        elif what == "noise":
            node["noise"] += 1
        elif what == "touch":
            path = inc / "data" / "s0.csv"
            path.write_text(path.read_text())
        else:
            name = sorted(sources)[pick % len(sources)]
            rows = sources[name]
            i = value % len(rows)
            if rows[i][1] != value:
                rows[i] = (rows[i][0], value)
                changed = {f"source.{name}"}
        _render(inc, sources, nodes, spark_sources=spark_sources)
        ran = _build(inc, spark_session)
        must = _downstream(nodes, changed)
        assert changed <= ran <= must, (what, nid, changed, ran)
        clean = work / f"clean-{len(list(work.iterdir()))}"
        _render(clean, sources, nodes, all_duckdb=True)
        _build(clean)
        assert _tables(inc, ids) == _tables(clean, ids), (what, nid)
        shutil.rmtree(clean)
