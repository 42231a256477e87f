"""Issue 15: the selector language: -s/--select and --exclude, every term and graph operator,
precedence (space = union, comma = intersection), the old flags as sugar, and bad selectors
(exit 2, the column of the bad term, a suggestion; a selector matching nothing is said so)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import cli, ran, run_results, write_project
from seekrun.manifest import Manifest
from seekrun.selector import Context, SelectorError, parse, resolve
from seekrun.selector.grammar import SelectorErrors
from seekrun.errors import UsageError

#   source.a -> transform.a1 -> transform.a2 --\
#                                               > transform.ab -> rule.ab_check
#   source.b -> transform.b1 ------------------/
#   source.b -> transform.b2 (nodes/finance/)
FILES = {
    "data/a.csv": "id,v\n1,1\n2,2\n",
    "data/b.csv": "id,w\n1,10\n2,20\n",
    "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\nowner: team-a\n",
    "nodes/b.yml": "kind: source\nname: b\nsource: csv\ntable: data/b.csv\nowner: team-b\n",
    "nodes/a1.yml": "kind: transform\nname: a1\ntags: [daily]\nowner: team-a\ninputs: [{ref: source.a}]\n"
                    "transform: SELECT id, v + 1 AS v FROM input_0\n",
    "nodes/a2.yml": "kind: transform\nname: a2\ntags: [nightly]\ninputs: [{ref: transform.a1}]\n"
                    "transform: SELECT id, v * 2 AS v FROM input_0\n",
    "nodes/b1.yml": "kind: transform\nname: b1\ntags: [daily]\ninputs: [{ref: source.b}]\n"
                    "transform: SELECT id, w + 1 AS w FROM input_0\n",
    "nodes/finance/b2.yml": "kind: transform\nname: b2\nowner: team-b\nmeta: {tier: gold}\n"
                            "inputs: [{ref: source.b}]\ntransform: SELECT max(w) AS m FROM input_0\n",
    "nodes/ab.yml": "kind: transform\nname: ab\ntags: [nightly]\ninputs: [{ref: transform.a2}, {ref: transform.b1}]\n"
                    "transform: SELECT x.id, x.v + y.w AS s FROM input_0 x JOIN input_1 y USING (id)\n",
    "nodes/ab_check.yml": "kind: rule\nname: ab_check\ninputs: [{ref: transform.ab}]\n"
                          "rule: {type: sql_assertion, sql: \"SELECT * FROM input_0 WHERE s < 0\"}\n",
}
ALL = {"source.a", "source.b", "transform.a1", "transform.a2", "transform.b1", "transform.b2", "transform.ab",
       "rule.ab_check"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Manifest:
    root = write_project(tmp_path_factory.mktemp("sel") / "proj", FILES)
    res = cli("parse", "-p", str(root))
    assert res.exit_code == 0, res.output
    return Manifest.load(root / "target" / "manifest.json")


def sel(manifest, *select, exclude=(), **flags) -> set[str]:
    return resolve(manifest, Context(manifest), select=list(select) or None, exclude=list(exclude) or None,
                   **flags).ids


@pytest.mark.parametrize("text,expected", [
    ("transform.a1", {"transform.a1"}),
    ("a1", {"transform.a1"}),                                    # a unique name
    ("+transform.a2", {"source.a", "transform.a1", "transform.a2"}),
    ("transform.a1+", {"transform.a1", "transform.a2", "transform.ab", "rule.ab_check"}),
    ("transform.a1+1", {"transform.a1", "transform.a2"}),
    ("1+transform.ab", {"transform.ab", "transform.a2", "transform.b1"}),
    ("2+transform.ab", {"transform.ab", "transform.a2", "transform.b1", "transform.a1", "source.b"}),
    ("+transform.a2+", {"source.a", "transform.a1", "transform.a2", "transform.ab", "rule.ab_check"}),
    ("@transform.a2", {"transform.a2", "transform.ab", "rule.ab_check", "transform.a1", "source.a",
                       "transform.b1", "source.b"}),
    ("kind:source", {"source.a", "source.b"}),
    ("tag:daily", {"transform.a1", "transform.b1"}),
    ("path:nodes/finance", {"transform.b2"}),
    ("path:nodes/finance/b2.yml", {"transform.b2"}),
    ("path:nodes/a*.yml", {"source.a", "transform.a1", "transform.a2", "transform.ab", "rule.ab_check"}),
    ("source_path:data/b.csv", {"source.b"}),
    ("source_path:data/*.csv", {"source.a", "source.b"}),
    ("config.owner:team-b", {"source.b", "transform.b2"}),
    ("config.meta.tier:gold", {"transform.b2"}),
    # precedence: a comma binds tighter than a space
    ("tag:daily kind:source", {"transform.a1", "transform.b1", "source.a", "source.b"}),
    ("tag:daily,config.owner:team-a", {"transform.a1"}),
    ("kind:source,config.owner:team-a tag:nightly", {"source.a", "transform.a2", "transform.ab"}),
    ("source.b+,tag:daily", {"transform.b1"}),                 # operators apply to their own term
])
def test_terms_and_operators(manifest, text, expected):
    assert sel(manifest, text) == expected


def test_several_selects_are_a_union_and_excludes_take_away(manifest):
    assert sel(manifest, "tag:daily", "kind:rule") == {"transform.a1", "transform.b1", "rule.ab_check"}
    assert sel(manifest, "source.a+", exclude=["tag:nightly"]) == {"source.a", "transform.a1", "rule.ab_check"}
    assert sel(manifest, exclude=["kind:transform kind:rule"]) == {"source.a", "source.b"}
    # -s narrows the old flags too: every flag given intersects
    assert sel(manifest, "tag:daily", node_types=["transform"], nodes=["source.b"]) == {"transform.b1"}


def test_old_flags_are_sugar_with_todays_meaning(manifest):
    assert sel(manifest, node_types=["source,rule"]) == {"source.a", "source.b", "rule.ab_check"}
    assert sel(manifest, nodes=["a2"]) == {"transform.a2", "transform.ab", "rule.ab_check"}
    assert sel(manifest, tags=["daily", "nightly"]) == {"transform.a1", "transform.b1", "transform.a2",
                                                        "transform.ab"}
    assert sel(manifest, exclude_tags=["daily"]) == ALL - {"transform.a1", "transform.b1"}


def test_the_grammar_is_data():
    s = parse("2+a,tag:x b+1 @c")
    assert [[(t.method, t.value, t.up, t.down, t.at, t.column) for t in g.terms] for g in s.groups] == [
        [("id", "a", 2, None, False, 1), ("tag", "x", None, None, False, 5)],
        [("id", "b", None, 1, False, 11)], [("id", "c", None, None, True, 15)]]
    inst = parse("task.load[us, eu]+ kind:task")  # an instance key may hold spaces and commas
    assert inst.groups[0].terms[0].value == "task.load[us, eu]" and inst.groups[0].terms[0].down == -1


@pytest.mark.parametrize("text,column,message", [
    ("a,,b", 3, "an empty term"),
    ("tag:daily foo:bar", 11, "unknown method 'foo'"),
    ("kind:", 1, "needs a value"),
    ("@a+", 1, "does not combine"),
    ("a+0", 1, "a depth of 0"),
    ("a+b", 1, "only at a term's ends"),
    ("config.:x", 1, "config needs a key"),
])
def test_syntax_errors_point_at_the_term(text, column, message):
    with pytest.raises(SelectorError) as err:
        parse(text)
    assert err.value.column == column and message in err.value.message
    assert f"column {column}" in err.value.line()


@pytest.mark.parametrize("text,column,message", [
    ("kind:transfrom", 1, "unknown kind 'transfrom' (did you mean 'transform'?)"),
    ("kind:profile", 1, "no node of kind 'profile' in this project"),
    ("tag:dayly", 1, "unknown tag 'dayly' (did you mean 'daily'?)"),
    ("source.a transform.a11", 10, "unknown node 'transform.a11' (did you mean 'transform.a1'?)"),
    ("path:nodes/financ", 1, "no node is defined in nodes/financ"),
    ("source_path:data/c.csv", 1, "no node reads data/c.csv"),
    ("config.ownr:team-a", 1, "no node has config key 'ownr' (did you mean 'owner'?)"),
    ("config.owner:team-c", 1, "no node has owner 'team-c'"),
    ("state:modifed", 1, "unknown state 'modifed' (did you mean 'modified'?)"),
    ("result:faild", 1, "unknown result 'faild' (did you mean 'failed'?)"),
])
def test_terms_that_match_nothing_are_errors_with_a_suggestion(manifest, text, column, message):
    with pytest.raises(SelectorErrors) as err:
        from seekrun.selector import evaluate

        evaluate(parse(text), Context(manifest))
    assert len(err.value.errors) == 1
    assert err.value.errors[0].column == column and message in err.value.errors[0].message, err.value


def test_every_bad_term_of_every_flag_is_reported_together(manifest):
    with pytest.raises(UsageError) as err:
        resolve(manifest, Context(manifest), select=["kind:transfrom tag:dayly"], exclude=["x.y"],
                node_types=["sorce"])
    text = "\n".join(d.message for d in err.value.diagnostics)
    assert len(err.value.diagnostics) == 4, text
    for part in ("column 1 ('kind:transfrom')", "column 16 ('tag:dayly')", "--exclude 'x.y'", "--types: unknown value 'sorce'"):
        assert part in text


def test_an_ambiguous_name_lists_the_ids(tmp_path):
    root = write_project(tmp_path / "p", {
        "data/t.csv": "id\n1\n",
        "nodes/s.yml": "kind: source\nname: t\nsource: csv\ntable: data/t.csv\n",
        "nodes/t.yml": "kind: transform\nname: t\ninputs: [{ref: source.t}]\ntransform: SELECT * FROM input_0\n"})
    res = cli("run", "-p", str(root), "-s", "t")
    assert res.exit_code == 2 and "'t' is ambiguous: use one of source.t, transform.t" in res.output


# ---- on the command line --------------------------------------------------------------------

@pytest.fixture
def built(tmp_path) -> Path:
    root = write_project(tmp_path / "proj", FILES)
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    return root


def test_run_select_builds_the_selection_and_leaves_the_rest_pending(built):
    (built / "data" / "a.csv").write_text("id,v\n1,5\n2,6\n")
    (built / "data" / "b.csv").write_text("id,w\n1,50\n2,60\n")
    res = cli("run", "-p", str(built), "-s", "source.b+", "--exclude", "transform.b2")
    assert res.exit_code == 0, res.output
    assert ran(built) == {"source.b", "transform.b1", "transform.ab", "rule.ab_check"}
    # transform.ab read transform.a2, which is stale and left out: said once
    assert res.output.count("read stale inputs the selection leaves out: source.a (source data changed)") == 1, res.output
    res = cli("run", "-p", str(built))  # the rest still needs to run (and what read it)
    assert ran(built) == {"source.a", "transform.a1", "transform.a2", "transform.ab", "rule.ab_check",
                          "transform.b2"}


def test_a_bad_selector_is_exit_2_and_changes_nothing(built):
    before = (built / "target" / "run_results.json").read_bytes()
    res = cli("run", "-p", str(built), "-s", "tag:daily kind:transfrom")
    assert res.exit_code == 2, res.output
    assert "--select 'tag:daily kind:transfrom', column 11 ('kind:transfrom'): unknown kind" in res.output
    assert "Traceback" not in res.output
    assert (built / "target" / "run_results.json").read_bytes() == before


def test_state_and_result_terms_against_the_last_build(built):
    (built / "nodes" / "a2.yml").write_text(FILES["nodes/a2.yml"].replace("v * 2", "v * 3"))
    (built / "data" / "b.csv").write_text("id,w\n1,11\n2,21\n")
    (built / "nodes" / "a1.yml").write_text(FILES["nodes/a1.yml"].replace("tags: [daily]", "tags: [daily]\n"
                                                                           "description: only words"))
    res = cli("run", "-p", str(built), "--dry-run", "--json", "-s", "state:modified")
    assert res.exit_code == 0, res.output
    planned = {r["node_id"] for r in json.loads(res.stdout)["results"] if r["status"] == "pending"}
    assert planned == {"transform.a2", "source.b"}  # a description is not a modification
    res = cli("run", "-p", str(built), "--json", "-s", "state:modified.body+")
    assert res.exit_code == 0, res.output
    assert ran(built) == {"transform.a2", "transform.ab", "rule.ab_check"}
    # nothing left to select: said so, exit 0 (nothing changed is an answer, not a mistake)
    res = cli("run", "-p", str(built), "-s", "state:modified.body")
    assert res.exit_code == 0 and "Nothing selected: --select 'state:modified.body' selects no node" in res.output
    # result: the last run's statuses
    (built / "nodes" / "finance" / "b2.yml").write_text(FILES["nodes/finance/b2.yml"].replace("max(w)", "max(nope)"))
    res = cli("run", "-p", str(built))
    assert res.exit_code == 1
    failed = {n for n, r in run_results(built).items() if r["status"] == "failed"}
    assert failed == {"transform.b2"}
    (built / "nodes" / "finance" / "b2.yml").write_text(FILES["nodes/finance/b2.yml"])
    res = cli("run", "-p", str(built), "-s", "result:failed+")
    assert res.exit_code == 0, res.output
    assert ran(built) == {"transform.b2"}
