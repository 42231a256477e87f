"""seekrun.datadiff (the data of two builds compared in DuckDB) and seekrun.diffreport (the
text, markdown and JSON of `seekrun diff`), on real DuckDB files in tmp_path."""
from __future__ import annotations

import json

import duckdb
import pytest

from seekrun.datadiff import data_diff
from seekrun.diffreport import render
from seekrun.errors import ProjectError

OLD_SQL = '''
CREATE SCHEMA transform; CREATE SCHEMA source; CREATE SCHEMA metric;
CREATE TABLE transform.orders AS SELECT i::INTEGER AS order_id, (i * 10)::INTEGER AS amount,
  'open' AS status, i::INTEGER AS qty, DATE '2024-01-01' + i::INTEGER AS day FROM range(1, 13) t(i);
CREATE TABLE source.events (name VARCHAR, n INTEGER);
INSERT INTO source.events VALUES ('a', 1), ('a', 1), ('b', 2);
CREATE TABLE transform.gone AS SELECT 1 AS x;
CREATE TABLE transform.dups (order_id INTEGER, v INTEGER);
INSERT INTO transform.dups VALUES (1, 1), (1, 2), (2, 1), (2, 2), (3, 3);
CREATE TABLE transform."Odd Table" ("Order ID" INTEGER, "say ""hi""" VARCHAR, "Amount" DECIMAL(10,2));
INSERT INTO transform."Odd Table" VALUES (1, 'x', 1.50), (2, 'y', 2.00);
CREATE VIEW metric.revenue AS SELECT sum(amount) AS total FROM transform.orders;
'''
NEW_SQL = '''
CREATE SCHEMA transform; CREATE SCHEMA source; CREATE SCHEMA metric;
CREATE TABLE transform.orders AS SELECT i::INTEGER AS order_id, (i * 10)::INTEGER AS amount,
  'open' AS status, i::BIGINT AS qty, DATE '2024-01-01' + i::INTEGER AS day, 0.5 AS discount
  FROM range(3, 20) t(i);
UPDATE transform.orders SET amount = amount + 1 WHERE order_id IN (4, 6);
UPDATE transform.orders SET status = 'shipped' WHERE order_id IN (6, 8);
CREATE TABLE source.events (name VARCHAR, n INTEGER);
INSERT INTO source.events VALUES ('a', 1), ('b', 2), ('b', 2), ('c', 3);
CREATE TABLE transform.fresh AS SELECT 1 AS x UNION ALL SELECT 2;
CREATE TABLE transform.dups (order_id INTEGER, v INTEGER);
INSERT INTO transform.dups VALUES (1, 1), (2, 2), (3, 3);
CREATE TABLE transform."Odd Table" ("Order ID" INTEGER, "say ""hi""" VARCHAR, "Amount" DECIMAL(10,2));
INSERT INTO transform."Odd Table" VALUES (1, 'x|y
<b>', 1.50), (3, 'z', 3.25);
CREATE VIEW metric.revenue AS SELECT sum(amount) AS total FROM transform.orders;
'''


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbs")
    paths = {}
    for side, sql in (("new", NEW_SQL), ("old", OLD_SQL)):
        paths[side] = root / side / "seekrun.duckdb"
        paths[side].parent.mkdir()
        con = duckdb.connect(str(paths[side]))
        con.execute(sql)
        con.close()
    return paths["new"], paths["old"]


def diff(dbs, tables, samples=5):
    return data_diff(dbs[0], dbs[1], tables, samples=samples)


