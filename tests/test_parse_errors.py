"""Issue 2: every parse error is one `path:line: message` line, all collected, exit 2, target/ untouched.

Each error test parses a good project first (so target/ holds a manifest and a hash cache), then
breaks it and checks: exit code 2, the exact `path:line:` prefix (path relative to the project,
1-based line of the offending key or document), a message substring, no traceback, and that not
one byte under target/ changed.
"""
from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from conftest import cli, target_snapshot, write_project

BASE = {
    "data/orders.csv": "order_id,customer_id,amount\n1,10,5.0\n2,11,7.5\n3,10,-1.0\n",
    "data/customers.csv": "customer_id,name\n10,ann\n11,bob\n",
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
        inputs:
          - ref: source.orders
        transform: |
          SELECT order_id, customer_id, amount
          FROM ref('source.orders')
          WHERE amount > 0
        """,
}


def parsed_ok(tmp_path: Path, extra: dict | None = None) -> Path:
    """A good project that has been parsed once (target/ holds manifest + hash cache)."""
    proj = write_project(tmp_path / "proj", {**BASE, **(extra or {})})
    res = cli("parse", "-p", "proj", cwd=tmp_path)
    assert res.exit_code == 0, res.output
    assert (proj / "target" / "manifest.json").is_file()
    return proj


def edit(proj: Path, files: dict[str, str | None]) -> None:
    for rel, text in files.items():
        path = proj / rel
        if text is None:
            path.unlink()
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))


def break_and_parse(proj: Path, files: dict[str, str | None], *args: str):
    """Apply the edit, parse again (from the parent folder, -p relative) and check the common contract."""
    before = target_snapshot(proj)
    assert "target/manifest.json" in before
    edit(proj, files)
    res = cli("parse", "-p", proj.name, *args, cwd=proj.parent)
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert target_snapshot(proj) == before, "a failed parse changed files under target/"
    assert not (proj / "target" / "manifest.json.old").exists()
    return res


def error_line(res, prefix: str, *substrings: str) -> str:
    """The output line that starts with `prefix` (e.g. 'nodes/x.yml:3: ') and holds every substring."""
    lines = [ln for ln in res.output.splitlines() if ln.startswith(prefix)]
    assert lines, f"no line starts with {prefix!r}:\n{res.output}"
    hits = [ln for ln in lines if all(s in ln for s in substrings)]
    assert hits, f"no line starting with {prefix!r} contains {substrings!r}:\n{res.output}"
    return hits[0]


# ---------------------------------------------------------------------------------------------
# YAML, kind, name


def test_yaml_syntax_error(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/bad.yml": """\
        kind: transform
        name: bad
        description: oops: a colon
        inputs:
          - ref: source.orders
        transform: SELECT 1 AS x
        """})
    error_line(res, "nodes/bad.yml:3: ", "YAML")


def test_yaml_syntax_error_in_second_document_gets_file_line(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: [data/customers.csv
        """})
    # the flow sequence opened on line 9 is never closed; the error is in this file, not line 1
    line = error_line(res, "nodes/sources.yml:", "YAML")
    assert not line.startswith("nodes/sources.yml:1:"), line


def test_yaml_is_loaded_safely(tmp_path):
    proj = parsed_ok(tmp_path)
    flag = tmp_path / "pwned"
    res = break_and_parse(proj, {"nodes/evil.yml": f"""\
        kind: transform
        name: evil
        description: !!python/object/apply:os.system ["touch {flag}"]
        transform: SELECT 1 AS x
        """})
    error_line(res, "nodes/evil.yml:3: ")
    assert not flag.exists()


def test_missing_kind(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/by_customer.yml": """\
        # revenue per customer
        name: by_customer
        inputs:
          - ref: transform.clean_orders
        transform: SELECT customer_id, sum(amount) AS revenue FROM input_0 GROUP BY 1
        """})
    error_line(res, "nodes/by_customer.yml:2: ", "kind")


def test_missing_kind_in_second_document(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        name: customers
        source: csv
        table: data/customers.csv
        """})
    error_line(res, "nodes/sources.yml:6: ", "kind")


