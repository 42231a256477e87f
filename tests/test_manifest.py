"""Issue 2: project discovery, target/manifest.json contents, determinism, .old, and the Python API."""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from conftest import cli, cli_proc, write_project

PROJECT = {
    "data/orders.csv": "order_id,customer_id,amount,ordered_at\n1,10,5.0,2024-01-01\n2,11,7.5,2024-01-02\n",
    "data/customers.csv": "customer_id,name\n10,ann\n11,bob\n",
    "data/events.jsonl": '{"customer_id": 10, "event": "view"}\n{"customer_id": 11, "event": "buy"}\n',
    "nodes/sources/shop.yml": """\
        kind: source
        name: orders
        description: raw orders
        tags: [raw]
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: data/customers.csv
        params: {delim: ","}
        """,
    "nodes/sources/events.yaml": """\
        kind: source
        name: events
        source: jsonl
        table: data/events.jsonl
        """,
    "nodes/transforms/order_facts.yml": """\
        kind: transform
        name: order_facts
        description: orders joined to customers
        owner: analytics
        tags: [daily, pii]
        columns:
          order_id: the order
          name: {description: customer name, dtype: VARCHAR}
        inputs:
          - ref: source.orders
          - ref: source.customers
        transform: |
          SELECT o.order_id, o.amount, c.name
          FROM input_0 o JOIN input_1 c USING (customer_id)
        """,
    "nodes/transforms/revenue.yml": """\
        kind: transform
        name: revenue
        inputs:
          - ref: transform.order_facts
        transform: SELECT name, sum(amount) AS revenue FROM ref('transform.order_facts') GROUP BY name
        """,
    "nodes/exposures/export.yml": """\
        kind: exposure
        name: revenue_csv
        type: file
        params: {format: csv, path: target/exports/revenue.csv}
        depends_on:
          - ref: transform.revenue
        """,
}

ALL_IDS = {"source.orders", "source.customers", "source.events", "transform.order_facts",
           "transform.revenue", "exposure.revenue_csv"}
EDGES = {("source.orders", "transform.order_facts"), ("source.customers", "transform.order_facts"),
         ("transform.order_facts", "transform.revenue"), ("transform.revenue", "exposure.revenue_csv")}


def make(root: Path, files: dict | None = None, marker: str = "name: shop\n") -> Path:
    return write_project(root, files if files is not None else PROJECT, marker=marker)


def parse(proj: Path, *args: str):
    res = cli("parse", "-p", str(proj), *args)
    assert res.exit_code == 0, res.output
    return res


def manifest_of(proj: Path) -> dict:
    return json.loads((proj / "target" / "manifest.json").read_text())


def without_generated_at(data: bytes) -> bytes:
    out, n = re.subn(rb'"generated_at": *"[^"]*"', b'"generated_at": ""', data)
    assert n == 1, data[:400]
    return out


# ---------------------------------------------------------------------------------------------
# contents


def test_manifest_metadata(tmp_path):
    proj = make(tmp_path / "p")
    parse(proj)
    m = manifest_of(proj)
    meta = m["metadata"]
    assert isinstance(meta["manifest_version"], int)
    import seekrun

    assert meta["seekrun_version"] == seekrun.__version__
    assert meta["project_name"] == "shop"
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d", meta["generated_at"]), meta["generated_at"]


def test_manifest_nodes(tmp_path):
    proj = make(tmp_path / "p")
    parse(proj)
    nodes = manifest_of(proj)["nodes"]
    assert set(nodes) == ALL_IDS
    for nid, node in nodes.items():
        kind, name = nid.split(".", 1)
        assert node["id"] == nid and node["kind"] == kind and node["name"] == name
        for key in ("description", "tags", "file", "config", "inputs", "hashes"):
            assert key in node, (nid, key)
        assert isinstance(node["hashes"]["config"], str) and node["hashes"]["config"]

    facts = nodes["transform.order_facts"]
    assert facts["description"] == "orders joined to customers"
    assert facts["tags"] == ["daily", "pii"]
    assert facts["file"] == "nodes/transforms/order_facts.yml"  # relative to the project, posix
    assert facts["inputs"] == ["source.orders", "source.customers"]  # declared order, not sorted
    assert facts["config"]["owner"] == "analytics"  # the full config, metadata included
    assert facts["config"]["columns"]["name"] == {"description": "customer name", "dtype": "VARCHAR"}
    assert "input_1" in facts["config"]["transform"]

    assert nodes["source.customers"]["file"] == "nodes/sources/shop.yml"
    assert nodes["source.customers"]["config"]["params"] == {"delim": ","}
    assert nodes["source.events"]["file"] == "nodes/sources/events.yaml"
    assert nodes["exposure.revenue_csv"]["inputs"] == ["transform.revenue"]  # depends_on
    for sid in ("source.orders", "source.customers", "source.events"):
        assert nodes[sid]["hashes"]["data"], sid
    assert nodes["source.orders"]["hashes"]["data"] != nodes["source.customers"]["hashes"]["data"]