def test_keyed_counts_schema_and_changed_samples(dbs):
    d = diff(dbs, [("transform.orders", ["order_id"])])["transform.orders"]
    assert (d["rows_before"], d["rows_after"], d["missing"], d["error"]) == (12, 17, None, None)
    assert d["key"] == ["order_id"]
    assert d["columns_added"] == [{"name": "discount", "type": "DECIMAL(2,1)"}]
    assert d["columns_removed"] == []
    assert d["columns_retyped"] == [{"name": "qty", "before": "INTEGER", "after": "BIGINT"}]
    # 13..19 added, 1 and 2 removed, 4, 6, 8 changed (qty 1 -> 1 as BIGINT is not a change)
    assert (d["rows_added"], d["rows_removed"], d["rows_changed"]) == (7, 2, 3)
    assert d["samples"]["changed"] == [
        {"key": {"order_id": 4}, "before": {"amount": 40}, "after": {"amount": 41}},
        {"key": {"order_id": 6}, "before": {"amount": 60, "status": "open"},
         "after": {"amount": 61, "status": "shipped"}},
        {"key": {"order_id": 8}, "before": {"status": "open"}, "after": {"status": "shipped"}}]
    assert d["samples"]["removed"] == [
        {"order_id": 1, "amount": 10, "status": "open", "qty": 1, "day": "2024-01-02"},
        {"order_id": 2, "amount": 20, "status": "open", "qty": 2, "day": "2024-01-03"}]


def test_samples_are_limited_and_ordered_by_key(dbs):
    d = diff(dbs, [("transform.orders", ["order_id"])])["transform.orders"]
    assert [r["order_id"] for r in d["samples"]["added"]] == [13, 14, 15, 16, 17]
    assert d["samples"]["added"][0] == {"order_id": 13, "amount": 130, "status": "open",
                                        "qty": 13, "day": "2024-01-14", "discount": "0.5"}
    d2 = diff(dbs, [("transform.orders", ["order_id"])], samples=2)["transform.orders"]
    assert [r["order_id"] for r in d2["samples"]["added"]] == [13, 14]
    assert [c["key"]["order_id"] for c in d2["samples"]["changed"]] == [4, 6]
    assert d2["rows_added"] == 7  # the counts do not depend on the samples
    d0 = diff(dbs, [("transform.orders", ["order_id"])], samples=0)["transform.orders"]
    assert d0["samples"] == {"added": [], "removed": [], "changed": []}
    assert json.loads(json.dumps(d)) == d


def test_without_a_key_rows_are_multisets(dbs):
    d = diff(dbs, [("source.events", None)])["source.events"]
    # old a,a,b  new a,b,b,c: one a gone; one more b and a c
    assert (d["rows_before"], d["rows_after"]) == (3, 4)
    assert (d["rows_added"], d["rows_removed"], d["rows_changed"]) == (2, 1, None)
    assert d["samples"] == {"added": [{"name": "b", "n": 2}, {"name": "c", "n": 3}],
                            "removed": [{"name": "a", "n": 1}], "changed": []}
    assert d["key"] is None and d["error"] is None


def test_a_table_missing_on_one_side(dbs):
    out = diff(dbs, [("transform.gone", None), ("transform.fresh", ["x"])])
    assert out["transform.gone"]["missing"] == "after"
    assert (out["transform.gone"]["rows_before"], out["transform.gone"]["rows_after"]) == (1, None)
    assert out["transform.fresh"]["missing"] == "before"
    assert (out["transform.fresh"]["rows_before"], out["transform.fresh"]["rows_after"]) == (None, 2)
    assert out["transform.fresh"]["rows_added"] is None
    assert out["transform.fresh"]["error"] is None


def test_key_errors_are_per_table(dbs):
    out = diff(dbs, [("transform.orders", ["discount"]), ("transform.dups", ["order_id"]),
                     ("source.events", ["name", "nope"]), ("metric.revenue", None)])
    assert out["transform.orders"]["error"] == (
        "key column discount is not in the state's table transform.orders: "
        "pass --key with its columns")
    assert out["transform.dups"]["error"] == (
        "key order_id is not unique in the state's transform.dups (2 duplicate keys): "
        "pass --key with columns that identify a row")
    assert out["source.events"]["error"] == (
        "key column nope is not in the new table source.events: pass --key with its columns")
    assert out["transform.orders"]["rows_added"] is None
    assert out["transform.orders"]["columns_added"][0]["name"] == "discount"
    # the view of a metric is diffed too: sum(10..120)=780 before, other rows now
    view = out["metric.revenue"]
    assert (view["rows_before"], view["rows_after"], view["error"]) == (1, 1, None)
    assert (view["rows_added"], view["rows_removed"]) == (1, 1)
    assert view["samples"]["removed"] == [{"total": 780}]


