"""Fan-out of table nodes (foreach / matrix on a source, a transform, an exposure...): instance
nodes with their own tables, and the node itself as their union.  Real DuckDB, the real CLI."""
from __future__ import annotations

import json

from conftest import cli, query, run_results, write_project
from test_pools import intervals_from_results, peak

SALES = "id,region,amount\n1,us,10\n2,eu,20\n3,us,5\n4,ap,7\n"

SOURCE = "kind: source\nname: sales\nsource: csv\ntable: data/sales.csv\n---\n"
NODES = SOURCE + """\
kind: transform
name: by_region
foreach: {items}
inputs: [{{ref: source.sales}}]
transform: |
  SELECT '{{{{ var('ITEM') }}}}' AS region, sum(amount) AS total
  FROM ref('source.sales') WHERE region = '{{{{ var('ITEM') }}}}'
---
kind: transform
name: report
inputs: [{{ref: transform.by_region}}]
transform: SELECT * FROM ref('transform.by_region') ORDER BY region
"""


def project(tmp_path, items="[us, eu]", marker="name: fan\n", extra=None):
    return write_project(tmp_path / "p", {"data/sales.csv": SALES, "nodes/all.yml": NODES.format(items=items),
                                          **(extra or {})}, marker=marker)


def ran(p) -> list[str]:
    return sorted(n for n, r in run_results(p).items() if r["status"] == "success")


def tables(p) -> list[str]:
    return sorted(f"{s}.{t}" for s, t in query(p, "SELECT table_schema, table_name FROM information_schema.tables "
                                                 "WHERE table_schema <> '_seekrun'"))


def test_each_item_is_a_node_with_its_own_table_and_the_node_is_their_union(tmp_path):
    p = project(tmp_path)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == ["source.sales", "transform.by_region", "transform.by_region[eu]", "transform.by_region[us]",
                      "transform.report"]
    assert query(p, 'SELECT * FROM "transform"."by_region[us]"') == [("us", 15)]
    assert query(p, "SELECT * FROM transform.by_region") == [("us", 15), ("eu", 20)]  # in item order
    assert query(p, "SELECT * FROM transform.report") == [("eu", 20), ("us", 15)]
    res = cli("run", cwd=p)
    assert "Nothing to do" in res.output, res.output


