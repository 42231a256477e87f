"""Task-node bugs found by the property test (tests/test_property_tasks.py) or while writing
it, each as its smallest reproduction."""
from __future__ import annotations

from conftest import cli, write_project

SELF_READER = """\
kind: task
name: merge
command: "mkdir -p out; cat data/raw/*.txt > out/a.csv; cat out/*.csv > out/all.csv.tmp; mv out/all.csv.tmp out/all.csv"
files: [data/raw/*.txt, out/*.csv]
outputs: [out/a.csv, out/all.csv]
"""


def test_a_task_whose_files_match_its_own_outputs_is_refused_before_its_first_run_too(tmp_path):
    # It used to run once (its outputs did not exist yet, so its glob matched nothing it
    # writes), and then every later run was refused at parse: whether the project was valid
    # depended on what was on disk.  Now it is refused from the first run, naming the pattern.
    p = write_project(tmp_path / "p", {"nodes/t.yml": SELF_READER, "data/raw/p0.txt": "1,2,ab\n"})
    first = cli("run", cwd=p)
    assert first.exit_code == 2, first.output
    assert "task.merge: cannot write 'out/a.csv': task.merge reads it (files: out/*.csv)" in first.output
    assert "task.merge: cannot write 'out/all.csv': task.merge reads it (files: out/*.csv)" in first.output
    assert not (p / "out").exists()  # nothing ran
    # the same project once the files exist (written by hand): the same answer
    (p / "out").mkdir()
    (p / "out" / "a.csv").write_text("1,2,ab\n")
    again = cli("run", cwd=p)
    assert again.exit_code == 2 and "task.merge: cannot write 'out/a.csv': task.merge reads it" in again.output