def test_identifiers_with_spaces_quotes_and_upper_case(dbs):
    d = diff(dbs, [("transform.Odd Table", ["Order ID"])])["transform.Odd Table"]
    assert d["error"] is None
    assert (d["rows_added"], d["rows_removed"], d["rows_changed"]) == (1, 1, 1)
    assert d["samples"]["changed"] == [{"key": {"Order ID": 1}, "before": {'say "hi"': "x"},
                                        "after": {'say "hi"': "x|y\n<b>"}}]
    assert d["samples"]["added"] == [{"Order ID": 3, 'say "hi"': "z", "Amount": "3.25"}]
    assert d["samples"]["removed"] == [{"Order ID": 2, 'say "hi"': "y", "Amount": "2.00"}]
    # --key spelled in another case finds the column, as SQL would
    assert diff(dbs, [("transform.Odd Table", ["order id"])])["transform.Odd Table"][
        "rows_changed"] == 1


def test_the_database_files_are_not_touched(dbs):
    def snapshot():
        return {p: (p.read_bytes(), p.stat().st_mtime_ns, sorted(x.name for x in p.parent.iterdir()))
                for p in dbs}
    before = snapshot()
    diff(dbs, [("transform.orders", ["order_id"]), ("source.events", None),
               ("transform.dups", ["order_id"]), ("transform.gone", None)])
    assert snapshot() == before


def test_a_database_that_cannot_be_opened(dbs, tmp_path):
    bad = tmp_path / "nothing.duckdb"
    with pytest.raises(ProjectError) as err:
        data_diff(dbs[0], bad, [("transform.orders", None)])
    [diag] = err.value.diagnostics
    assert diag.path == str(bad) and diag.message.startswith(f"cannot open {bad}: ")
    assert not bad.exists()


def report(data=None):
    r = {"state": "prod/target",
         "added": [{"node": "transform.fresh", "kind": "transform", "downstream": 2}],
         "removed": [{"node": "transform.gone", "kind": "transform"}],
         "modified": [{"node": "transform.orders", "kind": "transform", "metadata_only": False,
                       "changes": [{"field": "transform", "label": "transform SQL",
                                    "build_affecting": True},
                                   {"field": "data", "label": "source data",
                                    "build_affecting": True}], "downstream": 3},
                      {"node": "transform.Odd Table", "kind": "transform", "metadata_only": True,
                       "changes": [{"field": "description", "label": "description",
                                    "build_affecting": False}], "downstream": 0}],
         "affected": [{"node": "metric.revenue", "upstream": ["transform.orders"]}]}
    if data is not None:
        r["data"] = data
    return r


@pytest.fixture(scope="module")
def full(dbs):
    return report(diff(dbs, [("transform.orders", ["order_id"]), ("transform.fresh", None),
                             ("transform.gone", None), ("transform.Odd Table", ["Order ID"]),
                             ("source.events", None)]))


def test_text(full):
    lines = render(full, "text").splitlines()
    assert lines[:6] == [
        "4 nodes differ from prod/target: 1 added, 1 removed, 2 modified (1 metadata only); "
        "1 downstream",
        "+ transform.fresh (2 downstream)",
        "- transform.gone",
        "~ transform.orders: transform SQL, source data (3 downstream)",
        "~ transform.Odd Table: description [metadata only]",
        "  metric.revenue: downstream of transform.orders"]
    assert "  transform.orders: rows 12 -> 17" in lines
    assert "    + column discount DECIMAL(2,1)" in lines
    assert "    ~ column qty INTEGER -> BIGINT" in lines
    assert "    +7 -2 ~3 rows (key order_id)" in lines
    assert "    ~ order_id=6: amount 60 -> 61, status open -> shipped" in lines
    assert "    - order_id=1 amount=10 status=open qty=1 day=2024-01-02" in lines
    assert sum(1 for x in lines if x.startswith("    + order_id=")) == 5
    assert "  transform.fresh: new table, 2 rows" in lines
    assert "  transform.gone: not in this build (had 1 row)" in lines
    assert '    ~ Order ID=1: say "hi" x -> "x|y\\n<b>"' in lines
    assert "  source.events: rows 3 -> 4" in lines and "    +2 -1 rows (no key)" in lines
    assert render(report() | {"added": [], "removed": [], "modified": [], "affected": []},
                  "text") == "No differences from prod/target.\n"


