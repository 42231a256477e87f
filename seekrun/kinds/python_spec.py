"""A Python node's spec, at parse time: ``python: path/to/file.py:function`` checked (inside the
project, exists, parses, defines the function) and its file listed in ``rec["live_files"]``,
so its content hash enters the node's hash on every parse.  User code is never imported here;
running it is seekrun/engines/python_node.py's.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

from seekrun.kinds.base import inside


# ---- the spec: "path/to/file.py:function" ------------------------------------------------
def split_spec(spec: Any) -> tuple[str, str]:
    """(file, function) from "path/to/file.py:function"; ValueError with a user message."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(f"python must be 'path/to/file.py:function', not {spec!r}")
    file, _, func = spec.rpartition(":")
    file, func = file.strip(), func.strip()
    if not file.endswith(".py"):
        raise ValueError(f"python file '{file}' must be a .py file ('path/to/file.py:function')")
    if not func.isidentifier():
        raise ValueError(f"'{func}' is not a Python function name ('path/to/file.py:function')")
    return file, func


def resolve_file(file: str, root: Path) -> tuple[Path, str]:
    """The file's path and its project-relative name; ValueError if it is outside the project."""
    path = Path(file) if os.path.isabs(file) else Path(root) / file
    if not inside(root, path):
        raise ValueError(f"python file '{file}' is outside the project directory: keep it inside the project")
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root)).replace(os.sep, "/")
    return path, rel


def top_level_names(tree: ast.Module) -> set[str] | None:
    """Names bound at the top of a module, also inside if/try/with blocks (None: it has
    `import *`, so anything may be there)."""
    names: set[str] = set()

    def visit(stmts) -> bool:
        for stmt in stmts:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(stmt.name)
                continue
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                for alias in stmt.names:
                    if alias.name == "*":
                        return False
                    names.add(alias.asname or alias.name.split(".")[0])
                continue
            targets = []
            if isinstance(stmt, ast.Assign):
                targets = stmt.targets
            elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
                targets = [stmt.target]
            elif isinstance(stmt, (ast.For, ast.AsyncFor)):
                targets = [stmt.target]
            elif isinstance(stmt, (ast.With, ast.AsyncWith)):
                targets = [i.optional_vars for i in stmt.items if i.optional_vars is not None]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            for attr in ("body", "orelse", "finalbody"):
                if not visit(getattr(stmt, attr, None) or []):
                    return False
            for handler in getattr(stmt, "handlers", None) or []:
                if not visit(handler.body):
                    return False
        return True

    return names if visit(tree.body) else None


def prepare(rec: dict, built: dict, pc) -> None:
    """Parse time, for a node with ``python:`` (YAML): check the file and make it a live file."""
    if rec.get("live_files"):  # decorator nodes: python_nodes.py already read the file
        return
    try:
        file, func = split_spec(rec.get("python"))
        path, rel = resolve_file(file, pc.root)
    except ValueError as exc:
        pc.error(("python",), str(exc))
        return
    if not path.is_file():
        pc.error(("python",), f"python file '{file}' not found (paths are relative to the project root)")
        return
    try:
        tree = ast.parse(path.read_bytes(), filename=rel)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        pc.error(("python",), f"python file '{rel}'{f' line {line}' if line else ''} does not parse: "
                              f"{getattr(exc, 'msg', None) or exc}")
        return
    names = top_level_names(tree)
    if names is not None and func not in names:
        pc.error(("python",), f"python file '{rel}' has no function '{func}'")
        return
    rec["python"] = f"{rel}:{func}"
    from seekrun.parser.imports import local_imports

    watch: set[str] = set()
    rec["live_files"] = [rel, *local_imports(tree, path, pc.root, watch)]
    rec["live_watch"] = sorted(watch)
