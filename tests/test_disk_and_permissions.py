"""Issue 10: a full disk and missing permissions are clear one-line errors, never a traceback,
and never leave target/ damaged or littered with temp files.

- A full disk is simulated at each of seekrun's writes (SEEKRUN_FAULT=enospc@..., the error
  the kernel gives), and made real on a small tmpfs when the test may mount one (root).
- Permissions are real: seekrun runs as user `nobody` (root ignores file modes, and the tests
  run as root here and in CI) on a project in a world-traversable temp folder.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import REPO, all_tables, clean_build, cli, cli_proc, ran, table, target_snapshot, write_project

FILES = {
    "data/s.csv": "id,v\n1,1\n2,2\n3,3\n",
    "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
    "nodes/t.yml": "kind: transform\nname: t\ninputs:\n  - ref: source.s\ntransform: SELECT id, v * 2 AS v FROM input_0\n",
    "nodes/u.yml": "kind: transform\nname: u\ninputs:\n  - ref: transform.t\ntransform: SELECT sum(v) AS v FROM input_0\n",
    "nodes/out.yml": ("kind: exposure\nname: out\ntype: file\ninputs:\n  - ref: transform.t\n"
                      "params:\n  path: target/out.csv\n"),
}
IDS = {"source.s", "transform.t", "transform.u", "exposure.out"}


def temp_files(project: Path) -> list[str]:
    return sorted(p.relative_to(project).as_posix() for p in project.rglob("*")
                  if ".tmp-" in p.name or p.name.startswith(".seekrun-tmp-"))


def no_traceback(output: str) -> None:
    assert "Traceback" not in output and "internal error" not in output, output


def assert_target_files_valid(p: Path) -> None:
    """Every JSON file seekrun keeps is whole (atomic writes: the old one or the new one)."""
    for rel in ("target/manifest.json", "target/run_results.json", "target/state/execution_state.json"):
        path = p / rel
        if path.exists():
            json.loads(path.read_text())


def edit_t(p: Path, factor: int) -> None:
    path = p / "nodes" / "t.yml"
    text = path.read_text()
    path.write_text(text.replace(text[text.index("v * "):text.index(" AS v")], f"v * {factor}"))


# ---------------------------------------------------------------------------------------------
# 11 (a) ENOSPC at each of seekrun's writes

@pytest.mark.parametrize("point", ["write:execution_state.json", "write:run_results.json", "write:manifest.json",
                                   "write:file_hashes.json", "journal"])
def test_full_disk_at_each_write_is_one_line_and_the_next_run_converges(point, tmp_path):
    p = write_project(tmp_path / "proj", FILES)
    assert cli("run", "-p", str(p)).exit_code == 0
    edit_t(p, 3)
    res = cli_proc("run", "-p", str(p), "--threads", "1", env={"SEEKRUN_FAULT": f"enospc@{point}"})
    assert res.exit_code == 1, res.output
    no_traceback(res.output)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("seekrun: No space left on device"), res.stderr
    assert temp_files(p) == [], temp_files(p)
    assert_target_files_valid(p)

    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res.output)
    assert table(p, "transform.t") == [(1, 3), (2, 6), (3, 9)]
    assert all_tables(p) == clean_build(p, tmp_path)
    assert (p / "target/out.csv").read_bytes() == (tmp_path / "fresh_copy/target/out.csv").read_bytes()
    again = cli("run", "-p", str(p))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


def test_full_disk_at_a_later_journal_line_keeps_what_finished(tmp_path):
    """ENOSPC on the second node's journal line: the first node is kept, the rest run next time."""
    p = write_project(tmp_path / "proj", FILES)
    assert cli("run", "-p", str(p)).exit_code == 0
    edit_t(p, 5)
    (p / "data" / "s.csv").write_text("id,v\n1,1\n2,2\n3,3\n4,4\n")
    res = cli_proc("run", "-p", str(p), "--threads", "1", env={"SEEKRUN_FAULT": "enospc@journal#2"})
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("seekrun: No space left on device"), res.stderr
    assert temp_files(p) == []
    res = cli("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    assert "source.s" not in ran(p), res.output  # finished before the disk filled: kept
    assert all_tables(p) == clean_build(p, tmp_path)


# ---------------------------------------------------------------------------------------------
# 11 (b) a real full disk (tmpfs)

@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a real full disk needs a tmpfs, which only root can mount")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """A filler file that leaves about `leave` bytes free (0: none at all)."""
    filler = disk / "filler"
    st = os.statvfs(disk)
    with open(filler, "wb", buffering=0) as f:
        try:
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
            while leave == 0:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


@pytest.mark.parametrize("what", ["seekrun_files", "duckdb_table"])
def test_real_full_disk_fails_cleanly_and_converges_once_freed(what, small_disk, tmp_path):
    p = write_project(small_disk / "proj", FILES)
    res = cli_proc("run", "-p", str(p))
    assert res.exit_code == 0, res.output
    if what == "seekrun_files":  # nothing free at all: seekrun's first write fails
        edit_t(p, 3)
        filler = fill(small_disk, 0)
    else:  # a table far bigger than what is left: DuckDB or the journal fails
        (p / "nodes" / "u.yml").write_text(
            "kind: transform\nname: u\ninputs:\n  - ref: transform.t\n"
            "transform: SELECT i AS v, md5(i::VARCHAR) AS h FROM range(200000) t(i)\n")
        filler = fill(small_disk, 300_000)
    before = target_snapshot(p)
    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 1, res.output
    no_traceback(res.output)
    assert "No space left on device" in res.output, res.output
    assert_target_files_valid(p)
    assert temp_files(p) == [], temp_files(p)
    if what == "seekrun_files":
        assert target_snapshot(p) == before

    filler.unlink()
    res = cli_proc("run", "-p", str(p), "--threads", "1")
    assert res.exit_code == 0, res.output
    no_traceback(res.output)
    assert temp_files(p) == []
    assert all_tables(p) == clean_build(p, tmp_path)
    again = cli("run", "-p", str(p))
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output


# ---------------------------------------------------------------------------------------------
# 12. permissions, as a user that file modes apply to

def _nobody_python() -> tuple[list[str], dict] | None:
    """A command line and environment that run seekrun as `nobody` (this interpreter if nobody
    can run it, else the system's python of the same version with this environment's packages)."""
    import pwd
    import sysconfig

    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return None
    paths = os.pathsep.join([str(REPO), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": paths, "HOME": tempfile.gettempdir(), "LANG": "C.UTF-8"}
        try:
            proc = subprocess.run([exe, "-c", "import seekrun.cli, duckdb"], user="nobody", group=_nogroup(),
                                  extra_groups=[], env=env, capture_output=True, timeout=60, cwd="/")
        except (OSError, subprocess.SubprocessError):
            continue
        if proc.returncode == 0:
            return [exe, "-m", "seekrun"], env
    return None


def _nogroup() -> int:
    import pwd

    return pwd.getpwnam("nobody").pw_gid


@pytest.fixture
def as_nobody():
    if os.geteuid() != 0:
        pytest.skip("running seekrun as another user needs root")
    found = _nobody_python()
    if found is None:
        pytest.skip("user 'nobody' does not exist, or cannot run a Python with seekrun's packages")
    cmd, env = found
    folder = Path(tempfile.mkdtemp(prefix="seekrun-perm-", dir="/tmp"))
    os.chmod(folder, 0o755)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cmd, *args], user="nobody", group=_nogroup(), extra_groups=[], env=env,
                              capture_output=True, text=True, timeout=120, cwd=str(folder))

    try:
        yield folder, run
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def nobody_project(folder: Path, run) -> Path:
    p = write_project(folder / "proj", {**FILES, "nodes/sub/w.yml": (
        "kind: transform\nname: w\ninputs:\n  - ref: source.s\ntransform: SELECT count(*) AS n FROM input_0\n")})
    uid, gid = 65534, _nogroup()
    for dirpath, dirnames, filenames in os.walk(p):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)
    res = run("run", "-p", str(p))
    assert res.returncode == 0, res.stdout + res.stderr
    return p


# (what to make unreadable or read-only, its mode, the path the one line must name, words in it)
PERMISSIONS = {
    "unreadable node file": ("nodes/t.yml", 0o000, "nodes/t.yml", "Permission denied"),
    "unreadable node folder": ("nodes/sub", 0o000, "nodes/sub", "Permission denied"),
    "unreadable marker file": ("seekrun_project.yml", 0o000, "seekrun_project.yml", "cannot be read"),
    "unreadable data file": ("data/s.csv", 0o000, "data/s.csv", "Permission denied"),
    "read-only target": ("target", 0o555, "target", "not writable"),
    "read-only target/state": ("target/state", 0o555, "target/state", "not writable"),
    "unreadable state file": ("target/state/execution_state.json", 0o000, "target/state/execution_state.json",
                              "cannot be read"),
    "read-only database": ("target/seekrun.duckdb", 0o444, "target/seekrun.duckdb", "fix its permissions"),
}


@pytest.mark.parametrize("case", list(PERMISSIONS))
def test_permission_problems_are_one_line_exit_2(case, as_nobody):
    folder, run = as_nobody
    p = nobody_project(folder, run)
    rel, mode, named, words = PERMISSIONS[case]
    edit_t(p, 4)  # something to do, so every write the run needs is attempted
    target = p / rel
    old_mode = target.stat().st_mode & 0o777
    before = target_snapshot(p)
    os.chmod(target, mode)
    try:
        res = run("run", "-p", str(p))
        output = res.stdout + res.stderr
        assert res.returncode == 2, f"exit {res.returncode}\n{output}"
        no_traceback(output)
        naming = [ln for ln in res.stderr.splitlines()[:-1] if f"{named}:" in ln or f"'{named}'" in ln]
        assert len(naming) == 1, output
        assert words.lower() in naming[0].lower(), naming[0]
        assert res.stderr.splitlines()[-1].endswith("nothing was changed in target/"), output
    finally:
        os.chmod(target, old_mode)
    assert target_snapshot(p) == before
    res = run("run", "-p", str(p))  # fixed: the run goes through
    assert res.returncode == 0, res.stdout + res.stderr


def test_a_first_run_whose_checks_fail_leaves_no_database_behind(tmp_path):
    """The first run checks on the database it is about to build (created for it); when the
    checks refuse the project, that new database goes again: target/ holds no half-made file."""
    root = write_project(tmp_path / "p", {
        "data/s.csv": "id,v\n1,2\n",
        "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n",
        "nodes/t.yml": "kind: transform\nname: t\ninputs: [{ref: source.s}]\n"
                       "transform: SELECT id, {{ env_var('COLS') }} FROM ref('source.s')\n"})
    res = cli_proc("run", "-p", str(root), env={"COLS": "v,,,"})
    assert res.exit_code == 2 and "does not parse" in res.stderr and "nothing was changed in target/" in res.stderr
    assert not (root / "target" / "seekrun.duckdb").exists()
    assert not (root / "target" / "seekrun.duckdb.wal").exists()
    res = cli_proc("run", "-p", str(root), env={"COLS": "v"})
    assert res.exit_code == 0, res.output
    assert table(root, "transform.t") == [(1, 2)]
