"""Issue 4: Python nodes, by decorators in .py files under the node paths or by YAML `python:`.

Real projects in tmp_path, the real CLI, real DuckDB.  What is checked is what a user sees:
exit codes, `path:line:` messages, table contents, run_results reasons and errors, and that
`parse` never runs user code.
"""
from __future__ import annotations

import json
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from conftest import cli, cli_proc, ran, run_results, table, write_project

CALC_PY = '''\
"""Python nodes for the tests."""
from seekrun.pipeline import transform


@transform(name="scaled", inputs=["source.a"], description="v times ten", tags=["daily"])
def scaled(ctx):
    rel = ctx.ref("source.a")
    return rel.project("id, v * 10 AS v10")
'''

FILES = {
    "data/a.csv": "id,v\n1,1\n2,2\n3,3\n",
    "nodes/sources/a.yml": """\
        kind: source
        name: a
        source: csv
        table: data/a.csv
        """,
    "nodes/pipelines/calc.py": CALC_PY,
    "nodes/transforms/downstream.yml": """\
        kind: transform
        name: downstream
        inputs:
          - ref: transform.scaled
        transform: SELECT sum(v10) AS total FROM transform.scaled
        """,
    "nodes/transforms/other.yml": """\
        kind: transform
        name: other
        inputs:
          - ref: source.a
        transform: SELECT max(v) AS top FROM source.a
        """,
}
ALL = {"source.a", "transform.scaled", "transform.downstream", "transform.other"}


def project(tmp_path: Path, extra: dict | None = None, drop: tuple = ()) -> Path:
    files = {k: v for k, v in {**FILES, **(extra or {})}.items() if k not in drop}
    return write_project(tmp_path / "proj", files)


def run(proj: Path, *args: str):
    return cli("run", "-p", str(proj), *args)


def edit(proj: Path, rel: str, old: str, new: str) -> None:
    path = proj / rel
    text = path.read_text()
    assert old in text, (old, text)
    path.write_text(text.replace(old, new))


def manifest(proj: Path) -> dict:
    return json.loads((proj / "target" / "manifest.json").read_text())["nodes"]


# ---- decorators --------------------------------------------------------------------------------
def test_decorator_node_builds_its_table_and_feeds_sql_nodes(tmp_path: Path):
    proj = project(tmp_path)
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == ALL
    assert table(proj, "transform.scaled") == [(1, 10), (2, 20), (3, 30)]
    assert table(proj, "transform.downstream") == [(60,)]
    node = manifest(proj)["transform.scaled"]
    assert node["python"] == "nodes/pipelines/calc.py:scaled"
    assert node["file"] == "nodes/pipelines/calc.py" and node["line"] == 5
    assert node["inputs"] == ["source.a"] and node["tags"] == ["daily"]
    assert node["description"] == "v times ten"
    assert "code" in node["hashes"]["fields"]
    assert run_results(proj)["transform.scaled"]["row_count"] == 3
    res = run(proj)
    assert res.exit_code == 0 and "Nothing to do" in res.output


def test_editing_the_function_body_reruns_the_node_and_its_dependents_only(tmp_path: Path):
    proj = project(tmp_path)
    assert run(proj).exit_code == 0
    edit(proj, "nodes/pipelines/calc.py", "v * 10 AS v10", "v * 100 AS v10")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"transform.scaled", "transform.downstream"}
    results = run_results(proj)
    assert results["transform.scaled"]["reason"] == "config changed: Python code"
    assert results["transform.downstream"]["reason"] == "upstream transform.scaled changed"
    assert results["transform.other"]["status"] == "cached"
    assert table(proj, "transform.scaled") == [(1, 100), (2, 200), (3, 300)]
    assert table(proj, "transform.downstream") == [(600,)]
    assert run(proj).exit_code == 0 and ran(proj) == set()


