"""What a node's build left behind, checked against what the state says it left.

A table carries the output hash it was built from (its comment, see the DuckDB engine); a
file a node writes (an exposure, a feature-store parquet) is recorded with its content hash
after each build; a folder (a partitioned write, see partitioned.py) with the hash of all
its files, so a partition file deleted, edited or added is noticed.  Before planning, each recorded node's outputs are compared with that
record: a missing one means "output missing", a different one "output changed" (a run killed
between its commit and its journal line, an older database put back, a file edited by hand).
Files are compared through the file-hash cache: stat first, content only when the stat moved.
"""
from __future__ import annotations

import os
from pathlib import Path

from seekrun.hashing import FileHashCache

MISSING, CHANGED = "missing", "changed"


def has_table(kind: str) -> bool:
    from seekrun.parser.kinds import TABLELESS_KINDS

    return kind not in TABLELESS_KINDS


def problem(node: dict, record: dict, tables: dict[str, str | None], root: Path,
            cache: FileHashCache) -> str | None:
    """Why a node's recorded outputs are not what is there now (MISSING, CHANGED), or None."""
    nid = node["id"]
    if has_table(node["kind"]):
        if nid not in tables:
            return MISSING
        if tables[nid] != record.get("output_hash"):
            return CHANGED
    files = node.get("output_files") or []
    if files:
        recorded = record.get("output_hashes")
        for rel in files:
            path = root / rel
            try:
                st = os.stat(path)
            except OSError:
                return MISSING
            if not isinstance(recorded, dict) or recorded.get(rel) is None:
                return CHANGED  # written by a seekrun that did not record it: write it again
            try:
                if _digest(path, st, cache) != recorded.get(rel):
                    return CHANGED
            except OSError:
                return MISSING
    return None


def _digest(path: Path, st: os.stat_result, cache: FileHashCache) -> str:
    """A written file's content hash; a folder (a partitioned write) hashes all its files."""
    import stat

    if stat.S_ISDIR(st.st_mode):
        from seekrun.partitioned import digest

        return digest(path, cache)
    return cache.hash(path, st)


def content_digest(path: Path) -> str:
    """The content hash of a finished temp file or folder (no cache: it was just written)."""
    from seekrun.partitioned import digest

    return digest(path)


def hashes_after_build(node: dict, root: Path, cache: FileHashCache) -> dict[str, str]:
    """The content hash of every file (or partitioned folder) a node has just written."""
    out = {}
    for rel in node.get("output_files") or []:
        path = root / rel
        try:
            out[rel] = _digest(path, os.stat(path), cache)
        except OSError:
            pass  # not written after all: the next run sees it missing
    return out


SIDECAR = ".seekrun-outputs"  # in each folder outside target/ that exposures write to


def sidecar_problem(root: Path, folder: str) -> str | None:
    """Why the sidecar path cannot be used (a folder or a FIFO in its place), or None."""
    try:
        mode = os.stat(root / folder / SIDECAR).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    import stat

    return None if stat.S_ISREG(mode) else "is not a plain file (seekrun keeps its list of written files there)"


def _sidecar(root: Path, folder: str) -> dict:
    from seekrun.fsutil import read_checked

    if sidecar_problem(root, folder) is not None:
        return {}  # refused before the run (overwrite_problems); never opened (a FIFO would block)
    data = read_checked(root / folder / SIDECAR)
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(k, str)} if isinstance(files, dict) else {}


def _by_folder(files) -> dict[str, list[str]]:
    """The files outside target/, by folder."""
    out: dict[str, list[str]] = {}
    for rel in files or ():
        if not rel.startswith("target/"):
            folder, _, name = rel.rpartition("/")
            out.setdefault(folder, []).append(name)
    return out


def mark_written(root: Path, files) -> None:
    """Before a node writes files outside target/: list them in their folder's sidecar file, so
    seekrun knows them as its own even when target/ (and its state) is deleted. Called under
    the scheduler's lock (one writer at a time)."""
    from seekrun.fsutil import write_checked

    for folder, names in _by_folder(files).items():
        listed = _sidecar(root, folder)
        if all(n in listed for n in names):
            continue
        listed.update({n: True for n in names})
        write_checked(root / folder / SIDECAR, {"files": listed})


def forget_written(root: Path, files) -> None:
    """A file seekrun deleted (its node was removed, or writes elsewhere now) leaves its sidecar."""
    from seekrun.fsutil import write_checked

    for folder, names in _by_folder(files).items():
        listed = _sidecar(root, folder)
        if any(n in listed for n in names):
            for n in names:
                listed.pop(n, None)
            try:
                write_checked(root / folder / SIDECAR, {"files": listed})
            except OSError:
                pass  # a stale entry only means seekrun may overwrite that name later


