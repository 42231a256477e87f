"""Finding and calling a child DAG (seekrun/kinds/dag.py): where it is, where its state goes,
the command that runs it, and what it gave back.

- A child is a workflow file (a YAML file with a top-level ``steps:``; ``file.yaml#name`` picks
  a document of a multi-document file), or a folder holding a seekrun project.  ``run: ci/build``
  finds ``ci/build.yaml`` (or ``.yml``) too, as Dagu does.
- Its state is ``<target>/dags/<name>-<hash>/``, the hash of (child path, document, params):
  a child called with other params keeps another state.
- It runs as ``seekrun run CHILD --target-dir STATE --param K=V ...`` in its own process (so
  the parent's timeout, Ctrl-C and retry apply to it as to any task), one level deeper:
  ``SEEKRUN_DAG_DEPTH``; past ``SEEKRUN_MAX_DAG_DEPTH`` (default 16) it fails at once.
- It leaves ``STATE/outputs.json``: ``{name, params, status, outputs, counts}``.
"""
from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from seekrun.hashing import hash_obj

MAX_DEPTH = 16
DEPTH_VAR = "SEEKRUN_DAG_DEPTH"
RESULT_FILE = "outputs.json"


def max_depth() -> int:
    try:
        return max(1, int(os.environ.get("SEEKRUN_MAX_DAG_DEPTH", MAX_DEPTH)))
    except ValueError:
        return MAX_DEPTH


def locate(root, run: str) -> tuple[dict | None, str | None]:
    """({path (project-relative or absolute), dag, type}, None) or (None, why not)."""
    from seekrun.project import SEEKNAL_MARKER, SEEKRUN_MARKER

    text, _, dag = run.strip().partition("#")
    root = Path(root)
    base = Path(text) if os.path.isabs(text) else root / text
    candidates = [base] if base.suffix in (".yaml", ".yml") else [base, base.with_name(base.name + ".yaml"),
                                                                   base.with_name(base.name + ".yml")]
    for path in candidates:
        if path.is_dir():
            if not ((path / SEEKRUN_MARKER).exists() or (path / SEEKNAL_MARKER).exists()):
                return None, (f"child DAG '{run}' is a folder without {SEEKRUN_MARKER}: run a workflow file or "
                              "a seekrun project folder")
            return {"path": _rel(root, path), "dag": dag or None, "type": "project"}, None
        if path.is_file():
            return {"path": _rel(root, path), "dag": dag or None, "type": "workflow"}, None
    return None, (f"child DAG '{run}' not found (looked for {', '.join(_rel(root, c) for c in candidates)}): "
                  "fix the path (relative to the project folder; in a workflow file, to that file's folder)")


def _rel(root: Path, path: Path) -> str:
    try:
        return os.path.relpath(path, root).replace(os.sep, "/")
    except ValueError:
        return str(path)


def state_dir(target: Path, child: dict, params: dict[str, str]) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(child["path"]).stem + (f"-{child['dag']}" if child["dag"] else ""))
    key = hash_obj([child["path"], child["dag"], sorted(params.items())])[:12]
    return Path(target) / "dags" / f"{stem[:60]}-{key}"


def command(root: Path, child: dict, params: dict[str, str], target: Path) -> list[str]:
    path = child["path"] if os.path.isabs(child["path"]) else str(Path(root) / child["path"])
    argv = [sys.executable, "-m", "seekrun", "run", path, "--target-dir", str(target), "--wait"]
    if child["dag"]:
        argv += ["--dag", child["dag"]]
    for k, v in params.items():
        argv += ["--param", f"{k}={v}"]
    return argv


def environment(env: dict) -> dict:
    depth = int(env.get(DEPTH_VAR) or 0) + 1
    return {**env, DEPTH_VAR: str(depth)}


def too_deep() -> str | None:
    depth = int(os.environ.get(DEPTH_VAR) or 0)
    if depth > max_depth():
        return (f"child DAGs nest {depth} deep, past the limit of {max_depth()} (a DAG that runs itself "
                "without a precondition that ends it?): stop the recursion, or set SEEKRUN_MAX_DAG_DEPTH")
    return None


def read_result(target: Path) -> dict | None:
    try:
        data = json.loads((Path(target) / RESULT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def evaluate(params: dict[str, str], env: dict, cwd) -> dict[str, str]:
    """Values with ``$(...)`` or backticks (Dagu's ``OFFSET=$((OFFSET + BATCH_SIZE))``) are
    evaluated by the shell, with the run's params and env in its environment."""
    import subprocess

    out = {}
    for k, v in params.items():
        if "$(" in v or "`" in v:
            proc = subprocess.run(["/bin/sh", "-c", f'printf "%s" "{v}"'], env=env, cwd=cwd, capture_output=True,
                                  text=True, timeout=60)
            if proc.returncode != 0:
                raise ValueError(f"param {k}={v}: the shell could not evaluate it: {proc.stderr.strip()[:200]}")
            v = proc.stdout
        out[k] = v
    return out
