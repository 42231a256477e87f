"""The everyday commands as a new user meets them: init, ls, schema, clean, completion, --help."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import all_tables, cli, cli_proc, ran, target_snapshot, write_project


# ---- init ------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt,marker,nodes", [("seekrun", "seekrun_project.yml", "nodes"),
                                              ("seeknal", "seeknal_project.yml", "seeknal")])
def test_init_writes_a_project_that_runs(tmp_path, fmt, marker, nodes):
    proj = tmp_path / "shop"
    res = cli("init", str(proj), "--format", fmt)
    assert res.exit_code == 0, res.output
    assert f"Next: cd {proj} && seekrun run" in res.stdout
    for rel in (marker, "data/customers.csv", f"{nodes}/sources/customers.yml",
                f"{nodes}/transforms/active_customers.yml", f"{nodes}/rules/customers_are_valid.yml",
                ".gitignore", "README.md", ".seekrun/node.schema.json"):
        assert (proj / rel).is_file(), rel
    assert (proj / ".gitignore").read_text() == "target/\n"
    # each node file names the schema on its first line, by a path that resolves from the file
    for node_file in (proj / nodes).rglob("*.yml"):
        first = node_file.read_text().splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), first
        schema_path = (node_file.parent / first.split("=", 1)[1]).resolve()
        assert schema_path == (proj / ".seekrun/node.schema.json").resolve()
    run = cli("run", "-p", str(proj))
    assert run.exit_code == 0, run.output
    assert ran(proj) == {"source.customers", "transform.active_customers", "rule.customers_are_valid"}
    tables = all_tables(proj)
    assert sorted(r[0] for r in tables["transform.active_customers"][1]) == [1, 2, 4, 5]
    again = cli("run", "-p", str(proj))  # and a second run has nothing to do
    assert again.exit_code == 0 and ran(proj) == set(), again.output


def test_init_in_the_current_folder_names_the_next_step_without_cd(tmp_path):
    res = cli("init", cwd=tmp_path)
    assert res.exit_code == 0, res.output
    assert "Next: seekrun run" in res.stdout
    assert (tmp_path / "seekrun_project.yml").read_text().startswith(f"name: {tmp_path.name.replace('-', '_')}")


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path):
    proj = tmp_path / "p"
    (proj / "data").mkdir(parents=True)
    (proj / "data/customers.csv").write_text("mine\n")
    (proj / "README.md").write_text("my readme\n")
    res = cli_proc("init", str(proj))
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.stderr
    assert f"{proj / 'data/customers.csv'}: exists" in res.stderr
    assert f"{proj / 'README.md'}: exists" in res.stderr
    assert "never overwrites" in res.stderr
    assert sorted(p.name for p in proj.rglob("*")) == ["README.md", "customers.csv", "data"]
    assert (proj / "README.md").read_text() == "my readme\n"


def test_init_refuses_a_folder_holding_another_project(tmp_path):
    write_project(tmp_path / "p", {"seeknal_project.yml": "name: old\n"})
    res = cli("init", str(tmp_path / "p"))
    assert res.exit_code == 2
    assert "seeknal_project.yml: a project is already here" in res.stderr
    assert not (tmp_path / "p/seekrun_project.yml").exists()


def test_init_bad_format_is_a_usage_error(tmp_path):
    res = cli("init", str(tmp_path / "p"), "--format", "dbt")
    assert res.exit_code == 2 and "--format is seekrun or seeknal (got 'dbt')" in res.stderr
    assert not (tmp_path / "p").exists()


# ---- ls --------------------------------------------------------------------------------

def test_ls_lists_nodes_with_status_and_what_would_run(sample):
    assert cli("run", "-p", str(sample)).exit_code == 0
    res = cli("ls", "-p", str(sample))
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "KIND", "FILE:LINE", "TAGS", "LAST", "RUN", "NOW"]
    row = next(ln for ln in lines if ln.startswith("transform.clean_orders "))
    assert row.split()[:5] == ["transform.clean_orders", "transform", "nodes/transforms/orders.yml:2",
                               "daily,finance", "success"]
    assert row.endswith("up to date")
    assert lines[-1] == "25 nodes, 0 would run"
    # an edit: the node and its downstream would run, with why
    f = sample / "nodes/transforms/orders.yml"
    f.write_text(f.read_text().replace("WHERE status = 'completed'", "WHERE status = 'completed' AND quantity > 0"))
    data = json.loads(cli("ls", "-p", str(sample), "--output", "json").stdout)
    by_id = {d["id"]: d for d in data}
    assert set(by_id["transform.clean_orders"]) == {"id", "kind", "name", "file", "line", "tags", "owner",
                                                    "description", "status", "last_run", "would_run", "reason"}
    assert by_id["transform.clean_orders"]["would_run"] is True
    assert by_id["transform.clean_orders"]["reason"] == "config changed: transform SQL"
    assert by_id["transform.daily_revenue"]["would_run"] is True
    assert "upstream" in by_id["transform.daily_revenue"]["reason"]
    assert by_id["source.orders"]["would_run"] is False and by_id["source.orders"]["reason"] is None
    assert by_id["source.orders"]["status"] == "success"
    table = cli("ls", "-p", str(sample)).stdout
    assert next(ln for ln in table.splitlines() if ln.startswith("transform.clean_orders ")).endswith(
        "would run (config changed: transform SQL)")
    # nothing was written by looking
    assert cli("run", "-p", str(sample), "--dry-run").exit_code == 0


def test_ls_ids_and_paths_for_shell_pipelines(sample):
    ids = cli("ls", "-p", str(sample), "-s", "kind:source", "-o", "ids")
    assert ids.exit_code == 0, ids.output
    assert ids.stdout.splitlines() == ["source.customers", "source.events", "source.fx_rates", "source.orders",
                                       "source.products"]  # build order; ties by id
    paths = cli("ls", "-p", str(sample), "-s", "path:nodes/transforms", "-o", "paths").stdout.splitlines()
    assert paths == sorted(set(paths), key=paths.index)  # each file once
    assert "nodes/transforms/orders.yml" in paths and all(p.startswith("nodes/transforms/") for p in paths)
    # never built: status null, every node would run
    data = json.loads(cli("ls", "-p", str(sample), "--json").stdout)
    assert len(data) == 25 and all(d["status"] is None and d["would_run"] is True for d in data)
    assert not (sample / "target" / "seekrun.duckdb").exists()


def test_ls_bad_input_is_one_line_and_exit_2(sample):
    res = cli("ls", "-p", str(sample), "-o", "yaml")
    assert res.exit_code == 2 and "--output is table, json, ids, paths (got 'yaml')" in res.stderr
    res = cli("ls", "-p", str(sample), "-s", "tag:pii,kind:rule")
    assert res.exit_code == 0 and res.stdout == "No nodes selected.\n"
    res = cli("ls", "-p", str(sample), "-s", "tag:nosuchtag")
    assert res.exit_code == 2 and "unknown tag 'nosuchtag'" in res.stderr
    (sample / "nodes/transforms/broken.yml").write_text("kind: transform\nname: broken\ntransform: [1\n")
    before = target_snapshot(sample)
    res = cli_proc("ls", "-p", str(sample), "--json")
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    assert "nodes/transforms/broken.yml:4: YAML syntax error" in res.stderr
    assert json.loads(res.stdout)["errors"][0]["path"].endswith("broken.yml")
    assert target_snapshot(sample) == before


# ---- schema ----------------------------------------------------------------------------

def _node_documents(root: Path):
    import yaml

    for f in sorted(root.rglob("*.yml")):
        try:
            docs = list(yaml.safe_load_all(f.read_text()))
        except yaml.YAMLError:  # a fixture that is bad YAML on purpose
            continue
        for doc in docs:
            if isinstance(doc, dict) and "kind" in doc:
                yield f, doc


def test_schema_accepts_every_node_of_the_sample_and_the_fixtures(sample):
    import jsonschema

    res = cli("schema")
    assert res.exit_code == 0, res.output
    schema = json.loads(res.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    seen = 0
    for root in (sample / "nodes", Path(__file__).parent / "seeknal_compat"):
        for f, doc in _node_documents(root):
            errors = [e.message for e in validator.iter_errors(doc)]
            assert not errors, (f, errors)
            seen += 1
    assert seen > 40


def test_schema_types_and_describes_every_kind_and_key():
    import jsonschema

    from seekrun.parser.models import KIND_MODELS

    schema = json.loads(cli("schema").stdout)
    assert schema["properties"]["kind"]["enum"] == sorted(KIND_MODELS)
    for kind, model in KIND_MODELS.items():
        props = schema["$defs"][f"{kind}_node"]["properties"]
        assert set(props) >= set(model.model_fields), kind
        missing = [k for k, v in props.items() if not v.get("description")]
        assert not missing, (kind, missing)
    v = jsonschema.Draft7Validator(schema)
    bad = {"kind": "source", "name": "a", "source": "xlsx", "table": "a.csv", "tags": "daily"}
    messages = " ".join(e.message for e in v.iter_errors(bad))
    assert "'xlsx' is not one of" in messages and "'daily' is not of type 'array'" in messages
    assert list(v.iter_errors({"kind": "transfrom", "name": "t"}))  # an unknown kind
    assert list(v.iter_errors({"kind": "task", "name": "t", "timeout": "soon"}))
    assert not list(v.iter_errors({"kind": "task", "name": "t", "command": "true", "timeout": "1h30m",
                                   "retry": {"limit": 2, "backoff": "linear"}, "inputs": ["source.a"]}))
    assert not list(v.iter_errors({"kind": "transform", "name": "t", "seeknal_extra": 1}))  # as seekrun allows


def test_schema_out_writes_the_file_and_refuses_a_folder(tmp_path):
    res = cli("schema", "--out", str(tmp_path / "s/node.schema.json"))
    assert res.exit_code == 0 and (tmp_path / "s/node.schema.json").is_file()
    assert json.loads((tmp_path / "s/node.schema.json").read_text()) == json.loads(cli("schema").stdout)
    res = cli("schema", "--out", str(tmp_path))
    assert res.exit_code == 2 and "is a folder" in res.stderr


# ---- clean -----------------------------------------------------------------------------

def test_clean_removes_outputs_keeps_state_and_the_next_run_rebuilds_all(sample):
    assert cli("run", "-p", str(sample)).exit_code == 0
    before = all_tables(sample)
    (sample / "output").mkdir(exist_ok=True)
    keep_outside = sample / "output" / "mine.txt"
    keep_outside.write_text("not seekrun's")
    dry = cli("clean", "-p", str(sample), "--dry-run", "--json")
    assert dry.exit_code == 0
    would = json.loads(dry.stdout)
    assert "target/seekrun.duckdb" in would["removed"] and "target/state" not in would["removed"]
    assert (sample / "target/seekrun.duckdb").exists()
    res = cli("clean", "-p", str(sample))
    assert res.exit_code == 0, res.output
    assert "Kept target/state/" in res.stdout
    assert sorted(os.listdir(sample / "target")) in (["state"], [".seekrun.lock", "state"])
    assert keep_outside.read_text() == "not seekrun's"
    run = cli("run", "-p", str(sample))
    assert run.exit_code == 0, run.output
    # every table was gone: every node with a table rebuilt; what writes outside target/ (the exposure
    # into output/, the tasks into data/ and reports/) is still there, so it stays cached
    assert ran(sample) == {nid for nid in json.loads((sample / "target/manifest.json").read_text())["nodes"]
                           if not nid.startswith(("task.", "exposure."))}
    assert len(ran(sample)) == 22
    assert all_tables(sample) == before
    res = cli("clean", "-p", str(sample), "--all")
    assert res.exit_code == 0
    assert not (sample / "target/state").exists()
    assert cli("clean", "-p", str(sample)).stdout == "Nothing to clean in target/.\n"


def test_clean_is_refused_while_a_run_holds_the_project(sample):
    assert cli("run", "-p", str(sample)).exit_code == 0
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom seekrun.lock import ProjectLock\n"
        f"with ProjectLock(__import__('pathlib').Path({str(sample / 'target')!r})):\n"
        "    print('held', flush=True)\n    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = target_snapshot(sample)
        res = cli_proc("clean", "-p", str(sample))
        assert res.exit_code == 2, res.output
        assert "Traceback" not in res.stderr and str(holder.pid) in res.stderr
        assert target_snapshot(sample) == before
    finally:
        holder.kill()
        holder.wait()


# ---- completion, help ------------------------------------------------------------------

def _complete(cwd: Path, line: str) -> list[str]:
    words = line.split(" ")
    env = {**os.environ, "_SEEKRUN_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
    # the console script: completion is keyed by the program's name (_SEEKRUN_COMPLETE)
    proc = subprocess.run([str(Path(sys.executable).parent / "seekrun")], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_offers_node_ids_and_selector_terms_from_the_manifest(sample):
    assert cli("parse", "-p", str(sample)).exit_code == 0
    assert _complete(sample, "seekrun show transform.customer_") == [
        "transform.customer_360", "transform.customer_activity", "transform.customer_lifetime_value",
        "transform.customer_orders"]
    assert _complete(sample, "seekrun run -s tag:fi") == ["tag:finance"]
    assert _complete(sample, "seekrun ls -s +source.or") == ["+source.orders"]
    assert "kind:feature_group" in _complete(sample, "seekrun lineage -s kind:")
    assert _complete(sample, "seekrun logs task.stage") == ["task.stage_fx_rates"]
    shown = subprocess.run([str(Path(sys.executable).parent / "seekrun"), "--show-completion", "bash"],
                           capture_output=True, text=True, timeout=60)
    assert "_SEEKRUN_COMPLETE=complete_bash" in shown.stdout


def test_every_command_has_help_with_an_example():
    names = ["parse", "run", "show", "query", "runs", "logs", "status", "cancel", "diff", "init", "ls", "lineage",
             "schema", "clean", "docs"]
    for name in names:
        res = cli(name, "--help")
        assert res.exit_code == 0, (name, res.output)
        assert "Example" in res.stdout, name


def test_top_level_help_is_fast_and_imports_nothing_heavy(tmp_path):
    res = cli_proc("--help", cwd=tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert res.exit_code == 0
    for name in ("init", "ls", "lineage", "docs", "schema", "clean"):
        assert f"\n  {name} " in res.stdout, name
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in res.stderr.splitlines() if ln.startswith("import time:")}
    assert "typer" in imported
    heavy = {n for n in imported if n.split(".")[0] in ("duckdb", "pydantic", "yaml", "rich", "sqlglot")}
    assert not heavy, heavy
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "seekrun", "--help"], cwd=tmp_path, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    assert min(times) < 0.15, times
