"""Issue 2: the manifest diff, as `seekrun parse` prints it (text and --json) and as the ManifestDiff API."""
from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from conftest import cli, write_project

FILES = {
    "data/orders.csv": "order_id,customer_id,amount\n1,10,5.0\n2,11,7.5\n",
    "data/customers.csv": "customer_id,name\n10,ann\n11,bob\n",
    "data/returns.csv": "order_id,reason\n2,broken\n",
    "nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: data/customers.csv
        """,
    "nodes/clean_orders.yml": """\
        kind: transform
        name: clean_orders
        description: orders with a positive amount
        tags: [daily]
        inputs:
          - ref: source.orders
        transform: |
          SELECT order_id, customer_id, amount
          FROM ref('source.orders')
          WHERE amount > 0
        """,
    "nodes/by_customer.yml": """\
        kind: transform
        name: by_customer
        inputs:
          - ref: transform.clean_orders
          - ref: source.customers
        transform: |
          SELECT c.name, sum(o.amount) AS revenue
          FROM input_0 o JOIN input_1 c USING (customer_id)
          GROUP BY c.name
        """,
    "nodes/rules.yml": """\
        kind: rule
        name: old_check
        inputs:
          - ref: transform.clean_orders
        rule: {type: uniqueness, columns: [order_id]}
        """,
}


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    p = write_project(tmp_path / "shop", FILES)
    old = time.time() - 100
    for f in (p / "data").iterdir():
        os.utime(f, (old, old))
    res = cli("parse", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert "every node is new" in res.stdout or "+ source.orders" in res.stdout, res.stdout
    return p


def parse(p: Path, *args: str):
    res = cli("parse", "-p", str(p), *args)
    assert res.exit_code == 0, res.output
    return res


def diff_lines(res) -> list[str]:
    return [ln for ln in res.stdout.splitlines() if ln[:2] in ("+ ", "- ", "~ ")]


def replace_in(p: Path, rel: str, old: str, new: str) -> None:
    path = p / rel
    text = path.read_text()
    assert old in text, (rel, old)
    path.write_text(text.replace(old, new))


def put(p: Path, rel: str, text: str) -> None:
    (p / rel).write_text(textwrap.dedent(text))


# ---------------------------------------------------------------------------------------------
# `seekrun parse` text output


def test_no_changes(proj):
    res = parse(proj)
    assert diff_lines(res) == []
    assert "No changes" in res.stdout, res.stdout


def test_added_source(proj):
    put(proj, "nodes/returns.yml", "kind: source\nname: returns\nsource: csv\ntable: data/returns.csv\n")
    assert diff_lines(parse(proj)) == ["+ source.returns"]


def test_removed_nodes(proj):
    (proj / "nodes/rules.yml").unlink()
    (proj / "nodes/by_customer.yml").unlink()
    assert sorted(diff_lines(parse(proj))) == ["- rule.old_check", "- transform.by_customer"]


def test_sql_change(proj):
    replace_in(proj, "nodes/clean_orders.yml", "amount > 0", "amount >= 1")
    assert diff_lines(parse(proj)) == ["~ transform.clean_orders (transform SQL)"]


def test_sql_string_literal_change_is_build_affecting(proj):
    replace_in(proj, "nodes/by_customer.yml", "GROUP BY c.name", "WHERE c.name <> 'ann' GROUP BY c.name")
    parse(proj)
    replace_in(proj, "nodes/by_customer.yml", "'ann'", "'bob'")
    assert diff_lines(parse(proj)) == ["~ transform.by_customer (transform SQL)"]


@pytest.mark.parametrize("old,new,field", [
    ("description: orders with a positive amount", "description: only paid orders", "description"),
    ("tags: [daily]", "tags: [daily, finance]", "tags"),
    ("tags: [daily]", "tags: [daily]\nowner: finance-team", "owner"),
    ("tags: [daily]", "tags: [daily]\ncolumns:\n  order_id: the order key", "columns"),
], ids=["description", "tags", "owner", "columns"])
def test_metadata_only_change(proj, old, new, field):
    replace_in(proj, "nodes/clean_orders.yml", old, new)
    res = parse(proj)
    lines = diff_lines(res)
    assert len(lines) == 1, res.stdout
    line = lines[0]
    assert line.startswith("~ transform.clean_orders ("), line
    assert field in line and "metadata" in line, line
    assert "SQL" not in line


def test_whitespace_only_sql_change_is_formatting_only(proj):
    put(proj, "nodes/clean_orders.yml", """\
        kind: transform
        name: clean_orders
        description: orders with a positive amount
        tags: [daily]
        inputs:
          - ref: source.orders
        transform: |
          SELECT order_id,
                 customer_id,
                 amount   -- kept as is
          FROM   ref('source.orders')
          WHERE  amount > 0
        """)
    res = parse(proj)
    lines = diff_lines(res)
    assert len(lines) == 1, res.stdout
    assert lines[0].startswith("~ transform.clean_orders ("), lines[0]
    assert "formatting only" in lines[0], lines[0]
    assert lines[0] != "~ transform.clean_orders (transform SQL)"


def test_input_change(proj):
    put(proj, "nodes/returns.yml", "kind: source\nname: returns\nsource: csv\ntable: data/returns.csv\n")
    parse(proj)
    replace_in(proj, "nodes/rules.yml", "- ref: transform.clean_orders", "- ref: source.returns")
    assert diff_lines(parse(proj)) == ["~ rule.old_check (inputs)"]


def test_source_data_change(proj):
    (proj / "data/orders.csv").write_text("order_id,customer_id,amount\n1,10,5.0\n2,11,8.5\n")
    assert diff_lines(parse(proj)) == ["~ source.orders (source data)"]


def test_touched_source_is_no_change(proj):
    os.utime(proj / "data/orders.csv")
    res = parse(proj)
    assert diff_lines(res) == []
    assert "No changes" in res.stdout


def test_reader_params_change(proj):
    replace_in(proj, "nodes/sources.yml", "table: data/customers.csv", "table: data/customers.csv\nparams: {header: true}")
    assert diff_lines(parse(proj)) == ["~ source.customers (reader params)"]


def test_several_edits_at_once(proj):
    put(proj, "nodes/returns.yml", "kind: source\nname: returns\nsource: csv\ntable: data/returns.csv\n")
    (proj / "nodes/rules.yml").unlink()
    replace_in(proj, "nodes/clean_orders.yml", "amount > 0", "amount > 1")
    replace_in(proj, "nodes/by_customer.yml", "kind: transform", "kind: transform\ndescription: revenue")
    res = parse(proj)
    lines = diff_lines(res)
    assert len(lines) == 4, res.stdout
    assert "+ source.returns" in lines
    assert "- rule.old_check" in lines
    assert "~ transform.clean_orders (transform SQL)" in lines
    meta = [ln for ln in lines if ln.startswith("~ transform.by_customer (")]
    assert meta and "metadata" in meta[0], lines


# ---------------------------------------------------------------------------------------------
# --json


def test_json_output(proj):
    put(proj, "nodes/returns.yml", "kind: source\nname: returns\nsource: csv\ntable: data/returns.csv\n")
    (proj / "nodes/rules.yml").unlink()
    replace_in(proj, "nodes/clean_orders.yml", "amount > 0", "amount > 1")
    replace_in(proj, "nodes/clean_orders.yml", "tags: [daily]", "tags: [hourly]")
    replace_in(proj, "nodes/by_customer.yml", "sum(o.amount)", "sum( o.amount )")
    res = parse(proj, "--json")
    data = json.loads(res.stdout)  # stdout is JSON only
    diff = data["diff"] if "diff" in data else data
    assert diff["added"] == ["source.returns"]
    assert diff["removed"] == ["rule.old_check"]
    modified = diff["modified"]
    assert set(modified) == {"transform.clean_orders", "transform.by_customer"}

    def flags(nid):
        return {c["field"]: c["build_affecting"] for c in modified[nid]}

    assert flags("transform.clean_orders") == {"transform": True, "tags": False}
    assert flags("transform.by_customer") == {"transform": False}
    edges = {(e["from"], e["to"]) for e in diff["removed_edges"]}
    assert edges == {("transform.clean_orders", "rule.old_check")}
    assert diff["added_edges"] == []


def test_json_output_without_changes(proj):
    data = json.loads(parse(proj, "--json").stdout)
    diff = data["diff"] if "diff" in data else data
    assert diff["added"] == [] and diff["removed"] == [] and diff["modified"] == {}


# ---------------------------------------------------------------------------------------------
# ManifestDiff API


def _edges(items) -> set[tuple[str, str]]:
    return {(e["from"], e["to"]) if isinstance(e, dict) else tuple(e) for e in items}


def _load(p: Path):
    from seekrun import Manifest

    return Manifest.load(p / "target/manifest.json.old"), Manifest.load(p / "target/manifest.json")


def test_manifest_diff_api(proj):
    from seekrun import ManifestDiff

    put(proj, "nodes/returns.yml", "kind: source\nname: returns\nsource: csv\ntable: data/returns.csv\n")
    (proj / "nodes/rules.yml").unlink()
    replace_in(proj, "nodes/clean_orders.yml", "description: orders with a positive amount",
               "description: paid orders")
    replace_in(proj, "nodes/by_customer.yml", "  - ref: source.customers\n",
               "  - ref: source.customers\n  - ref: source.returns\n")
    replace_in(proj, "nodes/by_customer.yml", "GROUP BY", "WHERE o.order_id NOT IN (SELECT order_id FROM input_2)\n  GROUP BY")
    parse(proj)
    old, new = _load(proj)
    d = ManifestDiff(old, new)
    assert list(d.added) == ["source.returns"]
    assert list(d.removed) == ["rule.old_check"]
    assert set(d.modified) == {"transform.clean_orders", "transform.by_customer"}
    clean = {c.field: c.build for c in d.modified["transform.clean_orders"]}
    assert clean == {"description": False}
    by_cust = {c.field: c.build for c in d.modified["transform.by_customer"]}
    assert by_cust.get("inputs") is True and by_cust.get("transform") is True, by_cust
    assert _edges(d.added_edges) == {("source.returns", "transform.by_customer")}
    assert _edges(d.removed_edges) == {("transform.clean_orders", "rule.old_check")}
    assert set(d.downstream(["source.returns"])) == {"source.returns", "transform.by_customer"}
    assert set(d.downstream(["source.orders"])) == {"source.orders", "transform.clean_orders",
                                                    "transform.by_customer"}


def test_manifest_diff_whitespace_is_not_build_affecting(proj):
    from seekrun import ManifestDiff

    replace_in(proj, "nodes/clean_orders.yml", "WHERE amount > 0", "WHERE   amount>0   -- positive")
    parse(proj)
    d = ManifestDiff(*_load(proj))
    changes = d.modified["transform.clean_orders"]
    assert [c.field for c in changes] == ["transform"]
    assert changes[0].build is False
    assert not d.added and not d.removed and not d.added_edges and not d.removed_edges


def test_manifest_diff_source_data(proj):
    from seekrun import ManifestDiff

    (proj / "data/customers.csv").write_text("customer_id,name\n10,ann\n11,bob\n12,cy\n")
    parse(proj)
    d = ManifestDiff(*_load(proj))
    assert set(d.modified) == {"source.customers"}
    assert all(c.build for c in d.modified["source.customers"])
    assert set(d.downstream(["source.customers"])) == {"source.customers", "transform.by_customer"}


def test_manifest_diff_against_nothing(proj):
    from seekrun import Manifest, ManifestDiff

    new = Manifest.load(proj / "target/manifest.json")
    d = ManifestDiff(None, new)
    assert set(d.added) == set(new.nodes)
    assert not d.removed and not d.modified
