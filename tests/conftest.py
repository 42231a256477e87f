"""Test helpers: real files in tmp_path, real DuckDB, the real CLI (in-process or as a process).

Hypothesis profiles (the property tests, tests/test_property_*.py), chosen by the environment
variable HYPOTHESIS_PROFILE:

- ``ci`` (the default): the example counts the tests ask for with ``examples(n)``; the whole
  property suite stays within a few minutes on 2 cores;
- ``long``: 20 times as many examples (``HYPOTHESIS_PROFILE=long python -m pytest
  tests/test_property_*.py``), for a soak run before a release or after touching the
  planner, the state, the engine or the parser;
- ``dev``: 3 examples per test, for a quick loop while writing tests (``quick``: the same without
  shrinking a failure, when the first failing example is enough).

All profiles: no deadline (a seekrun run takes a variable time on a loaded machine), and the
health check on slow data generation is off (an example writes and builds a real project).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from engine_matrix import (builds_on_spark, kind_engine, marker_for, node_text, on_spark, pin_sample,  # noqa: F401
                           pytest_collection_modifyitems, pytest_configure)

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_project"


PROFILE_SCALE = {"ci": 1, "long": 20}
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("ci", deadline=None, suppress_health_check=_HEALTH, print_blob=True)
settings.register_profile("long", parent=settings.get_profile("ci"))
settings.register_profile("dev", parent=settings.get_profile("ci"), max_examples=3)
settings.register_profile("quick", parent=settings.get_profile("dev"),
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def examples(ci: int) -> int:
    """max_examples for a property test that runs ``ci`` examples in the ci profile: 20 times
    as many under ``long``, the profile's own count under any other (``dev``: 3)."""
    if PROFILE in PROFILE_SCALE:
        return ci * PROFILE_SCALE[PROFILE]
    return settings.get_profile(PROFILE).max_examples


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def write_project(root: Path, files: dict[str, str | bytes], marker: str | None = "name: testproj\n") -> Path:
    """Create a project: {relative path: text or bytes}. Text is dedented."""
    root.mkdir(parents=True, exist_ok=True)
    if marker is not None and "seekrun_project.yml" not in files and "seeknal_project.yml" not in files:
        (root / "seekrun_project.yml").write_text(marker_for(marker))
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif rel in ("seekrun_project.yml", "seeknal_project.yml"):
            path.write_text(marker_for(textwrap.dedent(content)))
        else:
            path.write_text(node_text(textwrap.dedent(content)))
    return root


def exposure_yaml(name: str, path: str, ref: str = "source.a", fmt: str | None = "csv") -> str:
    """A file exposure node: `name` writes `ref`'s table to `path`."""
    params = (f"  format: {fmt}\n" if fmt else "") + f"  path: {path}\n"
    return f"kind: exposure\nname: {name}\ntype: file\ndepends_on:\n  - ref: {ref}\nparams:\n{params}"


# In these test files every cli() call runs a real `python -m seekrun` process, so that what
# only main() does (exit codes of internal errors, signals, the fast exit) is exercised by a
# fair share of the ordinary tests too, not only by the ones written for it.
SUBPROCESS_FILES = {"test_run_failures.py", "test_run_filters.py", "test_parse_errors.py"}


def cli(*args: str, cwd: Path | None = None) -> Result:
    """Run the seekrun CLI: in-process (typer's runner: fast, the same code path as the console
    script, except main()'s own handlers), or as a real process in SUBPROCESS_FILES."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[0]
    if os.path.basename(current) in SUBPROCESS_FILES:
        res = cli_proc(*args, cwd=cwd)
        assert "internal error" not in res.stderr and "Traceback" not in res.stderr, res.output
        return res
    from typer.testing import CliRunner

    from seekrun.cli import app

    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    finally:
        os.chdir(old)
    return Result(res.exit_code, res.stdout, res.stderr)


def cli_proc(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> Result:
    """Run `python -m seekrun` as a separate process (for signals, locks, import checks)."""
    proc = subprocess.run([sys.executable, "-m", "seekrun", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    return Result(proc.returncode, proc.stdout, proc.stderr)


def query(project: Path, sql: str, db: str = "target/seekrun.duckdb"):
    import duckdb

    con = duckdb.connect(str(project / db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def table(project: Path, node_id: str) -> list[tuple]:
    """Every row of a node's table, sorted (tables are sets of rows for comparison)."""
    kind, name = node_id.split(".", 1)
    return sorted(query(project, f'SELECT * FROM "{kind}"."{name}"'), key=repr)


