"""A cold parse of many files runs on several processes; the result must not depend on it.

Whether the work really ran in other processes is observed from outside seekrun's code: a
small launcher runs the real CLI (seekrun.cli.main) with a profile hook that logs the pid of
every call to the parser's per-file reader, so a parse whose workers failed (and whose parent
then read their files itself) is told apart from one whose workers did the reading.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

from conftest import Result, cli_proc, write_project

N_FILES = 241  # nodes/s.yml and 240 transforms: a cold parse reads every one

# Runs `seekrun ARGS...` through seekrun.cli.main, logging "<pid> <file>" for each call of
# seekrun.parser.parse._read_one in whichever process makes it (a profile hook is inherited
# by forked children). The log is appended to by one write per line.
LAUNCHER = textwrap.dedent("""\
    import os, sys

    log = sys.argv[1]

    def hook(frame, event, arg):
        code = frame.f_code
        if event == "call" and code.co_name == "_read_one" and code.co_filename.endswith("parse.py"):
            fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            os.write(fd, f"{os.getpid()} {frame.f_locals.get('rel')}\\n".encode())
            os.close(fd)

    sys.argv = ["seekrun", *sys.argv[2:]]
    sys.setprofile(hook)
    from seekrun.cli import main
    main()
    """)


def parse_logged(project: Path, workers: str, tmp_path: Path) -> tuple[Result, int, list[tuple[int, str]]]:
    """`seekrun parse` as a process with SEEKRUN_PARSE_WORKERS=workers: its result, its pid and
    who read which file."""
    launcher = tmp_path / "launch_seekrun.py"
    launcher.write_text(LAUNCHER)
    log = tmp_path / f"reads-{project.name}.log"
    proc = subprocess.Popen([sys.executable, str(launcher), str(log), "parse", "-p", str(project)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SEEKRUN_PARSE_WORKERS": workers})
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    reads = [(int(pid), rel) for pid, rel in (ln.split(" ", 1) for ln in log.read_text().splitlines())]
    return Result(proc.returncode, out, err), proc.pid, reads


def _project(root, broken: bool = False):
    files = {"data/s.csv": "id,v\n1,2\n",
             "nodes/s.yml": "kind: source\nname: s\nsource: csv\ntable: data/s.csv\n"}
    for i in range(240):
        dep = "source.s" if i == 0 else f"transform.t{i - 1:03d}"
        files[f"nodes/t{i:03d}.yml"] = (f"kind: transform\nname: t{i:03d}\ndescription: node {i}\n"
                                        f"inputs: [{{ref: {dep}}}]\ntransform: SELECT id, v + {i} AS v FROM input_0\n")
    if broken:  # errors in files at both ends of the list: different workers read them
        files["nodes/t005.yml"] = "kind: transform\nname: t005\ninputs: [{ref: transform.nope}]\ntransform: SELECT 1\n"
        files["nodes/t230.yml"] = "kind: transform\nname: t230\ntransform: [unclosed\n"
    return write_project(root, files)


def _manifest(project):
    data = json.loads((project / "target" / "manifest.json").read_text())
    data["metadata"].pop("generated_at")
    return data


def test_parallel_and_sequential_parse_write_the_same_manifest(tmp_path):
    a, b = _project(tmp_path / "a"), _project(tmp_path / "b")
    ra, pid_a, reads_a = parse_logged(a, "2", tmp_path)
    rb, pid_b, reads_b = parse_logged(b, "1", tmp_path)
    assert ra.exit_code == 0 and rb.exit_code == 0, ra.output + rb.output
    assert "241 nodes" in ra.stdout
    # the parallel parse read each file exactly once, some of them in another process
    # (a failed worker would have made the parent read its files again: counted twice here)
    assert sorted(rel for _, rel in reads_a) == sorted(rel for _, rel in reads_b)
    assert len(reads_a) == len(set(reads_a)) == N_FILES
    by_pid = Counter(pid for pid, _ in reads_a)
    assert len(by_pid) == 2 and pid_a in by_pid, by_pid  # the parent and one worker, each a share
    # the sequential one read them all itself
    assert Counter(pid for pid, _ in reads_b) == {pid_b: N_FILES}
    assert _manifest(a) == _manifest(b)
    assert (a / "target" / "manifest.json").read_bytes().split(b'"generated_at"')[0] == \
        (b / "target" / "manifest.json").read_bytes().split(b'"generated_at"')[0]


def test_parallel_parse_reports_every_error_like_a_sequential_one(tmp_path):
    a, b = _project(tmp_path / "a", broken=True), _project(tmp_path / "b", broken=True)
    ra, pid_a, reads_a = parse_logged(a, "2", tmp_path)
    rb = cli_proc("parse", "-p", str(b), env={"SEEKRUN_PARSE_WORKERS": "1"})
    assert ra.exit_code == rb.exit_code == 2
    assert {pid for pid, _ in reads_a} - {pid_a}, "no file was read by a worker process"
    assert ra.stderr == rb.stderr
    assert "nodes/t005.yml:3: transform.t005: ref 'transform.nope' does not exist" in ra.stderr
    assert "nodes/t230.yml:4: YAML syntax error" in ra.stderr
    assert "Traceback" not in ra.output
    assert not (a / "target" / "manifest.json").exists()


# ---- map_forked itself, in a fresh interpreter (in this one duckdb is loaded: no fork) ----------

MAP_SCRIPT = textwrap.dedent("""\
    import json, os, sys

    from seekrun.parser.parallel import map_forked

    parent = os.getpid()
    fail_in_children = sys.argv[1] == "fail"

    def job(j):
        if (fail_in_children or sys.argv[1] == "reader-fail") and os.getpid() != parent:
            raise RuntimeError("a worker fails")
        return [j * j, os.getpid()]

    ran = []

    def meanwhile():
        ran.append(os.getpid())
        if sys.argv[1] == "meanwhile-fails":
            raise KeyError("meanwhile fails")

    if sys.argv[1].startswith("reader"):
        from seekrun.parser.parallel import Reader

        warmed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "warmed")

        def warm():
            if sys.argv[1] == "reader-warm-fails":
                raise RuntimeError("the worker dies before it takes its jobs")
            with open(warmed, "a") as f:
                f.write(f"{os.getpid()} ")

        reader = Reader(warm)
        if sys.argv[1] == "reader-warm-fails":
            import time

            time.sleep(0.5)  # gone by now: handing it the jobs breaks the pipe
        jobs = [] if sys.argv[1] == "reader-none" else list(range(3))
        out = reader.map(job, jobs, meanwhile=meanwhile)
        try:
            os.waitpid(-1, os.WNOHANG)
            left = True
        except ChildProcessError:
            left = False
        print(json.dumps({"parent": parent, "out": out, "meanwhile": ran, "children_left": left,
                          "warmed_in": [int(x) for x in open(warmed).read().split()] if os.path.exists(warmed)
                          else []}))
    elif sys.argv[1].startswith("meanwhile"):
        try:
            out = map_forked(job, list(range(3)), meanwhile=meanwhile)
        except KeyError as exc:
            out = str(exc)
        try:
            os.waitpid(-1, os.WNOHANG)
            left = True  # a child not collected
        except ChildProcessError:
            left = False
        print(json.dumps({"parent": parent, "out": out, "meanwhile": ran, "children_left": left}))
    else:
        print(json.dumps({"parent": parent, "out": map_forked(job, list(range(10)))}))
    """)


def map_forked_in_a_process(tmp_path: Path, workers: str, mode: str) -> dict:
    script = tmp_path / "map_forked_run.py"
    script.write_text(MAP_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SEEKRUN_PARSE_WORKERS": workers})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_map_forked_computes_the_later_slices_in_child_processes(tmp_path):
    data = map_forked_in_a_process(tmp_path, "2", "ok")
    out, parent = data["out"], data["parent"]
    assert [v for v, _ in out] == [j * j for j in range(10)]  # every result, in order
    assert [pid for _, pid in out[:5]] == [parent] * 5  # the parent does the first slice
    child = out[5][1]
    assert child != parent and [pid for _, pid in out[5:]] == [child] * 5  # a worker the rest


def test_map_forked_recomputes_a_failed_workers_slice_in_the_parent(tmp_path):
    data = map_forked_in_a_process(tmp_path, "2", "fail")
    out, parent = data["out"], data["parent"]
    assert [v for v, _ in out] == [j * j for j in range(10)]
    assert [pid for _, pid in out] == [parent] * 10


def test_map_forked_with_one_worker_does_not_fork(tmp_path):
    data = map_forked_in_a_process(tmp_path, "1", "ok")
    assert [pid for _, pid in data["out"]] == [data["parent"]] * 10


def test_map_forked_reads_a_few_files_in_one_worker_while_the_parent_does_other_work(tmp_path):
    data = map_forked_in_a_process(tmp_path, "", "meanwhile")
    out, parent = data["out"], data["parent"]
    assert [v for v, _ in out] == [0, 1, 4]
    assert data["meanwhile"] == [parent]  # once, in this process
    assert not data["children_left"]
    if len(os.sched_getaffinity(0)) >= 2:  # one worker read all three
        assert len({pid for _, pid in out}) == 1 and out[0][1] != parent
    else:  # one core: no fork, the parent reads them
        assert [pid for _, pid in out] == [parent] * 3


def test_map_forked_raises_what_meanwhile_raised_with_no_worker_left_running(tmp_path):
    data = map_forked_in_a_process(tmp_path, "", "meanwhile-fails")
    assert data["out"] == "'meanwhile fails'" and data["meanwhile"] == [data["parent"]]
    assert not data["children_left"]


def test_an_incremental_parse_reads_the_changed_files_in_a_worker_with_the_same_result(tmp_path):
    """A few changed files are read in a worker (the parent loads DuckDB meanwhile); the
    manifest and every error are those of a parse that reads them itself."""
    a, b = _project(tmp_path / "a"), _project(tmp_path / "b")
    for p in (a, b):
        for f in p.rglob("*.yml"):  # old files (a file younger than 2 s is read again: its mtime may tick)
            os.utime(f, (f.stat().st_mtime - 3600,) * 2)
        assert cli_proc("parse", "-p", str(p)).exit_code == 0
        (p / "nodes" / "t007.yml").write_text("kind: transform\nname: t007\ninputs: [{ref: transform.t006}]\n"
                                              "transform: SELECT id, v * 2 AS v FROM input_0\n")
        (p / "nodes" / "t100.yml").write_text("kind: transform\nname: t100\ninputs: [{ref: transform.t099}]\n"
                                              "transform: SELECT id, nope( FROM input_0\n")
    ra, pid_a, reads_a = parse_logged(a, "", tmp_path)
    rb, pid_b, reads_b = parse_logged(b, "1", tmp_path)
    assert ra.exit_code == rb.exit_code == 2 and ra.stderr == rb.stderr
    assert "nodes/t100.yml" in ra.stderr and "does not parse" in ra.stderr
    assert sorted(r for _, r in reads_a) == sorted(r for _, r in reads_b) == ["nodes/t007.yml", "nodes/t100.yml"]
    if len(os.sched_getaffinity(0)) >= 2:
        assert pid_a not in {pid for pid, _ in reads_a}
    (a / "nodes" / "t100.yml").write_text((b / "nodes" / "t007.yml").read_text().replace("t007", "t100")
                                          .replace("t006", "t099"))
    (b / "nodes" / "t100.yml").write_bytes((a / "nodes" / "t100.yml").read_bytes())
    ra, _, _ = parse_logged(a, "", tmp_path)
    rb, _, _ = parse_logged(b, "1", tmp_path)
    assert ra.exit_code == rb.exit_code == 0, ra.output + rb.output
    assert _manifest(a) == _manifest(b)


def test_a_reader_forked_early_reads_the_jobs_it_is_given_later(tmp_path):
    data = map_forked_in_a_process(tmp_path, "", "reader")
    out, parent = data["out"], data["parent"]
    assert [v for v, _ in out] == [0, 1, 4] and data["meanwhile"] == [parent] and not data["children_left"]
    if len(os.sched_getaffinity(0)) >= 2:  # the worker got ready (warm) and read all three
        assert data["warmed_in"] == [out[0][1]] and out[0][1] != parent
        assert len({pid for _, pid in out}) == 1


def test_a_reader_with_no_jobs_leaves_and_a_failed_one_is_read_in_the_parent(tmp_path):
    none = map_forked_in_a_process(tmp_path, "", "reader-none")
    assert none["out"] == [] and not none["children_left"]
    failed = map_forked_in_a_process(tmp_path, "", "reader-fail")
    assert [v for v, _ in failed["out"]] == [0, 1, 4] and not failed["children_left"]
    assert [pid for _, pid in failed["out"]] == [failed["parent"]] * 3


def test_a_reader_whose_worker_died_before_taking_its_jobs_reads_them_in_the_parent(tmp_path):
    data = map_forked_in_a_process(tmp_path, "", "reader-warm-fails")
    assert [v for v, _ in data["out"]] == [0, 1, 4] and data["meanwhile"] == [data["parent"]]
    assert not data["children_left"]