def test_missing_name(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        source: csv
        table: data/customers.csv
        """})
    error_line(res, "nodes/sources.yml:6: ", "name")


def test_unknown_kind_with_did_you_mean(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/by_customer.yml": """\
        # revenue per customer
        name: by_customer
        kind: transfrom
        inputs:
          - ref: transform.clean_orders
        transform: SELECT customer_id FROM input_0
        """})
    line = error_line(res, "nodes/by_customer.yml:3: ", "transfrom")
    assert "kind" in line
    assert "did you mean" in line and "'transform'" in line, line


# ---------------------------------------------------------------------------------------------
# duplicates and refs


@pytest.mark.parametrize("copy", ["zz_copy", "aa_copy"])
def test_duplicate_node_id_names_both_files(tmp_path, copy):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {f"nodes/{copy}.yml": """\
        # a second definition of the same node
        kind: transform
        name: clean_orders
        inputs:
          - ref: source.orders
        transform: SELECT * FROM input_0
        """})
    lines = [ln for ln in res.output.splitlines() if "duplicate" in ln.lower()]
    assert len(lines) == 1, res.output
    line = lines[0]
    assert re.match(rf"nodes/({copy}|clean_orders)\.yml:\d+: ", line), line
    assert "transform.clean_orders" in line
    assert f"nodes/{copy}.yml" in line and "nodes/clean_orders.yml" in line, line


def test_duplicate_node_id_within_one_file(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: orders
        source: csv
        table: data/customers.csv
        """, "nodes/clean_orders.yml": None})
    line = error_line(res, "nodes/sources.yml:", "duplicate", "source.orders")
    assert line.count("nodes/sources.yml") == 2, line


def test_ref_to_missing_node_suggests(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/clean_orders.yml": """\
        kind: transform
        name: clean_orders
        description: orders with a positive amount
        inputs:
          - ref: source.ordrs
        transform: SELECT * FROM input_0
        """})
    line = error_line(res, "nodes/clean_orders.yml:5: ", "source.ordrs")
    assert "did you mean" in line and "source.orders" in line.replace("source.ordrs", ""), line


def test_depends_on_ref_to_missing_node(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/export.yml": """\
        kind: exposure
        name: orders_export
        type: file
        params: {format: csv, path: target/out/orders.csv}
        depends_on:
          - ref: transform.clean_order
        """})
    line = error_line(res, "nodes/export.yml:6: ", "transform.clean_order")
    assert "did you mean" in line and "transform.clean_orders" in line, line


@pytest.mark.parametrize("sql", [
    "SELECT * FROM input_0 JOIN ref('source.customers') USING (customer_id)",
    "SELECT * FROM source.customers",
    "SELECT o.* FROM input_0 o JOIN source.customers c ON o.customer_id = c.customer_id",
    "SELECT * FROM input_0 WHERE customer_id IN (SELECT customer_id FROM source.customers)",
    "SELECT o.* FROM input_0 o, source.customers c WHERE o.customer_id = c.customer_id",
], ids=["ref()", "from-name", "join-name", "subquery-name", "comma-join-name"])
def test_sql_ref_not_declared_in_inputs(tmp_path, sql):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/clean_orders.yml": f"""\
        kind: transform
        name: clean_orders
        inputs:
          - ref: source.orders
        # the SQL names a node that is not listed above
        transform: {sql}
        """})
    line = error_line(res, "nodes/clean_orders.yml:6: ", "source.customers")
    assert "input" in line  # tells the user to declare it in inputs


def test_ref_in_unchanged_file_breaks_when_target_node_is_removed(tmp_path):
    # clean_orders.yml is not edited (and may be cached): its ref now dangles
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: order
        source: csv
        table: data/orders.csv
        """})
    line = error_line(res, "nodes/clean_orders.yml:5: ", "source.orders")
    assert "did you mean" in line and "source.order'" in line, line


def test_names_in_strings_and_comments_are_not_refs(tmp_path):
    proj = parsed_ok(tmp_path)
    edit(proj, {"nodes/clean_orders.yml": """\
        kind: transform
        name: clean_orders
        inputs:
          - ref: source.orders
        transform: |
          -- joins ref('source.customers') later; see input_3
          SELECT *, 'input_2' AS a, 'source.customers' AS b, 'ref(''source.customers'')' AS c
          FROM input_0 /* FROM source.customers */
        """})
    res = cli("parse", "-p", "proj", cwd=tmp_path)
    assert res.exit_code == 0, res.output