def ran(result_dir: Path) -> set[str]:
    """Node ids that ran (success or failed) in the last run, from target/run_results.json."""
    import json

    data = json.loads((result_dir / "target" / "run_results.json").read_text())
    return {r["node_id"] for r in data["results"] if r["status"] in ("success", "failed")}


def run_results(project: Path) -> dict[str, dict]:
    import json

    data = json.loads((project / "target" / "run_results.json").read_text())
    return {r["node_id"]: r for r in data["results"]}


def reasons(project: Path) -> dict[str, str | None]:
    """Why each node that ran (success or failed) in the last run ran."""
    return {nid: r["reason"] for nid, r in run_results(project).items() if r["status"] in ("success", "failed")}


def target_snapshot(project: Path) -> dict[str, bytes]:
    """Bytes of every file under target/ (to prove a failed command changed nothing)."""
    out = {}
    target = project / "target"
    if target.exists():
        for p in sorted(target.rglob("*")):
            if p.is_file() and p.name != ".seekrun.lock":
                out[str(p.relative_to(project))] = p.read_bytes()
    return out


def all_tables(project: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table of a project: {"kind.name": (column names, sorted rows)}."""
    import duckdb

    con = duckdb.connect(str(project / "target" / "seekrun.duckdb"), read_only=True)
    try:
        names = con.execute("SELECT schema_name, table_name FROM duckdb_tables() "
                            "WHERE database_name = current_database() AND schema_name <> '_seekrun'").fetchall()
        out = {}
        for schema, name in names:
            cur = con.execute(f'SELECT * FROM "{schema}"."{name}"')
            out[f"{schema}.{name}"] = ([d[0] for d in cur.description], sorted(cur.fetchall(), key=repr))
        return out
    finally:
        con.close()


def clean_build(project: Path, where: Path) -> dict:
    """The tables a clean --full build of a fresh copy of the project (without target/) gives."""
    fresh = where / "fresh_copy"
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(project, fresh, ignore=shutil.ignore_patterns("target"))
    res = cli("run", "-p", str(fresh), "--full")
    assert res.exit_code == 0, res.output
    return all_tables(fresh)


@pytest.fixture(autouse=True)
def _forget_secrets():
    """Each test starts with no env_var() values registered for redaction (the CLI resets them
    per command too; Python API calls in tests do not)."""
    from seekrun import faults, secrets

    secrets.reset()
    faults._seen.clear()
    yield


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A fresh copy of sample_project (without any target/)."""
    dest = tmp_path / "sample_project"
    shutil.copytree(SAMPLE, dest, ignore=shutil.ignore_patterns("target"))
    marker = dest / "seekrun_project.yml"
    if on_spark():  # the kind tests' Spark half: engine: spark, with the nodes Spark would read otherwise pinned
        marker.write_text(marker_for(marker.read_text()))
        pin_sample(dest)
    return dest


def journal_successes(project: Path) -> list[str]:
    """Node ids recorded as finished successfully in the journal, in order (torn lines ignored)."""
    path = project / "target" / "state" / "execution_state.journal"
    if not path.exists():
        return []
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        entry = rec.get("entry") if isinstance(rec, dict) else None
        if isinstance(entry, dict) and entry.get("status") == "success":
            out.append(rec["id"])
    return out


ENDLESS = {"SEEKRUN_TEST_WORK": str(10 ** 13)}  # env for a run whose slow_sql nodes never finish on their own


def slow_sql(k: int) -> str:
    """A SELECT that scans as many rows as env SEEKRUN_TEST_WORK says (default 1,000): run with
    ENDLESS it goes on until it is interrupted or killed, so a test can act while it runs
    without guessing how fast the machine is; the next run (without it) is quick. Changing the
    variable reruns the node (env_var() values are hashed), which is fine for nodes that were
    left undone anyway. Its table is [(slow_count(k),)] after a quick run."""
    return ("SELECT count(*) AS c FROM range(CAST('{{ env_var('SEEKRUN_TEST_WORK', '1000') }}' AS BIGINT)) t(i) "
            f"WHERE i % 7 = {k % 7}")


def slow_count(k: int, work: int = 1000) -> int:
    return work // 7 + (1 if k % 7 < work % 7 else 0)


def alive(pid: int) -> bool:
    """Whether a process is running (not a zombie), as ps reports it."""
    out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(out) and not out.startswith("Z")



CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (never Playwright's own browser download);
    the test is skipped, saying why, only when either is missing (.ci/run installs chromium)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    if not os.path.exists(CHROMIUM):
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield b
        b.close()
