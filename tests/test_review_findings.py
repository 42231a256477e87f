"""Issue 10: siblings of the adversarial findings, found by reviewing the fixes.

Each test is a class of hole: a SQL shape the reference check could not see (dynamic PIVOT,
a CTE used outside its scope), env_var() values in SQL places where quoting cannot make them
data (comments, E'...' and $$...$$ strings), code or data that changes between hashing and
building, type names that are SQL, CSV reader params that move the header, files seekrun no
longer writes but a person edited, and paths that would make seekrun's own files a database or
an output.  Real projects in tmp_path, the real CLI, real DuckDB.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import cli, cli_proc, exposure_yaml, ran, run_results, table, write_project

SRC = {
    "data/a.csv": "id,k,v\n1,x,10\n2,y,20\n3,x,30\n",
    "nodes/a.yml": """\
        kind: source
        name: a
        source: csv
        table: data/a.csv
        """,
}


def transform(sql: str, name: str = "t", inputs=("source.a",)) -> dict:
    refs = "".join(f"\n  - ref: {r}" for r in inputs)
    body = "\n".join("  " + line for line in sql.splitlines())
    return {f"nodes/{name}.yml": f"kind: transform\nname: {name}\ninputs:{refs}\ntransform: |\n{body}\n"}


def project(tmp_path: Path, extra: dict, marker: str = "name: testproj\n") -> Path:
    return write_project(tmp_path / "p", {**SRC, **extra}, marker=marker)


# ---- SQL the reference check must understand or refuse ---------------------------------------
def test_a_pivot_without_its_values_is_refused_at_parse_and_one_listing_them_builds(tmp_path):
    """PIVOT ... ON k without IN (...) has a column list known only from the data, and DuckDB
    cannot give its parse tree: seekrun cannot see what it reads, so it refuses it."""
    root = project(tmp_path, transform("PIVOT source.a ON k USING sum(v)"))
    res = cli("parse", "-p", str(root))
    assert res.exit_code == 2 and "nodes/t.yml" in res.output and "PIVOT" in res.output, res.output
    assert "IN (" in res.output  # says what to do
    assert not (root / "target" / "manifest.json").exists()
    root2 = project(tmp_path / "ok", transform("PIVOT source.a ON k IN ('x', 'y') USING sum(v) GROUP BY id ORDER BY id"))
    assert cli("run", "-p", str(root2)).exit_code == 0
    assert table(root2, "transform.t") == [(1, 10, None), (2, None, 20), (3, 30, None)]


def test_a_cte_name_used_outside_its_scope_is_an_undeclared_table(tmp_path):
    """A CTE defined inside a subquery is not visible outside it: a reference there is to a
    table, and must be a declared input."""
    sql = "SELECT * FROM (WITH c AS (SELECT 1 AS one) SELECT * FROM c) q, c"
    root = project(tmp_path, transform(sql))
    res = cli("parse", "-p", str(root))
    assert res.exit_code == 2 and "nodes/t.yml" in res.output and "'c'" in res.output, res.output
    ok = project(tmp_path / "ok", transform("WITH c AS (SELECT count(*) AS n FROM source.a) SELECT * FROM c, (SELECT * FROM c) q2"))
    assert cli("run", "-p", str(ok)).exit_code == 0
    assert table(ok, "transform.t") == [(3, 3)]


@pytest.mark.parametrize("sql", ["SELECT aggregation.id FROM source.a AS aggregation",
                                 "SELECT rule.v FROM source.a rule WHERE rule.k = 'x'"])
def test_an_alias_named_like_a_kind_is_a_table_alias_not_a_ref(tmp_path, sql):
    root = project(tmp_path, transform(sql))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert len(table(root, "transform.t")) in (2, 3)


@pytest.mark.parametrize("sql", ["SUMMARIZE SELECT v FROM source.a", "DESCRIBE SELECT * FROM source.a",
                                 "SHOW TABLES", "PRAGMA show_tables", "ATTACH 'x.db' AS x",
                                 "SELECT 1 AS one; DROP TABLE source.a", "COPY source.a TO 'out.csv'"])
def test_a_transform_that_is_not_one_select_is_refused_at_parse(tmp_path, sql):
    root = project(tmp_path, transform(sql))
    res = cli("parse", "-p", str(root))
    assert res.exit_code == 2 and "nodes/t.yml" in res.output and "single SELECT" in res.output, res.output
    assert "Traceback" not in res.output


# ---- env_var() values where quoting cannot make them data -----------------------------------
BREAKOUT = "x\nSELECT 42 AS v --"  # a newline ends a -- comment: the rest would be SQL


def test_env_var_in_a_comment_is_never_filled_in(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEKRUN_T_VAL", BREAKOUT)
    sql = "SELECT count(*) AS n FROM source.a -- by {{ env_var('SEEKRUN_T_VAL') }}\n"
    root = project(tmp_path, transform(sql))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert table(root, "transform.t") == [(3,)]  # not 42: the value never became SQL


@pytest.mark.parametrize("literal", ["E'{{ env_var('SEEKRUN_T_VAL') }}'", "$${{ env_var('SEEKRUN_T_VAL') }}$$",
                                     "$q${{ env_var('SEEKRUN_T_VAL') }}$q$"])
def test_env_var_inside_escape_or_dollar_strings_is_refused(tmp_path, monkeypatch, literal):
    """Inside E'...' a backslash escapes the quote seekrun doubles; inside $$...$$ nothing can be
    escaped: a value there could end the string, so it is refused, before anything runs."""
    monkeypatch.setenv("SEEKRUN_T_VAL", "a\\' , 1 AS w, 'b")
    root = project(tmp_path, transform(f"SELECT {literal} AS v FROM source.a"))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 2 and "nodes/t.yml" in res.output, res.output
    assert "E'" in res.output and "plain '...'" in res.output
    assert not (root / "target" / "seekrun.duckdb").exists()


def test_env_var_in_a_plain_literal_after_an_escape_string_is_data(tmp_path, monkeypatch):
    """E'it\\'s' holds an escaped quote: the literal after it is still a literal."""
    monkeypatch.setenv("SEEKRUN_T_VAL", "o'neil")
    sql = "SELECT E'it\\'s' AS a, '{{ env_var('SEEKRUN_T_VAL') }}' AS b"
    root = project(tmp_path, transform(sql, inputs=()))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert table(root, "transform.t") == [("it's", "o'neil")]