def test_sql_input_n_without_inputs(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/clean_orders.yml": """\
        kind: transform
        name: clean_orders
        description: no inputs at all
        transform: SELECT * FROM input_0
        """})
    error_line(res, "nodes/clean_orders.yml:4: ", "input_0")


def test_sql_input_n_out_of_range(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/clean_orders.yml": """\
        kind: transform
        name: clean_orders
        inputs:
          - ref: source.orders
          - ref: source.customers
        transform: |
          SELECT * FROM input_0 JOIN input_2 USING (customer_id)
        """})
    line = error_line(res, "nodes/clean_orders.yml:6: ", "input_2", "out of range")
    assert "input_0" not in line.split("input_2")[0]  # input_0 is fine; only input_2 is reported
    assert len([ln for ln in res.output.splitlines() if "out of range" in ln]) == 1, res.output


# ---------------------------------------------------------------------------------------------
# cycles


def _cycle_path(line: str) -> list[str]:
    m = re.search(r"((?:[a-z_]+\.[A-Za-z0-9_]+ -> )+[a-z_]+\.[A-Za-z0-9_]+)", line)
    assert m, line
    return m.group(1).split(" -> ")


def test_three_node_cycle_printed_as_full_path(tmp_path):
    proj = parsed_ok(tmp_path)
    files = {}
    # a reads c, b reads a, c reads b: the cycle a -> b -> c -> a (in data-flow direction)
    for name, parent in (("a", "c"), ("b", "a"), ("c", "b")):
        files[f"nodes/cyc_{name}.yml"] = f"""\
            kind: transform
            name: {name}
            inputs:
              - ref: transform.{parent}
            transform: SELECT * FROM input_0
            """
    res = break_and_parse(proj, files)
    lines = [ln for ln in res.output.splitlines() if "cycle" in ln]
    assert len(lines) == 1, res.output
    assert re.match(r"nodes/cyc_[abc]\.yml:3: ", lines[0]), lines[0]
    path = _cycle_path(lines[0])
    assert len(path) == 4 and path[0] == path[-1], path
    assert set(path) == {"transform.a", "transform.b", "transform.c"}
    flow = {("transform.c", "transform.a"), ("transform.a", "transform.b"), ("transform.b", "transform.c")}
    pairs = set(zip(path, path[1:]))
    assert pairs == flow or pairs == {(b, a) for a, b in flow}, path


def test_self_reference_cycle(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/clean_orders.yml": """\
        kind: transform
        name: clean_orders
        inputs:
          - ref: transform.clean_orders
        transform: SELECT * FROM input_0
        """})
    line = error_line(res, "nodes/clean_orders.yml:3: ", "cycle")
    assert _cycle_path(line) == ["transform.clean_orders", "transform.clean_orders"], line


def test_every_cycle_is_reported(tmp_path):
    proj = parsed_ok(tmp_path)
    files = {}
    for name, parent in (("p1", "p2"), ("p2", "p1"), ("q1", "q2"), ("q2", "q1")):
        files[f"nodes/{name}.yml"] = f"""\
            kind: transform
            name: {name}
            inputs: [{{ref: transform.{parent}}}]
            transform: SELECT * FROM input_0
            """
    res = break_and_parse(proj, files)
    cycles = sorted(sorted(set(_cycle_path(ln))) for ln in res.output.splitlines() if "cycle" in ln)
    assert cycles == [["transform.p1", "transform.p2"], ["transform.q1", "transform.q2"]], res.output


# ---------------------------------------------------------------------------------------------
# source paths


def test_source_table_outside_project_relative(tmp_path):
    (tmp_path / "outside.csv").write_text("a\n1\n")
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: ../outside.csv
        """})
    line = error_line(res, "nodes/sources.yml:9: ", "../outside.csv")
    assert "outside" in line.replace("../outside.csv", "")


def test_source_table_outside_project_absolute(tmp_path):
    outside = tmp_path / "elsewhere" / "customers.csv"
    outside.parent.mkdir()
    outside.write_text("customer_id,name\n10,ann\n")
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": f"""\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: {outside}
        """})
    line = error_line(res, "nodes/sources.yml:9: ", str(outside))
    assert "outside" in line.replace(str(outside), "")


def test_source_table_outside_project_missing_file_is_still_an_error(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: ../../nowhere/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: data/customers.csv
        """})
    error_line(res, "nodes/sources.yml:4: ", "outside")