def test_editing_the_decorator_inputs_reruns_it(tmp_path: Path):
    proj = project(tmp_path, {"data/b.csv": "id,v\n7,7\n", "nodes/sources/b.yml": """\
        kind: source
        name: b
        source: csv
        table: data/b.csv
        """})
    assert run(proj).exit_code == 0
    edit(proj, "nodes/pipelines/calc.py", 'inputs=["source.a"]', 'inputs=["source.b"]')
    edit(proj, "nodes/pipelines/calc.py", 'ctx.ref("source.a")', 'ctx.ref("source.b")')
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"transform.scaled", "transform.downstream"}
    assert run_results(proj)["transform.scaled"]["reason"].startswith("config changed:")
    assert table(proj, "transform.scaled") == [(7, 70)]


@pytest.mark.parametrize("imports, decorator", [
    ("from seekrun.pipeline import transform", "transform"),
    ("from seekrun.pipeline import transform as node", "node"),
    ("import seekrun.pipeline as sp", "sp.transform"),
    ("import seekrun.pipeline", "seekrun.pipeline.transform"),
    ("from seekrun import pipeline", "pipeline.transform"),
    ("from seekrun import pipeline as pl", "pl.transform"),
])
def test_every_import_form_is_found(tmp_path: Path, imports: str, decorator: str):
    code = f'{imports}\n\n\n@{decorator}(name="scaled", inputs=["source.a"])\ndef f(ctx):\n' \
           f'    return ctx.ref(0).project("id, v * 10 AS v10")\n'
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.scaled") == [(1, 10), (2, 20), (3, 30)]


def test_other_decorators_and_plain_functions_are_not_nodes(tmp_path: Path):
    code = textwrap.dedent('''\
        import functools
        from seekrun.pipeline import transform as seek

        def transform(**kw):  # a local decorator that happens to share the name
            return lambda f: f

        @transform(name="not_a_node", inputs=["source.a"])
        def helper(ctx):
            return None

        @functools.lru_cache()
        def cached():
            return 1

        @seek(inputs=["source.a"])
        def named_after_function(ctx):
            return ctx.ref("source.a")
        ''')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code}, drop=("nodes/transforms/downstream.yml",))
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert set(manifest(proj)) == {"source.a", "transform.other", "transform.named_after_function"}


def test_source_model_and_feature_group_decorators_give_their_kinds(tmp_path: Path):
    code = textwrap.dedent('''\
        from seekrun.pipeline import feature_group, model, source


        @model(name="m", inputs=["source.a"], params={"k": 2})
        def m(ctx):
            return ctx.ref("source.a").project(f"id, v * {ctx.params['k']} AS y")


        @feature_group(name="fg", inputs=["source.a"], entity={"name": "thing", "join_keys": ["id"]})
        def fg(ctx):
            return ctx.ref("source.a")


        @source(name="gen")
        def gen(ctx):
            return ctx.con.sql("SELECT range AS i FROM range(3)")
        ''')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code}, drop=("nodes/transforms/downstream.yml",))
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    nodes = manifest(proj)
    assert {nid: n["kind"] for nid, n in nodes.items() if n.get("python")} == {
        "model.m": "model", "feature_group.fg": "feature_group", "source.gen": "source"}
    assert nodes["model.m"]["config"]["params"] == {"k": 2}
    assert nodes["feature_group.fg"]["config"]["entity"] == {"name": "thing", "join_keys": ["id"]}
    # Running a Python source or feature_group needs hooks outside the Python-node code (see
    # issue 4 notes); a Python model runs.
    (proj / "nodes" / "pipelines" / "calc.py").write_text(code[:code.index("@feature_group")])
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert run_results(proj)["model.m"]["status"] == "success"
    assert table(proj, "model.m") == [(1, 2), (2, 4), (3, 6)]


