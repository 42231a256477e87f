"""``import seeknal`` for Python nodes written for Seeknal, when Seeknal is not installed.

While user code imports or runs (seekrun/engines/user_code.py: project_code), a finder at the
front of sys.meta_path answers for the top-level name ``seeknal`` only, and only when no real
Seeknal package is installed: then ``seeknal`` is the small package beside this file, whose
``seeknal.pipeline`` holds seekrun's decorators and config objects under Seeknal's names.
A real installed Seeknal is always used instead (its decorators work with seekrun's context),
and the project's own ``seeknal/`` folder (a namespace package to Python) never counts as one.
When the last user code leaves, the shim's modules are dropped from sys.modules, so nothing
else in the process ever sees them.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys

SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeknal")


def real_seeknal_installed() -> bool:
    """Whether sys.path has a real Seeknal (a package or module, not a namespace folder)."""
    real = importlib.machinery.PathFinder.find_spec("seeknal", None)
    return real is not None and real.loader is not None and real.origin not in (None, "namespace")


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "seeknal" or real_seeknal_installed():
            return None  # (a real Seeknal: the normal import finds it)
        return importlib.util.spec_from_file_location(
            "seeknal", os.path.join(SHIM_DIR, "__init__.py"), submodule_search_locations=[SHIM_DIR])


_finder = _Finder()


def install() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


def uninstall() -> None:
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    prefix = SHIM_DIR + os.sep
    for name in [m for m in sys.modules if m == "seeknal" or m.startswith("seeknal.")]:
        file = getattr(sys.modules.get(name), "__file__", None) or ""
        if file.startswith(prefix):
            del sys.modules[name]
