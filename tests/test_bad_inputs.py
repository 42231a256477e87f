"""Issue 5: the catalogue of bad input in tests/bad_inputs/ (see its README.md).

Each case starts from a built copy of tests/bad_inputs/_base, breaks it (overlay files,
deletes, symlinks, planted target/ files) and runs the real CLI. Whatever the problem,
seekrun must exit 2 with a one-line error (at `path:line` when YAML gives one), print no
traceback, and leave the already-built target/ byte for byte as it was.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import yaml

from conftest import cli, cli_proc, table, target_snapshot

CATALOGUE = Path(__file__).resolve().parent / "bad_inputs"
BASE = CATALOGUE / "_base"
CASES = sorted(p.name for p in CATALOGUE.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
CASE_KEYS = {"command", "args", "error", "where", "exit", "delete", "symlink", "patch_json", "max_seconds",
             "must_not_exist"}
OUTSIDE = "@OUTSIDE@"


def load_case(name: str) -> dict:
    spec = yaml.safe_load((CATALOGUE / name / "case.yml").read_text()) or {}
    unknown = set(spec) - CASE_KEYS
    assert not unknown, f"{name}/case.yml: unknown keys {sorted(unknown)}"
    assert spec.get("error"), f"{name}/case.yml: 'error' is required"
    return spec


@pytest.fixture(scope="session")
def built_base(tmp_path_factory) -> Path:
    """_base, built once by a real `seekrun run`."""
    root = tmp_path_factory.mktemp("bad_inputs") / "base"
    shutil.copytree(BASE, root)
    res = cli("run", "-p", str(root))
    assert res.exit_code == 0, res.output
    return root


def test_catalogue_is_big_enough():
    assert len(CASES) >= 40
    for name in CASES:
        load_case(name)


def test_base_project_builds(built_base):
    assert table(built_base, "transform.customer_totals") == [(1, "Ada", 12.5), (2, "Bob", 30.0), (3, "Cy", 5.0)]
    assert table(built_base, "transform.payment_summary") == [("card", 3, 18.5), ("iban", 2, 32.0)]
    assert {"manifest.json", "run_results.json", "seekrun.duckdb", "state"} <= {
        p.name for p in (built_base / "target").iterdir()}


def _set_dotted(obj: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        obj = obj[key]
    assert last in obj, f"patch_json: {dotted} is not in the file"
    obj[last] = value


def _prepare(name: str, spec: dict, built_base: Path, tmp_path: Path) -> tuple[Path, Path]:
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("user,password\nroot,hunter2\n")
    shutil.copytree(built_base, proj, symlinks=True)
    # a plain run on the copy: must succeed and do nothing (and re-records the database file)
    res = cli("run", "-p", str(proj))
    assert res.exit_code == 0 and "Nothing to do" in res.stdout, res.output
    for rel, changes in (spec.get("patch_json") or {}).items():
        path = proj / rel
        data = json.loads(path.read_text())
        for dotted, value in changes.items():
            _set_dotted(data, dotted, value)
        path.write_text(json.dumps(data, indent=1))
    return proj, outside


def _apply(name: str, spec: dict, proj: Path, outside: Path) -> None:
    case_dir = CATALOGUE / name
    for src in sorted(case_dir.rglob("*")):
        if src.is_dir() or src.relative_to(case_dir).as_posix() == "case.yml":
            continue
        dest = proj / src.relative_to(case_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes().replace(OUTSIDE.encode(), str(outside).encode()))
    for rel in spec.get("delete") or []:
        path = proj / rel
        assert path.exists(), f"delete: {rel} is not in the base project"
        path.unlink()
    link = spec.get("symlink")
    if link:
        (proj / link["link"]).symlink_to(link["to"].replace(OUTSIDE, str(outside)))


def _error_line(stderr: str, where: str, first_error: str) -> str | None:
    if where.endswith(":*"):
        pattern = re.compile(re.escape(where[:-1]) + r"\d+: ")
    else:
        pattern = re.compile(re.escape(where) + ": ")
    for line in stderr.splitlines():
        if pattern.match(line) and ": warning:" not in line and first_error in line:
            return line
    return None


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name, built_base, tmp_path, monkeypatch):
    spec = load_case(name)
    monkeypatch.delenv("SEEKRUN_BAD_INPUTS_UNSET", raising=False)
    proj, outside = _prepare(name, spec, built_base, tmp_path)
    before = target_snapshot(proj)
    assert {"target/manifest.json", "target/run_results.json", "target/seekrun.duckdb",
            "target/state/execution_state.json"} <= set(before)
    _apply(name, spec, proj, outside)

    args = [spec.get("command", "run"), "-p", str(proj), *[str(a) for a in spec.get("args") or []]]
    t0 = time.perf_counter()
    res = cli(*args)
    elapsed = time.perf_counter() - t0
    shown = f"$ seekrun {' '.join(args)}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}"

    assert res.exit_code == spec.get("exit", 2), shown
    errors = spec["error"] if isinstance(spec["error"], list) else [spec["error"]]
    for err in errors:
        assert err.replace(OUTSIDE, str(outside)) in res.stderr, f"expected {err!r} in stderr\n{shown}"
    if spec.get("where"):
        first = errors[0].replace(OUTSIDE, str(outside))
        assert _error_line(res.stderr, spec["where"], first), (
            f"no error line starts with {spec['where']!r} and holds {first!r}\n{shown}")
    if spec.get("max_seconds"):
        assert elapsed < spec["max_seconds"], f"took {elapsed:.2f}s\n{shown}"
    for rel in spec.get("must_not_exist") or []:
        path = rel.replace(OUTSIDE, str(outside))
        path = Path(path) if os.path.isabs(path) else proj / path
        assert not os.path.lexists(path), f"{path} was written\n{shown}"

    after = target_snapshot(proj)
    assert after.get("target/manifest.json") == before["target/manifest.json"], "manifest.json changed\n" + shown
    assert after.get("target/manifest.json.old") == before.get("target/manifest.json.old"), (
        "manifest.json.old was written\n" + shown)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"target/ changed: {changed}\n{shown}"

    # Again as a real process: only there does seekrun.cli.main run, whose handler would turn a
    # crash into "internal error" (in-process, a crash raises out of cli() instead).
    proc = cli_proc(*args)
    shown = f"$ python -m seekrun {' '.join(args)}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
    assert proc.exit_code == spec.get("exit", 2), shown
    assert "Traceback" not in proc.output and "internal error" not in proc.output, shown
    for err in errors:
        assert err.replace(OUTSIDE, str(outside)) in proc.stderr, f"expected {err!r} in stderr\n{shown}"
    after = target_snapshot(proj)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"target/ changed: {changed}\n{shown}"
