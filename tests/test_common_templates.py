"""Issue 4: Seeknal's shared config (seeknal/common/*.yml) and `{{ id.param }}` / `{{ id }}`.

A Seeknal-marker project (seeknal_project.yml, nodes under seeknal/) uses common
definitions in a transform's SQL and in a rule's column and thresholds.  The rendered
values are what is hashed, so editing a common definition reruns exactly the nodes that
use it (checked in target/run_results.json), and an undefined id is a parse error.
"""
from __future__ import annotations

from pathlib import Path

from conftest import cli, query, ran, run_results, write_project

FILES = {
    "seeknal_project.yml": "name: shop\nversion: 1.0.0\nprofile: default\nconfig-version: 1\n",
    "data/orders.csv": "order_id,amount,status\n1,50,completed\n2,150,completed\n3,300,cancelled\n4,220,completed\n",
    "seeknal/common/sources.yml": """\
        sources:
          - id: orders
            ref: source.orders
            params:
              idCol: order_id
              amountCol: amount
        """,
    "seeknal/common/rules.yml": """\
        rules:
          - id: bigOrder
            value: "amount > 100"
          - id: amount_limits
            value: "amount between limits"
            params:
              min: 0
              max: 500
        """,
    "seeknal/common/transformations.yml": """\
        transformations:
          - id: net
            sql: "amount * 0.5"
        """,
    "seeknal/sources/orders.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        """,
    "seeknal/transforms/big_orders.yml": """\
        kind: transform
        name: big_orders
        inputs:
          - ref: source.orders
        transform: |
          SELECT {{ orders.idCol }} AS id, {{ net }} AS net
          FROM ref('source.orders')
          WHERE {{ bigOrder }}
        """,
    "seeknal/transforms/ids.yml": """\
        kind: transform
        name: ids
        inputs:
          - ref: source.orders
        transform: SELECT {{ orders.idCol }} AS id FROM source.orders
        """,
    "seeknal/transforms/plain.yml": """\
        kind: transform
        name: plain
        inputs:
          - ref: source.orders
        transform: SELECT count(*) AS n FROM source.orders
        """,
    "seeknal/rules/amount_range.yml": """\
        kind: rule
        name: amount_range
        inputs:
          - ref: source.orders
        rule:
          type: range
          column: "{{ orders.amountCol }}"
          params:
            min_val: "{{ amount_limits.min }}"
            max_val: "{{ amount_limits.max }}"
        """,
}

ALL = {"source.orders", "transform.big_orders", "transform.ids", "transform.plain", "rule.amount_range"}


def edit(project: Path, rel: str, old: str, new: str) -> None:
    path = project / rel
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def build(tmp_path: Path) -> Path:
    project = write_project(tmp_path / "shop", FILES)
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ran(project) == ALL
    return project


def test_templates_render_in_sql_and_in_rule_expressions(tmp_path):
    project = build(tmp_path)
    assert sorted(query(project, "SELECT id, net FROM transform.big_orders")) == [(2, 75.0), (3, 150.0), (4, 110.0)]
    assert query(project, 'SELECT * FROM "rule"."amount_range"') == [
        ("range", "range", "amount", "pass", 0, "all 4 non-NULL values are in [0, 500]")]
    assert cli("run", "-p", str(project)).output.startswith("Nothing to do")


def test_editing_a_common_rule_value_reruns_exactly_the_nodes_using_it(tmp_path):
    project = build(tmp_path)
    edit(project, "seeknal/common/rules.yml", 'value: "amount > 100"', 'value: "amount > 200"')
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert ran(project) == {"transform.big_orders"}
    assert run_results(project)["transform.big_orders"]["reason"] == "config changed: transform SQL"
    assert sorted(query(project, "SELECT id FROM transform.big_orders")) == [(3,), (4,)]


def test_editing_a_common_param_used_by_a_rule_reruns_only_that_rule(tmp_path):
    project = build(tmp_path)
    edit(project, "seeknal/common/rules.yml", "max: 500", "max: 200")
    res = cli("run", "-p", str(project))
    assert res.exit_code == 1, res.output
    assert ran(project) == {"rule.amount_range"}
    result = run_results(project)["rule.amount_range"]
    assert result["reason"] == "config changed: rule"
    assert result["error"] == ("1 of 1 check failed: range (amount): 2 of 4 non-NULL values are not in [0, 200] "
                               "(results in table rule.amount_range)")


def test_editing_common_sources_and_transformations(tmp_path):
    project = build(tmp_path)
    # a snippet used by one transform
    edit(project, "seeknal/common/transformations.yml", '"amount * 0.5"', '"amount * 0.25"')
    assert cli("run", "-p", str(project)).exit_code == 0
    assert ran(project) == {"transform.big_orders"}
    assert sorted(query(project, "SELECT id, net FROM transform.big_orders")) == [(2, 37.5), (3, 75.0), (4, 55.0)]
    # a source param used by two transforms (and not by the rule, which uses amountCol)
    edit(project, "seeknal/common/sources.yml", "idCol: order_id", "idCol: order_id + 100")
    assert cli("run", "-p", str(project)).exit_code == 0
    assert ran(project) == {"transform.big_orders", "transform.ids"}
    assert sorted(query(project, "SELECT id FROM transform.ids")) == [(101,), (102,), (103,), (104,)]
    # a new common entry nobody uses, and a comment: nothing to rebuild
    edit(project, "seeknal/common/rules.yml", "rules:\n", "# shared filters\nrules:\n  - id: unused\n"
                                                         "    value: \"1 = 1\"\n")
    res = cli("run", "-p", str(project))
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Nothing to do"), res.output


def test_an_undefined_common_id_is_a_parse_error(tmp_path):
    project = build(tmp_path)
    before = (project / "target" / "run_results.json").read_bytes()
    edit(project, "seeknal/transforms/ids.yml", "{{ orders.idCol }}", "{{ orders.idColumn }}")
    edit(project, "seeknal/rules/amount_range.yml", "{{ amount_limits.max }}", "{{ limits.max }}")
    res = cli("run", "-p", str(project))
    assert res.exit_code == 2, res.output
    assert ("seeknal/transforms/ids.yml:5: transform.ids: '{{ orders.idColumn }}' is not defined in seeknal/common"
            in res.output)
    assert "seeknal/rules/amount_range.yml:10: rule.amount_range: '{{ limits.max }}' is not defined in seeknal/common" \
        in res.output
    assert (project / "target" / "run_results.json").read_bytes() == before  # nothing ran
