"""PEP 723 ``# /// script`` headers on Python node files.

seekrun runs the file with its own interpreter and never installs anything.  Each listed
dependency that this interpreter cannot import is named in one warning per file (once per
process); importability is looked up without importing anything (installed distributions'
metadata, then importlib.util.find_spec on the import name).
"""
from __future__ import annotations

import re
import threading

_REGEX = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
# distributions whose import name differs from their name
_IMPORT_NAMES = {"scikit-learn": "sklearn", "pyyaml": "yaml", "beautifulsoup4": "bs4", "pillow": "PIL",
                 "python-dateutil": "dateutil", "opencv-python": "cv2", "opencv-python-headless": "cv2",
                 "attrs": "attr", "protobuf": "google.protobuf", "psycopg2-binary": "psycopg2",
                 "duckdb-engine": "duckdb_engine", "msgpack-python": "msgpack"}
# seekrun runs the file itself (and provides seeknal.pipeline): never reported
_PROVIDED = {"seeknal", "seekrun"}
_warned: set[tuple[str, tuple[str, ...]]] = set()
_lock = threading.Lock()


def dependencies(text: str) -> list[str] | None:
    """The header's dependency names (None: no header, or one that does not parse)."""
    import tomllib

    found = [m for m in _REGEX.finditer(text) if m.group("type") == "script"]
    if len(found) != 1:
        return None
    content = "".join(line[2:] if line.startswith("# ") else line[1:]
                      for line in found[0].group("content").splitlines(keepends=True))
    try:
        deps = tomllib.loads(content).get("dependencies") or []
    except (tomllib.TOMLDecodeError, AttributeError):
        return None
    names = []
    for dep in deps if isinstance(deps, list) else []:
        m = _NAME.match(dep) if isinstance(dep, str) else None
        if m:
            names.append(m.group(1))
    return names


def importable(dist: str) -> bool:
    import importlib.metadata
    import importlib.util

    norm = re.sub(r"[-_.]+", "-", dist).lower()
    if norm in _PROVIDED:
        return True
    try:
        importlib.metadata.distribution(norm)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    name = _IMPORT_NAMES.get(norm, norm.replace("-", "_"))
    try:
        return importlib.util.find_spec(name.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def missing(text: str) -> tuple[str, ...]:
    """The header's dependencies this interpreter cannot import (nothing is imported to tell)."""
    if "# /// script" not in text:
        return ()
    return tuple(d for d in dict.fromkeys(dependencies(text) or []) if not importable(d))


def note(missing_deps: tuple[str, ...]) -> str:
    import sys

    names = ", ".join(missing_deps)
    one = len(missing_deps) == 1
    return (f"its '# /// script' header lists {names}, which {'is' if one else 'are'} not installed for the "
            f"Python running seekrun ({sys.executable}); seekrun runs the file with it and installs nothing: "
            f"pip install {' '.join(missing_deps)} there if the node needs {'it' if one else 'them'}")


def warn_once(rel: str, missing_deps: tuple[str, ...]) -> str | None:
    """The one warning for this file's header, the first time it is asked for in this process."""
    if not missing_deps:
        return None
    with _lock:
        if (rel, missing_deps) in _warned:
            return None
        _warned.add((rel, missing_deps))
    return f"{rel}: {note(missing_deps)}"
