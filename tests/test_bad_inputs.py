"""Issue 5: the catalogue of bad input in tests/bad_inputs/ (see its README.md).

Each case starts from a built copy of tests/bad_inputs/_base, breaks it (overlay files,
deletes, symlinks, FIFOs and sockets, damaged target/ files) and runs the real CLI. Whatever
the problem, seekrun must exit 2 with a one-line error (at `path:line` when YAML gives one),
print no traceback, and leave the already-built target/ byte for byte as it was (and each
damaged path in target/ as the case left it: seekrun says what to do, it does not "repair").
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import cli, cli_proc, table

CATALOGUE = Path(__file__).resolve().parent / "bad_inputs"
BASE = CATALOGUE / "_base"
CASES = sorted(p.name for p in CATALOGUE.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
CASE_KEYS = {"command", "args", "error", "where", "exit", "delete", "symlink", "patch_json", "max_seconds",
             "must_not_exist", "fifo", "socket", "replace_with_dir", "replace_with_file", "detail", "count"}
OUTSIDE = "@OUTSIDE@"
PLANTED = b"planted by the bad-input test\n"
SUMMARY = re.compile(r"seekrun: (\d+) errors?; nothing was changed in target/$")


def load_case(name: str) -> dict:
    spec = yaml.safe_load((CATALOGUE / name / "case.yml").read_text()) or {}
    unknown = set(spec) - CASE_KEYS
    assert not unknown, f"{name}/case.yml: unknown keys {sorted(unknown)}"
    assert spec.get("error"), f"{name}/case.yml: 'error' is required"
    assert not spec.get("detail") or spec.get("where"), f"{name}/case.yml: 'detail' needs 'where'"
    return spec


def _paths(spec: dict, key: str) -> list[str]:
    value = spec.get(key) or []
    return [value] if isinstance(value, str) else list(value)


def snapshot(proj: Path) -> dict[str, object]:
    """Every path under target/ (target/ itself included, whatever it is): a file's bytes, or
    the kind of anything else. Never opens a FIFO. The lock file's content (a pid) is not
    compared, only that it is a file."""
    out: dict[str, object] = {}

    def visit(path: Path) -> None:
        rel = path.relative_to(proj).as_posix()
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = "folder"
            for child in sorted(path.iterdir()):
                visit(child)
        elif stat.S_ISREG(st.st_mode):
            out[rel] = "file" if path.name == ".seekrun.lock" else path.read_bytes()
        elif stat.S_ISFIFO(st.st_mode):
            out[rel] = "fifo"
        elif stat.S_ISSOCK(st.st_mode):
            out[rel] = "socket"
        else:
            out[rel] = "special"

    if os.path.lexists(proj / "target"):
        visit(proj / "target")
    return out


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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _make_socket(path: Path) -> None:
    """A listening Unix socket at path (bound by a relative name: tmp paths can be longer than
    a socket address allows). Left open until the test ends, like a real server's."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.getcwd()
    os.chdir(path.parent)
    try:
        sock.bind(path.name)
    finally:
        os.chdir(old)
    sock.listen(1)
    _SOCKETS.append(sock)


_SOCKETS: list[socket.socket] = []


@pytest.fixture
def _close_sockets():
    yield
    while _SOCKETS:
        _SOCKETS.pop().close()


