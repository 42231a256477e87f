"""The seed documents' Dagu examples, run as written (tests/fixtures/dagu/), with small stub
scripts standing in for the programs they call (./extract_tool.sh, ./get_items.sh...).

Each runs twice: the second run, with nothing changed, runs again only what declares no
inputs (every Dagu step: it says nothing of what it reads) and gives the same outputs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


FIXTURES = Path(__file__).parent / "fixtures" / "dagu"


def _env(tmp_path: Path) -> dict:
    """PATH with `python` (this interpreter), and a stand-in jq where the machine has none."""
    shims = tmp_path / "shims"
    shims.mkdir(exist_ok=True)
    (shims / "python").symlink_to(sys.executable)
    if shutil.which("jq") is None:
        shutil.copy(FIXTURES / "bin" / "jq", shims / "jq")
    return {**os.environ, "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}


def fixture(tmp_path: Path, name: str) -> tuple[Path, dict]:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest, symlinks=True)
    return dest, _env(tmp_path)


def run(folder: Path, file: str, env: dict, *args: str, timeout: float = 180):
    proc = subprocess.run([sys.executable, "-m", "seekrun", "run", file, *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def results(folder: Path, file: str) -> dict[str, dict]:
    data = json.loads((folder / "target" / Path(file).name / "run_results.json").read_text())
    return {r["node_id"]: r for r in data["results"]}


def outputs(folder: Path, file: str) -> dict:
    return json.loads((folder / "target" / Path(file).name / "outputs.json").read_text())


def child_states(folder: Path, file: str, prefix: str) -> list[Path]:
    return sorted((folder / "target" / Path(file).name / "dags").glob(f"{prefix}-*"))


def test_modular_etl_pipeline(tmp_path):
    folder, env = fixture(tmp_path, "modular_etl")
    first = run(folder, "main-etl.yaml", env)
    assert first.returncode == 0, first.stdout + first.stderr
    got = results(folder, "main-etl.yaml")
    assert {n: r["status"] for n, r in got.items()} == {
        "dag.extract-sales": "success", "dag.extract-inventory": "success", "dag.transform-data": "success",
        "dag.load-warehouse": "success"}
    loaded = folder / "etl" / "warehouse" / "warehouse.csv"  # load.yaml's steps run in its folder
    rows = loaded.read_text().splitlines()
    assert "sales_db,transactions,1" in rows and "inventory_db,products,2" in rows and len(rows) == 6
    out = outputs(folder, "main-etl.yaml")
    assert out["status"] == "succeeded"
    sales = json.loads(out["outputs"]["SALES_DATA"])
    assert sales["status"] == "succeeded" and sales["params"] == {"SOURCE": "sales_db", "TABLE": "transactions"}
    assert sales["outputs"]["file"].startswith("/tmp/extract_sales_db_transactions_")
    assert json.loads(out["outputs"]["TRANSFORMED"])["outputs"]["file"] == str(folder / "etl" / "transformed.csv")
    # the same child with two sets of params: two states
    assert len(child_states(folder, "main-etl.yaml", "extract")) == 2
    assert "not run by seekrun" in run(folder, "main-etl.yaml", env, "-v").stderr  # the schedule, said once
    again = run(folder, "main-etl.yaml", env)
    assert again.returncode == 0
    assert outputs(folder, "main-etl.yaml")["outputs"] == out["outputs"]
    assert loaded.read_text().splitlines() == rows
    # each child ran its steps again (they declare nothing they read), reported in its own state
    for state in child_states(folder, "main-etl.yaml", "extract"):
        child = json.loads((state / "run_results.json").read_text())["results"]
        assert {r["node_id"]: r["status"] for r in child} == {"task.extract-data": "success",
                                                               "task.validate": "success"}


def test_multi_environment_deployment(tmp_path):
    folder, env = fixture(tmp_path, "multi_env")
    weekday = subprocess.run(["date", "+%u"], capture_output=True, text=True).stdout.strip() in "12345"
    proc = run(folder, "deploy-all.yaml", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = {n: r["status"] for n, r in results(folder, "deploy-all.yaml").items()}
    assert got["dag.deploy-staging"] == "success"  # ${TEST_RESULTS.outputs.status} was passed
    assert got["dag.deploy-prod"] == ("success" if weekday else "skipped")  # re:[1-5]: weekdays only
    assert (folder / "deployed" / "dev.tar").read_text() == "app latest\n"
    assert (folder / "deployed" / "staging.tar").exists()
    assert (folder / "deployed" / "prod.tar").exists() == weekday
    out = outputs(folder, "deploy-all.yaml")
    assert json.loads(out["outputs"]["TEST_RESULTS"])["outputs"] == {"status": "passed"}
    assert json.loads(out["outputs"]["BUILD"])["outputs"] == {"artifact": "dist/app-latest.tar"}
    again = run(folder, "deploy-all.yaml", env)
    assert again.returncode == 0
    assert outputs(folder, "deploy-all.yaml")["outputs"] == out["outputs"]


def test_conditional_execution(tmp_path):
    folder, env = fixture(tmp_path, "conditional")
    production = os.path.exists("/etc/production")
    for _ in range(2):
        proc = run(folder, "conditional.yaml", env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        got = {n: r for n, r in results(folder, "conditional.yaml").items()}
        chosen, other = ("production", "dev") if production else ("dev", "production")
        assert got[f"dag.run-{chosen}-workflow"]["status"] == "success"
        assert got[f"dag.run-{other}-workflow"]["status"] == "skipped"
        assert "precondition not met" in got[f"dag.run-{other}-workflow"]["error"]
    assert (folder / "ran.log").read_text().splitlines() == [f"ran {'production' if production else 'development'}"] * 2


def test_parallel_dag_execution(tmp_path):
    folder, env = fixture(tmp_path, "parallel")
    proc = run(folder, "parallel.yaml", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    regions = ["ap-south", "eu-central", "us-east", "us-west"]
    spans = []
    for region in regions:
        start, end = [float(line.split()[0]) for line in
                      (folder / "regional" / "out" / f"{region}.txt").read_text().splitlines()]
        spans.append((start, end))
    # steps without depends may run at once: at least two regions overlapped
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
    assert (folder / "regional" / "summary.txt").read_text().split() == [f"{r}.txt" for r in regions]
    assert len(child_states(folder, "parallel.yaml", "processor")) == 4
    assert run(folder, "parallel.yaml", env).returncode == 0
    assert (folder / "regional" / "summary.txt").read_text().split() == [f"{r}.txt" for r in regions]


def test_error_handling_with_child_dags(tmp_path):
    folder, env = fixture(tmp_path, "error_handling")
    proc = run(folder, "error-handling.yaml", env)
    got = results(folder, "error-handling.yaml")
    assert got["dag.risky-operation"]["status"] == "failed"
    assert got["dag.risky-operation"]["continued"] is True
    assert "child DAG operations/risky.yaml failed" in got["dag.risky-operation"]["error"]
    assert "exited 3" in got["dag.risky-operation"]["error"]
    assert got["dag.handle-failure"]["status"] == "success"
    assert got["dag.continue-success"]["status"] == "skipped"
    assert (folder / "handled.log").read_text() == "handled failed\n"
    assert not (folder / "next.log").exists()
    assert proc.returncode == 0  # a failure its continue_on covers is not a failure of the run
    (folder / "risky_ok").write_text("")
    proc = run(folder, "error-handling.yaml", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = results(folder, "error-handling.yaml")
    assert got["dag.continue-success"]["status"] == "success"
    assert got["dag.handle-failure"]["status"] == "skipped"
    assert (folder / "next.log").read_text() == "next\n"
    assert (folder / "handled.log").read_text() == "handled failed\n"


def test_map_reduce_pattern(tmp_path):
    folder, env = fixture(tmp_path, "map_reduce")
    proc = run(folder, "map-reduce.yaml", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    chunks = sorted(folder.glob("chunk_*"))
    words = sum(len(c.read_text().split()) for c in chunks)  # split -n cuts by bytes: a word may be cut in two
    assert len(chunks) == 10 and words >= 500
    assert json.loads((folder / "final-result.json").read_text()) == {"chunks": 10, "words": words}
    first = outputs(folder, "map-reduce.yaml")["outputs"]
    mapped = json.loads(first["MAP_RESULTS"])
    assert [int(o["words"]) for o in mapped["outputs"]] == [len(c.read_text().split()) for c in chunks]
    assert mapped["summary"] == {"total": 10, "succeeded": 10, "failed": 0, "skipped": 0}
    assert run(folder, "map-reduce.yaml", env).returncode == 0
    assert outputs(folder, "map-reduce.yaml")["outputs"] == first
    assert json.loads((folder / "final-result.json").read_text()) == {"chunks": 10, "words": words}


def test_recursive_batch_processor(tmp_path):
    folder, env = fixture(tmp_path, "recursive")
    proc = run(folder, "batch-processor.yaml", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    batches = [json.loads(line) for line in (folder / "processed.log").read_text().splitlines()]
    assert [len(b) for b in batches] == [100, 100, 50] and batches[2][-1] == 249
    # one state per level (OFFSET differs), nested under each parent's target
    level1 = child_states(folder, "batch-processor.yaml", "batch-processor")
    assert len(level1) == 1 and len(list((level1[0] / "dags").glob("batch-processor-*"))) == 1
    first = outputs(folder, "batch-processor.yaml")
    assert run(folder, "batch-processor.yaml", env).returncode == 0
    assert outputs(folder, "batch-processor.yaml")["outputs"] == first["outputs"]
    assert len((folder / "processed.log").read_text().splitlines()) == 6


def test_a_recursion_past_the_depth_limit_fails_with_a_clear_error(tmp_path):
    folder, env = fixture(tmp_path, "recursive")
    (folder / "forever.yaml").write_text("steps:\n  - name: again\n    run: forever.yaml\n")
    proc = run(folder, "forever.yaml", {**env, "SEEKRUN_MAX_DAG_DEPTH": "3"})
    assert proc.returncode == 1
    assert "nest 4 deep, past the limit of 3" in proc.stdout + proc.stderr
    got = results(folder, "forever.yaml")
    assert got["dag.again"]["status"] == "failed" and "past the limit of 3" in got["dag.again"]["error"]