def test_a_change_inside_an_escape_string_reruns_but_whitespace_outside_does_not(tmp_path):
    root = project(tmp_path, transform("SELECT E'a\\'  b' AS s", inputs=()))
    assert cli("run", "-p", str(root)).exit_code == 0
    node = root / "nodes" / "t.yml"
    node.write_text(node.read_text().replace("AS s", "  AS   s"))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0 and ran(root) == set(), res.output
    node.write_text(node.read_text().replace("a\\'  b", "a\\' b"))
    assert cli("run", "-p", str(root)).exit_code == 0
    assert ran(root) == {"transform.t"}
    assert table(root, "transform.t") == [("a' b",)]


def test_short_env_values_are_not_masked_in_counts(tmp_path, monkeypatch):
    """A one-character value (a flag) is not redacted: masking it would garble every count."""
    monkeypatch.setenv("SEEKRUN_T_FLAG", "3")
    root = project(tmp_path, transform("SELECT * FROM source.a WHERE id <= {{ env_var('SEEKRUN_T_FLAG') }}"))
    res = cli("run", "-p", str(root), "--json")
    assert res.exit_code == 0, res.output
    assert run_results(root)["transform.t"]["row_count"] == 3
    assert "***" not in res.output


# ---- code and types that change under seekrun, or smuggle SQL --------------------------------
EDITOR = '''\
from pathlib import Path
from seekrun.pipeline import transform


@transform(name="editor", inputs=["source.a"])
def editor(ctx):
    """Rewrites the other node's code after it was hashed, before it is built."""
    path = Path(__file__).with_name("scaled.py")
    path.write_text(path.read_text().replace("K = 1", "K = 2"))
    return ctx.ref("source.a").project("id")
'''
SCALED = '''\
from seekrun.pipeline import transform

K = 1


@transform(name="scaled", inputs=["transform.editor"])
def scaled(ctx):
    return ctx.ref("transform.editor").project(f"id * {K} AS v")
'''


