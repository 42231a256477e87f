"""Issue 11, the `yaml` area: Seeknal projects' YAML as it is, and what a user sees on bad YAML.

- compatibility 2: YAML documents without `kind` (Seeknal Ask projects' sql_pairs/, tests/) are
  not nodes: one summary warning for all of them; a node-shaped one is an error suggesting its kind;
- compatibility 8: what `run` refuses, `parse` refuses; nodes seekrun accepts but cannot execute
  are warned about at parse and skipped (with their dependents) at run, the rest builds;
- compatibility 12: a Seeknal-written target/manifest.json is kept as target/manifest.seeknal.json;
- first hour 1, 7, 8: SQL errors point at the SQL's own line with the caret aligned; --json prints
  the errors; one bad document no longer drops the other nodes of its file.

The shared project's `seeknal/yaml/` folder and `data/yaml_*` are built as Seeknal 2.13 built them.
Seeknal's rows were obtained by copying seeknal_project.yml, seeknal/yaml/ and data/yaml_* to
/tmp, running `/tmp/skvenv/bin/seeknal run` there, and reading target/intermediate/<node>.parquet
with DuckDB. Seeknal ran the api exposure (and failed: it posts to the URL); seekrun does not
execute api exposures (said at parse, skipped at run). Seeknal ignored the kind-less files
(`seeknal parse`: "Missing 'kind' field in ...", "Invalid YAML ...: must be a dictionary").
data/yaml_seeknal_manifest.json is the target/manifest.json that same Seeknal run wrote.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import cli, run_results, table, target_snapshot, write_project

COMPAT = Path(__file__).resolve().parent / "seeknal_compat"

# Seeknal 2.13's tables for seeknal/yaml/ (see the module docstring)
SEEKNAL_ROWS = {
    "source.yaml_orders": [(1, "alice", 120.5, "paid"), (2, "bob", 15.0, "refunded"), (3, "alice", 42.0, "paid"),
                           (4, "carol", 300.0, "paid"), (5, "bob", 8.25, "paid")],
    "transform.yaml_paid": [(1, "alice", 120.5), (3, "alice", 42.0), (4, "carol", 300.0), (5, "bob", 8.25)],
    "transform.yaml_by_customer": [("alice", 2, 162.5), ("bob", 1, 8.25), ("carol", 1, 300.0)],
}
API_WHY = "exposure type 'api' is not supported (seekrun writes only 'type: file' exposures)"


def compat_copy(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "seeknal").mkdir(parents=True)
    shutil.copy(COMPAT / "seeknal_project.yml", proj / "seeknal_project.yml")
    shutil.copytree(COMPAT / "seeknal" / "yaml", proj / "seeknal" / "yaml")
    (proj / "data").mkdir()
    for f in (COMPAT / "data").glob("yaml_*"):
        shutil.copy(f, proj / "data" / f.name)
    return proj


# ---- the shared Seeknal project -----------------------------------------------------------------
def test_seeknal_project_builds_as_seeknal_built_it(tmp_path: Path):
    proj = compat_copy(tmp_path)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    summary = ("warning: 5 YAML documents are not nodes (no 'kind'), ignored: seeknal/yaml/sql_pairs/yaml_pair_1.yml, "
               "seeknal/yaml/sql_pairs/yaml_pair_2.yml, seeknal/yaml/sql_pairs/yaml_pair_3.yml and 2 more "
               "(-v lists them)")
    assert res.stderr.count("not nodes") == 1, res.stderr  # said once
    assert summary in res.stderr
    assert ("warning: 1 file is not valid YAML and has no 'kind:' line, so it is not a node: ignored: "
            "seeknal/yaml/sql_pairs/yaml_pair_colon.yml (-v lists them, with YAML's error)") in res.stderr
    assert (f"seeknal/yaml/exposures/yaml_webhook.yml:1: warning: exposure.yaml_webhook: not executable by "
            f"seekrun: {API_WHY}") in res.stderr
    verbose = cli("parse", "-p", str(proj), "-v")
    for name in ("sql_pairs/yaml_pair_1.yml", "sql_pairs/yaml_pairs_list.yml", "tests/yaml_eval_totals.yml"):
        assert f"seeknal/yaml/{name}:1: not a node (no 'kind'), ignored" in verbose.stderr
    assert ("seeknal/yaml/sql_pairs/yaml_pair_colon.yml:2: not valid YAML, and no 'kind:' line: not a node, ignored "
            "(YAML syntax error: mapping values are not allowed") in verbose.stderr

    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert f"SKIP   exposure.yaml_webhook  (not executable by seekrun: {API_WHY})" in res.stdout
    for nid, rows in SEEKNAL_ROWS.items():
        assert table(proj, nid) == sorted(rows, key=repr), nid
    results = run_results(proj)
    assert results["exposure.yaml_webhook"]["status"] == "skipped"
    assert {n for n, r in results.items() if r["status"] == "success"} == set(SEEKNAL_ROWS)

    res = cli("run", "-p", str(proj))  # nothing changed: nothing runs, the exposure is said again
    assert res.exit_code == 0, res.output
    assert "Nothing to do: all 3 nodes seekrun can build are up to date" in res.stdout
    assert "SKIP   exposure.yaml_webhook" in res.stdout


# ---- compatibility 2: documents without kind ----------------------------------------------------
SOURCE = {"data/a.csv": "id,v\n1,10\n2,20\n",
          "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n"}


@pytest.mark.parametrize("body, key, hint", [
    ("name: clean\ninputs:\n  - ref: source.a\ntransform: SELECT * FROM ref('source.a')\n", "transform",
     "add 'kind: transform'"),
    ("name: raw\nsource: csv\ntable: data/a.csv\n", "source", "add 'kind: source'"),
    ("name: fg\nentity: {name: c, join_keys: [id]}\ntransform: SELECT 1 AS id\n", "entity",
     "add 'kind: feature_group'"),
    ("name: chk\ninputs: [source.a]\nrule: {type: 'null', columns: [id]}\n", "rule", "add 'kind: rule'"),
    ("name: p\ninputs: [source.a]\n", "inputs", "add its kind, e.g. 'kind: transform'"),
])
def test_node_shaped_document_without_kind_is_an_error_suggesting_the_kind(tmp_path, body, key, hint):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/x.yml": "# a node\n" + body})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    name = body.split("\n")[0].split(": ")[1]
    assert (f"nodes/x.yml:2: node '{name}' is missing 'kind' (it has '{key}', so it is not just data): {hint}"
            in res.stderr)


def test_data_with_a_name_is_not_a_node(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/tests/t.yml": "name: revenue test\nsource: manual\n"
                                                                         "question: q\nexpected: 3\n"})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "warning: 1 YAML document is not a node (no 'kind'), ignored: nodes/tests/t.yml" in res.stderr


def test_kindless_documents_beside_nodes_do_not_refuse_the_project(tmp_path):
    pairs = {f"nodes/sql_pairs/p{i:03d}.yml": f"question: q{i}\nsql: SELECT {i}\n" for i in range(40)}
    proj = write_project(tmp_path / "p", {**SOURCE, **pairs,
                                          "nodes/mixed.yml": "kind: transform\nname: t\ninputs: [source.a]\n"
                                                             "transform: SELECT * FROM ref('source.a')\n---\n"
                                                             "question: not a node\n---\n[1, 2]\n---\nname: only a name\n"})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if "not a node" in ln or "not nodes" in ln]
    assert lines == ["warning: 43 YAML documents are not nodes (no 'kind'), ignored: nodes/mixed.yml, "
                     "nodes/sql_pairs/p000.yml, nodes/sql_pairs/p001.yml and 38 more (-v lists them)"]
    assert table(proj, "transform.t") == [(1, 10), (2, 20)]
    res = cli("parse", "-p", str(proj), "-v")  # cached files say it too
    assert "nodes/mixed.yml:6: not a node (no 'kind'), ignored" in res.stderr
    assert "nodes/sql_pairs/p039.yml:1: not a node (no 'kind'), ignored" in res.stderr


def test_invalid_yaml_with_a_kind_line_is_still_an_error(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/t.yml": "kind: transform\nname: t\n"
                                                                   "description: Top customers: by revenue\n"})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/t.yml:3: YAML syntax error: mapping values are not allowed" in res.stderr


def test_a_list_of_nodes_is_still_an_error(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/l.yml": "- kind: transform\n  name: t\n"})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/l.yml:1: a node must be a mapping with 'kind' and 'name', not a list: write each node as its " \
           "own document, separated by '---'" in res.stderr


# ---- first hour 8: document by document ---------------------------------------------------------
def test_one_bad_kind_keeps_the_files_other_nodes_and_every_error_is_reported(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/many.yml": """\
        kind: transfrom
        name: bad
        transform: SELECT 1 AS x
        ---
        kind: transform
        name: good
        inputs: [source.a]
        transform: SELECT id FROM ref('source.a')
        ---
        kind: transform
        inputs: [source.a]
        transform: SELECT 2
        """, "nodes/users.yml": """\
        kind: transform
        name: users
        inputs:
          - ref: transform.good
          - ref: transform.bad
          - ref: transform.gone
        transform: SELECT * FROM ref('transform.good')
        """})
    before = target_snapshot(proj)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.stderr.splitlines() if not ln.startswith(("seekrun:", " "))]
    assert errors == [
        "nodes/many.yml:1: unknown kind 'transfrom' (did you mean 'transform'?): use one of aggregation, dag, exposure, "
        "feature_group, metric, model, profile, rule, second_order_aggregation, semantic_model, source, task, transform",
        "nodes/many.yml:10: transform node is missing 'name': add 'name: <identifier>'",
        "nodes/users.yml:5: transform.users: ref 'transform.bad' is defined at nodes/many.yml:1, which has an "
        "error: fix that first",
        "nodes/users.yml:6: transform.users: ref 'transform.gone' does not exist (unless it is defined in "
        "nodes/many.yml, which has an error that stops it being read)",
    ]  # transform.good is a node: nothing says otherwise
    assert "seekrun: 4 errors; nothing was changed in target/" in res.stderr
    assert target_snapshot(proj) == before


# ---- first hour 7: --json on a project error ----------------------------------------------------
@pytest.mark.parametrize("args", [["parse"], ["run"], ["run", "--dry-run"], ["show", "transform.t"]])
def test_json_prints_every_error(tmp_path, args):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/t.yml": """\
        kind: transform
        name: t
        inputs: [source.a, source.nope]
        transform: |
          SELECT id
          FROM ref('source.a') WHERE id = = 1
        """})
    res = cli(*args, "-p", str(proj), "--json")
    assert res.exit_code == 2, res.output
    data = json.loads(res.stdout)
    assert data == {"errors": [
        {"path": "nodes/t.yml", "line": 3, "message": "transform.t: ref 'source.nope' does not exist (did you mean "
                                                      "'source.a'?)"},
        {"path": "nodes/t.yml", "line": 6, "message": "transform.t: SQL does not parse: syntax error at or near \"=\"",
         "detail": ["FROM ref('source.a') WHERE id = = 1", "                                ^"]},
    ]}


def test_json_prints_a_command_line_error(tmp_path):
    proj = write_project(tmp_path / "p", SOURCE)
    res = cli("run", "-p", str(proj), "--json", "--threads", "0")
    assert res.exit_code == 2, res.output
    assert json.loads(res.stdout) == {"errors": [{"path": None, "line": None,
                                                  "message": "--threads must be at least 1"}]}


# ---- compatibility 8: not executable ------------------------------------------------------------
NOT_EXECUTABLE = {**SOURCE, "nodes/m.yml": """\
    kind: model
    name: churn
    inputs: [source.a]
    training: {algorithm: random_forest, label: v}
    """, "nodes/scored.yml": """\
    kind: transform
    name: scored
    inputs: [model.churn]
    transform: SELECT * FROM ref('model.churn')
    """, "nodes/report.yml": """\
    kind: transform
    name: report
    inputs: [transform.scored]
    transform: SELECT count(*) AS n FROM ref('transform.scored')
    """, "nodes/ok.yml": """\
    kind: transform
    name: ok
    inputs: [source.a]
    transform: SELECT sum(v) AS total FROM ref('source.a')
    """, "nodes/push.yml": """\
    kind: exposure
    name: push
    type: notification
    inputs: [transform.ok]
    params: {channel: '#data'}
    """}
MODEL_WHY = ("a model without 'python' is trained by Seeknal itself; seekrun runs a model only as Python: add "
             "'python: path/to/file.py:function' (ctx in, output table out)")


def test_not_executable_nodes_are_said_at_parse_and_skipped_with_their_dependents(tmp_path):
    proj = write_project(tmp_path / "p", NOT_EXECUTABLE)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert f"nodes/m.yml:1: warning: model.churn: not executable by seekrun: {MODEL_WHY}" in res.stderr
    assert ("nodes/push.yml:1: warning: exposure.push: not executable by seekrun: exposure type 'notification' is "
            "not supported (seekrun writes only 'type: file' exposures)") in res.stderr
    manifest = json.loads((proj / "target/manifest.json").read_text())
    assert manifest["nodes"]["model.churn"]["not_executable"] == MODEL_WHY

    skips = [f"SKIP   model.churn  (not executable by seekrun: {MODEL_WHY})",
             "SKIP   transform.scored  (new; input model.churn is not executable by seekrun)",
             "SKIP   transform.report  (new; input transform.scored cannot be built: model.churn is not executable "
             "by seekrun)"]
    res = cli("run", "-p", str(proj), "--dry-run")
    assert res.exit_code == 0, res.output
    for line in ["RUN    source.a  (new)", "RUN    transform.ok  (new)", *skips]:
        assert line in res.stdout
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    for line in skips:
        assert line in res.stdout
    results = run_results(proj)
    assert {n: r["status"] for n, r in results.items()} == {
        "source.a": "success", "transform.ok": "success", "model.churn": "skipped", "transform.scored": "skipped",
        "transform.report": "skipped", "exposure.push": "skipped"}
    assert results["transform.scored"]["error"] == "input model.churn is not executable by seekrun"
    assert table(proj, "transform.ok") == [(30,)]
    res = cli("run", "-p", str(proj), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert (data["successful_nodes"], data["skipped_nodes"], data["failed_nodes"]) == (0, 4, 0)
    res = cli("show", "transform.scored", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "transform.scored  [skipped: new; input model.churn is not executable by seekrun]" in res.stdout


def test_what_run_would_refuse_is_refused_at_parse(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/fg.yml": """\
        kind: feature_group
        name: fg
        inputs: [source.a]
        entity: {name: thing, join_keys: [id]}
        materialization:
          offline: {enabled: true, format: delta}
        transform: SELECT * FROM ref('source.a')
        """})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert ("nodes/fg.yml:6: feature_group.fg: offline format 'delta' is not supported (supported: parquet)"
            in res.stderr)


# ---- compatibility 12: Seeknal's manifest -------------------------------------------------------
def seeknal_writes_its_manifest(proj: Path) -> bytes:
    """What `seeknal run` does to target/manifest.json: it writes it in place (open 'w')."""
    data = (COMPAT / "data" / "yaml_seeknal_manifest.json").read_bytes()
    with open(proj / "target" / "manifest.json", "wb") as f:
        f.write(data)
    return data


def test_a_seeknal_manifest_is_kept_aside_and_builds_stay_incremental(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/t.yml": "kind: transform\nname: t\ninputs: [source.a]\n"
                                                                   "transform: SELECT * FROM ref('source.a')\n"})
    assert cli("run", "-p", str(proj)).exit_code == 0
    ours = (proj / "target/manifest.json").read_bytes()
    theirs = seeknal_writes_its_manifest(proj)

    res = cli("run", "-p", str(proj), "--dry-run")  # reads only: Seeknal's file stays where it is
    assert res.exit_code == 0, res.output
    assert "Nothing to do" in res.stdout and "unreadable" not in res.output
    assert (proj / "target/manifest.json").read_bytes() == theirs

    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    note = ("warning: target/manifest.json was written by Seeknal: kept it as target/manifest.seeknal.json "
            "(seekrun writes its own target/manifest.json; its build state in target/state/ is unchanged)")
    assert res.stderr.count("written by Seeknal") == 1 and note in res.stderr
    assert "unreadable" not in res.output
    assert "No changes since the last parse." in res.stdout  # compared with seekrun's own last manifest
    assert (proj / "target/manifest.seeknal.json").read_bytes() == theirs
    assert json.loads((proj / "target/manifest.json").read_bytes())["nodes"] == json.loads(ours)["nodes"]
    res = cli("parse", "-p", str(proj))
    assert "Seeknal" not in res.output  # said once

    seeknal_writes_its_manifest(proj)  # and during a run
    (proj / "nodes/t.yml").write_text("kind: transform\nname: t\ninputs: [source.a]\n"
                                      "transform: SELECT id FROM ref('source.a')\n")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert note in res.stderr
    assert set(run_results(proj)) == {"source.a", "transform.t"}
    assert {n for n, r in run_results(proj).items() if r["status"] == "success"} == {"transform.t"}  # incremental
    assert (proj / "target/manifest.seeknal.json").read_bytes() == theirs


def test_exposure_cannot_write_over_the_kept_seeknal_manifest(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/e.yml": "kind: exposure\nname: e\ntype: file\n"
                                                                   "inputs: [source.a]\n"
                                                                   "params: {path: target/manifest.seeknal.json, "
                                                                   "format: json}\n"})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "cannot write 'target/manifest.seeknal.json'" in res.stderr


# ---- first hour 1: the SQL's own line, and the caret under the shown line -----------------------
SQL_STYLES = [
    # (the transform value as written, the line of the error, the line shown, the caret's column)
    ("transform: |\n  SELECT id\n  FROM ref('source.a')\n  WHERE id = = 1\n", 7, "WHERE id = = 1", 11),
    ("transform: |-\n\n  SELECT id\n  FROM ref('source.a') WHERE id = = 1\n", 7,
     "FROM ref('source.a') WHERE id = = 1", 32),
    ("transform: >\n  SELECT id\n  FROM ref('source.a')\n  WHERE id = = 1\n", 7, "WHERE id = = 1", 11),
    ("transform: >-\n    SELECT id\n    FROM ref('source.a')\n\n    WHERE id = = 1\n", 8, "WHERE id = = 1", 11),
    ("transform: \"SELECT id FROM ref('source.a') WHERE id = = 1\"\n", 4,
     "SELECT id FROM ref('source.a') WHERE id = = 1", 42),
    ("transform: 'SELECT id FROM ref(''source.a'') WHERE id = = 1'\n", 4,
     "SELECT id FROM ref('source.a') WHERE id = = 1", 42),
    ("transform: SELECT id FROM ref('source.a') WHERE id = = 1\n", 4,
     "SELECT id FROM ref('source.a') WHERE id = = 1", 42),
    ("transform: SELECT id\n  FROM ref('source.a')\n  WHERE id = = 1\n", 6, "WHERE id = = 1", 11),
    ("transform: \"SELECT id\\n  FROM ref('source.a')\n  WHERE id = = 1\"\n", 5, "WHERE id = = 1", 11),
    ("transform: 'SELECT id\n  FROM ref(''source.a'') WHERE\n  id = = 1'\n", 6, "id = = 1", 5),
    ("transform: |\n\tSELECT id\n\tFROM ref('source.a') WHERE id = = 1\n", None, None, None),  # tabs: YAML error
]


@pytest.mark.parametrize("value, line, shown, col", SQL_STYLES)
@pytest.mark.parametrize("indent", [0, 4])
def test_sql_error_points_at_the_sql_line_with_the_caret_under_it(tmp_path, value, line, shown, col, indent):
    head = "kind: transform\nname: t\ninputs: [source.a]\n"
    text = head + value
    if indent:  # the same node as an indented document (after a document that is not a node)
        text = "--- [not, a, node]\n---\n" + "".join(" " * indent + ln if ln.strip() else ln
                                                  for ln in text.splitlines(True))
        line = line + 2 if line else None
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/t.yml": text.encode()})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    if line is None:
        assert "nodes/t.yml" in res.stderr and "tab" in res.stderr
        return
    lines = res.stderr.splitlines()
    i = lines.index(f"nodes/t.yml:{line}: transform.t: SQL does not parse: syntax error at or near \"=\"")
    assert lines[i + 1] == "    " + shown
    assert lines[i + 2] == "    " + " " * col + "^"
    assert shown[col] == "=" and shown[col + 1:].startswith(" 1")  # under the second '='
    assert shown.split()[-2] in text.splitlines()[line - 1]  # the line is the file's


def test_rule_sql_in_a_folded_value_points_at_its_own_line(tmp_path):
    proj = write_project(tmp_path / "p", {**SOURCE, "nodes/r.yml": b"""kind: rule
name: r
inputs: [source.a]
rule:
  type: sql_assertion
  sql: >-
    SELECT * FROM input_0
    WHERE id >> > 3
"""})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    lines = res.stderr.splitlines()
    i = lines.index('nodes/r.yml:8: rule.r: check sql_assertion: SQL does not parse: syntax error at or near ">"')
    assert lines[i + 1:i + 3] == ["    WHERE id >> > 3", "                ^"]
