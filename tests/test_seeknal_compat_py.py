"""Issue 11, compatibility item 1: Python pipelines written for Seeknal run as they are.

The Seeknal-syntax files are tests/seeknal_compat/seeknal/pipelines/*.py (with the YAML source
seeknal/py_sources/py_orders.yml and data/py_*.csv).  The expected rows below are what
Seeknal 2.13 (/tmp/skvenv) gave on the same files: a copy of the project, `seeknal run`,
then target/intermediate/<kind>_<name>.parquet read with DuckDB.  Seeknal runs a Python node
with `uv run`; uv is not installed here, so a stand-in `uv` on PATH ran the generated runner
script with Seeknal's own interpreter (which has pandas, pyarrow and duckdb, the files'
PEP 723 dependencies).  Seeknal has no dependency for ctx.features (its ctx.ref scan does
not see it), so on a first run it ran transform.py_feature_lookup before the feature group
and failed ("No consolidated features found"); its rows are from a second run.  seekrun
infers the feature group as an input and gets them on the first.  Column names and DuckDB
types matched too (e.g. order_date is TIMESTAMP in both: the pandas round trip makes it so).
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from datetime import datetime
from pathlib import Path

import pytest

from conftest import REPO, cli, cli_proc, ran, run_results, table, write_project

COMPAT = REPO / "tests" / "seeknal_compat"

SEEKNAL_ROWS = {
    "source.py_customers": [("C1", "Ana", "north", "2024-01-05"), ("C2", "Ben", "south", "2024-02-11"),
                            ("C3", "Cleo", "north", "2024-03-20"), ("C4", "Dev", "east", "2024-04-02")],
    "transform.py_order_enriched": [
        (1, "C1", "Ana", "north", 30.5, datetime(2024, 5, 1)), (2, "C1", "Ana", "north", 12.0, datetime(2024, 5, 3)),
        (4, "C2", "Ben", "south", 45.0, datetime(2024, 5, 7)), (5, "C3", "Cleo", "north", 8.25, datetime(2024, 5, 8)),
        (6, "C1", "Ana", "north", 60.0, datetime(2024, 5, 9)), (7, "C4", "Dev", "east", 15.0, datetime(2024, 5, 10)),
        (8, "C3", "Cleo", "north", 22.75, datetime(2024, 5, 12))],
    "feature_group.py_customer_features": [
        ("C1", 3, 102.5, datetime(2024, 5, 9)), ("C2", 1, 45.0, datetime(2024, 5, 7)),
        ("C3", 2, 31.0, datetime(2024, 5, 12)), ("C4", 1, 15.0, datetime(2024, 5, 10))],
    "transform.py_region_summary": [("north", 5, 133.5, "target")],
    "transform.py_feature_lookup": [
        ("C1", datetime(2024, 5, 9), 3, 102.5), ("C2", datetime(2024, 5, 7), 1, 45.0),
        ("C3", datetime(2024, 5, 12), 2, 31.0), ("C4", datetime(2024, 5, 10), 1, 15.0)],
}


def compat_project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "seeknal").mkdir(parents=True)
    (proj / "data").mkdir()
    shutil.copy(COMPAT / "seeknal_project.yml", proj / "seeknal_project.yml")
    for folder in ("pipelines", "py_sources"):
        shutil.copytree(COMPAT / "seeknal" / folder, proj / "seeknal" / folder)
    for csv in (COMPAT / "data").glob("py_*.csv"):
        shutil.copy(csv, proj / "data" / csv.name)
    return proj


def manifest(proj: Path) -> dict:
    return json.loads((proj / "target" / "manifest.json").read_text())["nodes"]


def _plain(rows):
    return [tuple(v.isoformat() if hasattr(v, "isoformat") and not isinstance(v, datetime) else v for v in r)
            for r in rows]


def test_seeknal_pipeline_files_build_with_seeknals_rows(tmp_path: Path):
    proj = compat_project(tmp_path)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    for node_id, rows in SEEKNAL_ROWS.items():
        assert _plain(table(proj, node_id)) == sorted(rows), node_id
    nodes = manifest(proj)
    # inputs inferred from the literal ctx.ref / ctx.features calls, in order of use
    assert nodes["transform.py_order_enriched"]["inputs"] == ["source.py_orders", "source.py_customers"]
    assert nodes["transform.py_feature_lookup"]["inputs"] == ["feature_group.py_customer_features"]
    # the declarative @source is a plain source node: no Python, hashed on its data file
    assert nodes["source.py_customers"].get("python") is None
    # Materialization(...) objects, @materialize and Seeknal's **params, read from the syntax tree
    fg = nodes["feature_group.py_customer_features"]["config"]
    assert fg["materialization"] == {"offline": {"format": "parquet"}}
    summary = nodes["transform.py_region_summary"]["config"]
    assert summary["params"] == {"min_orders": 2}
    assert summary["materializations"] == [{"type": "iceberg", "table": "atlas.analytics.py_region_summary",
                                            "mode": "append"}]
    # the Python running seekrun has pandas, pyarrow and duckdb: no script-header warning; the
    # one warning says the Iceberg target of @materialize is not written
    assert [ln for ln in res.output.splitlines() if "warning:" in ln] == [
        "seeknal/pipelines/py_region_summary.py:8: warning: unknown key 'materializations' in "
        "transform.py_region_summary (kept in config, seekrun builds the node's table in its database and "
        "writes no materialization targets)"], res.output


def test_seeknal_pipelines_are_incremental(tmp_path: Path):
    proj = compat_project(tmp_path)
    assert cli("run", "-p", str(proj)).exit_code == 0
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0 and ran(proj) == set(), res.output
    # the declarative source's function is never run: editing its body reruns nothing
    src = proj / "seeknal" / "pipelines" / "py_sources.py"
    src.write_text(src.read_text().replace('"""Customers."""', '"""All our customers."""'))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0 and ran(proj) == set(), res.output
    # its data file is what it is hashed on
    data = proj / "data" / "py_customers.csv"
    data.write_text(data.read_text().replace("Dev,east", "Dev,south"))
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert {"source.py_customers", "transform.py_order_enriched", "transform.py_region_summary"} <= ran(proj)
    assert ("south", 2, 60.0, "target") in table(proj, "transform.py_region_summary")
    # a changed keyword param (Seeknal's **params) reruns its node only
    f = proj / "seeknal" / "pipelines" / "py_region_summary.py"
    f.write_text(f.read_text().replace("min_orders=2", "min_orders=1"))
    assert cli("run", "-p", str(proj)).exit_code == 0
    assert ran(proj) == {"transform.py_region_summary"}


SEEKNAL_FILE = """\
from seeknal.pipeline import transform

