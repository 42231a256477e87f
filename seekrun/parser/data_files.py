"""The files nodes read, resolved and hashed on every parse (stat first, then content, through
the file-hash cache): a file source's data files, a task's ``files`` (globs expanded now, so a
new matching file reruns it).  Files a task writes during the run (``fed_files``) are left to
that task's output hash."""
from __future__ import annotations

import glob as globmod
import os
import stat
from pathlib import Path

from seekrun.errors import Diagnostic
from seekrun.hashing import FileHashCache, hash_parts
from seekrun.project import Project, inside, regular_file_problem

FILE_FORMATS = {"csv", "parquet", "json", "jsonl", "excel", "sqlite"}


def check_sources(project: Project, records: dict[str, dict], errors, warnings,
                   cache: FileHashCache) -> dict[str, tuple[list[str], str | None]]:
    """Resolve each file source's data files (inside the project only) and hash them."""
    root = str(project.root)
    out: dict[str, tuple[list[str], str | None]] = {}
    for rec in records.values():
        if rec.get("task"):
            _task_files(project, rec, out, errors, cache)
            continue
        if rec["kind"] != "source" or rec.get("python") or rec.get("source_format") not in FILE_FORMATS \
                or rec.get("not_executable") \
                or not isinstance(rec.get("table"), str):
            continue
        nid, table, line = rec["id"], rec["table"], rec["table_line"]
        fed = set(rec.get("fed_files") or ())
        pattern = table if os.path.isabs(table) else os.path.join(root, table)
        if any(ch in table for ch in "*?["):
            matches = sorted(globmod.glob(pattern, recursive=True))
        else:
            matches = [pattern] if os.path.exists(pattern) else []
        candidates = matches or [os.path.normpath(pattern)]
        if any(not inside(root, m) for m in candidates):
            errors.append(Diagnostic(rec["file"], line,
                f"{nid}: table path '{table}' resolves outside the project directory: "
                "keep data files inside the project"))
            continue
        files = [m for m in matches if not os.path.isdir(m)
                 and os.path.relpath(m, root).replace(os.sep, "/") not in fed]
        if not files and fed:  # every file it reads is written by a task during the run
            out[nid] = ([], None)
            continue
        if not files:
            why = "is a folder" if matches else "not found (an error at run time)"
            if matches:
                errors.append(Diagnostic(rec["file"], line, f"{nid}: source data path '{table}' {why}: "
                                                            "give a file (or a glob such as data/*.csv)"))
                continue
            warnings.append(Diagnostic(rec["file"], line, f"{nid}: source data file '{table}' {why}", "warning"))
            out[nid] = ([], None)
            continue
        parts: list[str | None] = []
        rels = []
        problem = None
        for m in files:
            relm = os.path.relpath(m, root).replace(os.sep, "/")
            rels.append(relm)
            try:  # (inside the project: checked above)
                st = os.stat(m)
                if not stat.S_ISREG(st.st_mode):
                    problem = regular_file_problem(m, project.root)
                else:
                    parts += [relm, cache.hash(Path(os.path.normpath(m)), st)]
            except OSError as exc:
                problem = f"cannot be read ({exc.strerror or exc})"
            if problem is not None:
                errors.append(Diagnostic(rec["file"], line, f"{nid}: source data file '{relm}' {problem}: "
                                                            "make it a plain, readable file"))
                break
        if problem is None:
            out[nid] = (rels, hash_parts(*parts))
    return out


def _task_files(project: Project, rec: dict, out: dict, errors, cache: FileHashCache) -> None:
    """A task's ``files``: every glob expanded now (a new matching file reruns it), each file
    hashed (stat first); files another task writes are left to that task's output hash, and a
    task's own outputs are never among what it reads (a glob over the folder it writes to)."""
    root = str(project.root)
    fed = set(rec.get("fed_files") or ()) | set(rec.get("output_files") or ())  # never its own outputs
    parts: list[tuple[str, str]] = []
    rels: list[str] = []
    line = (rec.get("task_lines") or {}).get("files") or rec["line"]
    for pattern in rec["task"]["files"]:
        full = pattern if os.path.isabs(pattern) else os.path.join(root, pattern)
        glob = any(ch in pattern for ch in "*?[")
        matches = sorted(globmod.glob(full, recursive=True)) if glob else [os.path.normpath(full)]
        for m in matches:
            relm = os.path.relpath(m, root).replace(os.sep, "/")
            if not inside(root, m):
                errors.append(Diagnostic(rec["file"], line, f"{rec['id']}: file '{pattern}' is outside the project "
                                                            "directory: keep what tasks read inside the project"))
                return
            if relm in fed or relm in rels or (glob and os.path.isdir(m)):
                continue
            try:
                st = os.stat(m)
            except OSError:
                errors.append(Diagnostic(rec["file"], line, f"{rec['id']}: file '{pattern}' not found: create it, "
                                                            "fix the path, or use a glob"))
                return
            if not stat.S_ISREG(st.st_mode):
                errors.append(Diagnostic(rec["file"], line, f"{rec['id']}: file '{relm}' is not a plain file: "
                                                            "list files (or globs), not folders"))
                return
            rels.append(relm)
            parts.append((relm, cache.hash(Path(os.path.normpath(m)), st)))
    parts.sort()  # what it reads, whatever order files: lists it in
    rels = [r for r, _ in parts]
    out[rec["id"]] = (rels, hash_parts(*(x for pair in parts for x in pair)) if rels else None)
