"""Issue 10: secrets never leave the process, and node SQL cannot read outside the project.

An env_var() value holding spaces, tabs, newlines, both quotes and 80+ characters is put where
every error path can echo it: a DuckDB conversion error on a SQL literal, a DuckDB parse error
with the value outside quotes, a Python node's exception (whole value, and a 12-character piece
of it), a failing rule's sql_assertion, a rule whose assertion errors, reader params, and an
internal error.  The value, its whitespace-collapsed form and every 8-character fragment of
either must appear in none of stdout, stderr, run_results.json, execution_state.json, the
journal, manifest.json (nor any other file under target/ but the database).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from conftest import all_tables, cli, cli_proc, run_results, table, target_snapshot, write_project

KILLED = -9
SEPARATORS = [" ", "\t", "\n", "'", '"', "  ", "\t \n", "''", '" ', " '"]


def make_secret(shape: str) -> str:
    """An 80+ character value in which every 8-character window holds random hex (so a
    fragment found anywhere is the secret's, not a coincidence)."""
    hexes = (uuid.uuid4().hex + uuid.uuid4().hex + uuid.uuid4().hex)
    chunks = [hexes[i:i + 6] for i in range(0, 96, 6)]
    text = "".join(c + SEPARATORS[k % len(SEPARATORS)] for k, c in enumerate(chunks))[:-1]
    if shape == "quote_edges":
        text = "'" + text + '"'
    elif shape == "padded":
        text = " \t" + text + "\n "
    assert len(text) >= 80 and " " in text and "\t" in text and "\n" in text and "'" in text and '"' in text
    return text


SHAPES = ["mixed", "quote_edges", "padded"]


def forms(secret: str) -> list[str]:
    return [secret, " ".join(secret.split())]


def leak(secret: str, text: str) -> str | None:
    """The first piece of the secret (whole, collapsed, or an 8-character fragment of either)
    found in text, or None."""
    for form in forms(secret):
        if form.strip() and form in text:
            return form
        for i in range(len(form) - 7):
            gram = form[i:i + 8]
            if gram in text:
                return gram
    return None


def sinks(project: Path, *results) -> dict[str, str]:
    """Every place a user or a later reader sees: the command outputs and seekrun's files."""
    out = {}
    for k, res in enumerate(results):
        out[f"command {k} stdout"] = res.stdout
        out[f"command {k} stderr"] = res.stderr
    target = project / "target"
    for path in sorted(target.rglob("*")) if target.exists() else ():
        if path.is_file() and not path.name.startswith("seekrun.duckdb"):
            out[path.relative_to(project).as_posix()] = path.read_bytes().decode("utf-8", "replace")
    return out


def assert_no_leak(secret: str, where: dict[str, str], must_have=()) -> None:
    for rel in must_have:
        assert rel in where, (rel, sorted(where))
    for name, text in where.items():
        found = leak(secret, text)
        assert found is None, f"{found!r} (from the secret) is in {name}:\n{text[:3000]}"


# ---------------------------------------------------------------------------------------------
# every node error path at once

NODES_YML = """\
kind: source
name: people
source: csv
table: data/people.csv
---
kind: source
name: by_dateformat
source: csv
table: data/people.csv
params:
  dateformat: "{{ env_var('SEEKRUN_TEST_SECRET') }}"
  types: {d: DATE}
---
kind: source
name: by_types
source: csv
table: data/people.csv
params:
  types: {d: "{{ env_var('SEEKRUN_TEST_SECRET') }}"}
---
kind: transform
name: cast
transform: SELECT CAST('{{ env_var('SEEKRUN_TEST_SECRET') }}' AS INTEGER) AS n
---
kind: transform
name: literal
transform: SELECT '{{ env_var('SEEKRUN_TEST_SECRET') }}' AS v, length('{{ env_var('SEEKRUN_TEST_SECRET') }}') AS n
---
kind: rule
name: not_the_secret
inputs:
  - ref: source.people
rule:
  - name: nobody_is_the_secret
    type: sql_assertion
    sql: SELECT * FROM input_0 WHERE name <> '{{ env_var('SEEKRUN_TEST_SECRET') }}'
params:
  severity: error
---
kind: rule
name: assertion_errors
inputs:
  - ref: source.people
rule:
  - name: casts_the_secret
    type: sql_assertion
    sql: SELECT * FROM input_0 WHERE id = CAST('{{ env_var('SEEKRUN_TEST_SECRET') }}' AS INTEGER)
params:
  severity: error
---
kind: model
name: raises_whole
python: lib/boom.py:whole
params:
  token: "{{ env_var('SEEKRUN_TEST_SECRET') }}"
---
kind: model
name: raises_fragment
python: lib/boom.py:fragment
params:
  token: "{{ env_var('SEEKRUN_TEST_SECRET') }}"
"""

BOOM_PY = '''\
def whole(ctx):
    raise ValueError("the token " + ctx.params["token"] + " was refused")


def fragment(ctx):
    raise ValueError("the token starting " + ctx.params["token"].strip()[8:20] + "... was refused")
'''

FAILING = {"source.by_dateformat", "source.by_types", "transform.cast", "rule.not_the_secret",
           "rule.assertion_errors", "model.raises_whole", "model.raises_fragment"}
WHAT_THEY_SAY = {  # each error is still useful once redacted
    "source.by_types": "can not be converted to a DuckDB Type",
    "source.by_dateformat": "cannot read the CSV data",
    "transform.cast": "Could not convert string",
    "rule.not_the_secret": "nobody_is_the_secret: the query returns 2 rows",
    "rule.assertion_errors": "Could not convert string",
    "model.raises_whole": "whole() raised ValueError: the token",
    "model.raises_fragment": "fragment() raised ValueError: the token starting",
}


def secret_project(root: Path) -> Path:
    return write_project(root, {
        "data/people.csv": "id,name,d\n1,ann,2024-01-01\n2,bob,2024-02-01\n",
        "nodes/all.yml": NODES_YML,
        "lib/boom.py": BOOM_PY,
    })


@pytest.mark.parametrize("shape", SHAPES)
def test_secret_never_leaks_from_any_node_error(shape, tmp_path):
    secret = make_secret(shape)
    env = {"SEEKRUN_TEST_SECRET": secret}
    p = secret_project(tmp_path / "proj")

    # killed at the fold: the journal, with every failed node's error, stays on disk
    killed = cli_proc("run", "-p", str(p), "--continue-on-error", "--threads", "1",
                      env={**env, "SEEKRUN_FAULT": "state_fold"})
    assert killed.exit_code == KILLED, killed.output
    journal = (p / "target" / "state" / "execution_state.journal").read_text()
    assert journal.count('"status":"failed"') == len(FAILING), journal
    assert "Could not convert string" in journal
    assert_no_leak(secret, sinks(p, killed), must_have=["target/state/execution_state.journal",
                                                         "target/manifest.json"])

    res = cli_proc("run", "-p", str(p), "--continue-on-error", env=env)
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    results = run_results(p)
    assert {nid for nid, r in results.items() if r["status"] == "failed"} == FAILING, results
    for nid, said in WHAT_THEY_SAY.items():
        assert said in results[nid]["error"], (nid, results[nid]["error"])
        assert "***" in results[nid]["error"] or nid in ("source.by_dateformat", "rule.not_the_secret"), \
            (nid, results[nid]["error"])
    # the value inside '...' is data: quotes doubled, never SQL
    assert results["transform.literal"]["status"] == "cached"  # built by the killed run, journaled
    assert table(p, "transform.literal") == [(secret, len(secret))]
    where = sinks(p, res)
    assert_no_leak(secret, where, must_have=["target/run_results.json", "target/state/execution_state.json",
                                             "target/manifest.json"])

    # the other commands that show nodes or plans
    shown = [cli_proc("show", "transform.cast", "-p", str(p), env=env),
             cli_proc("run", "-p", str(p), "--dry-run", "-v", env=env),
             cli_proc("run", "-p", str(p), "--continue-on-error", "--json", env=env),
             cli_proc("parse", "-p", str(p), "--json", env=env)]
    assert [r.exit_code for r in shown] == [0, 0, 1, 0], [r.output for r in shown]
    assert_no_leak(secret, sinks(p, *shown))


@pytest.mark.parametrize("shape", SHAPES)
def test_secret_outside_quotes_in_a_parse_error_at_run_time(shape, tmp_path):
    """The value is SQL here (outside quotes): DuckDB's parser fails on it at run time, and its
    message (with its LINE and caret) is redacted before it is shown. Nothing is written."""
    secret = make_secret(shape)
    env = {"SEEKRUN_TEST_SECRET": secret}
    p = write_project(tmp_path / "proj", {
        "nodes/bare.yml": "kind: transform\nname: bare\ntransform: SELECT 1 AS x WHERE {{ env_var('SEEKRUN_TEST_SECRET') }}\n",
        "nodes/ok.yml": "kind: transform\nname: ok\ntransform: SELECT 1 AS x\n",
    })
    parse = cli_proc("parse", "-p", str(p), env=env)
    assert parse.exit_code == 0, parse.output  # the value is not known at parse time
    before = target_snapshot(p)
    res = cli_proc("run", "-p", str(p), env=env)
    assert res.exit_code == 2, res.output
    assert "nodes/bare.yml:3: transform.bare: SQL does not parse: Parser Error" in res.stderr, res.output
    assert target_snapshot(p) == before
    assert_no_leak(secret, sinks(p, parse, res), must_have=["target/manifest.json"])


# an internal error whose message holds the value (a seekrun bug that echoes it), with and
# without SEEKRUN_DEBUG's traceback
WRAPPER = textwrap.dedent('''\
    import os, sys
    from seekrun import faults
    _real = faults.point
    def point(name, node=None):
        if name == "plan":
            raise RuntimeError("a bug that shows " + os.environ["SEEKRUN_TEST_SECRET"])
        return _real(name, node)
    faults.point = point
    sys.argv = ["seekrun", *sys.argv[1:]]
    from seekrun.cli import main
    main()
    ''')


@pytest.mark.parametrize("debug", [False, True])
def test_secret_in_an_internal_error_is_redacted(debug, tmp_path):
    secret = make_secret("mixed")
    p = secret_project(tmp_path / "proj")
    env = {**os.environ, "SEEKRUN_TEST_SECRET": secret}
    if debug:
        env["SEEKRUN_DEBUG"] = "1"
    built = cli_proc("run", "-p", str(p), "--continue-on-error", env={"SEEKRUN_TEST_SECRET": secret})
    assert built.exit_code == 1, built.output  # every target/ file is there
    outputs = [built]
    for warm in (False, True):  # a cold parse, then one from the parse cache
        proc = subprocess.run([sys.executable, "-c", WRAPPER, "run", "-p", str(p), "--continue-on-error"],
                              capture_output=True, text=True, env=env, timeout=120)
        outputs.append(proc)
        assert proc.returncode == 3, proc.stdout + proc.stderr
        assert "seekrun: internal error: RuntimeError: a bug that shows ***" in proc.stderr, proc.stderr
        assert ("Traceback" in proc.stderr) == debug
    # and the test hook's own internal error (SEEKRUN_FAULT=raise@plan), with secrets in use
    hook = cli_proc("run", "-p", str(p), env={"SEEKRUN_TEST_SECRET": secret, "SEEKRUN_FAULT": "raise@plan",
                                              **({"SEEKRUN_DEBUG": "1"} if debug else {})})
    assert hook.exit_code == 3, hook.output
    assert_no_leak(secret, sinks(p, *outputs, hook), must_have=["target/manifest.json", "target/run_results.json",
                                                                "target/state/execution_state.json"])


def test_quote_inside_a_sql_literal_is_data_not_sql(tmp_path):
    """A value that would close the literal and add SQL if pasted in as is."""
    value = "x' UNION ALL SELECT 'injected"
    p = write_project(tmp_path / "proj", {
        "nodes/t.yml": "kind: transform\nname: t\ntransform: SELECT '{{ env_var('SEEKRUN_TEST_SECRET') }}' AS v\n",
        "nodes/q.yml": ("kind: transform\nname: q\n"
                        "transform: SELECT 1 AS x WHERE \"{{ env_var('SEEKRUN_TEST_SECRET') }}\" IS NULL\n"),
    })
    res = cli_proc("run", "-p", str(p), "--continue-on-error", env={"SEEKRUN_TEST_SECRET": value})
    assert table(p, "transform.t") == [(value,)]  # one row: the exact value
    assert run_results(p)["transform.t"]["status"] == "success", res.output
    # inside "...", the value is an identifier (its double quotes doubled): no such column
    assert run_results(p)["transform.q"]["status"] == "failed"
    assert "***" in run_results(p)["transform.q"]["error"]


# ---------------------------------------------------------------------------------------------
# 5. node SQL cannot read files outside the project

READER_PY = '''\
from seekrun.pipeline import model

OUTSIDE = {outside!r}
INSIDE = {inside!r}


@model(name="reads_outside")
def reads_outside(ctx):
    return ctx.con.sql(f"SELECT * FROM read_csv('{{OUTSIDE}}')")


@model(name="reads_outside_by_dotdot")
def reads_outside_by_dotdot(ctx):
    return ctx.con.sql(f"SELECT * FROM read_csv('{{INSIDE}}/../outside/secret.csv')")


@model(name="reenables_access")
def reenables_access(ctx):
    ctx.con.execute("SET enable_external_access = true")
    return ctx.con.sql(f"SELECT * FROM read_csv('{{OUTSIDE}}')")


@model(name="attaches_outside")
def attaches_outside(ctx):
    ctx.con.execute(f"ATTACH '{{OUTSIDE}}.duckdb' AS other")
    return ctx.con.sql("SELECT 1 AS x")


@model(name="reads_inside")
def reads_inside(ctx):
    return ctx.con.sql(f"SELECT * FROM read_csv('{{INSIDE}}/data/mine.csv')")
'''


def test_python_node_sql_cannot_read_outside_the_project(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = f"TOPSECRET-{uuid.uuid4().hex}"
    (outside / "secret.csv").write_text(f"k,v\na,{marker}\n")
    p = tmp_path / "proj"
    write_project(p, {
        "data/mine.csv": "k,v\nb,mine\n",
        "nodes/readers.py": READER_PY.format(outside=str(outside / "secret.csv"), inside=str(p.resolve())),
    })
    res = cli_proc("run", "-p", str(p), "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    results = run_results(p)
    for nid in ("model.reads_outside", "model.reads_outside_by_dotdot", "model.attaches_outside"):
        assert results[nid]["status"] == "failed", (nid, results[nid])
        assert "Permission Error" in results[nid]["error"] and "disabled by configuration" in results[nid]["error"], \
            results[nid]["error"]
    assert results["model.reenables_access"]["status"] == "failed"
    assert "Cannot enable external access" in results["model.reenables_access"]["error"]
    assert results["model.reads_inside"]["status"] == "success", results["model.reads_inside"]
    assert table(p, "model.reads_inside") == [("b", "mine")]
    tables = all_tables(p)
    assert set(tables) == {"model.reads_inside"}
    assert marker not in repr(tables)
    assert marker not in res.output


def test_sql_reading_a_file_through_an_env_var_is_refused_at_run_time(tmp_path):
    """Parse cannot see what an env_var() value adds to the SQL: the run checks it again with
    the value in, and refuses a file read (exit 2, nothing written)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    marker = f"TOPSECRET-{uuid.uuid4().hex}"
    (outside / "secret.csv").write_text(f"k,v\na,{marker}\n")
    p = write_project(tmp_path / "proj", {
        "data/s.csv": "k\nz\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "nodes/t.yml": ("kind: transform\nname: t\ninputs:\n  - ref: source.s\n"
                        "transform: SELECT k FROM input_0 UNION ALL SELECT v FROM {{ env_var('SEEKRUN_TEST_FROM') }}\n"),
    })
    for spelling in (f"read_csv('{outside}/secret.csv')", f"'{outside}/secret.csv'",
                     f"\"read_csv\"('{outside}/secret.csv')", "query_table('source.s')"):
        res = cli_proc("run", "-p", str(p), env={"SEEKRUN_TEST_FROM": spelling})
        assert res.exit_code == 2, (spelling, res.output)
        assert "nodes/t.yml" in res.stderr and "transform.t" in res.stderr, (spelling, res.output)
        assert marker not in res.output
        assert not (p / "target" / "seekrun.duckdb").exists() or "transform.t" not in all_tables(p)


def test_env_var_in_a_nested_reader_param_is_filled_in(tmp_path, monkeypatch):
    """types: {col: "{{ env_var(...) }}"}: the value is put in (not the template text), and a
    change of it reruns the source."""
    monkeypatch.delenv("SEEKRUN_TEST_TYPE", raising=False)
    p = write_project(tmp_path / "proj", {
        "data/s.csv": "id,d\n1,2024-01-01\n",
        "nodes/s.yml": ("kind: source\nname: s\nsource: csv\ntable: data/s.csv\n"
                        "params:\n  types: {d: \"{{ env_var('SEEKRUN_TEST_TYPE', 'VARCHAR') }}\"}\n"),
    })
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    from conftest import query

    def column_type() -> str:
        return query(p, "SELECT data_type FROM information_schema.columns WHERE table_schema = 'source' "
                        "AND table_name = 's' AND column_name = 'd'")[0][0]

    assert column_type() == "VARCHAR"
    monkeypatch.setenv("SEEKRUN_TEST_TYPE", "DATE")
    res = cli("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    assert run_results(p)["source.s"]["status"] == "success"
    assert column_type() == "DATE"