def test_manifest_edges(tmp_path):
    proj = make(tmp_path / "p")
    parse(proj)
    edges = manifest_of(proj)["edges"]
    assert isinstance(edges, list)
    assert all(set(e) == {"from", "to"} for e in edges), edges
    assert {(e["from"], e["to"]) for e in edges} == EDGES
    assert len(edges) == len(EDGES)


def test_default_project_dir_is_current_directory(tmp_path):
    proj = make(tmp_path / "p")
    res = cli("parse", cwd=proj)
    assert res.exit_code == 0, res.output
    assert set(manifest_of(proj)["nodes"]) == ALL_IDS


def test_parse_summary_counts_nodes_by_kind(tmp_path):
    proj = make(tmp_path / "p")
    res = parse(proj)
    assert "3 source" in res.stdout and "2 transform" in res.stdout and "1 exposure" in res.stdout, res.stdout


def test_node_paths_setting(tmp_path):
    files = {k.replace("nodes/", "pipelines/"): v for k, v in PROJECT.items()}
    files["nodes/stray.yml"] = "kind: transform\nname: stray\ntransform: SELECT 1 AS x\n"
    proj = make(tmp_path / "p", files, marker="name: shop\nnode_paths: [pipelines]\n")
    parse(proj)
    nodes = manifest_of(proj)["nodes"]
    assert set(nodes) == ALL_IDS  # nodes/ is not read when node_paths says otherwise
    assert nodes["transform.revenue"]["file"] == "pipelines/transforms/revenue.yml"


# ---------------------------------------------------------------------------------------------
# determinism and .old


def test_manifest_is_deterministic_across_fresh_copies(tmp_path):
    one = make(tmp_path / "one" / "shop")
    # the second copy: another folder name, files created in the opposite order
    two = make(tmp_path / "two" / "elsewhere", dict(reversed(list(PROJECT.items()))))
    parse(one)
    parse(two)
    a = (one / "target" / "manifest.json").read_bytes()
    b = (two / "target" / "manifest.json").read_bytes()
    assert without_generated_at(a) == without_generated_at(b)
    assert str(tmp_path).encode() not in a  # no absolute paths in the manifest


def test_manifest_is_deterministic_when_some_files_come_from_the_parse_cache(tmp_path):
    one = make(tmp_path / "one" / "shop")
    two = make(tmp_path / "two" / "shop")
    parse(one)
    # edit one file and revert it: the final manifest mixes cached and freshly read files
    rev = one / "nodes/transforms/revenue.yml"
    text = rev.read_text()
    rev.write_text(text.replace("GROUP BY name", "GROUP BY name ORDER BY 2"))
    parse(one)
    rev.write_text(text)
    parse(one)
    parse(two)
    a = (one / "target" / "manifest.json").read_bytes()
    b = (two / "target" / "manifest.json").read_bytes()
    assert without_generated_at(a) == without_generated_at(b)


def test_reparse_unchanged_project_is_byte_identical(tmp_path):
    proj = make(tmp_path / "p")
    parse(proj)
    first = (proj / "target" / "manifest.json").read_bytes()
    res = parse(proj)
    assert "No changes" in res.stdout, res.stdout
    second = (proj / "target" / "manifest.json").read_bytes()
    assert without_generated_at(first) == without_generated_at(second)