def test_parse_never_imports_user_code(tmp_path: Path):
    marker = tmp_path / "imported.txt"
    code = textwrap.dedent(f'''\
        from pathlib import Path
        from seekrun.pipeline import transform

        Path({str(marker)!r}).write_text("imported")
        raise SystemExit(99)


        @transform(name="scaled", inputs=["source.a"])
        def scaled(ctx):
            return ctx.ref("source.a")
        ''')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "transform.scaled" in manifest(proj)
    res = run(proj, "--dry-run")
    assert res.exit_code == 0, res.output
    assert not marker.exists()
    # In a separate process too (nothing cached in this one hides an import).
    res = cli_proc("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert not marker.exists()
    # run imports it: the node fails (seekrun itself does not exit 99), the rest still runs.
    res = run(proj, "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert marker.read_text() == "imported"
    results = run_results(proj)
    assert results["transform.scaled"]["status"] == "failed"
    assert results["transform.scaled"]["error"] == "importing nodes/pipelines/calc.py failed: SystemExit: 99 " \
                                                   "(at nodes/pipelines/calc.py:5)"
    assert results["transform.downstream"]["status"] == "skipped"
    assert results["transform.other"]["status"] == "success"


def test_a_python_file_without_decorators_is_not_a_node_file(tmp_path: Path):
    proj = project(tmp_path, {"nodes/pipelines/helpers.py": "raise SystemExit(3)\nVALUE = 1\n"})
    res = cli("parse", "-p", str(proj), "-v")
    assert res.exit_code == 0, res.output
    assert set(manifest(proj)) == ALL


@pytest.mark.parametrize("code, line, message", [
    ("from seekrun.pipeline import transform\n\n@transform(name='x', inputs=['source.a']\ndef x(ctx):\n    pass\n",
     None, "Python syntax error"),
    ("from seekrun.pipeline import transform\nINPUTS = ['source.a']\n\n@transform(name='x', inputs=INPUTS)\n"
     "def x(ctx):\n    return ctx.ref(0)\n", 4, "@transform(inputs=...) must be a literal"),
    ("from seekrun.pipeline import transform\n\n@transform(name='x', inputs=['source.a'])\ndef x(ctx):\n"
     "    a = ctx.ref('source.a')\n    return ctx.ref('transform.other')\n", 6,
     "transform.x: ctx.ref('transform.other') is not declared in inputs: add 'transform.other' to inputs=[...]"),
    ("from seekrun.pipeline import transform\n\n@transform(name='9lives')\ndef x(ctx):\n    pass\n", 3,
     "@transform: name '9lives' cannot be a table name"),
    ("from seekrun.pipeline import transform\n\n@transform(name='x')\ndef x():\n    pass\n", 4,
     "transform.x: x() must take one argument, the context"),
    ("from seekrun.pipeline import transform\n\ndef outer():\n    @transform(name='x')\n    def x(ctx):\n"
     "        pass\n", 4, "@transform: x is not at the top level of the file"),
    ("from seekrun.pipeline import transform\n\n@transform(name='x', inputs=['source.nope'])\ndef x(ctx):\n"
     "    pass\n", 3, "transform.x: ref 'source.nope' does not exist"),
])
def test_decorator_mistakes_are_parse_errors_with_their_line(tmp_path: Path, code: str, line, message: str):
    proj = project(tmp_path, {"nodes/pipelines/bad.py": code})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    prefix = "nodes/pipelines/bad.py:" + (f"{line}: " if line else "")
    assert any(ln.startswith(prefix) and message in ln for ln in res.output.splitlines()), res.output
    assert "Traceback" not in res.output


def test_decorators_only_attach_metadata():
    from seekrun.pipeline import model, transform

    def f(ctx):
        return ctx

    assert transform(name="t", inputs=["source.a"], tags=["x"])(f) is f
    assert f.__seekrun__ == {"kind": "transform", "name": "t", "inputs": ["source.a"], "tags": ["x"]}

    @model
    def g(ctx):
        return 1

    assert g.__seekrun__ == {"kind": "model", "name": "g"} and g(None) == 1


# ---- YAML python: ------------------------------------------------------------------------------
TRAIN_PY = '''\
def train(ctx):
    factor = ctx.params["factor"]
    return ctx.ref("source.a").project(f"id, v * {factor} AS score")


def unused(ctx):
    return None
'''

MODEL_YML = """\
kind: model
name: scorer
description: scores every row
inputs:
  - ref: source.a
python: lib/train.py:train
params:
  factor: 5
training:
  algorithm: linear
"""


def yaml_project(tmp_path: Path) -> Path:
    return project(tmp_path, {"lib/train.py": TRAIN_PY, "nodes/models/scorer.yml": MODEL_YML,
                              "nodes/transforms/by_python.yml": """\
        kind: transform
        name: by_python
        inputs:
          - ref: model.scorer
        python: lib/train2.py:top
        """, "lib/train2.py": "def top(ctx):\n    return ctx.ref(0).filter('score > 5')\n"})


def test_yaml_python_nodes_build(tmp_path: Path):
    proj = yaml_project(tmp_path)
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert table(proj, "model.scorer") == [(1, 5), (2, 10), (3, 15)]
    assert table(proj, "transform.by_python") == [(2, 10), (3, 15)]
    node = manifest(proj)["model.scorer"]
    assert node["live_files"] == ["lib/train.py"] and node["python"] == "lib/train.py:train"


def test_editing_a_yaml_python_file_reruns_its_node_and_dependents(tmp_path: Path):
    proj = yaml_project(tmp_path)
    assert run(proj).exit_code == 0
    edit(proj, "lib/train.py", "AS score", "+ 1 AS score")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"model.scorer", "transform.by_python"}
    assert run_results(proj)["model.scorer"]["reason"] == "config changed: Python code"
    assert run_results(proj)["transform.by_python"]["reason"] == "upstream model.scorer changed"
    assert table(proj, "model.scorer") == [(1, 6), (2, 11), (3, 16)]


def test_editing_yaml_params_reruns_but_description_and_comments_do_not(tmp_path: Path):
    proj = yaml_project(tmp_path)
    assert run(proj).exit_code == 0
    edit(proj, "nodes/models/scorer.yml", "description: scores every row",
         "description: scores each and every row  # reworded\n# a comment")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == set()
    edit(proj, "nodes/models/scorer.yml", "factor: 5", "factor: 7")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"model.scorer", "transform.by_python"}
    assert run_results(proj)["model.scorer"]["reason"] == "config changed: params"
    assert table(proj, "model.scorer") == [(1, 7), (2, 14), (3, 21)]


