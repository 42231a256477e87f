"""Where user Python code imports from while it runs: the project's folders go at the front of
sys.path, and the project modules it imported are forgotten afterwards (so an edited helper is
read again in a long-lived process, and two projects' same-named helpers never mix).  Both
are safe with several workers running user code at once."""
from __future__ import annotations

import os
import sys
import threading
from importlib.machinery import PathFinder, SourceFileLoader
from pathlib import Path

_path_lock = threading.Lock()
_path_users: dict[str, int] = {}


class project_path:
    """The project's folders at the front of sys.path while a node imports or runs (imports in
    the function body work), removed when no running node needs them, so another project's
    same-named packages never shadow them (a regular package anywhere on sys.path beats a
    namespace package found earlier).  Reference-counted: safe with parallel workers."""

    def __init__(self, root: Path, file: Path):
        self.paths = list(dict.fromkeys([str(Path(root).resolve()), str(Path(file).parent.resolve())]))

    def __enter__(self):
        with _path_lock:
            for p in reversed(self.paths):
                if _path_users.get(p, 0) == 0 and p in sys.path:
                    sys.path.remove(p)
                if p not in sys.path:
                    sys.path.insert(0, p)
                _path_users[p] = _path_users.get(p, 0) + 1
        return self

    def __exit__(self, *exc):
        with _path_lock:
            for p in self.paths:
                _path_users[p] -= 1
                if _path_users[p] == 0:
                    del _path_users[p]
                    while p in sys.path:
                        sys.path.remove(p)


_code_lock = threading.Lock()
_code_users = {"count": 0, "before": set(), "ever": False, "roots": {}}


def _base(root) -> str:
    """A project's real path, as a prefix of the real paths of its files."""
    return os.path.realpath(root).rstrip(os.sep) + os.sep


def _installed(rel: str) -> bool:
    """A file (its path in the project) of an installed library: a virtualenv inside the
    project is a library too."""
    return f"site-packages{os.sep}" in rel or f"dist-packages{os.sep}" in rel


class _FromSource:
    """A finder, first on sys.meta_path while user code runs: a project module is compiled
    from its source as it is now, never from a __pycache__ file.  Python trusts a cached
    file whose source has the same size and mtime second, so a same-size edit within a
    second (a script, a test, a checkout) would run the old code under the new hash; and
    nothing is written into the project's folders."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        spec = PathFinder.find_spec(name, path, target)
        if spec is None or type(spec.loader) is not SourceFileLoader or not spec.origin:
            return None
        real = os.path.realpath(spec.origin)
        base = next((b for b in tuple(_code_users["roots"]) if real.startswith(b)), None)
        if base is None or _installed(os.path.relpath(real, base)):
            return None
        spec.loader = _SourceLoader(spec.loader.name, spec.loader.path)
        return spec


class _SourceLoader(SourceFileLoader):
    def get_code(self, fullname):
        return self.source_to_code(self.get_data(self.path), self.path)


def any_ran() -> bool:
    """Whether user code has been imported or run in this process."""
    return _code_users["ever"]


class project_code:
    """While user code imports or runs on any worker.  When the last one leaves, the project
    modules imported meanwhile are forgotten (helpers imported at call time are re-read next
    time); never earlier, since deleting a package from sys.modules while another worker is
    importing from it breaks that import (KeyError)."""

    def __init__(self, root: Path):
        self.root = root

    def __enter__(self):
        base = _base(self.root)
        with _code_lock:
            if _code_users["count"] == 0:
                _code_users["before"] = set(sys.modules)
                from seekrun.engines import seeknal_shim

                seeknal_shim.install()  # `import seeknal` works when Seeknal is not installed
                sys.meta_path.insert(0, _FromSource)
            _code_users["count"] += 1
            _code_users["roots"][base] = _code_users["roots"].get(base, 0) + 1
            _code_users["ever"] = True
        return self

    def __exit__(self, *exc):
        base = _base(self.root)
        with _code_lock:
            _code_users["count"] -= 1
            _code_users["roots"][base] -= 1
            if not _code_users["roots"][base]:
                del _code_users["roots"][base]
            if _code_users["count"] == 0:
                _forget_project_modules(_code_users["before"], self.root)
                from seekrun.engines import seeknal_shim

                seeknal_shim.uninstall()
                while _FromSource in sys.meta_path:
                    sys.meta_path.remove(_FromSource)


def _forget_project_modules(before: set[str], root: Path) -> None:
    """Helper modules the user's file imported from the project are not kept in sys.modules:
    the next import (e.g. after an edit, in a long-lived process) reads them again, and two
    projects' same-named helpers never mix.  The importing module keeps its references."""
    base = _base(root)
    for mod_name in [m for m in sys.modules if m not in before and not m.startswith("_seekrun_user_")]:
        file = getattr(sys.modules.get(mod_name), "__file__", None)
        paths = getattr(sys.modules.get(mod_name), "__path__", None) or []
        where = [file] if file else list(paths)
        if where and all(os.path.realpath(w).startswith(base) for w in where):
            del sys.modules[mod_name]


_SEEKRUN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def user_frames(exc: BaseException, root: Path) -> list[tuple[str, int, str, str]]:
    """The traceback's frames in the user's own files, (project-relative path, line, function,
    source line), outermost first: not seekrun's, not installed libraries' (a virtualenv inside
    the project is a library too)."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        frames.append(traceback.FrameSummary(exc.filename, exc.lineno, None, line=(exc.text or "").strip()))
    base = _base(root)
    out = []
    for fr in frames:
        real = os.path.realpath(fr.filename)
        if real.startswith(_SEEKRUN_DIR + os.sep) or not real.startswith(base):
            continue
        rel = os.path.relpath(real, base)
        if _installed(rel):
            continue
        rel = rel.replace(os.sep, "/")
        out.append((rel, fr.lineno or 0, fr.name or "", (fr.line or "").strip()))
    return out


def format_user_traceback(exc: BaseException, root: Path) -> str:
    """A traceback of the user's frames only (for SEEKRUN_DEBUG=1), Python's layout."""
    lines = ["Traceback (your code; seekrun's frames left out):"]
    for rel, line, func, text in user_frames(exc, root):
        lines.append(f'  File "{rel}", line {line}' + (f", in {func}" if func else ""))
        if text:
            lines.append(f"    {text}")
    return "\n".join(lines)