def test_manifest_old_keeps_previous_manifest(tmp_path):
    proj = make(tmp_path / "p")
    parse(proj)
    first = (proj / "target" / "manifest.json").read_bytes()
    rev = proj / "nodes/transforms/revenue.yml"
    rev.write_text(rev.read_text().replace("sum(amount)", "sum(amount) * 2"))
    parse(proj)
    assert (proj / "target" / "manifest.json.old").read_bytes() == first
    new = manifest_of(proj)
    assert "* 2" in new["nodes"]["transform.revenue"]["config"]["transform"]
    # a second change: .old is now the second manifest
    second = (proj / "target" / "manifest.json").read_bytes()
    rev.write_text(rev.read_text().replace("* 2", "* 3"))
    parse(proj)
    assert (proj / "target" / "manifest.json.old").read_bytes() == second
    assert not list((proj / "target").glob("*.tmp*")), os.listdir(proj / "target")


def test_parse_recovers_from_an_unreadable_manifest(tmp_path):
    # an unreadable target/manifest.json (hand edit, disk trouble) must not lock `seekrun parse` out:
    # parse is the command that rebuilds it
    proj = make(tmp_path / "p")
    parse(proj)
    (proj / "target" / "manifest.json").write_text('{"nodes": ')
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert set(manifest_of(proj)["nodes"]) == ALL_IDS


# ---------------------------------------------------------------------------------------------
# Seeknal projects