def written_by_seekrun(root: Path, rel: str) -> bool:
    """Whether the sidecar of the file's folder lists it (see mark_written)."""
    folder, _, name = rel.rpartition("/")
    return name in _sidecar(root, folder)


def owned_files(records: dict[str, dict], claims: dict | None = None) -> set[str]:
    """Every file the state says seekrun wrote (or was about to write when a run stopped)."""
    out = {f for r in records.values() for f in (r.get("output_files") or []) if isinstance(f, str)}
    for files in (claims or {}).values():
        out.update(f for f in files if isinstance(f, str))
    return out


def remove_files(root: Path, files, in_use: set[str], recorded: dict | None = None,
                 cache: FileHashCache | None = None) -> list[str]:
    """Delete files a node wrote and no longer writes (only inside the project, never a file
    the project now reads or another node now writes, and never one whose content is not what
    seekrun wrote: a file edited by hand is kept). Returns the files kept for that last reason."""
    from seekrun.project import inside

    gone, kept = [], []
    for rel in files or ():
        path = root / rel
        if rel in in_use or not inside(root, path) or not os.path.lexists(path):
            continue
        if recorded is not None and cache is not None:
            try:
                if _digest(path, os.stat(path), cache) != recorded.get(rel):
                    kept.append(rel)
                    continue
            except OSError:
                kept.append(rel)
                continue
        try:
            if os.path.isdir(path) and not os.path.islink(path):  # a partitioned write
                import shutil

                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
            gone.append(rel)
        except OSError:
            pass
    forget_written(root, gone)
    return kept


def files_in_use(manifest, leaving=frozenset()) -> set[str]:
    """The files the project's nodes read or write (not counting what the nodes ``leaving`` write)."""
    return {f for nid, n in manifest.nodes.items() for key in ("data_files", "live_files", "output_files")
            if not (key == "output_files" and nid in leaving) for f in n.get(key) or []}


def remove_stale_claims(root: Path, manifest, store, cache: FileHashCache) -> list[str]:
    """Delete the files a killed build claimed that no node writes any more (see
    StateStore.stale_claims). Under target/ (seekrun's own folder) they go; elsewhere only a file
    that still holds what the killed build journaled just before putting it in place: the run
    may have died before writing it, and the file there now be someone else's (or edited
    since). Returns the files kept for that reason, which are no longer listed as seekrun's."""
    in_use = files_in_use(manifest)
    stale = store.stale_claims({n: v.get("output_files") or [] for n, v in manifest.nodes.items()}, in_use)
    hashes = store.claim_hashes()
    mine = [f for f in stale if f.startswith("target/")]
    remove_files(root, mine, in_use)
    kept = remove_files(root, [f for f in stale if f not in mine], in_use, dict(hashes), cache)
    for f in stale:
        hashes.pop(f, None)
    forget_written(root, kept)  # not known to be seekrun's: never overwritten unasked
    return kept


def overwrite_problems(root: Path, manifest, to_run: list[str], records: dict, claims: dict,
                       damaged_state: str | None = None) -> list:
    """A node never writes over a file that seekrun did not write (a hand-made file that
    happens to sit where an exposure writes), nor where its list of written files cannot be
    kept. damaged_state: the state file, when it was damaged (so seekrun cannot tell)."""
    from seekrun.errors import Diagnostic

    owned = None
    errors = []
    to_run = [nid for nid in to_run if not manifest.nodes[nid].get("process_outputs")]  # a task writes its own
    folders = {f.rpartition("/")[0] for nid in to_run for f in manifest.nodes[nid].get("output_files") or []
               if not f.startswith("target/")}
    for folder in sorted(folders):
        why = sidecar_problem(root, folder)
        if why:
            errors.append(Diagnostic(f"{folder}/{SIDECAR}", None, f"{why}: move it away"))
    for nid in to_run:
        node = manifest.nodes[nid]
        for rel in node.get("output_files") or []:
            if rel.startswith("target/") or not os.path.lexists(root / rel):
                continue  # target/ is seekrun's own folder: what is there, seekrun wrote
            if owned is None:
                owned = owned_files(records, claims)
            if rel not in owned and not written_by_seekrun(root, rel):
                why = (f"seekrun cannot tell whether it wrote it (its record of the files it wrote was in the "
                       f"damaged {damaged_state})" if damaged_state else "was not written by seekrun")
                errors.append(Diagnostic(node["file"], node.get("line"),
                    f"{nid}: '{rel}' exists and {why}: move it away (or delete it) "
                    "so it is not overwritten, or choose another path"))
    return errors