@transform(name="t")
def t(ctx):
{body}
"""

ORDERS = {"data/py_orders.csv": "id,v\n1,10\n2,20\n",
          "seeknal/py_sources/o.yml": "kind: source\nname: o\nsource: csv\ntable: data/py_orders.csv\n"}


def seeknal_project(tmp_path: Path, files: dict) -> Path:
    """A Seeknal project (seeknal_project.yml, nodes under seeknal/) with source.o."""
    proj = write_project(tmp_path / "proj", {**ORDERS, **files}, marker=None)
    (proj / "seeknal_project.yml").write_text("name: sk\n")
    return proj


def test_a_computed_ctx_ref_without_inputs_is_a_parse_error_asking_for_inputs(tmp_path: Path):
    body = "    name = 'source.' + 'o'\n    return ctx.ref(name)\n"
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": SEEKNAL_FILE.format(body=body)})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "seeknal/pipelines/p.py:6: transform.t: ctx.ref(name) names its input only at run time: list the " \
           "node's inputs in the decorator, inputs=[" in res.output, res.output
    # with inputs= it is fine, and builds
    fixed = SEEKNAL_FILE.format(body=body).replace('name="t"', 'name="t", inputs=["source.o"]')
    (proj / "seeknal/pipelines/p.py").write_text(fixed)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.t") == [(1, 10), (2, 20)]


def test_seeknal_adds_ctx_ref_ids_to_declared_inputs(tmp_path: Path):
    """Seeknal merges the ctx.ref ids it finds with inputs=: a file written for it keeps working."""
    body = "    a = ctx.ref('source.o')\n    b = ctx.ref('source.p')\n" \
           "    return ctx.duckdb.sql('SELECT a.id, b.w FROM a JOIN b USING (id)').df()\n"
    code = SEEKNAL_FILE.format(body=body).replace('name="t"', 'name="t", inputs=["source.o"]')
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code, "data/p.csv": "id,w\n1,x\n",
                                      "seeknal/py_sources/p.yml": "kind: source\nname: p\nsource: csv\n"
                                                                  "table: data/p.csv\n"})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert manifest(proj)["transform.t"]["inputs"] == ["source.o", "source.p"]
    assert table(proj, "transform.t") == [(1, "x")]


def test_a_pipeline_file_with_no_readable_node_warns_without_verbose(tmp_path: Path):
    code = "from seeknal.pipeline import transform\n\ndef t(ctx):\n    return ctx.ref('source.o')\n\n" \
           "t = transform(name='t')(t)\n"
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code,
                                      "seeknal/pipelines/helpers.py": "VALUE = 1\n"})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "seeknal/pipelines/p.py:1: warning: imports seeknal.pipeline but declares no node seekrun can read" \
           in res.output, res.output
    assert "helpers.py" not in res.output  # no pipeline import: not a node file, quietly


def test_script_header_dependencies_not_installed_warn_once_and_nothing_is_installed(tmp_path: Path):
    header = ('# /// script\n# requires-python = ">=3.11"\n# dependencies = [\n#     "pandas>=2",\n'
              '#     "seekrun-no-such-package-zz",\n#     "seeknal",\n# ]\n# ///\n')
    code = header + SEEKNAL_FILE.format(body="    return ctx.ref('source.o')") + \
        "\n\n@transform(name='u')\ndef u(ctx):\n    return ctx.ref('source.o')\n"
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "seekrun-no-such-package-zz" in ln]
    assert len(lines) == 1, res.output  # one warning for the file, though it has two nodes
    assert "pandas" not in lines[0] and "'seeknal'" not in lines[0] and "installs nothing" in lines[0]
    assert importlib.util.find_spec("seekrun_no_such_package_zz") is None
    assert table(proj, "transform.u") == [(1, 10), (2, 20)]


def test_seeknal_import_works_without_seeknal_and_leaves_nothing_behind(tmp_path: Path):
    body = ("    from seeknal.pipeline import FeatureFrame, PipelineContext\n"
            "    assert isinstance(ctx, PipelineContext)\n"
            "    df = ctx.ref('source.o')\n    df['v2'] = df['v'] * 2\n    return df\n")
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": SEEKNAL_FILE.format(body=body)})
    assert "seeknal" not in sys.modules
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.t") == [(1, 10, 20), (2, 20, 40)]
    # the stand-in is seen only by user code while it runs: not by anything else afterwards
    assert "seeknal" not in sys.modules and "seeknal.pipeline" not in sys.modules
    assert importlib.util.find_spec("seeknal") is None


def test_seeknal_module_seekrun_does_not_provide_names_what_to_install(tmp_path: Path):
    code = "from seeknal.pipeline import transform\nfrom seeknal.tasks.duckdb import DuckDBTask\n\n" \
           "@transform(name='t')\ndef t(ctx):\n    return ctx.ref('source.o')\n"
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    error = run_results(proj)["transform.t"]["error"]
    assert error.startswith("importing seeknal/pipelines/p.py failed: ModuleNotFoundError: No module named "
                            "'seeknal.tasks' (at seeknal/pipelines/p.py:2) (seekrun provides seeknal.pipeline "
                            "only; for seeknal.tasks, install Seeknal"), error


def test_ctx_duckdb_is_the_nodes_own_scratch_connection(tmp_path: Path):
    """Like Seeknal's: what one node registers is not seen by the next on the same worker, and it
    cannot write into the project database."""
    first = "    ctx.duckdb.register('orders', ctx.ref('source.o'))\n" \
            "    ctx.duckdb.execute('CREATE TABLE scratch AS SELECT 1 AS x')\n" \
            "    return ctx.duckdb.sql('SELECT count(*) AS n FROM orders')\n"
    second = "    return ctx.duckdb.sql('SELECT * FROM orders').df()\n"
    code = SEEKNAL_FILE.format(body=first) + "\n\n" + \
        SEEKNAL_FILE.format(body=second).replace('name="t"', 'name="u", inputs=["transform.t"]') \
        .replace("def t(", "def u(").replace("from seeknal.pipeline import transform\n", "")
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj), "--threads", "1", "--continue-on-error")
    assert res.exit_code == 1, res.output
    assert table(proj, "transform.t") == [(2,)]  # a relation on ctx.duckdb is stored too
    assert "orders" in run_results(proj)["transform.u"]["error"]
    from conftest import query

    assert query(proj, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scratch'") == [(0,)]


def test_feature_frame_from_a_yaml_feature_group(tmp_path: Path):
    """ctx.ref of a YAML feature group gives a FeatureFrame in a Seeknal file, as in Seeknal;
    pit_join joins each spine row to the features as they were then.  (Not in the shared
    Seeknal project: Seeknal's YAML feature group reads its input as `source`, which seekrun's
    SQL check does not take yet; this one uses ref().)"""
    fg = ("kind: feature_group\nname: sig\nentity: {name: customer, join_keys: [customer_id]}\n"
          "materialization: {event_time_col: event_time}\n"
          "inputs:\n  - ref: source.c\n"
          "transform: SELECT customer_id, tier, CAST(d AS TIMESTAMP) AS event_time FROM ref('source.c')\n")
    body = ("    spine = ctx.ref('source.s')\n"
            "    sig = ctx.ref('feature_group.sig')\n"
            "    assert (sig.entity_name, sig.join_keys) == ('customer', ['customer_id'])\n"
            "    return sig.pit_join(spine=spine, date_col='at')[['customer_id', 'at', 'tier']]\n")
    proj = seeknal_project(tmp_path, {
        "data/c.csv": "customer_id,tier,d\nA,bronze,2024-01-01\nA,gold,2024-03-01\nB,silver,2024-02-01\n",
        "data/s.csv": "customer_id,at\nA,2024-02-15\nA,2024-03-15\nB,2024-01-15\n",
        "seeknal/py_sources/c.yml": "kind: source\nname: c\nsource: csv\ntable: data/c.csv\n",
        "seeknal/py_sources/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "seeknal/py_sources/sig.yml": fg, "seeknal/pipelines/p.py": SEEKNAL_FILE.format(body=body)})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.t") == [("A", datetime(2024, 2, 15), "bronze"),
                                          ("A", datetime(2024, 3, 15), "gold"), ("B", datetime(2024, 1, 15), None)]


def test_seekrun_pipeline_accepts_seeknals_config_objects_and_materialize(tmp_path: Path):
    code = ("from seekrun.pipeline import feature_group, materialize, Materialization, OfflineConfig\n\n"
            "@feature_group(name='f', entity={'name': 'o', 'join_keys': ['id']}, inputs=['source.o'],\n"
            "               materialization=Materialization(offline=OfflineConfig('parquet', ['id'])))\n"
            "@materialize(type='postgresql', connection='pg', table='a.f')\n"
            "def f(ctx):\n    return ctx.ref('source.o')\n")
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    cfg = manifest(proj)["feature_group.f"]["config"]
    assert cfg["materialization"] == {"offline": {"format": "parquet", "partition_by": ["id"]}}
    assert cfg["materializations"] == [{"type": "postgresql", "table": "a.f", "mode": "full", "connection": "pg"}]
    assert table(proj, "feature_group.f") == [(1, 10), (2, 20)]
    # at import time the same spellings work (the file is imported by the run above); directly:
    import seekrun.pipeline as sp

    assert sp.Materialization(offline=sp.OfflineConfig()).to_dict() == {"offline": {"format": "parquet"}}


USER_ERROR = {
    "lib/calc.py": "def ratio(a, b):\n    return a / b\n",
    "seeknal/pipelines/p.py": ("from seeknal.pipeline import transform\nfrom lib.calc import ratio\n\n"
                               "@transform(name='t')\ndef t(ctx):\n    df = ctx.ref('source.o')\n"
                               "    df['r'] = ratio(1, 0)\n    return df\n"),
}


@pytest.mark.parametrize("debug", [False, True])
def test_a_python_nodes_error_shows_the_users_frames_under_seekrun_debug(tmp_path: Path, debug: bool):
    proj = seeknal_project(tmp_path, USER_ERROR)
    env = {"SEEKRUN_DEBUG": "1"} if debug else {}
    res = cli_proc("run", "-p", str(proj), env=env)
    assert res.exit_code == 1, res.output
    error = run_results(proj)["transform.t"]["error"]
    first = "t() raised ZeroDivisionError: division by zero (at lib/calc.py:2 in ratio)"
    assert error.splitlines()[0] == first, error
    if not debug:
        assert error == first
        return
    assert error.splitlines()[1:] == [
        "Traceback (your code; seekrun's frames left out):",
        '  File "seeknal/pipelines/p.py", line 7, in t',
        "    df['r'] = ratio(1, 0)",
        '  File "lib/calc.py", line 2, in ratio',
        "    return a / b"], error
    assert 'File "seeknal/pipelines/p.py", line 7, in t' in res.output
    assert "seekrun/engines" not in error and "site-packages" not in error


REAL_SEEKNAL = {
    "seeknal/__init__.py": "REAL = True\n",
    "seeknal/pipeline/__init__.py": '''\
from functools import wraps


def transform(name=None, inputs=None, **params):
    """Like Seeknal's: a wrapper that hands the result to ctx._store_output."""
    def decorator(func):
        @wraps(func)
        def wrapper(ctx):
            result = func(ctx)
            ctx._store_output("transform." + (name or func.__name__), result)
            return result

        wrapper.__dict__["_seeknal_node"] = {"kind": "transform", "name": name}
        return wrapper
    return decorator
