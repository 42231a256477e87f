"""Files a node's build reads besides its own node file (a Python node's code and the project
modules it imports): their content hashes enter the node's hash on every parse (by stat, so
unchanged files are not re-read), and their import closure is kept up to date."""
from __future__ import annotations

import os
from pathlib import Path

from seekrun.errors import Diagnostic
from seekrun.hashing import FileHashCache, hash_parts
from seekrun.parser.cache import ParseCache
from seekrun.project import Project


def live_files(project: Project, records: dict[str, dict], errors, cache: FileHashCache,
                parse_cache: ParseCache) -> dict[str, str]:
    """Content hashes of files a node's build reads besides its YAML (e.g. a Python node's
    source and the project modules it imports), re-checked on every parse by stat, so editing
    them reruns the node.  When any of them changed since the import closure was worked out,
    it is worked out again: an edited module may import a module nothing imported before."""
    out: dict[str, str] = {}
    appeared: dict[str, bool] = {}  # watched paths, looked at once per parse
    for nid, rec in records.items():
        files = rec.get("live_files")
        if not files:
            continue
        hashes, missing = _hash_live(project, files, cache)
        code = files[0]
        if (code.endswith(".py") and rec.get("live_hashes") is not None and (project.root / code).is_file()
                and (missing or rec["live_hashes"] != hashes
                     or any(_exists(project.root, w, appeared) for w in rec.get("live_watch") or ()))):
            from seekrun.parser.imports import local_closure

            closure, rec["live_watch"] = local_closure(project.root, code)
            parse_cache.touch(rec["file"])
            if closure != files:
                files = rec["live_files"] = closure
                hashes, missing = _hash_live(project, files, cache)
        if missing:
            errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: file '{missing[0]}' not found"))
            continue
        if rec.get("live_hashes") != hashes:
            rec["live_hashes"] = hashes  # the closure above was worked out from these contents
            parse_cache.touch(rec["file"])
        out[nid] = hash_parts(*(part for relf in files for part in (relf, hashes[relf])))
    return out


def _exists(root: Path, rel: str, seen: dict[str, bool]) -> bool:
    found = seen.get(rel)
    if found is None:
        found = seen[rel] = os.path.exists(root / rel)
    return found


def _hash_live(project: Project, files: list[str], cache: FileHashCache) -> tuple[dict[str, str], list[str]]:
    hashes: dict[str, str] = {}
    missing: list[str] = []
    for relf in files:
        path = project.root / relf
        if path.is_file():
            hashes[relf] = cache.hash(path)
        else:
            missing.append(relf)
    return hashes, missing