@pytest.mark.parametrize("python, message", [
    ("lib/missing.py:train", "python file 'lib/missing.py' not found"),
    ("lib/train.py:nope", "python file 'lib/train.py' has no function 'nope'"),
    ("../outside.py:train", "python file '../outside.py' is outside the project directory"),
    ("lib/train.py", "python must be 'path/to/file.py:function'"),
])
def test_bad_yaml_python_specs_are_parse_errors(tmp_path: Path, python: str, message: str):
    (tmp_path / "outside.py").write_text(TRAIN_PY)
    proj = project(tmp_path, {"lib/train.py": TRAIN_PY,
                              "nodes/models/scorer.yml": MODEL_YML.replace("lib/train.py:train", python)})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert f"nodes/models/scorer.yml:6: model.scorer: {message}" in res.output


def test_transform_with_both_sql_and_python_is_a_parse_error(tmp_path: Path):
    proj = project(tmp_path, {"lib/train.py": TRAIN_PY, "nodes/transforms/both.yml": """\
        kind: transform
        name: both
        inputs: [source.a]
        python: lib/train.py:train
        transform: SELECT 1
        """})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/transforms/both.yml:4: transform.both: has both 'transform' SQL and 'python'" in res.output


def test_model_without_python_is_not_executable(tmp_path: Path):
    """Issue 11 (compatibility 8): parse says so; run skips it and builds the rest (exit 0)."""
    proj = project(tmp_path, {"nodes/models/scorer.yml": MODEL_YML.replace("python: lib/train.py:train\n", "")})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert ("nodes/models/scorer.yml:1: warning: model.scorer: not executable by seekrun: a model without 'python' "
            "is trained by Seeknal itself; seekrun runs a model only as Python: add "
            "'python: path/to/file.py:function'") in res.stderr
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert run_results(proj)["model.scorer"]["status"] == "skipped"


