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


def test_a_task_whose_files_glob_matches_its_own_outputs_never_reads_them(tmp_path):
    # It used to run once (its outputs did not exist yet, so its glob matched nothing it
    # writes), and then every later run was refused at parse: whether the project was valid
    # depended on what was on disk.  A task's own outputs are never among what it reads.
    p = write_project(tmp_path / "p", {"nodes/t.yml": SELF_READER, "data/raw/p0.txt": "1,2,ab\n"})
    first = cli("run", cwd=p)
    assert first.exit_code == 0, first.output
    again = cli("run", cwd=p)
    assert again.exit_code == 0 and "Nothing to do" in again.stdout, again.output
    (p / "data" / "raw" / "p1.txt").write_text("3,4,cd\n")
    third = cli("run", cwd=p)
    assert third.exit_code == 0 and "task.merge" in third.stdout, third.output


def test_a_task_listing_its_own_output_by_name_among_its_files_is_refused(tmp_path):
    p = write_project(tmp_path / "p", {"nodes/t.yml": SELF_READER.replace("out/*.csv]", "out/all.csv]"),
                                       "data/raw/p0.txt": "1,2,ab\n"})
    res = cli("run", cwd=p)
    assert res.exit_code == 2, res.output
    assert "task.merge: cannot write 'out/all.csv': task.merge reads it (files: out/all.csv)" in res.output
    assert not (p / "out").exists()  # nothing ran