SEEKNAL = {
    "seeknal_project.yml": "name: seeknal_shop\nversion: 1.0.0\nprofile: default\nconfig-version: 1\n",
    "data/orders.csv": "order_id,amount\n1,5.0\n2,7.5\n",
    "seeknal/sources/orders.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        """,
    "seeknal/transforms/clean.yaml": """\
        kind: transform
        name: clean_orders
        inputs:
          - ref: source.orders
        transform: SELECT * FROM source.orders WHERE amount > 0
        ---
        kind: transform
        name: big_orders
        inputs:
          - ref: transform.clean_orders
        transform: SELECT * FROM __THIS__ WHERE amount > 6
        """,
    "seeknal/rules/positive.yml": """\
        kind: rule
        name: positive_amount
        inputs:
          - ref: transform.clean_orders
        rule:
          type: range
          column: amount
          params: {min_val: 0}
        params: {severity: error}
        """,
    # Seeknal's shared config: never nodes. A node-shaped document here would be a duplicate
    # (orders) and a broken ref if seekrun read it as a node.
    "seeknal/common/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/does_not_exist.csv
        ---
        kind: transform
        name: from_common
        inputs: [{ref: source.nope}]
        transform: SELECT 1
        """,
    "seeknal/common/rules.yml": "rules:\n  - id: not_null\n    type: null\n",
    "seeknal/common/transformations.yml": "transformations: [{id: t1, sql: 'SELECT 1'}]\n",
}


def test_seeknal_project(tmp_path):
    proj = write_project(tmp_path / "sk", SEEKNAL)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "common" not in res.output, res.output  # no warnings about seeknal/common
    m = manifest_of(proj)
    assert m["metadata"]["project_name"] == "seeknal_shop"
    nodes = m["nodes"]
    assert set(nodes) == {"source.orders", "transform.clean_orders", "transform.big_orders",
                          "rule.positive_amount"}
    assert nodes["source.orders"]["file"] == "seeknal/sources/orders.yml"
    assert nodes["source.orders"]["config"]["table"] == "data/orders.csv"
    assert nodes["transform.big_orders"]["file"] == "seeknal/transforms/clean.yaml"
    assert nodes["transform.big_orders"]["inputs"] == ["transform.clean_orders"]
    assert {(e["from"], e["to"]) for e in m["edges"]} == {
        ("source.orders", "transform.clean_orders"), ("transform.clean_orders", "transform.big_orders"),
        ("transform.clean_orders", "rule.positive_amount")}


def test_seekrun_marker_does_not_read_seeknal_folder(tmp_path):
    files = {k: v for k, v in SEEKNAL.items() if k != "seeknal_project.yml"}
    files["nodes/.keep"] = ""  # an empty nodes/ folder (a missing one is an error)
    proj = write_project(tmp_path / "sr", files)  # seekrun_project.yml: node path nodes/
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert manifest_of(proj)["nodes"] == {}


def test_file_without_kind_is_not_a_node(tmp_path):
    files = dict(PROJECT)
    files["nodes/notes.yml"] = "owner_contacts:\n  analytics: a@example.com\n"
    proj = make(tmp_path / "p", files)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    # one summary line (issue 11: Seeknal projects hold hundreds of such files); -v lists each
    assert "warning: 1 YAML document is not a node (no 'kind'), ignored: nodes/notes.yml (-v lists them)" \
        in res.stderr
    assert "nodes/notes.yml:1" not in res.output
    assert set(manifest_of(proj)["nodes"]) == ALL_IDS
    verbose = cli("parse", "-p", str(proj), "--verbose")
    assert verbose.exit_code == 0, verbose.output
    assert "nodes/notes.yml:1: not a node (no 'kind'), ignored" in verbose.output, verbose.output


# ---------------------------------------------------------------------------------------------
# Python API


def test_python_api_load_save_and_graph(tmp_path):
    from seekrun import Manifest, ManifestDiff  # noqa: F401  (both are public names)

    files = {
        "data/s.csv": "x\n1\n",
        "nodes/all.yml": """\
            kind: source
            name: s
            source: csv
            table: data/s.csv
            ---
            kind: transform
            name: m
            inputs: [{ref: source.s}]
            transform: SELECT * FROM input_0
            ---
            kind: transform
            name: a
            inputs: [{ref: transform.m}]
            transform: SELECT * FROM input_0
            ---
            kind: transform
            name: b
            inputs: [{ref: source.s}]
            transform: SELECT * FROM input_0
            ---
            kind: transform
            name: z
            inputs: [{ref: transform.a}, {ref: transform.b}]
            transform: SELECT * FROM input_0 UNION ALL SELECT * FROM input_1
            """,
    }
    proj = write_project(tmp_path / "p", files)
    parse(proj)
    path = proj / "target" / "manifest.json"
    m = Manifest.load(path)
    assert set(m.nodes) == {"source.s", "transform.m", "transform.a", "transform.b", "transform.z"}
    assert m.nodes["transform.z"]["inputs"] == ["transform.a", "transform.b"]
    assert {(e["from"], e["to"]) for e in m.edges} == {
        ("source.s", "transform.m"), ("transform.m", "transform.a"), ("source.s", "transform.b"),
        ("transform.a", "transform.z"), ("transform.b", "transform.z")}

    # Kahn with ties by node id: b (ready with m) comes before m; a only after m
    order = m.topological_order()
    assert order == ["source.s", "transform.b", "transform.m", "transform.a", "transform.z"]
    assert m.topological_order() == order

    assert set(m.downstream(["transform.m"])) == {"transform.m", "transform.a", "transform.z"}
    assert set(m.downstream(["transform.b"])) == {"transform.b", "transform.z"}
    assert set(m.upstream(["transform.a"])) == {"transform.a", "transform.m", "source.s"}
    assert set(m.upstream(["transform.z"])) == set(m.nodes)

    copy = tmp_path / "elsewhere" / "copy.json"
    copy.parent.mkdir()
    m.save(copy)
    again = Manifest.load(copy)
    assert again.nodes == m.nodes
    assert again.metadata == m.metadata
    assert [(e["from"], e["to"]) for e in again.edges] == [(e["from"], e["to"]) for e in m.edges]
    assert json.loads(copy.read_text()) == json.loads(path.read_text())


def test_help_does_not_import_duckdb(tmp_path):
    res = cli_proc("--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert res.exit_code == 0, res.stderr[-2000:]
    assert "parse" in res.stdout
    imported = [ln.rsplit("|", 1)[-1].strip() for ln in res.stderr.splitlines() if ln.startswith("import time:")]
    assert "typer" in imported  # the import log was captured
    assert not [n for n in imported if n == "duckdb" or n.startswith("duckdb.")], "seekrun --help imported duckdb"


def test_help_does_not_import_duckdb_in_process_check(tmp_path):
    import subprocess

    # the typer app itself (the entry point leaves with os._exit, so nothing could be checked after it)
    code = ("import sys\n"
            "from seekrun.cli import app\n"
            "try:\n    app(['--help'])\n"
            "except SystemExit:\n    pass\n"
            "print('DUCKDB' if 'duckdb' in sys.modules else 'CLEAN')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "CLEAN", proc.stdout[-500:]