def test_an_added_item_builds_only_its_instance_and_a_removed_one_drops_its_table(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    (p / "nodes/all.yml").write_text(NODES.format(items="[us, eu, ap]"))
    res = cli("run", "--dry-run", cwd=p)
    assert "transform.by_region[ap]" in res.output and "fan-out items" in res.output, res.output
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == ["transform.by_region", "transform.by_region[ap]", "transform.report"]
    assert query(p, "SELECT * FROM transform.report") == [("ap", 7), ("eu", 20), ("us", 15)]
    (p / "nodes/all.yml").write_text(NODES.format(items="[us, ap]"))
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert "DROP   transform.by_region[eu]" in res.output
    assert ran(p) == ["transform.by_region", "transform.report"]
    assert "transform.by_region[eu]" not in tables(p)
    assert "transform.by_region[eu]" not in json.loads((p / "target/state/execution_state.json").read_text())["nodes"]
    assert query(p, "SELECT * FROM transform.report") == [("ap", 7), ("us", 15)]
    assert cli("run", cwd=p).output.startswith("Nothing to do")


def test_a_matrix_over_params_and_the_environment_reruns_only_the_new_combinations(tmp_path, monkeypatch):
    nodes = SOURCE + """\
    kind: transform
    name: grid
    matrix: {region: "${REGIONS}", tier: "${TIERS}"}
    inputs: [{ref: source.sales}]
    transform: >-
      SELECT '{{ var('matrix.region') }}' AS region, '{{ var('matrix.tier') }}' AS tier, count(*) AS n
      FROM ref('source.sales') WHERE region = '{{ var('matrix.region') }}'
    """
    p = write_project(tmp_path / "p", {"data/sales.csv": SALES, "nodes/all.yml": nodes},
                      marker="name: m\nparams: {TIERS: a b}\n")
    monkeypatch.setenv("REGIONS", "us eu")
    assert cli("run", cwd=p).exit_code == 0
    assert sorted(query(p, "SELECT * FROM transform.grid")) == [("eu", "a", 1), ("eu", "b", 1), ("us", "a", 2),
                                                                  ("us", "b", 2)]
    monkeypatch.setenv("REGIONS", "us eu ap")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == ["transform.grid", "transform.grid[ap,a]", "transform.grid[ap,b]"]
    res = cli("run", "--param", "TIERS=a", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == ["transform.grid"]  # three instances dropped, none rebuilt
    assert sorted(query(p, "SELECT region, tier FROM transform.grid")) == [("ap", "a"), ("eu", "a"), ("us", "a")]
    assert "Nothing to do" in cli("run", "--param", "TIERS=a", cwd=p).output


def test_a_source_fans_out_over_files_and_an_edited_file_rebuilds_only_its_instance(tmp_path):
    nodes = """\
    kind: source
    name: daily
    foreach: [{day: "01", label: first}, {day: "02", label: second}]
    source: csv
    table: "data/day_{{ var('ITEM.day') }}.csv"
    ---
    kind: transform
    name: total
    inputs: [{ref: source.daily}]
    transform: SELECT sum(amount) AS total, count(*) AS n FROM ref('source.daily')
    """
    p = write_project(tmp_path / "p", {"nodes/all.yml": nodes, "data/day_01.csv": "amount\n1\n2\n",
                                       "data/day_02.csv": "amount\n10\n"})
    assert cli("run", cwd=p).exit_code == 0
    assert ran(p) == ["source.daily", "source.daily[01,first]", "source.daily[02,second]", "transform.total"]
    assert query(p, "SELECT * FROM transform.total") == [(13, 3)]
    (p / "data/day_02.csv").write_text("amount\n10\n20\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == ["source.daily", "source.daily[02,second]", "transform.total"]
    assert query(p, "SELECT * FROM transform.total") == [(33, 4)]


def test_an_exposure_fans_out_into_one_file_per_item(tmp_path):
    extra = {"nodes/out.yml": """\
    kind: exposure
    name: export
    foreach: [us, eu]
    type: file
    inputs: [{ref: transform.by_region}]
    params: {path: "output/{{ var('ITEM') }}.csv", format: csv}
    """}
    p = project(tmp_path, marker="name: fan\nexposure_paths: [output]\n", extra=extra)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert {"exposure.export", "exposure.export[us]", "exposure.export[eu]"} <= set(ran(p))
    assert sorted(f.name for f in (p / "output").glob("*.csv")) == ["eu.csv", "us.csv"]
    assert (p / "output/eu.csv").read_text().splitlines() == ["region,total", "us,15", "eu,20"]
    assert "Nothing to do" in cli("run", cwd=p).output
    (p / "nodes/out.yml").write_text(extra["nodes/out.yml"].replace("[us, eu]", "[us]"))
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert sorted(f.name for f in (p / "output").glob("*.csv")) == ["us.csv"]  # the removed item's file went


def test_zero_items_give_an_empty_table_with_the_columns_of_the_sql(tmp_path):
    p = project(tmp_path, items='"${NONE}"', marker="name: fan\nparams: {NONE: ''}\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert query(p, "SELECT count(*) FROM transform.report") == [(0,)]
    assert [c[0] for c in query(p, "DESCRIBE transform.by_region")] == ["region", "total"]
    res = cli("run", "--param", "NONE=eu", cwd=p)
    assert res.exit_code == 0, res.output
    assert query(p, "SELECT * FROM transform.report") == [("eu", 20)]


def test_max_concurrent_limits_the_instances_running_at_once(tmp_path):
    slow = """\
    kind: transform
    name: slow
    foreach: [a, b, c, d]
    max_concurrent: {n}
    inputs: [{{ref: source.sales}}]
    transform: SELECT '{{{{ var('ITEM') }}}}' AS k, count(*) AS n FROM range(40000000) t(x) WHERE x % 7 = 3
    """
    ids = [f"transform.slow[{k}]" for k in "abcd"]
    seen = {}
    for n in (1, 4):
        p = project(tmp_path / str(n), extra={"nodes/slow.yml": slow.format(n=n)})
        res = cli("run", "--threads", "4", cwd=p)
        assert res.exit_code == 0, res.output
        seen[n] = peak(intervals_from_results(p, ids))
    assert seen[1] == 1
    assert seen[4] > 1  # without the limit they do overlap: the test can tell


def test_selecting_a_fan_out_node_builds_its_instances_too(tmp_path):
    p = project(tmp_path)
    assert cli("run", cwd=p).exit_code == 0
    (p / "nodes/all.yml").write_text(NODES.format(items="[us, eu, ap]"))
    res = cli("run", "--nodes", "transform.by_region", cwd=p)
    assert res.exit_code == 0, res.output
    assert ran(p) == ["transform.by_region", "transform.by_region[ap]", "transform.report"]


def test_bad_fan_outs_on_table_nodes_are_all_reported_with_exit_2(tmp_path):
    bad = """\
    kind: task
    name: lister
    command: echo "us eu"
    output: LIST
    ---
    kind: transform
    name: dyn
    foreach: "${LIST}"
    inputs: [{ref: task.lister}, {ref: source.sales}]
    transform: SELECT * FROM ref('source.sales') WHERE region = '{{ var('ITEM') }}'
    ---
    kind: transform
    name: noitem
    inputs: [{ref: source.sales}]
    transform: SELECT * FROM ref('source.sales') WHERE region = '{{ var('ITEM') }}'
    ---
    kind: transform
    name: lonely
    max_concurrent: 2
    inputs: [{ref: source.sales}]
    transform: SELECT 1 AS x
    ---
    kind: transform
    name: cased
    foreach: [US, us]
    inputs: [{ref: source.sales}]
    transform: SELECT 1 AS x
    ---
    kind: transform
    name: shape
    foreach: [[1, 2]]
    inputs: [{ref: source.sales}]
    transform: SELECT 1 AS x
    ---
    kind: transform
    name: field
    foreach: [{id: 1}]
    inputs: [{ref: source.sales}]
    transform: SELECT {{ var('ITEM.nope') }} AS x
    ---
    kind: transform
    name: badmax
    foreach: [a]
    max_concurrent: 0
    inputs: [{ref: source.sales}]
    transform: SELECT 1 AS x
    """
    p = project(tmp_path, extra={"nodes/bad.yml": bad})
    assert cli("run", cwd=p).exit_code == 2  # nothing built
    assert not (p / "target" / "seekrun.duckdb").exists()
    res = cli("run", cwd=p)
    assert res.exit_code == 2
    out = res.output
    assert "nodes/bad.yml:6: transform.dyn: the items ${LIST} are not known when the project is parsed" in out, out
    assert "nodes/bad.yml:15: transform.noitem: var('ITEM') reads a fan-out item, and the node has none" in out
    assert "nodes/bad.yml:19: transform.lonely: max_concurrent limits the instances of a fan-out" in out
    assert "transform.cased: instance transform.cased[us] is another node's id (or differs from one only in " \
           "case" in out
    assert "nodes/bad.yml:31: transform.shape: foreach item 0 is a list" in out
    assert "nodes/bad.yml:39: transform.field[1]: var('ITEM.nope'): the item has no field 'nope'" in out
    assert "nodes/bad.yml:44: transform.badmax: max_concurrent must be a positive integer (it is 0)" in out
    assert "7 errors" in out and "Traceback" not in out


RULE = """\
    kind: rule
    name: checks
    foreach: [amount, id]
    inputs: [{ref: source.sales}]
    rule:
      - type: "null"
        columns: ["{{ var('ITEM') }}"]
"""


def test_rules_aggregations_and_python_nodes_fan_out_and_a_semantic_model_cannot(tmp_path):
    more = RULE + """\
    ---
    kind: transform
    name: dated
    inputs: [{ref: source.sales}]
    transform: SELECT *, DATE '2024-01-01' AS d FROM ref('source.sales')
    ---
    kind: aggregation
    name: agg
    foreach: [a, b]
    inputs: [{ref: transform.dated}]
    id_col: region
    feature_date_col: d
    features:
      - {name: amount, column: amount, basic: [sum]}
    ---
    kind: transform
    name: py
    foreach: [x, y]
    python: "fn.py:run"
    inputs: [{ref: source.sales}]
    params: {tag: "{{ var('ITEM') }}"}
    """
    fn = "def run(ctx):\n    return ctx.ref(0).aggregate('count(*) AS n').project(f\"'{ctx.get_param('tag')}' AS tag, n\")\n"
    p = project(tmp_path, extra={"nodes/more.yml": more, "fn.py": fn})
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    assert query(p, "SELECT \"column\", status FROM rule.checks ORDER BY 1") == [("amount", "pass"), ("id", "pass")]
    assert query(p, "SELECT count(*) FROM aggregation.agg") == [(6,)]  # 3 regions, twice
    assert query(p, "SELECT * FROM transform.py") == [("x", 4), ("y", 4)]
    (p / "nodes/sem.yml").write_text("kind: semantic_model\nname: sm\nforeach: [a]\nmodel: ref('transform.report')\n"
                                     "measures:\n  - {name: t, expr: total, agg: sum}\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 2
    assert "nodes/sem.yml:3: semantic_model.sm: a semantic_model is a definition, not a build: it cannot fan out" \
           in res.output, res.output


def test_items_from_a_dotenv_file_are_refused_and_never_reach_target(tmp_path):
    p = project(tmp_path, items='"${REGIONS}"', marker="name: fan\ndotenv: .env\n",
                extra={".env": "REGIONS=zz-secret-1 zz-secret-2\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 2
    assert "transform.by_region: the items ${REGIONS} hold a secret (a dotenv value)" \
           in res.output, res.output
    assert "zz-secret" not in res.output
    for f in (p / "target").rglob("*"):
        assert not f.is_file() or b"zz-secret" not in f.read_bytes(), f


def test_an_env_entry_made_from_a_dotenv_value_is_a_secret_too(tmp_path):
    p = project(tmp_path, items='"${REGIONS}"', marker="name: fan\ndotenv: .env\nenv: {REGIONS: '${HIDDEN}'}\n",
                extra={".env": "HIDDEN=zz-secret-1 zz-secret-2\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 2 and "hold a secret" in res.output, res.output
    assert "zz-secret" not in res.output


FG = """\
kind: source
name: visits
source: csv
table: data/visits.csv
---
kind: feature_group
name: totals
foreach: [web, app]
entity: {name: customer, join_keys: [customer_id]}
materialization: {offline: true}
inputs: [{ref: source.visits}]
transform: >-
  SELECT customer_id, '{{ var('ITEM') }}' AS ch, count(*) AS visits FROM ref('source.visits')
  WHERE channel = '{{ var('ITEM') }}' GROUP BY customer_id
---
kind: source
name: d
source: csv
table: data/d.csv
---
kind: second_order_aggregation
name: soa
foreach: [us, eu]
python: "fn.py:run"
inputs: [{ref: source.d}]
params: {r: "{{ var('ITEM') }}"}
id_col: region
feature_date_col: day
features:
  spend: {basic: [sum]}
"""


def test_feature_stores_and_python_second_order_aggregations_are_each_instances_own(tmp_path):
    files = {"nodes/fg.yml": FG, "data/visits.csv": "customer_id,channel\n1,web\n1,app\n2,web\n",
             "data/d.csv": "region,day,spend\nus,2024-01-01,1\neu,2024-01-02,2\nus,2024-01-03,3\n",
             "fn.py": "def run(ctx):\n    return ctx.ref(0).filter(f\"region = '{ctx.get_param('r')}'\")\n"}
    p = write_project(tmp_path / "p", files)
    res = cli("run", cwd=p)
    assert res.exit_code == 0, res.output
    store = sorted(f.name for f in (p / "target/feature_store").iterdir() if not f.name.startswith("."))
    assert store == ["totals[app].parquet", "totals[web].parquet"]
    assert sorted(query(p, "SELECT ch, visits FROM feature_group.totals")) == [("app", 1), ("web", 1), ("web", 1)]
    assert query(p, "SELECT count(*) FROM second_order_aggregation.soa") == [(2,)]
    assert "Nothing to do" in cli("run", cwd=p).output


def test_a_failing_rule_instance_still_shows_in_the_union(tmp_path):
    rule = RULE + "    params: {severity: error}\n"
    p = project(tmp_path, extra={"nodes/rule.yml": rule})
    assert cli("run", cwd=p).exit_code == 0
    (p / "data/sales.csv").write_text(SALES + "5,us,\n")
    res = cli("run", cwd=p)
    assert res.exit_code == 1, res.output
    assert query(p, 'SELECT "column", status FROM rule.checks ORDER BY 1') == [("amount", "fail"), ("id", "pass")]


def test_a_decorated_function_that_asks_to_fan_out_is_told_to_use_yaml(tmp_path):
    code = ("from seekrun.pipeline import transform\n\n\n"
            "@transform(name='pyx', inputs=['source.sales'], foreach=['us', 'eu'], max_concurrent=0)\n"
            "def pyx(ctx):\n    return ctx.ref(0)\n")
    p = project(tmp_path, extra={"nodes/pyx.py": code})
    res = cli("run", cwd=p)
    assert res.exit_code == 2
    assert "nodes/pyx.py:4: transform.pyx: a decorated function does not fan out ('foreach='): declare the node " \
           "in YAML, with python: nodes/pyx.py:pyx and foreach:" in res.output, res.output
    assert "('max_concurrent=')" in res.output
