"""Regressions found in review: each test failed (or could not pass) before its fix."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import cli, cli_proc, ran, table, target_snapshot, write_project

BASE = {
    "data/a.csv": "id,v\n1,10\n2,20\n",
    "nodes/a.yml": "kind: source\nname: a\nsource: csv\ntable: data/a.csv\n",
    "nodes/b.yml": "kind: transform\nname: b\ntags: [x]\ninputs: [{ref: source.a}]\n"
                   "transform: SELECT id, v * 2 AS v FROM input_0\n",
}


def _ok(*args):
    res = cli(*args)
    assert res.exit_code == 0, res.output
    return res


def test_a_table_deleted_and_left_out_by_a_filter_is_rebuilt_by_the_next_plain_run(tmp_path):
    proj = write_project(tmp_path / "p", BASE)
    _ok("run", "-p", str(proj))
    (proj / "target" / "seekrun.duckdb").unlink()
    _ok("run", "-p", str(proj), "--exclude-tags", "x")
    assert ran(proj) == {"source.a"}
    res = _ok("run", "-p", str(proj))
    assert "Nothing to do" not in res.stdout
    assert ran(proj) == {"transform.b"}
    assert table(proj, "transform.b") == [(1, 20), (2, 40)]


def _factor_project(tmp_path, body: str):
    """source.a and a Python node transform.scaled that imports FACTOR (2) from lib/helpers.py;
    body: the node function's body."""
    return write_project(tmp_path / "p", {
        **BASE,
        "lib/__init__.py": "",
        "lib/helpers.py": "FACTOR = 2\n",
        "nodes/scaled.py": ("from seekrun.pipeline import transform\n"
                            "from lib.helpers import FACTOR\n\n\n"
                            "@transform(name='scaled', inputs=['source.a'])\n"
                            "def scaled(ctx):\n" + body),
    })


def test_editing_a_helper_module_reruns_the_python_node(tmp_path):
    proj = _factor_project(tmp_path, (
        "    from lib import helpers  # an import at call time works too\n"
        "    return ctx.con.sql(f'SELECT id, v * {FACTOR} + {helpers.FACTOR} AS v FROM source.a')\n"))
    _ok("run", "-p", str(proj))
    assert table(proj, "transform.scaled") == [(1, 22), (2, 42)]
    (proj / "lib" / "helpers.py").write_text("FACTOR = 3\n")
    diff = _ok("parse", "-p", str(proj))
    assert "~ transform.scaled (Python code)" in diff.stdout
    _ok("run", "-p", str(proj))
    assert ran(proj) == {"transform.scaled"}
    assert table(proj, "transform.scaled") == [(1, 33), (2, 63)]


def test_a_reader_param_name_cannot_smuggle_sql(tmp_path):
    proj = write_project(tmp_path / "p", {
        **BASE,
        "nodes/a.yml": ("kind: source\nname: a\nsource: csv\ntable: data/a.csv\nparams:\n"
                        "  \"header=true); DROP TABLE x; SELECT (1\": true\n"),
    })
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2
    assert "nodes/a.yml:6: source.a: reader param" in res.stderr
    assert not (proj / "target" / "seekrun.duckdb").exists()


def test_an_exposure_cannot_overwrite_the_database_or_a_source_file(tmp_path):
    proj = write_project(tmp_path / "p", BASE)
    _ok("run", "-p", str(proj))
    before = target_snapshot(proj)
    (proj / "nodes" / "e.yml").write_text(
        "kind: exposure\nname: e\ntype: file\ninputs: [{ref: transform.b}]\npath: target/seekrun.duckdb\n"
        "format: csv\n---\nkind: exposure\nname: f\ntype: file\ninputs: [{ref: transform.b}]\npath: data/a.csv\n")
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2
    assert "nodes/e.yml:5: exposure.e: cannot write 'target/seekrun.duckdb'" in res.stderr
    assert "nodes/e.yml:12: exposure.f: cannot write 'data/a.csv': source.a reads it" in res.stderr
    assert target_snapshot(proj) == before
    assert (proj / "data" / "a.csv").read_text() == "id,v\n1,10\n2,20\n"


