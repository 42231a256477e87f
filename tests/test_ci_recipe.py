"""Issue 15: the README's "In CI" recipe, end to end (minus GitHub): a production build in one
folder, a pull request's copy with one SQL edit and one CSV edit, and the CI commands in a
third folder that has only production's target/ as an artifact:

    seekrun run -s state:modified+ --defer --state prod
    seekrun diff --state prod --data --format markdown
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import cli, query, ran, run_results, table, write_project

#   source.customers --\
#                       > transform.customer_orders -> rule.no_negative
#   source.orders -> transform.clean_orders --/
#                 \-> transform.order_days            (not downstream of either edit)
#   source.products -> transform.product_list          (not downstream of either edit)
FILES = {
    "data/customers.csv": "customer_id,name\n1,Ann\n2,Bob\n3,Cy\n",
    "data/orders.csv": "order_id,customer_id,amount,status\n10,1,5.0,done\n11,1,7.5,done\n12,2,3.0,open\n"
                       "13,3,9.0,done\n",
    "data/products.csv": "product_id,title\n1,tea\n2,cake\n",
    "nodes/customers.yml": "kind: source\nname: customers\nsource: csv\ntable: data/customers.csv\n",
    "nodes/orders.yml": "kind: source\nname: orders\nsource: csv\ntable: data/orders.csv\n",
    "nodes/products.yml": "kind: source\nname: products\nsource: csv\ntable: data/products.csv\n",
    "nodes/clean_orders.yml": "kind: transform\nname: clean_orders\ninputs: [{ref: source.orders}]\n"
                              "transform: SELECT order_id, customer_id, amount FROM input_0 WHERE status = 'done'\n",
    "nodes/order_days.yml": "kind: transform\nname: order_days\ninputs: [{ref: source.orders}]\n"
                            "transform: SELECT count(*) AS n FROM input_0\n",
    "nodes/customer_orders.yml": "kind: transform\nname: customer_orders\n"
                                 "description: spend per customer\n"
                                 "inputs: [{ref: source.customers}, {ref: transform.clean_orders}]\n"
                                 "transform: |\n  SELECT c.customer_id, c.name, sum(o.amount) AS spent\n"
                                 "  FROM input_0 c LEFT JOIN input_1 o USING (customer_id) GROUP BY ALL\n",
    "nodes/no_negative.yml": "kind: rule\nname: no_negative\ninputs: [{ref: transform.customer_orders}]\n"
                             "rule: {type: sql_assertion, sql: \"SELECT * FROM input_0 WHERE spent < 0\"}\n",
    "nodes/product_list.yml": "kind: transform\nname: product_list\ninputs: [{ref: source.products}]\n"
                              "transform: SELECT * FROM input_0\n",
}
CHANGED_RUN = {"source.customers", "transform.clean_orders", "transform.customer_orders", "rule.no_negative"}


def ok(*args):
    res = cli(*args)
    assert res.exit_code == 0, res.output
    return res


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pr_edits(root: Path) -> None:
    """One SQL edit and one CSV edit."""
    sql = root / "nodes" / "clean_orders.yml"
    sql.write_text(sql.read_text().replace("WHERE status = 'done'", "WHERE status IN ('done', 'open')"))
    (root / "data" / "customers.csv").write_text("customer_id,name\n1,Ann\n2,Bob\n3,Cyd\n4,Dee\n")


@pytest.fixture
def folders(tmp_path):
    prod = write_project(tmp_path / "prod_checkout", FILES)
    ok("run", "-p", str(prod))
    pr = tmp_path / "pr"
    shutil.copytree(prod, pr, ignore=shutil.ignore_patterns("target"))
    pr_edits(pr)
    ci = tmp_path / "ci"
    shutil.copytree(pr, ci)
    shutil.copytree(prod / "target", ci / "prod")  # the artifact: manifest, state, database
    ok("run", "-p", str(pr))  # the PR built in full: what CI must agree with
    return prod, pr, ci


def test_the_ci_recipe_builds_the_change_on_production_data(folders):
    prod, pr, ci = folders
    state_db = ci / "prod" / "seekrun.duckdb"
    before = (digest(state_db), state_db.stat().st_mtime_ns, sorted(p.name for p in (ci / "prod").iterdir()))

    res = ok("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    results = run_results(ci)
    assert ran(ci) == CHANGED_RUN
    deferred = {n for n, r in results.items() if r["deferred_from"] is not None}
    assert deferred == {"source.orders"}  # what the built nodes read and CI did not build
    assert results["source.orders"]["status"] == "skipped" and results["source.orders"]["skip"] == "deferred"
    assert results["source.orders"]["deferred_from"] == str(ci / "prod")
    assert all(r["deferred_from"] is None for n, r in results.items() if n != "source.orders")
    assert "1 deferred" in res.output
    # the tables CI built are the PR's full build's
    for nid in CHANGED_RUN - {"rule.no_negative"}:
        assert table(ci, nid) == table(pr, nid), nid
    assert table(ci, "transform.customer_orders") == [(1, "Ann", 12.5), (2, "Bob", 3.0), (3, "Cyd", 9.0),
                                                      (4, "Dee", None)]
    # deferral wrote nothing to production's folder, and left no view behind here
    assert (digest(state_db), state_db.stat().st_mtime_ns, sorted(p.name for p in (ci / "prod").iterdir())) == before
    assert query(ci, "SELECT count(*) FROM duckdb_views() WHERE comment LIKE 'seekrun-defer:%'") == [(0,)]
    assert query(ci, "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'source' AND table_name = 'orders'") \
        == [(0,)]

    # the reviewer's comment
    md = ok("diff", "-p", str(ci), "--state", str(ci / "prod"), "--data", "--format", "markdown").stdout
    assert md.splitlines()[0] == (f"**2 nodes differ from `{ci / 'prod'}`: 0 added, 0 removed, 2 modified "
                                  "(0 metadata only); 2 downstream**")
    assert "| `source.customers` | modified | source data | 2 | 3 → 4 |" in md
    assert "| `transform.clean_orders` | modified | transform SQL | 2 | 3 → 4 |" in md
    assert "| `transform.customer_orders` | affected | downstream of `source.customers`, " \
           "`transform.clean_orders` |  | 3 → 4 |" in md
    assert "<details><summary><code>source.customers</code>: +2 −1 rows</summary>" in md
    assert "| 3 | Cyd |" in md and "| 4 | Dee |" in md
    # keyed: rows added, removed and changed
    keyed = json.loads(ok("diff", "-p", str(ci), "--state", str(ci / "prod"), "--data", "--key", "customer_id",
                          "--format", "json").stdout)
    d = keyed["data"]["transform.customer_orders"]
    assert (d["rows_before"], d["rows_after"], d["rows_added"], d["rows_removed"], d["rows_changed"]) == \
        (3, 4, 1, 0, 2)
    assert d["samples"]["added"] == [{"customer_id": 4, "name": "Dee", "spent": None}]
    assert {c["key"]["customer_id"] for c in d["samples"]["changed"]} == {2, 3}

    # CI keeps target/state between runs: the same command again builds nothing (the traces)
    ok("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    assert ran(ci) == set()
    # a plain run there builds the rest: then everything equals the PR's full build
    ok("run", "-p", str(ci))
    assert ran(ci) == {"source.orders", "source.products", "transform.order_days", "transform.product_list"}
    for nid in run_results(pr):
        if not nid.startswith("rule."):
            assert table(ci, nid) == table(pr, nid), nid


def test_diff_text_json_and_exit_code(folders):
    prod, pr, ci = folders
    res = cli("diff", "-p", str(ci), "--state", str(ci / "prod"), "--exit-code")
    assert res.exit_code == 1
    assert "~ source.customers: source data (2 downstream)" in res.stdout
    assert "~ transform.clean_orders: transform SQL (2 downstream)" in res.stdout
    data = json.loads(ok("diff", "-p", str(ci), "--state", str(ci / "prod"), "--format", "json").stdout)
    assert [m["node"] for m in data["modified"]] == ["source.customers", "transform.clean_orders"]
    assert data["modified"][1]["changes"] == [{"field": "transform", "label": "transform SQL",
                                               "build_affecting": True}]
    # a description only: listed as metadata, selects nothing to run
    (ci / "nodes" / "product_list.yml").write_text(FILES["nodes/product_list.yml"] + "description: all products\n")
    data = json.loads(ok("diff", "-p", str(ci), "--state", str(ci / "prod"), "--format", "json").stdout)
    meta = [m for m in data["modified"] if m["node"] == "transform.product_list"]
    assert meta and meta[0]["metadata_only"] is True
    res = ok("run", "-p", str(ci), "--dry-run", "--json", "-s", "state:modified", "--state", str(ci / "prod"),
             "--defer")
    planned = {r["node_id"] for r in json.loads(res.stdout)["results"] if r["status"] == "pending"}
    assert planned == {"source.customers", "transform.clean_orders"}
    # without --defer, a selected node whose input was never built here cannot run: said so
    res = ok("run", "-p", str(ci), "--dry-run", "--json", "-s", "state:modified", "--state", str(ci / "prod"))
    skipped = json.loads(res.stdout)["results"]
    assert {r["node_id"] for r in skipped if r["status"] == "pending"} == {"source.customers"}
    # the same project against itself: nothing differs, exit 0 even with --exit-code
    res = cli("diff", "-p", str(prod), "--state", str(ci / "prod"), "--exit-code")
    assert res.exit_code == 0 and res.stdout.startswith("No differences from"), res.output
    # removed nodes show in diff
    (ci / "nodes" / "product_list.yml").unlink()
    res = ok("diff", "-p", str(ci), "--state", str(ci / "prod"))
    assert "- transform.product_list" in res.stdout


def test_defer_errors_are_clear(folders, tmp_path):
    prod, pr, ci = folders
    res = cli("run", "-p", str(ci), "-s", "state:modified+", "--defer")
    assert res.exit_code == 2 and "--defer needs --state DIR" in res.output
    res = cli("run", "-p", str(ci), "--state", str(tmp_path / "nowhere"))
    assert res.exit_code == 2 and "--state: no such folder" in res.output
    # a deferred table the state's database does not have: named, with the database
    broken = tmp_path / "broken"
    shutil.copytree(ci / "prod", broken)
    import duckdb

    con = duckdb.connect(str(broken / "seekrun.duckdb"))
    con.execute('DROP TABLE "source"."orders"')
    con.close()
    res = cli("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(broken))
    assert res.exit_code == 2, res.output
    assert f"--defer: the state's database {broken / 'seekrun.duckdb'} does not hold source.orders as its state" \
        in res.output
    assert not (ci / "target" / "run_results.json").exists()
    assert query(ci, "SELECT count(*) FROM duckdb_views() WHERE comment LIKE 'seekrun-defer:%'") == [(0,)]
    # a build that never built the input: said before anything is written
    unbuilt = tmp_path / "unbuilt"
    shutil.copytree(ci / "prod", unbuilt)
    state = json.loads((unbuilt / "state" / "execution_state.json").read_text())
    del state["nodes"]["source.orders"]
    del state["meta"]["database"]["tables"]["source.orders"]
    (unbuilt / "state" / "execution_state.json").write_text(json.dumps(state))
    con = duckdb.connect(str(unbuilt / "seekrun.duckdb"))
    con.execute('DROP TABLE "source"."orders"')
    con.close()
    shutil.rmtree(ci / "target")
    res = cli("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(unbuilt))
    assert res.exit_code == 2, res.output
    assert "source.orders (read by transform.clean_orders)" in res.output
    assert str(unbuilt / "seekrun.duckdb") in res.output
    assert not (ci / "target" / "seekrun.duckdb").exists()


def test_a_fresh_checkout_takes_what_production_parsed_byte_for_byte(folders):
    """A CI checkout has no parse cache: with --state, a YAML node file whose bytes are the ones
    production parsed takes production's records; only the edited files are read, and the
    manifest is the one a full parse gives."""
    from seekrun.cli_state import load_state
    from seekrun.parser.parse import parse_project
    from seekrun.project import find_project

    prod, pr, ci = folders
    project = find_project(ci)
    load_state(ci / "prod", None, project)
    borrowed = parse_project(project)
    assert borrowed.parse_cache.reads == 1  # nodes/clean_orders.yml, the SQL edit
    shutil.rmtree(ci / "target", ignore_errors=True)
    full = parse_project(find_project(ci), use_cache=False)
    assert borrowed.manifest.content_bytes() == full.manifest.content_bytes()
    # a node file edited since production parsed it is read, never lent
    (ci / "nodes" / "order_days.yml").write_text(FILES["nodes/order_days.yml"].replace("count(*)", "count(1)"))
    project = find_project(ci)
    load_state(ci / "prod", None, project)
    again = parse_project(project, use_cache=False)
    assert again.parse_cache.reads == 2  # clean_orders.yml and order_days.yml
    assert "count(1)" in again.manifest.nodes["transform.order_days"]["config"]["transform"]


def test_diff_data_never_shows_rows_built_from_env_vars_and_a_wrong_key_is_an_error(tmp_path, monkeypatch):
    files = {**FILES, "nodes/tokened.yml": "kind: transform\nname: tokened\ninputs: [{ref: source.customers}]\n"
                                           "transform: SELECT customer_id, '{{ env_var(\"SHOP_TOKEN\") }}' AS tok "
                                           "FROM input_0\n"}
    monkeypatch.setenv("SHOP_TOKEN", "prod-Zq8wLmN4pR7t")
    prod = write_project(tmp_path / "prod", files)
    ok("run", "-p", str(prod))
    ci = tmp_path / "ci"
    shutil.copytree(prod, ci, ignore=shutil.ignore_patterns("target"))
    shutil.copytree(prod / "target", ci / "prod")
    monkeypatch.setenv("SHOP_TOKEN", "ci-Yx2KwQ9vB3nM")
    ok("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    assert ran(ci) == {"transform.tokened"}  # the env value changed (its keyed hash, borrowed key)
    for fmt in ("markdown", "json", "text"):
        out = ok("diff", "-p", str(ci), "--state", str(ci / "prod"), "--data", "--format", fmt).stdout
        assert "prod-Zq8wLmN4pR7t" not in out and "ci-Yx2KwQ9vB3nM" not in out, out
    data = json.loads(ok("diff", "-p", str(ci), "--state", str(ci / "prod"), "--data", "--format", "json").stdout)
    d = data["data"]["transform.tokened"]
    assert (d["rows_added"], d["rows_removed"]) == (3, 3) and d["samples"]["added"] == []
    assert d["samples_hidden"].startswith("built from env_var() values")
    res = cli("diff", "-p", str(ci), "--state", str(ci / "prod"), "--data", "--key", "customer_idd")
    assert res.exit_code == 2 and "--key customer_idd: no changed table has this column (did you mean " \
        "'customer_id'?)" in res.output, res.output
