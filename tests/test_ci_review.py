"""Issue 15, from a review of the change (CI: selectors, --state, --defer, diff): a deferred
input must be a build of the node as it is here; an input that cannot be deferred (a task) is an
error, not a green no-op; deferral's own drop of a stale table is not blamed on anyone; path
globs stay within folders.
"""
from __future__ import annotations

import shutil

from conftest import cli, ran, run_results, table, write_project
from test_ci_recipe import FILES


def ok(*args):
    res = cli(*args)
    assert res.exit_code == 0, res.output
    return res


def test_defer_does_not_read_a_production_table_that_is_not_a_build_of_this_node(tmp_path):
    """Production's manifest is ahead of its tables when its last run did not rebuild
    everything (a filtered run, here; equally a failed, cancelled or timed-out one): main
    changed transform.clean_orders, production's table of it is still the old SQL's.
    A PR that only edits data/customers.csv then gets, from the CI recipe, a
    transform.customer_orders built on that stale table, silently: the stamp on production's
    table says it is not a build of this clean_orders (it is not the output hash the plan
    expects), but it is deferred all the same.  The issue: the tables equal a full build of the PR."""
    prod = write_project(tmp_path / "prod_checkout", FILES)
    ok("run", "-p", str(prod))
    sql = prod / "nodes" / "clean_orders.yml"
    sql.write_text(sql.read_text().replace("WHERE status = 'done'", "WHERE status = 'done' AND amount > 6"))
    ok("run", "-p", str(prod), "--nodes", "source.products")  # production's last run: clean_orders not rebuilt
    pr = tmp_path / "pr"
    shutil.copytree(prod, pr, ignore=shutil.ignore_patterns("target"))
    (pr / "data" / "customers.csv").write_text("customer_id,name\n1,Ann\n2,Bob\n3,Cyd\n4,Dee\n")
    ci = tmp_path / "ci"
    shutil.copytree(pr, ci)
    shutil.copytree(prod / "target", ci / "prod")
    ok("run", "-p", str(pr))  # the PR built in full

    res = cli("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    # production's table of clean_orders is not a build of it as it is here: never read
    assert res.exit_code == 2, res.output
    assert ("transform.clean_orders (read by transform.customer_orders; its table there is not a build of it as "
            "it is here)") in res.output, res.output
    # selecting it too builds it here, on production's source.orders: the PR's full build
    ok("run", "-p", str(ci), "-s", "state:modified+ +transform.customer_orders", "--exclude", "source.orders",
       "--defer", "--state", str(ci / "prod"))
    assert run_results(ci)["source.orders"]["deferred_from"] == str(ci / "prod")
    assert table(ci, "transform.customer_orders") == table(pr, "transform.customer_orders")


TASK_FILES = {
    "config/rates.txt": "1,10\n2,20\n",
    "scripts/stage.py": "import pathlib\n"
                        "out = pathlib.Path('data/staged'); out.mkdir(parents=True, exist_ok=True)\n"
                        "rows = pathlib.Path('config/rates.txt').read_text()\n"
                        "(out / 'rates.csv').write_text('id,rate\\n' + rows)\n",
    "nodes/stage.yml": "kind: task\nname: stage\npython: scripts/stage.py\nfiles: [config/rates.txt]\n"
                       "outputs: [data/staged/rates.csv]\n",
    "nodes/rates.yml": "kind: source\nname: rates\nsource: csv\ntable: data/staged/rates.csv\n",
    "nodes/report.yml": "kind: transform\nname: report\ninputs: [{ref: source.rates}]\n"
                        "transform: SELECT id, rate * 2 AS r FROM input_0\n",
}


def test_ci_recipe_on_a_source_fed_by_a_task_is_not_a_silent_green_run(tmp_path):
    """task -> source -> transform (the sample project's task.stage_fx_rates pattern). The PR
    changes the source's reader params: state:modified+ selects source.rates and
    transform.report.  In a CI checkout the task's output file is not there (it is generated),
    and a task has no table to defer to.  The run builds nothing, says "Nothing selected needs
    to run", reports the selected nodes as skipped 'filtered', and exits 0: CI is green without
    having built the change.  Expected: the nodes are built, or a clear error (exit 2) naming
    task.stage, as for a deferred table that is missing."""
    prod = write_project(tmp_path / "prod_checkout", TASK_FILES)
    ok("run", "-p", str(prod))
    pr = tmp_path / "pr"
    shutil.copytree(prod, pr, ignore=shutil.ignore_patterns("target", "staged"))
    rates = pr / "nodes" / "rates.yml"
    rates.write_text(rates.read_text() + "params: {header: true}\n")
    ci = tmp_path / "ci"
    shutil.copytree(pr, ci)
    shutil.copytree(prod / "target", ci / "prod")

    res = cli("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    assert res.exit_code == 2, res.output
    assert "task.stage (read by source.rates; a task's output is not a table)" in res.output, res.output
    res = ok("run", "-p", str(ci), "-s", "+state:modified+", "--defer", "--state", str(ci / "prod"))
    assert ran(ci) == {"task.stage", "source.rates", "transform.report"}


def test_deferral_dropping_a_stale_local_table_is_not_blamed_on_a_python_node(tmp_path):
    """CI keeps target/ (the README's cache). PR commit 1 edits data/products.csv and
    product_list's SQL; commit 2 reverts the CSV. Then source.products is deferred, and
    defer.attach drops its (stale) local table to put the view there; after the run
    verify_tables sees the table gone and warns 'changed or disappeared during this run
    (dropped by a Python node?)', which is false: seekrun dropped it itself."""
    prod = write_project(tmp_path / "prod_checkout", FILES)
    ok("run", "-p", str(prod))
    ci = tmp_path / "ci"
    shutil.copytree(prod, ci, ignore=shutil.ignore_patterns("target"))
    shutil.copytree(prod / "target", ci / "prod")
    products = ci / "data" / "products.csv"
    original = products.read_text()
    products.write_text(original + "3,pie\n")
    sql = ci / "nodes" / "product_list.yml"
    sql.write_text(sql.read_text().replace("SELECT * FROM input_0", "SELECT product_id, upper(title) AS t FROM input_0"))
    ok("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    products.write_text(original)  # commit 2
    res = ok("run", "-p", str(ci), "-s", "state:modified+", "--defer", "--state", str(ci / "prod"))
    assert run_results(ci)["source.products"]["deferred_from"] == str(ci / "prod")
    assert "dropped by a Python node" not in res.output, res.output
    assert table(ci, "transform.product_list") == [(1, "TEA"), (2, "CAKE")]
    # its stale build here is gone, and so is its record: not built here (show says so), new next run
    assert "not built yet" in ok("show", "-p", str(ci), "source.products").stdout
    ok("run", "-p", str(ci))
    assert run_results(ci)["source.products"]["reason"] == "new"


def test_path_globs_match_what_they_say(tmp_path):
    """path:/source_path: globs: '*' crosses folders (fnmatch) and a pattern matches any
    suffix of the path (PurePosixPath.match is right-anchored), so `path:nodes/*.yml` picks
    nodes/finance/b2.yml and `path:finance/*.yml` picks nodes/finance/b2.yml, while the plain
    `path:finance` (no glob) rightly picks nothing. evaluate.py:_path_matches says '**' is for
    any depth, i.e. '*' is one level; and a path is relative to the project."""
    from seekrun.manifest import Manifest
    from seekrun.selector import Context, resolve
    from test_selectors import FILES as SEL_FILES

    root = write_project(tmp_path / "proj", SEL_FILES)
    ok("parse", "-p", str(root))
    manifest = Manifest.load(root / "target" / "manifest.json")
    picked = resolve(manifest, Context(manifest), select=["path:nodes/*.yml"]).ids
    assert "transform.b2" not in picked  # defined in nodes/finance/b2.yml: not nodes/*.yml
    res = cli("run", "-p", str(root), "--dry-run", "-s", "path:finance/*.yml")
    assert res.exit_code == 2, res.output  # no node is defined in finance/ (the project has no such folder)