def test_sql_that_reads_files_or_the_environment_directly_is_refused(tmp_path):
    proj = write_project(tmp_path / "p", {
        **BASE,
        "nodes/c.yml": ("kind: transform\nname: c\ninputs: [{ref: source.a}]\n"
                        "transform: SELECT * FROM read_csv('data/a.csv')\n---\n"
                        "kind: transform\nname: d\ninputs: [{ref: source.a}]\n"
                        "transform: SELECT getenv('HOME') AS h FROM input_0\n---\n"
                        "kind: transform\nname: e\ninputs: [{ref: source.a}]\n"
                        "transform: SELECT * FROM 'data/a.csv'\n"),
    })
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2
    assert "nodes/c.yml:4: transform.c: SQL reads a file with read_csv()" in res.stderr
    assert "nodes/c.yml:9: transform.d: SQL calls getenv()" in res.stderr
    assert "nodes/c.yml:14: transform.e: SQL reads the file 'data/a.csv' directly" in res.stderr


def test_unreadable_node_file_and_database_get_clean_errors(tmp_path):
    proj = write_project(tmp_path / "p", BASE)
    _ok("run", "-p", str(proj))
    os.symlink(tmp_path / "nowhere.yml", proj / "nodes" / "gone.yml")
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2 and "nodes/gone.yml: cannot read this file" in res.stderr
    (proj / "nodes" / "gone.yml").unlink()
    (proj / "target" / "seekrun.duckdb").write_bytes(b"not a database")
    (proj / "nodes" / "b.yml").write_text(BASE["nodes/b.yml"].replace("v * 2", "v * 3"))
    res = cli_proc("run", "-p", str(proj))
    assert res.exit_code == 2
    assert "target/seekrun.duckdb: is not a DuckDB database file: move it away" in res.stderr
    assert "Traceback" not in res.output and "internal error" not in res.output


def test_an_aggregation_feature_description_is_metadata(tmp_path):
    agg = ("kind: aggregation\nname: g\ninputs: [{ref: source.e}]\nid_col: id\nfeature_date_col: d\n"
           "features:\n  - name: v\n    description: {desc}\n    basic: [sum]\n")
    proj = write_project(tmp_path / "p", {
        "data/e.csv": "id,d,v\n1,2024-01-01,5\n1,2024-01-02,7\n",
        "nodes/e.yml": "kind: source\nname: e\nsource: csv\ntable: data/e.csv\n",
        "nodes/g.yml": agg.replace("{desc}", "first"),
    })
    _ok("run", "-p", str(proj))
    (proj / "nodes" / "g.yml").write_text(agg.replace("{desc}", "second wording"))
    res = _ok("run", "-p", str(proj))
    assert "Nothing to do" in res.stdout


@pytest.mark.parametrize("max_age, period", [("36500d", 86400), ("7d", 3600), ("24h", 3600), ("2h", 60),
                                             ("20s", 1)])
def test_a_freshness_rule_measured_against_now_is_rechecked_as_its_clock_ticks(tmp_path, max_age, period):
    """Its verdict may change with time alone: it carries a clock field that ticks at most every
    tenth of max_age (so a verdict is never more than 10% of max_age out of date)."""
    import json
    import time
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")  # fresh data: every check passes
    rule = ("kind: rule\nname: fresh\ninputs: [{ref: source.e}]\n"
            "rule: {type: freshness, column: d, params: {max_age: MAX{extra}}}\n").replace("MAX", max_age)
    proj = write_project(tmp_path / "p", {
        "data/e.csv": f"id,d\n1,{stamp}\n",
        "nodes/e.yml": "kind: source\nname: e\nsource: csv\ntable: data/e.csv\n",
        "nodes/r.yml": rule.replace("{extra}", ""),
        "nodes/r2.yml": rule.replace("name: fresh", "name: pinned").replace("{extra}", f", reference_time: '{stamp}'"),
    })
    before = time.time()
    _ok("parse", "-p", str(proj))
    after = time.time()
    nodes = json.loads((proj / "target" / "manifest.json").read_text())["nodes"]
    ticks = {f"{period}s:{int(t // period)}" for t in (before, after)}
    assert nodes["rule.fresh"]["hashes"]["fields"]["clock"] in ticks
    assert "clock" not in nodes["rule.pinned"]["hashes"]["fields"]
    if period == 1:  # a tick passes: only the rule measured against now runs again, and says why
        _ok("run", "-p", str(proj))
        time.sleep(1.1)
        _ok("run", "-p", str(proj))
        assert ran(proj) == {"rule.fresh"}
        results = json.loads((proj / "target" / "run_results.json").read_text())["results"]
        reason = next(r["reason"] for r in results if r["node_id"] == "rule.fresh")
        assert "time passed" in reason, reason