def test_source_table_symlink_escaping_project(tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text("customer_id,name\n10,ann\n")
    proj = parsed_ok(tmp_path)
    (proj / "data" / "linked.csv").symlink_to(outside)
    res = break_and_parse(proj, {"nodes/sources.yml": """\
        kind: source
        name: orders
        source: csv
        table: data/orders.csv
        ---
        kind: source
        name: customers
        source: csv
        table: data/linked.csv
        """})
    error_line(res, "nodes/sources.yml:9: ", "outside")


# ---------------------------------------------------------------------------------------------
# all errors together


def test_errors_in_several_files_are_reported_together(tmp_path):
    proj = parsed_ok(tmp_path)
    res = break_and_parse(proj, {
        "nodes/a_yaml.yml": "kind: transform\nname: a_yaml\ntransform: SELECT 1 AS x\n  extra: [\n",
        "nodes/b_kind.yml": "name: b_kind\nkind: transfrom\ntransform: SELECT 1\n",
        "nodes/c_ref.yml": "kind: transform\nname: c_ref\ninputs:\n  - ref: source.ordrs\ntransform: SELECT * FROM input_0\n",
        "nodes/d_sql.yml": "kind: transform\nname: d_sql\ninputs: [{ref: source.orders}]\ntransform: SELECT * FROM input_3\n",
    })
    error_line(res, "nodes/a_yaml.yml:", "YAML")
    error_line(res, "nodes/b_kind.yml:2: ", "transfrom")
    error_line(res, "nodes/c_ref.yml:4: ", "source.ordrs")
    error_line(res, "nodes/d_sql.yml:4: ", "input_3")
    # each error is a single line of the form path:line: message
    diag = [ln for ln in res.output.splitlines() if re.match(r"nodes/[a-z_]+\.yml:\d+: ", ln)]
    assert len(diag) == 4, res.output


# ---------------------------------------------------------------------------------------------
# project discovery


def test_no_marker_names_both_marker_files(tmp_path):
    proj = tmp_path / "notaproject"
    write_project(proj, {"nodes/a.yml": "kind: transform\nname: a\ntransform: SELECT 1\n"}, marker=None)
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "seekrun_project.yml" in res.output and "seeknal_project.yml" in res.output
    assert not (proj / "target").exists()


def test_missing_project_dir(tmp_path):
    res = cli("parse", "-p", str(tmp_path / "nope"))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "nope" in res.output
    assert not (tmp_path / "nope").exists()


def test_no_marker_in_current_directory(tmp_path):
    res = cli("parse", cwd=tmp_path)
    assert res.exit_code == 2, res.output
    assert "seekrun_project.yml" in res.output and "seeknal_project.yml" in res.output
    assert not (tmp_path / "target").exists()


# ---------------------------------------------------------------------------------------------
# warnings: unknown keys, missing data files


UNKNOWN_KEY = """\
    kind: transform
    name: clean_orders
    inputs:
      - ref: source.orders
    materialized: table
    transform: SELECT * FROM input_0 WHERE amount > 0
    """


def test_unknown_key_is_a_warning_and_kept_in_config(tmp_path):
    proj = parsed_ok(tmp_path)
    edit(proj, {"nodes/clean_orders.yml": UNKNOWN_KEY})
    res = cli("parse", "-p", "proj", cwd=tmp_path)
    assert res.exit_code == 0, res.output
    line = error_line(res, "nodes/clean_orders.yml:5: ", "materialized")
    assert "warning" in line.lower()
    manifest = json.loads((proj / "target" / "manifest.json").read_text())
    assert manifest["nodes"]["transform.clean_orders"]["config"]["materialized"] == "table"


def test_unknown_key_warning_repeats_on_every_parse(tmp_path):
    proj = parsed_ok(tmp_path)
    edit(proj, {"nodes/clean_orders.yml": UNKNOWN_KEY})
    first = cli("parse", "-p", "proj", cwd=tmp_path)
    second = cli("parse", "-p", "proj", cwd=tmp_path)  # the file is unchanged now
    assert second.exit_code == 0, second.output
    error_line(second, "nodes/clean_orders.yml:5: ", "materialized", "warning")
    assert first.stderr == second.stderr


def test_strict_catches_unknown_key_in_a_file_parsed_before(tmp_path):
    proj = parsed_ok(tmp_path)
    edit(proj, {"nodes/clean_orders.yml": UNKNOWN_KEY})
    assert cli("parse", "-p", "proj", cwd=tmp_path).exit_code == 0
    before = target_snapshot(proj)
    res = cli("parse", "-p", "proj", "--strict", cwd=tmp_path)
    assert res.exit_code == 2, res.output
    error_line(res, "nodes/clean_orders.yml:5: ", "materialized")
    assert target_snapshot(proj) == before


def test_unknown_key_is_an_error_under_strict(tmp_path):
    proj = parsed_ok(tmp_path)
    ok = cli("parse", "-p", "proj", "--strict", cwd=tmp_path)  # a clean project passes --strict
    assert ok.exit_code == 0, ok.output
    res = break_and_parse(proj, {"nodes/clean_orders.yml": UNKNOWN_KEY}, "--strict")
    error_line(res, "nodes/clean_orders.yml:5: ", "materialized")


def test_missing_source_data_file_is_a_warning(tmp_path):
    proj = parsed_ok(tmp_path)
    (proj / "data" / "customers.csv").unlink()
    res = cli("parse", "-p", "proj", cwd=tmp_path)
    assert res.exit_code == 0, res.output
    line = error_line(res, "nodes/sources.yml:9: ", "data/customers.csv")
    assert "warning" in line.lower()
    manifest = json.loads((proj / "target" / "manifest.json").read_text())
    assert "source.customers" in manifest["nodes"]
