"""Which project files a Python node file imports (read from syntax trees, never imported)."""
from __future__ import annotations

import ast
import os
from pathlib import Path

from seekrun.kinds.base import inside


def local_imports(tree: ast.AST, path: Path, root: Path, watch: set[str] | None = None) -> list[str]:
    """Project files a node file imports, directly or through each other (read from syntax
    trees, never imported): their contents enter the node's hash, so editing a helper module
    reruns the node.  Modules outside the project (installed packages) are not followed.
    ``watch`` gets the project paths an import looked for and did not find: if one appears
    later, the import will find it, so the list must be worked out again."""
    root = Path(root).resolve()
    found: dict[str, None] = {}
    queue = [(tree, Path(path).resolve())]
    seen = {Path(path).resolve()}
    while queue:
        node_tree, file = queue.pop()
        for mod_path in _imported_files(node_tree, file, root, watch):
            if mod_path in seen:
                continue
            seen.add(mod_path)
            found[mod_path.relative_to(root).as_posix()] = None
            try:
                queue.append((ast.parse(mod_path.read_bytes(), filename=str(mod_path)), mod_path))
            except (SyntaxError, ValueError, OSError):
                pass  # still hashed; the import itself will report the problem at run time
    return sorted(found)


def local_closure(root: Path, code_rel: str) -> tuple[list[str], list[str]]:
    """[code_rel, *the project files it imports, directly or through each other], and the
    project paths to watch (see local_imports)."""
    path = Path(root) / code_rel
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
        return [code_rel], []  # still hashed; running the node will report the problem
    watch: set[str] = set()
    return [code_rel, *local_imports(tree, path, root, watch)], sorted(watch)


def _imported_files(tree: ast.AST, file: Path, root: Path, watch: set[str] | None = None) -> list[Path]:
    out = []
    base_text = str(root) + os.sep
    for stmt in ast.walk(tree):
        if isinstance(stmt, ast.Import):
            names = [(a.name, 0) for a in stmt.names]
        elif isinstance(stmt, ast.ImportFrom):
            base = stmt.module or ""
            names = [(base, stmt.level)] + [(f"{base}.{a.name}" if base else a.name, stmt.level) for a in stmt.names]
        else:
            continue
        for dotted, level in names:
            if not dotted:
                continue
            if level > 1 and level - 2 >= len(file.parent.parents):
                continue  # above the top folder: Python refuses it at run time
            bases = [file.parent.parents[level - 2] if level > 1 else file.parent] if level else [file.parent, root]
            parts = dotted.split(".")
            for base in bases:
                for cand in (base.joinpath(*parts).with_suffix(".py"), base.joinpath(*parts, "__init__.py")):
                    if cand.is_file() and inside(root, cand):
                        out.append(cand.resolve())
                    elif watch is not None and str(cand).startswith(base_text) and not cand.exists():
                        watch.add(cand.relative_to(root).as_posix())
                # a package's __init__ along the way runs too
                for i in range(1, len(parts)):
                    init = base.joinpath(*parts[:i], "__init__.py")
                    if init.is_file() and inside(root, init):
                        out.append(init.resolve())
    return out