def test_every_config_key_of_a_python_node_is_part_of_its_hash(tmp_path):
    node = ("kind: model\nname: m\ninputs: [{ref: source.a}]\npython: models/m.py:fit\nthreshold: {t}\n")
    proj = write_project(tmp_path / "p", {
        **BASE,
        "models/m.py": "def fit(ctx):\n    t = ctx.config['threshold']\n"
                       "    return ctx.con.sql(f'SELECT id, v > {t} AS hot FROM source.a')\n",
        "nodes/m.yml": node.replace("{t}", "15"),
    })
    res = _ok("run", "-p", str(proj))
    assert "passed to the Python function as ctx.config" in res.stderr
    assert table(proj, "model.m") == [(1, False), (2, True)]
    (proj / "nodes" / "m.yml").write_text(node.replace("{t}", "5"))
    _ok("run", "-p", str(proj))
    assert ran(proj) == {"model.m"}
    assert table(proj, "model.m") == [(1, True), (2, True)]


def test_a_database_qualified_ref_is_refused(tmp_path):
    proj = write_project(tmp_path / "p", {
        **BASE,
        "nodes/c.yml": ("kind: transform\nname: c\ninputs: [{ref: source.a}]\n"
                        "transform: SELECT * FROM input_0 JOIN seekrun.transform.b USING (id)\n"),
    })
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2
    assert ("nodes/c.yml:4: transform.c: SQL names seekrun.transform.b with a database prefix: "
            "refer to it as transform.b") in res.stderr


def test_env_var_where_it_would_not_be_filled_in_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SEEKRUN_TEST_OUT", "exports")
    proj = write_project(tmp_path / "p", {
        **BASE,
        "nodes/e.yml": ("kind: exposure\nname: e\ntype: file\ninputs: [{ref: transform.b}]\n"
                        "path: \"{{ env_var('SEEKRUN_TEST_OUT') }}/b.csv\"\n"),
    })
    res = cli("parse", "-p", str(proj))
    assert res.exit_code == 2
    assert "nodes/e.yml:5: exposure.e: env_var() is filled in only in SQL, source params and Python nodes" in res.stderr
    (proj / "nodes" / "e.yml").unlink()
    (proj / "nodes" / "b.yml").write_text(BASE["nodes/b.yml"].replace(
        "v * 2 AS v", "v * 2 AS v, '{{ env_var('SEEKRUN_TEST_OUT') }}' AS folder"))
    _ok("run", "-p", str(proj))
    assert table(proj, "transform.b") == [(1, 20, "exports"), (2, 40, "exports")]


def age(*paths: Path) -> None:
    """Date files a minute back, out of the racy window, so seekrun trusts their cached parse
    (each call gives a new time, so a file aged again still looks changed)."""
    import time

    old = time.time() - 60
    for path in paths:
        os.utime(path, (old, old))


SCALED_BY_FACTOR = ("from seekrun.pipeline import transform\nfrom lib.helpers import factor\n\n\n"
                    "@transform(name='scaled', inputs=['source.a'])\n"
                    "def scaled(ctx):\n"
                    "    return ctx.con.sql(f'SELECT id, v * {factor()} AS v FROM source.a')\n")


def rerun_scaled(proj: Path, path: Path, text: str, rows: list) -> None:
    """Edit one file (dated outside the racy window), run: only transform.scaled reruns."""
    path.write_text(text)
    age(path)
    _ok("run", "-p", str(proj))
    assert ran(proj) == {"transform.scaled"}
    assert table(proj, "transform.scaled") == rows