def _special_files(spec: dict, proj: Path, in_target: bool) -> list[str]:
    """Apply fifo / socket / replace_with_dir / replace_with_file to the paths under target/
    (in_target: the damage is the starting state, applied before the snapshot) or to the other
    paths (an edit of the project, after it). Globs pick their first match. Returns the
    target/ paths damaged."""
    damaged = []
    for key in ("replace_with_dir", "replace_with_file", "fifo", "socket"):
        for pattern in _paths(spec, key):
            if pattern.split("/")[0] == "target" and not in_target or pattern.split("/")[0] != "target" and in_target:
                continue
            if glob.has_magic(pattern):
                matches = sorted(glob.glob(pattern, root_dir=proj))
                assert matches, f"{key}: nothing matches {pattern}"
                rel = matches[0]
            else:
                rel = pattern
            path = proj / rel
            _remove(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            if key == "replace_with_dir":
                path.mkdir()
                (path / "planted.txt").write_bytes(PLANTED)
            elif key == "replace_with_file":
                path.write_bytes(PLANTED)
            elif key == "fifo":
                os.mkfifo(path)
            else:
                _make_socket(path)
            damaged.append(rel)
    return damaged


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
    links = spec.get("symlink") or []
    for link in [links] if isinstance(links, dict) else links:
        dest = proj / link["link"]
        _remove(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(link["to"].replace(OUTSIDE, str(outside)))
    _special_files(spec, proj, in_target=False)


def _error_line(stderr: str, where: str, first_error: str) -> int | None:
    """Index (in stderr's lines) of the error line at `where` that holds first_error."""
    if where.endswith(":*"):
        pattern = re.compile(re.escape(where[:-1]) + r"\d+: ")
    else:
        pattern = re.compile(re.escape(where) + ": ")
    for i, line in enumerate(stderr.splitlines()):
        if pattern.match(line) and ": warning:" not in line and first_error in line:
            return i
    return None


def _check_lines(spec: dict, stderr: str, shown: str) -> None:
    """Errors reported by seekrun itself (not by the option parser): each is one line, any
    detail lines under it are indented, and the closing count matches; `count` pins how many
    there are, `detail` the lines under the `where` error."""
    lines = stderr.splitlines()
    closing = [m for m in map(SUMMARY.match, lines) if m]
    if spec.get("count") is not None:
        assert closing, f"no closing 'seekrun: N errors' line\n{shown}"
    if not closing:
        return
    assert len(closing) == 1 and SUMMARY.match(lines[-1]), f"the error count is not the last line\n{shown}"
    errors = [ln for ln in lines[:-1] if not ln.startswith("    ") and ": warning: " not in ln
              and not ln.startswith("warning: ")]
    assert len(errors) == int(closing[0].group(1)), f"{len(errors)} error lines, count says otherwise\n{shown}"
    if spec.get("count") is not None:
        assert len(errors) == spec["count"], f"expected {spec['count']} error line(s)\n{shown}"
    if spec.get("detail"):
        first = (spec["error"] if isinstance(spec["error"], list) else [spec["error"]])[0]
        at = _error_line(stderr, spec["where"], first)
        want = [f"    {d}" for d in spec["detail"]]
        assert lines[at + 1:at + 1 + len(want)] == want, f"expected the detail lines {want}\n{shown}"


@pytest.mark.parametrize("name", CASES)
def test_bad_input(name, built_base, tmp_path, monkeypatch, _close_sockets):
    spec = load_case(name)
    monkeypatch.delenv("SEEKRUN_BAD_INPUTS_UNSET", raising=False)
    proj, outside = _prepare(name, spec, built_base, tmp_path)
    damaged = _special_files(spec, proj, in_target=True)
    before = snapshot(proj)
    for rel in ("target/manifest.json", "target/run_results.json", "target/seekrun.duckdb",
                "target/state/execution_state.json"):
        assert isinstance(before.get(rel), bytes) or any(rel == d or rel.startswith(d + "/") for d in damaged), (
            f"{rel} is not in the built project")
    _apply(name, spec, proj, outside)

    args = [spec.get("command", "run"), "-p", str(proj), *[str(a) for a in spec.get("args") or []]]
    if spec.get("max_seconds"):
        # "must not hang": first as a process that can be killed (in-process, a hang would hang the suite)
        try:
            cli_proc(*args, timeout=4 * spec["max_seconds"])
        except subprocess.TimeoutExpired:
            pytest.fail(f"$ python -m seekrun {' '.join(args)} still running after {4 * spec['max_seconds']}s")
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
        assert _error_line(res.stderr, spec["where"], first) is not None, (
            f"no error line starts with {spec['where']!r} and holds {first!r}\n{shown}")
    _check_lines(spec, res.stderr, shown)
    if spec.get("max_seconds"):
        assert elapsed < spec["max_seconds"], f"took {elapsed:.2f}s\n{shown}"
    for rel in spec.get("must_not_exist") or []:
        path = rel.replace(OUTSIDE, str(outside))
        path = Path(path) if os.path.isabs(path) else proj / path
        assert not os.path.lexists(path), f"{path} was written\n{shown}"

    after = snapshot(proj)
    assert after.get("target/manifest.json") == before.get("target/manifest.json"), "manifest.json changed\n" + shown
    assert after.get("target/manifest.json.old") == before.get("target/manifest.json.old"), (
        "manifest.json.old was written\n" + shown)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"target/ changed: {changed}\n{shown}"

    # Again as a real process: only there does seekrun.cli.main run, whose handler would turn a
    # crash into "internal error" (in-process, a crash raises out of cli() instead).
    proc = cli_proc(*args, timeout=max(60, 4 * (spec.get("max_seconds") or 0)))
    shown = f"$ python -m seekrun {' '.join(args)}\n--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
    assert proc.exit_code == spec.get("exit", 2), shown
    assert "Traceback" not in proc.output and "internal error" not in proc.output, shown
    for err in errors:
        assert err.replace(OUTSIDE, str(outside)) in proc.stderr, f"expected {err!r} in stderr\n{shown}"
    _check_lines(spec, proc.stderr, shown)
    after = snapshot(proj)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"target/ changed: {changed}\n{shown}"