# ---- failures at run time -----------------------------------------------------------------------
def test_a_user_exception_fails_the_node_with_its_file_and_line(tmp_path: Path):
    code = CALC_PY.replace('    rel = ctx.ref("source.a")\n',
                           '    rel = ctx.ref("source.a")\n    ratio = {"a": 1}["missing"]\n')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = run(proj, "--continue-on-error")
    assert res.exit_code == 1, res.output
    results = run_results(proj)
    assert results["transform.scaled"]["status"] == "failed"
    assert results["transform.scaled"]["error"] == \
        "scaled() raised KeyError: 'missing' (at nodes/pipelines/calc.py:8 in scaled)"
    assert "nodes/pipelines/calc.py:8" in res.output
    assert results["transform.downstream"]["status"] == "skipped"
    assert results["transform.other"]["status"] == "success"
    # Fixing the file reruns it (previous run failed) and its dependent.
    edit(proj, "nodes/pipelines/calc.py", '    ratio = {"a": 1}["missing"]\n', "")
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"transform.scaled", "transform.downstream"}
    assert table(proj, "transform.downstream") == [(60,)]


def test_an_error_in_a_helper_names_the_innermost_user_line(tmp_path: Path):
    proj = project(tmp_path, {"lib/helpers.py": "def ratio(x):\n    return 1 / x\n",
                              "lib/train.py": "from lib.helpers import ratio\n\n\ndef train(ctx):\n"
                                              "    return ratio(0)\n",
                              "nodes/models/scorer.yml": MODEL_YML})
    res = run(proj, "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert run_results(proj)["model.scorer"]["error"] == \
        "train() raised ZeroDivisionError: division by zero (at lib/helpers.py:2 in ratio)"


@pytest.mark.parametrize("ret, message", [
    ("{'id': [1]}", "scaled() returned a dict: return a DuckDB relation"),
    ("None", "scaled() returned None (no return statement?): return a DuckDB relation"),
    ("[(1, 2)]", "scaled() returned a list: return a DuckDB relation"),
])
def test_an_unsupported_return_fails_with_a_clear_message(tmp_path: Path, ret: str, message: str):
    code = CALC_PY.replace('    return rel.project("id, v * 10 AS v10")', f"    return {ret}")
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = run(proj)
    assert res.exit_code == 1, res.output
    error = run_results(proj)["transform.scaled"]["error"]
    assert error.startswith(message), error
    assert "pandas or polars DataFrame, or a pyarrow Table" in error or "another" in error


def test_ctx_ref_of_an_undeclared_node_fails_at_run_time(tmp_path: Path):
    code = CALC_PY.replace('ctx.ref("source.a")', 'ctx.ref("transform." + "other")')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = run(proj, "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert run_results(proj)["transform.scaled"]["error"] == (
        "scaled() raised ValueError: ctx.ref('transform.other'): not an input of transform.scaled "
        "(declared: source.a); add it to the node's inputs (at nodes/pipelines/calc.py:7 in scaled)")


def test_ctx_con_and_sql_see_the_inputs(tmp_path: Path):
    code = CALC_PY.replace('    return rel.project("id, v * 10 AS v10")',
                           '    n = ctx.con.sql("SELECT count(*) FROM source.a").fetchall()[0][0]\n'
                           '    return ctx.sql(f"SELECT id, v * {n} AS v10 FROM source.a")')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.scaled") == [(1, 3), (2, 6), (3, 9)]


# ---- optional libraries (only when installed) -------------------------------------------------
def _returning(tmp_path: Path, body: str) -> Path:
    code = CALC_PY.replace('    return rel.project("id, v * 10 AS v10")', body)
    return project(tmp_path, {"nodes/pipelines/calc.py": code})


@pytest.mark.parametrize("libs, body", [
    (["pandas"], "    import pandas as pd\n    return pd.DataFrame({'id': [1, 2], 'v10': [10, 20]})"),
    (["pyarrow"], "    import pyarrow as pa\n    return pa.table({'id': [1, 2], 'v10': [10, 20]})"),
    (["polars", "pyarrow"], "    import polars as pl\n    return pl.DataFrame({'id': [1, 2], 'v10': [10, 20]})"),
], ids=["pandas DataFrame", "pyarrow Table", "polars DataFrame"])
def test_returning_a_data_frame(tmp_path: Path, libs: list[str], body: str):
    for lib in libs:
        pytest.importorskip(lib)
    proj = _returning(tmp_path, body)
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.scaled") == [(1, 10), (2, 20)]


def test_optional_libraries_are_not_imported_for_a_relation(tmp_path: Path):
    proj = project(tmp_path)
    probe = ("import sys\n"
             "from seekrun.cli import app\n"
             "try:\n    app(['run', '-p', sys.argv[1]])\n"
             "except SystemExit as exc:\n    code = exc.code\n"
             "print('LOADED', sorted(m for m in ('pandas', 'polars', 'pyarrow') if m in sys.modules))\n"
             "sys.exit(code)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", probe, str(proj)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "LOADED []" in out.stdout


# ---- the sample project's Python node ----------------------------------------------------------
def test_sample_customer_lifetime_value(sample: Path):
    res = run(sample)
    assert res.exit_code == 0, res.output
    rows = {r[0]: r[1:] for r in table(sample, "transform.customer_lifetime_value")}
    assert len(rows) == len(table(sample, "transform.customer_360"))
    # Worked out by hand: data ends 2024-03-14 (latest web event); margin 0.3 over 3 years.
    # Customer 1: signed up 2023-01-15 (424 days), 2 orders, 179.97 spent:
    #   2 * 365 / 424 = 1.72 orders a year; 179.97 * 365 / 424 * 0.3 * 3 = 139.43.
    assert rows[1] == ("active", 2, Decimal("179.97"), 424, 1.72, 139.43)
    # Customer 8: 2023-09-18 (178 days), 6 orders, 512.95: 12.3 a year; 512.95 * 365 / 178 * 0.9 = 946.65.
    assert rows[8] == ("loyal", 6, Decimal("512.95"), 178, 12.3, 946.65)
    # Customer 12 signed up 4 days before the end: tenure floored at 30 days, no orders.
    assert rows[12] == ("dormant", 0, Decimal("0.00"), 30, 0.0, 0.0)
    edit(sample, "nodes/pipelines/customer_value.py", '"margin": 0.3', '"margin": 0.6')
    res = run(sample)
    assert res.exit_code == 0, res.output
    assert ran(sample) == {"transform.customer_lifetime_value"}
    assert run_results(sample)["transform.customer_lifetime_value"]["reason"] == "config changed: params, Python code"
    assert {r[0]: r[-1] for r in table(sample, "transform.customer_lifetime_value")}[8] == 1893.3  # 512.95 * 365 / 178 * 0.6 * 3


def test_env_var_params_reach_the_function_and_are_redacted_in_errors(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SEEKRUN_PY_SECRET", "s3cr3t-value")
    code = ("def train(ctx):\n"
            "    if ctx.params['mode'] == 'fail':\n"
            "        raise RuntimeError('bad token ' + ctx.params['token'])\n"
            "    return ctx.con.sql(\"SELECT ? AS token\", params=[ctx.params['token']])\n")
    yml = MODEL_YML.replace("  factor: 5\n", "  factor: 5\n  mode: ok\n  token: \"{{ env_var('SEEKRUN_PY_SECRET') }}\"\n")
    proj = project(tmp_path, {"lib/train.py": code, "nodes/models/scorer.yml": yml})
    res = run(proj)
    assert res.exit_code == 0, res.output
    assert table(proj, "model.scorer") == [("s3cr3t-value",)]
    edit(proj, "nodes/models/scorer.yml", "mode: ok", "mode: fail")
    res = run(proj)
    assert res.exit_code == 1, res.output
    error = run_results(proj)["model.scorer"]["error"]
    assert error == "train() raised RuntimeError: bad token *** (at lib/train.py:3 in train)"
    assert "s3cr3t" not in res.output


def test_a_python_node_gets_a_regular_shutdown(tmp_path: Path):
    """seekrun skips interpreter teardown for speed, but not once user code has run in the
    process: the user's atexit handlers run and the files it left open are flushed."""
    out = tmp_path / "atexit.txt"
    code = CALC_PY.replace("from seekrun.pipeline import transform\n", f'''import atexit
from seekrun.pipeline import transform

_log = open({str(tmp_path / "buffered.txt")!r}, "w")  # left open: flushed at shutdown
_log.write("buffered by the node")
atexit.register(lambda: open({str(out)!r}, "w").write("atexit ran"))
''')
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code})
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert out.read_text() == "atexit ran"
    assert (tmp_path / "buffered.txt").read_text() == "buffered by the node"


@pytest.mark.parametrize("before", [
    "kind: profile\nname: a_prof\ninputs:\n  - ref: source.a\n",
    "kind: rule\nname: a_rule\ninputs:\n  - ref: source.a\nrule:\n  type: \"null\"\n  columns: [id]\n",
])
def test_a_python_node_runs_after_a_node_that_read_single_rows(tmp_path: Path, before: str):
    """One worker runs a profile/rule (single-row queries) and then the Python node on the same
    DuckDB cursor: no result may be left unfinished on it."""
    proj = project(tmp_path, {"nodes/checks/before.yml": before})
    res = cli("run", "-p", str(proj), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.scaled") == [(1, 10), (2, 20), (3, 30)]


def test_env_var_in_decorator_arguments_is_hashed_and_checked(tmp_path: Path, monkeypatch):
    """env_var() in a decorator argument reaches ctx.config filled in; like a YAML node's, its value
    is hashed (a new value reruns the node), an unset variable is a parse error, and the value
    stays out of target/ files."""
    monkeypatch.delenv("SEEKRUN_TEST_WHO", raising=False)
    code = '''\
from seekrun.pipeline import transform


@transform(name="greet", inputs=["source.a"],
           params={"who": "{{ env_var('SEEKRUN_TEST_WHO') }}"})
def greet(ctx):
    return ctx.sql("SELECT ? AS who".replace("?", "'" + ctx.params["who"] + "'"))
'''
    proj = project(tmp_path, {"nodes/pipelines/calc.py": code}, drop=("nodes/transforms/downstream.yml",))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/pipelines/calc.py:4: transform.greet: environment variable SEEKRUN_TEST_WHO is not set" in res.stderr

    import uuid

    first, second = f"ann-{uuid.uuid4().hex[:8]}", f"bob-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("SEEKRUN_TEST_WHO", first)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.greet") == [(first,)]
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0 and ran(proj) == set(), res.output

    monkeypatch.setenv("SEEKRUN_TEST_WHO", second)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"transform.greet"}
    assert "environment variable" in run_results(proj)["transform.greet"]["reason"]
    assert table(proj, "transform.greet") == [(second,)]
    for path in (proj / "target").rglob("*"):
        if path.is_file() and not path.name.startswith("seekrun.duckdb"):
            data = path.read_bytes()
            assert first.encode() not in data and second.encode() not in data, path