@pytest.mark.parametrize("style", ["decorator", "yaml"])
def test_a_module_newly_imported_by_a_helper_is_tracked(tmp_path, style):
    """Only a helper changes, and it starts importing another project module: edits to that
    module must rerun the node too (the node's own file never changed, so it is not re-read)."""
    code = ("from lib.helpers import factor\n\n\n"
            "def scaled(ctx):\n"
            "    return ctx.con.sql(f'SELECT id, v * {factor()} AS v FROM source.a')\n")
    if style == "decorator":
        files = {"nodes/scaled.py": ("from seekrun.pipeline import transform\n"
                                     + code.replace("def scaled", "@transform(name='scaled', inputs=['source.a'])\n"
                                                                  "def scaled"))}
    else:
        files = {"code/scaled.py": code,
                 "nodes/scaled.yml": ("kind: transform\nname: scaled\ninputs: [{ref: source.a}]\n"
                                      "python: code/scaled.py:scaled\n")}
    proj = write_project(tmp_path / "p", {
        **BASE, **files,
        "lib/__init__.py": "",
        "lib/helpers.py": "def factor():\n    return 2\n",
        "lib/extra.py": "K = 5\n",
    })

    age(*(p for p in proj.rglob("*") if p.is_file()))
    _ok("run", "-p", str(proj))
    assert table(proj, "transform.scaled") == [(1, 20), (2, 40)]
    helpers = proj / "lib" / "helpers.py"
    rerun_scaled(proj, helpers, "from lib.extra import K\n\n\ndef factor():\n    return K\n", [(1, 50), (2, 100)])
    extra = proj / "lib" / "extra.py"
    rerun_scaled(proj, extra, "K = 7\n", [(1, 70), (2, 140)])  # only the newly imported module changes
    _ok("run", "-p", str(proj))
    assert ran(proj) == set()


def test_a_helper_module_no_longer_imported_may_be_deleted(tmp_path):
    proj = write_project(tmp_path / "p", {
        **BASE,
        "lib/__init__.py": "",
        "lib/helpers.py": "from lib.extra import K\n\n\ndef factor():\n    return K\n",
        "lib/extra.py": "K = 5\n",
        "nodes/scaled.py": SCALED_BY_FACTOR,
    })
    age(*(p for p in proj.rglob("*") if p.is_file()))
    _ok("run", "-p", str(proj))
    helpers = proj / "lib" / "helpers.py"
    helpers.write_text("def factor():\n    return 3\n")
    age(helpers)
    (proj / "lib" / "extra.py").unlink()
    _ok("run", "-p", str(proj))
    assert ran(proj) == {"transform.scaled"}
    assert table(proj, "transform.scaled") == [(1, 30), (2, 60)]


# ---- second review of the second session -----------------------------------------------------

def test_failed_checks_leave_a_database_with_a_wal_untouched(tmp_path):
    """A killed run can leave seekrun.duckdb.wal behind. Checks that fail must not replay it into
    the database (opening it read-write would): target/ stays byte for byte as it was."""
    import subprocess
    import sys

    proj = write_project(tmp_path / "p", BASE)
    _ok("run", "-p", str(proj))
    db = proj / "target" / "seekrun.duckdb"
    subprocess.run([sys.executable, "-c", (
        "import duckdb, os, sys\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute(\"SET checkpoint_threshold='1GB'\")\n"
        "con.execute('CREATE OR REPLACE TABLE transform.b AS SELECT * FROM transform.b WHERE id = 1')\n"
        "os._exit(0)\n"), str(db)], check=True)
    assert (proj / "target" / "seekrun.duckdb.wal").exists()
    before = target_snapshot(proj)
    (proj / "nodes" / "b.yml").write_text(BASE["nodes/b.yml"].replace("SELECT id,", "SELECT id,, "))
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 2, res.output
    assert "nodes/b.yml" in res.stderr and "Traceback" not in res.output
    assert target_snapshot(proj) == before


def test_env_key_is_kept_with_a_saved_manifest_and_a_custom_state_dir(tmp_path, monkeypatch):
    """Python API flows: parse, save the manifest, load it and run; or run with another state
    folder. Either way the next parse finds the key, so nothing reruns for the env var."""
    from seekrun import DAGRunner, Manifest, parse_project

    monkeypatch.setenv("SEEKRUN_TEST_K", "v1")
    files = {**BASE, "nodes/e.yml": ("kind: transform\nname: e\ninputs: [{ref: source.a}]\n"
                                     "transform: SELECT id, '{{ env_var('SEEKRUN_TEST_K') }}' AS k FROM input_0\n")}
    for flow in ("save_then_load", "custom_state_dir"):
        proj = write_project(tmp_path / flow, files)
        for attempt in range(3):
            manifest = parse_project(proj).manifest
            if flow == "save_then_load":
                path = proj / "target" / "manifest.json"
                manifest.save(path)
                runner = DAGRunner(Manifest.load(path))
            else:
                runner = DAGRunner(manifest, state_dir=tmp_path / f"{flow}-state", project_dir=proj)
            summary = runner.run()
            ran_now = {r.node_id for r in summary.results if r.status.value == "success"}
            if attempt == 0:
                assert "transform.e" in ran_now
            else:
                assert ran_now == set(), (flow, attempt, ran_now)


