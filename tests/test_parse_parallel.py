"""A cold parse of many files runs on several processes; the result must not depend on it."""
from __future__ import annotations

import json

from conftest import cli_proc, write_project


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
    ra = cli_proc("parse", "-p", str(a), env={"SEEKRUN_PARSE_WORKERS": "2"})
    rb = cli_proc("parse", "-p", str(b), env={"SEEKRUN_PARSE_WORKERS": "1"})
    assert ra.exit_code == 0 and rb.exit_code == 0, ra.output + rb.output
    assert "241 nodes" in ra.stdout
    assert _manifest(a) == _manifest(b)
    assert (a / "target" / "manifest.json").read_bytes().split(b'"generated_at"')[0] == \
        (b / "target" / "manifest.json").read_bytes().split(b'"generated_at"')[0]


def test_parallel_parse_reports_every_error_like_a_sequential_one(tmp_path):
    a, b = _project(tmp_path / "a", broken=True), _project(tmp_path / "b", broken=True)
    ra = cli_proc("parse", "-p", str(a), env={"SEEKRUN_PARSE_WORKERS": "2"})
    rb = cli_proc("parse", "-p", str(b), env={"SEEKRUN_PARSE_WORKERS": "1"})
    assert ra.exit_code == rb.exit_code == 2
    assert ra.stderr == rb.stderr
    assert "nodes/t005.yml:3: transform.t005: ref 'transform.nope' does not exist" in ra.stderr
    assert "nodes/t230.yml:4: YAML syntax error" in ra.stderr
    assert "Traceback" not in ra.output
    assert not (a / "target" / "manifest.json").exists()
