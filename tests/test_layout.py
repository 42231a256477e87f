"""The layout says what the code does: kinds under seekrun/kinds/ (spec and build), engines
under seekrun/engines/, and the parser never depends on an engine."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import seekrun
from seekrun.parser.kinds import KINDS

PKG = Path(seekrun.__file__).parent
TESTS = Path(__file__).parent


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_every_kind_is_a_module_under_kinds():
    missing = sorted(k for k in KINDS if not (PKG / "kinds" / f"{k}.py").is_file())
    assert missing == []
    assert (PKG / "engines" / "duckdb.py").is_file()


def test_nothing_under_parser_imports_an_engine():
    offenders = {p.name: sorted(m for m in _imports(p) if m.startswith("seekrun.engines"))
                 for p in sorted((PKG / "parser").glob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("name", ["seeknal_compat", "sample_project"])  # every Seeknal kind; tasks
def test_parsing_a_project_with_every_kind_loads_no_engine(tmp_path, name):
    project = tmp_path / "p"
    shutil.copytree(TESTS / name if name != "sample_project" else TESTS.parent / name, project,
                    ignore=shutil.ignore_patterns("target"))
    code = ("import sys\nfrom seekrun.cli import app\n"
            "try:\n    app(['parse'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('seekrun.engines')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300)
    assert (project / "target" / "manifest.json").is_file(), out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