def test_a_module_that_appears_later_is_tracked(tmp_path):
    """An optional import (try/except ImportError) of a module that does not exist yet: when the
    module is created, and again when it is edited, the node reruns and equals a clean build."""
    proj = write_project(tmp_path / "p", {
        **BASE,
        "lib/__init__.py": "",
        "lib/helpers.py": ("try:\n    from lib.tuning import K\nexcept ImportError:\n    K = 1\n\n\n"
                           "def factor():\n    return K\n"),
        "nodes/scaled.py": SCALED_BY_FACTOR,
    })
    age(*(p for p in proj.rglob("*") if p.is_file()))
    _ok("run", "-p", str(proj))
    assert table(proj, "transform.scaled") == [(1, 10), (2, 20)]
    tuning = proj / "lib" / "tuning.py"
    rerun_scaled(proj, tuning, "K = 4\n", [(1, 40), (2, 80)])
    rerun_scaled(proj, tuning, "K = 5\n", [(1, 50), (2, 100)])
    _ok("run", "-p", str(proj))
    assert ran(proj) == set()


def test_a_relative_import_above_the_top_folder_is_not_an_internal_error(tmp_path):
    proj = write_project(tmp_path / "p", {
        **BASE,
        "nodes/scaled.py": ("from seekrun.pipeline import transform\n"
                            "try:\n    from ........far import x\nexcept ImportError:\n    x = 3\n\n\n"
                            "@transform(name='scaled', inputs=['source.a'])\n"
                            "def scaled(ctx):\n"
                            "    return ctx.con.sql(f'SELECT id, v * {x} AS v FROM source.a')\n"),
    })
    _ok("run", "-p", str(proj))
    assert table(proj, "transform.scaled") == [(1, 30), (2, 60)]


def test_python_nodes_importing_one_package_in_parallel_never_break_each_other(tmp_path):
    """Each function imports the same project package at call time, on 4 workers; a package
    removed from sys.modules by one node while another imports it used to fail with KeyError."""
    nodes = {f"nodes/n{i}.py": ("from seekrun.pipeline import transform\n\n\n"
                                f"@transform(name='n{i}', inputs=['source.a'])\n"
                                f"def n{i}(ctx):\n"
                                "    from pkg.deep import value\n"
                                f"    return ctx.con.sql(f'SELECT id, v + {{value()}} + {i} AS v FROM source.a')\n")
             for i in range(12)}
    proj = write_project(tmp_path / "p", {
        **BASE, **nodes,
        "pkg/__init__.py": "import time\ntime.sleep(0.02)  # a slow package import widens the window\n",
        "pkg/deep.py": "import time\ntime.sleep(0.02)\n\n\ndef value():\n    return 100\n",
    })
    for _ in range(6):  # the race was timing-dependent: it failed about one run in ten
        res = cli("run", "-p", str(proj), "--threads", "4", "--full")
        assert res.exit_code == 0, res.output
    assert table(proj, "transform.n7") == [(1, 117), (2, 127)]


@pytest.mark.parametrize("how", ["in-process", "process"])
def test_a_helper_edited_to_the_same_size_and_mtime_second_runs_the_new_code(tmp_path, how):
    """Python trusts a __pycache__ file whose source has the same size and mtime (seconds): a
    helper edited that way (a script, a checkout) must still run as it is now, not as cached."""
    import py_compile

    proj = _factor_project(tmp_path, "    return ctx.con.sql(f'SELECT id, v * {FACTOR} AS v FROM source.a')\n")
    run = (lambda: cli("run", "-p", str(proj))) if how == "in-process" else (
        lambda: cli_proc("run", "-p", str(proj)))
    assert run().exit_code == 0
    assert table(proj, "transform.scaled") == [(1, 20), (2, 40)]
    helper = proj / "lib" / "helpers.py"
    py_compile.compile(str(helper))  # a cache file for it, as any import elsewhere leaves
    st = helper.stat()
    helper.write_text("FACTOR = 3\n")  # same size
    os.utime(helper, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    res = run()
    assert res.exit_code == 0, res.output
    assert ran(proj) == {"transform.scaled"}
    assert table(proj, "transform.scaled") == [(1, 30), (2, 60)]
    assert not list((proj / "nodes").glob("__pycache__/*"))  # and seekrun wrote none beside the node