def test_python_code_changed_between_parse_and_build_is_rebuilt_after_a_revert(tmp_path):
    """Like a data file changed while a source loads it (item 1.4): the code built from must
    be the code whose hash is recorded.  Here the table holds K=2 while the parse hashed K=1;
    reverting to K=1 must rebuild, never say "Nothing to do" over a K=2 table."""
    root = project(tmp_path, {"nodes/py/editor.py": EDITOR, "nodes/py/scaled.py": SCALED})
    res = cli_proc("run", "-p", str(root), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "changed while transform.scaled read it" in res.output, res.output
    assert sorted(table(root, "transform.scaled")) == [(2,), (4,), (6,)]
    scaled = root / "nodes" / "py" / "scaled.py"
    editor = root / "nodes" / "py" / "editor.py"
    editor.write_text(EDITOR.replace('"K = 1", "K = 2"', '"K = 9", "K = 9"'))  # the editor stops editing
    scaled.write_text(SCALED)  # the revert: K = 1 again
    res = cli_proc("run", "-p", str(root), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "transform.scaled" in ran(root)
    assert sorted(table(root, "transform.scaled")) == [(1,), (2,), (3,)]
    res = cli_proc("run", "-p", str(root))
    assert res.exit_code == 0 and ran(root) == set(), res.output


def test_a_feature_dtype_that_is_not_a_type_is_refused_at_parse(tmp_path):
    fg = """\
        kind: feature_group
        name: fg
        entity:
          name: item
          join_keys: [id]
        inputs:
          - ref: source.a
        transform: SELECT id, v FROM source.a
        features:
          v:
            dtype: "INTEGER) AS v, (SELECT 42"
        """
    root = project(tmp_path, {"nodes/fg.yml": fg})
    res = cli("parse", "-p", str(root))
    assert res.exit_code == 2 and "nodes/fg.yml" in res.output, res.output
    assert "type" in res.output and "Traceback" not in res.output
    good = project(tmp_path / "ok", {"nodes/fg.yml": fg.replace('"INTEGER) AS v, (SELECT 42"', "INTEGER")})
    res = cli("run", "-p", str(good))
    assert res.exit_code == 0, res.output


# ---- CSV params that move the header or add columns -----------------------------------------
@pytest.mark.parametrize("params,data,rows", [
    ({"skip": 2}, "exported by tool\nversion 3\nid,v\n1,2\n3,4\n", [(1, 2), (3, 4)]),
    ({"comment": "#"}, "# generated\nid,v\n# a note\n1,2\n3,4\n", [(1, 2), (3, 4)]),
])
def test_csv_skip_and_comment_params_are_honoured_by_the_strict_load(tmp_path, params, data, rows):
    lines = "".join(f"\n  {k}: {v!r}" if isinstance(v, str) else f"\n  {k}: {v}" for k, v in params.items())
    root = write_project(tmp_path / "p", {"data/a.csv": data, "nodes/a.yml":
                         f"kind: source\nname: a\nsource: csv\ntable: data/a.csv\nparams:{lines}\n"})
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert table(root, "source.a") == rows


def test_csv_params_that_add_columns_are_not_a_column_count_mismatch(tmp_path):
    root = write_project(tmp_path / "p", {"data/a.csv": "id,v\n1,2\n", "nodes/a.yml":
                         "kind: source\nname: a\nsource: csv\ntable: data/a.csv\nparams:\n  filename: true\n"})
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    (row,) = table(root, "source.a")
    assert row[:2] == (1, 2) and str(row[2]).endswith("a.csv")


def test_a_ragged_csv_after_skipped_lines_still_fails_with_its_line(tmp_path):
    root = write_project(tmp_path / "p", {"data/a.csv": "junk\nid,v\n1,2\n3,4\n5\n", "nodes/a.yml":
                         "kind: source\nname: a\nsource: csv\ntable: data/a.csv\nparams:\n  skip: 1\n"})
    res = cli("run", "-p", str(root))
    assert res.exit_code == 1, res.output
    assert "line 5" in res.output.lower() or "line: 5" in res.output.lower(), res.output
    assert not (root / "target" / "seekrun.duckdb").exists() or table_missing(root, "source.a")


def table_missing(root: Path, nid: str) -> bool:
    try:
        table(root, nid)
    except Exception:
        return True
    return False


# ---- files seekrun wrote, then a person edited ------------------------------------------------
EXPO = exposure_yaml("x", "target/exports/x.csv")


def test_an_old_exposure_file_edited_by_hand_is_kept_when_the_path_changes(tmp_path):
    root = project(tmp_path, {"nodes/x.yml": EXPO})
    assert cli("run", "-p", str(root)).exit_code == 0
    old = root / "target" / "exports" / "x.csv"
    old.write_text(old.read_text() + "my notes\n")
    node = root / "nodes" / "x.yml"
    node.write_text(node.read_text().replace("exports/x.csv", "exports/y.csv"))
    res = cli_proc("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert old.read_text().endswith("my notes\n")  # kept
    assert "target/exports/x.csv" in res.stderr and "kept" in res.stderr, res.output
    assert (root / "target" / "exports" / "y.csv").exists()
    # without a hand edit, the old file goes
    node.write_text(node.read_text().replace("exports/y.csv", "exports/z.csv"))
    assert cli("run", "-p", str(root)).exit_code == 0
    assert not (root / "target" / "exports" / "y.csv").exists()


@pytest.mark.parametrize("path", ["target/exports/.seekrun-outputs", "output/.seekrun-outputs",
                                  "output/.seekrun-tmp-x.csv"])
def test_exposure_paths_may_not_be_seekruns_own_file_names(tmp_path, path):
    root = project(tmp_path, {"nodes/x.yml": EXPO.replace("target/exports/x.csv", path)},
                   marker="name: testproj\nexposure_paths: [output]\n")
    res = cli("parse", "-p", str(root))
    assert res.exit_code == 2 and "nodes/x.yml" in res.output and ".seekrun" in res.output, res.output


@pytest.mark.parametrize("shape", ["dir", "fifo"])
def test_a_folder_or_fifo_where_seekrun_keeps_its_list_of_written_files_is_an_error(tmp_path, shape):
    root = project(tmp_path, {"nodes/x.yml": EXPO.replace("target/exports/x.csv", "output/x.csv")},
                   marker="name: testproj\nexposure_paths: [output]\n")
    side = root / "output" / ".seekrun-outputs"
    side.parent.mkdir()
    if shape == "dir":
        side.mkdir()
    else:
        os.mkfifo(side)
    res = cli_proc("run", "-p", str(root), timeout=60)  # a FIFO opened for reading would block
    assert res.exit_code == 2, res.output
    assert "output/.seekrun-outputs" in res.output and "Traceback" not in res.output
    assert not (root / "output" / "x.csv").exists()


# ---- a database path that is one of seekrun's own files, or not a database ---------------------
@pytest.mark.parametrize("db", ["target/manifest.json", "target/state/execution_state.json",
                                "seekrun_project.yml", "target/run_results.json"])
def test_the_database_cannot_be_one_of_seekruns_own_files(tmp_path, db):
    root = project(tmp_path, transform("SELECT 1 AS one", inputs=()), marker=f"name: testproj\ndatabase: {db}\n")
    res = cli("run", "-p", str(root))
    assert res.exit_code == 2 and "seekrun_project.yml" in res.output and "own files" in res.output, res.output


def test_an_existing_database_file_that_is_not_duckdb_is_refused_untouched(tmp_path):
    root = project(tmp_path, transform("SELECT 1 AS one", inputs=()), marker="name: testproj\ndatabase: db/x.db\n")
    (root / "db").mkdir()
    text = "id,v\n" + "1,2\n" * 20
    (root / "db" / "x.db").write_text(text)
    res = cli("run", "-p", str(root))
    assert res.exit_code == 2 and "db/x.db" in res.output and "not a DuckDB database" in res.output, res.output
    assert (root / "db" / "x.db").read_text() == text


# ---- deep nesting in seekrun's own files ----------------------------------------------------
@pytest.mark.parametrize("rel", ["target/manifest.json", "target/state/execution_state.json",
                                 "target/run_results.json"])
def test_deeply_nested_own_files_are_treated_as_garbled(tmp_path, rel):
    root = project(tmp_path, transform("SELECT count(*) AS n FROM source.a"))
    assert cli("run", "-p", str(root)).exit_code == 0
    (root / rel).write_text("[" * 200000 + "]" * 200000)
    res = cli_proc("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert "internal error" not in res.output and "Traceback" not in res.output
    assert table(root, "transform.t") == [(3,)]
    res = cli_proc("run", "-p", str(root))
    assert res.exit_code == 0 and "Traceback" not in res.output


def test_a_journal_record_nested_deeper_than_seekrun_writes_is_ignored_and_its_node_rebuilt(tmp_path):
    """A record that is valid JSON but nests 500 levels deep (not seekrun's) is dropped when the
    state is read: the node rebuilds, and folding the state never crashes on it."""
    import json

    from seekrun.state import JOURNAL_FILE

    root = project(tmp_path, transform("SELECT count(*) AS n FROM source.a"))
    assert cli("run", "-p", str(root)).exit_code == 0
    state = json.loads((root / "target" / "state" / "execution_state.json").read_text())
    entry = dict(state["nodes"]["transform.t"])
    deep: list = []
    for _ in range(500):
        deep = [deep]
    entry["warnings"] = deep
    with open(root / "target" / "state" / JOURNAL_FILE, "a") as f:
        f.write(json.dumps({"id": "transform.t", "entry": entry}) + "\n")
    res = cli_proc("run", "-p", str(root))
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    assert ran(root) == {"transform.t"}
    assert cli_proc("run", "-p", str(root)).stdout.startswith("Nothing to do")


# ---- second review: quote tracking, claimed files, absolute database paths -------------------
@pytest.mark.parametrize("sql", [
    "SELECT 1 AS a$q$, '$q$' AS t, '{{ env_var('SEEKRUN_T_VAL') }}' AS s",  # $ inside a name
    "SELECT 1 AS a /* outer /* inner */ {{ env_var('SEEKRUN_T_VAL') }} */, 'x' AS s",  # nested comment
])
def test_env_var_placeholders_are_placed_as_duckdb_reads_the_sql(tmp_path, monkeypatch, sql):
    """A value must never become SQL: not after a name holding $ (which is no dollar string),
    nor inside a comment nested in a comment (which DuckDB nests)."""
    monkeypatch.setenv("SEEKRUN_T_VAL", "x' AS s, 42 AS injected --*/, 43 AS injected2 /*")
    root = project(tmp_path, transform(sql, inputs=()))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    import duckdb

    con = duckdb.connect(str(root / "target" / "seekrun.duckdb"), read_only=True)
    cols = [d[0] for d in con.execute("SELECT * FROM transform.t").description]
    con.close()
    assert not any(c.startswith("injected") for c in cols), cols


@pytest.mark.parametrize("tag", ["$a1$", "$_1$", "$é$"])
def test_env_var_in_a_dollar_string_with_any_tag_is_refused(tmp_path, monkeypatch, tag):
    monkeypatch.setenv("SEEKRUN_T_VAL", f"{tag} AS s, 42 AS injected --")
    root = project(tmp_path, transform(f"SELECT {tag}{{{{ env_var('SEEKRUN_T_VAL') }}}}{tag} AS s", inputs=()))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 2 and "plain '...'" in res.output, res.output


def test_sql_after_a_comment_ended_by_a_carriage_return_is_part_of_the_hash(tmp_path):
    """DuckDB ends a -- comment at a lone \\r: what follows is SQL, and editing it reruns."""
    node = "kind: transform\nname: t\ntransform: \"SELECT 1 AS a -- note\\r, 2 AS b\"\n"
    root = write_project(tmp_path / "p", {"nodes/t.yml": node})
    assert cli("run", "-p", str(root)).exit_code == 0
    assert table(root, "transform.t") == [(1, 2)]
    (root / "nodes" / "t.yml").write_text(node.replace("2 AS b", "3 AS b"))
    assert cli("run", "-p", str(root)).exit_code == 0
    assert table(root, "transform.t") == [(1, 3)]


def test_a_file_made_by_hand_where_a_killed_run_was_about_to_write_is_never_deleted(tmp_path):
    """Killed before the exposure's file was written; the exposure then moves, and a person
    makes a file at the old path: it is not seekrun's, so it stays (with a warning)."""
    root = project(tmp_path, {"nodes/x.yml": exposure_yaml("x", "output/t.csv")},
                   marker="name: testproj\nexposure_paths: [output]\n")
    res = cli_proc("run", "-p", str(root), env={"SEEKRUN_FAULT": "exposure_write:exposure.x"})
    assert res.exit_code == -9, res.output
    assert not (root / "output" / "t.csv").exists()
    (root / "nodes" / "x.yml").write_text(exposure_yaml("x", "output/u.csv"))
    (root / "output" / "t.csv").write_text("my own notes\n")
    res = cli_proc("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    assert (root / "output" / "t.csv").read_text() == "my own notes\n"
    assert "kept output/t.csv" in res.output
    # and no node may now overwrite it unasked
    (root / "nodes" / "x.yml").write_text(exposure_yaml("x", "output/t.csv"))
    res = cli("run", "-p", str(root))
    assert res.exit_code == 2 and "output/t.csv' exists and was not written by seekrun" in res.output, res.output
    assert (root / "output" / "t.csv").read_text() == "my own notes\n"


def test_the_database_cannot_be_one_of_seekruns_own_files_by_an_absolute_path(tmp_path):
    root = tmp_path / "p"
    project(tmp_path, transform("SELECT 1 AS one", inputs=()),
            marker=f"name: testproj\ndatabase: {root}/target/run_results.json\n")
    res = cli("run", "-p", str(root))
    assert res.exit_code == 2 and "own files" in res.output, res.output