''',
}


def test_a_real_installed_seeknal_is_used_not_shadowed(tmp_path: Path):
    site = write_project(tmp_path / "site", REAL_SEEKNAL, marker=None)
    body = "    import seeknal\n    df = ctx.ref('source.o')\n    df['real'] = seeknal.REAL\n    return df\n"
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": SEEKNAL_FILE.format(body=body)})
    res = cli_proc("run", "-p", str(proj), env={"PYTHONPATH": f"{REPO}{':'}{site}"})
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.t") == [(1, 10, True), (2, 20, True)]


@pytest.mark.parametrize("imports, decorator", [
    ("from seeknal.pipeline import transform", "transform"),
    ("from seeknal.pipeline.decorators import transform as tf", "tf"),
    ("import seeknal.pipeline as sp", "sp.transform"),
    ("import seeknal.pipeline", "seeknal.pipeline.transform"),
    ("from seeknal import pipeline", "pipeline.transform"),
    ("from seeknal.pipeline import *", "transform"),
    ("from seekrun.pipeline import transform", "transform"),
    ("import seekrun.pipeline as sp", "sp.transform"),
])
def test_each_import_spelling_is_read_and_runs(tmp_path: Path, imports: str, decorator: str):
    code = f"{imports}\n\n@{decorator}(name='t', inputs=['source.o'])\ndef t(ctx):\n    return ctx.ref('source.o')\n"
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert table(proj, "transform.t") == [(1, 10), (2, 20)]


def test_a_missing_script_dependency_is_named_when_the_import_fails(tmp_path: Path):
    header = '# /// script\n# dependencies = ["seekrun-absent-zz"]\n# ///\n'
    code = header + "import seekrun_absent_zz\n" + SEEKNAL_FILE.format(body="    return ctx.ref('source.o')")
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1, res.output
    error = run_results(proj)["transform.t"]["error"]
    assert "ModuleNotFoundError: No module named 'seekrun_absent_zz'" in error
    assert "its '# /// script' header lists seekrun-absent-zz, which is not installed for the Python running " \
           "seekrun" in error, error


def test_a_seeknal_feature_groups_features_schema_is_documentation_as_in_seeknal(tmp_path: Path):
    """Seeknal builds every column a Python feature group returns, whatever features= says."""
    code = ("from seeknal.pipeline import feature_group\n\n"
            "@feature_group(name='f', entity={'name': 'o', 'join_keys': ['id']},\n"
            "               features={'v': {'dtype': 'string', 'description': 'the value'}})\n"
            "def f(ctx):\n    df = ctx.ref('source.o')\n    df['w'] = df['v'] + 1\n    return df\n")
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "unknown key" not in res.output
    assert table(proj, "feature_group.f") == [(1, 10, 11), (2, 20, 21)]
    assert manifest(proj)["feature_group.f"]["config"]["feature_schema"] == {
        "v": {"dtype": "string", "description": "the value"}}


def test_handing_ctx_to_a_helper_without_inputs_warns_that_its_refs_are_not_seen(tmp_path: Path):
    code = ("from seeknal.pipeline import transform\n\ndef load(c):\n    return c.ref('source.o')\n\n"
            "@transform(name='t')\ndef t(ctx):\n    return load(ctx)\n")
    proj = seeknal_project(tmp_path, {"seeknal/pipelines/p.py": code})
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 0, res.output
    assert "seeknal/pipelines/p.py:8: warning: transform.t: t() hands ctx to load(): seekrun does not see the " \
           "inputs it reads there; if it calls ctx.ref, list the node's inputs in the decorator" in res.output
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 1
    assert "ctx.ref('source.o'): not an input of transform.t (declared: none); add it to the node's inputs" in \
        run_results(proj)["transform.t"]["error"]