def test_markdown(full):
    text = render(full, "markdown")
    lines = text.splitlines()
    assert lines[0] == ("**4 nodes differ from `prod/target`: 1 added, 1 removed, 2 modified "
                        "(1 metadata only); 1 downstream**")
    assert "| Node | Change | Fields | Downstream | Rows |" in lines
    assert "| `transform.orders` | modified | transform SQL, source data | 3 | 12 → 17 |" in lines
    assert "| `transform.Odd Table` | metadata only | description | 0 | 2 → 2 |" in lines
    assert "| `transform.fresh` | added |  | 2 | new table, 2 rows |" in lines
    assert "| `metric.revenue` | affected | downstream of `transform.orders` |  |  |" in lines
    i = lines.index("<details><summary><code>transform.orders</code>: +7 −2 ~3 rows</summary>")
    assert lines[i + 1] == ""  # GitHub needs a blank line before markdown inside <details>
    block = lines[i:lines.index("</details>", i)]
    assert "| `discount` | added |  | DECIMAL(2,1) |" in block
    assert "| `qty` | retyped | INTEGER | BIGINT |" in block
    assert "**Added rows** (5 of 7)" in block
    assert "| 6 | status | open | shipped |" in block
    assert "| 13 | 130 | open | 13 | 2024-01-14 | 0.5 |" in block
    odd = lines.index("<details><summary><code>transform.Odd Table</code>: +1 −1 ~1 rows"
                      "</summary>")
    # the value 'x|y\n<b>' stays in its cell: | escaped, newline as <br>, < as &lt;
    assert lines[odd:].index(r'| 1 | say "hi" | x | x\|y<br>&lt;b&gt; |') > 0
    assert "| `transform.gone` | removed |  |  | not in this build (had 1 row) |" in lines
    assert "<code>transform.gone</code>" not in text  # a missing table: its Rows cell says it
    assert text.count("<details>") == text.count("</details>") == 3
    assert render(report() | {"added": [], "removed": [], "modified": [], "affected": []},
                  "markdown") == "No differences from `prod/target`.\n"


def test_markdown_truncates_long_values():
    data = {"transform.t": {"rows_before": 1, "rows_after": 1, "missing": None, "key": ["k"],
                            "columns_added": [], "columns_removed": [], "columns_retyped": [],
                            "rows_added": 0, "rows_removed": 0, "rows_changed": 1, "error": None,
                            "samples": {"added": [], "removed": [], "changed": [
                                {"key": {"k": 1}, "before": {"v": "a" * 200},
                                 "after": {"v": None}}]}}}
    text = render({"state": "s", "modified": [{"node": "transform.t", "changes": [],
                                               "downstream": 0}], "data": data}, "markdown")
    assert f"| 1 | v | {'a' * 79}… | *NULL* |" in text.splitlines()


def test_json_round_trips(full):
    out = render(full, "json")
    assert json.loads(out) == full
    assert out.startswith('{\n "added": [')  # indent=1, sorted keys
    assert json.loads(out)["data"]["transform.orders"]["samples"]["added"][0]["day"] == "2024-01-14"
    with pytest.raises(ValueError):
        render(full, "html")


def test_retyped_columns_compare_by_value(tmp_path):
    paths = []
    for side, sql in (("new", "SELECT i::VARCHAR AS k, i::DOUBLE AS v, DATE '2024-01-01' AS d"),
                      ("old", "SELECT i::INTEGER AS k, i::INTEGER AS v, '2024-01-01' AS d")):
        paths.append(tmp_path / f"{side}.duckdb")
        con = duckdb.connect(str(paths[-1]))
        con.execute(f"CREATE SCHEMA transform; CREATE TABLE transform.t AS {sql} FROM range(3) r(i)")
        con.close()
    d = data_diff(paths[0], paths[1], [("transform.t", ["k"])])["transform.t"]
    # key INTEGER -> VARCHAR still joins ('1' and 1), 1 = 1.0, DATE and its text are the same
    assert (d["rows_added"], d["rows_removed"], d["rows_changed"], d["error"]) == (0, 0, 0, None)
    assert [c["name"] for c in d["columns_retyped"]] == ["k", "v", "d"]
