"""seekrun's own files under target/: checked before anything runs, tidied under the lock.

Each must be absent or a regular file (a folder or a FIFO in its place is a clear error,
exit 2, before anything is written), target/ and target/state/ must be folders, and temp
files left by a killed run are removed once the project lock is held.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError
from seekrun.project import inside

FOLDERS = ("target", "target/state", "target/state/parse_cache", "target/feature_store")
FILES = ("target/manifest.json", "target/manifest.json.old", "target/manifest.seeknal.json", "target/state/manifest.json",
         "target/run_results.json", "target/.seekrun.lock",
         "target/state/execution_state.json", "target/state/execution_state.journal",
         "target/state/file_hashes.json", "target/state/env_key")


def check(root: Path, database: Path | None = None, writes: bool = True) -> None:
    """Refuse (exit 2) when one of seekrun's own paths has the wrong type (or, for commands
    that write, cannot be written)."""
    errors: list[Diagnostic] = []
    for rel in FOLDERS:
        kind = _kind(root / rel)
        if kind not in (None, "folder"):
            errors.append(Diagnostic(rel, None, f"is a {kind}, but seekrun keeps a folder here: move it away"))
        elif writes and kind == "folder" and not os.access(root / rel, os.W_OK | os.X_OK):
            errors.append(Diagnostic(rel, None, "is not writable: seekrun writes here; fix its permissions"))
    shards = root / "target/state/parse_cache"
    files = list(FILES)
    if _kind(shards) == "folder":
        try:
            files += [f"target/state/parse_cache/{n}" for n in sorted(os.listdir(shards)) if n.endswith(".json")]
        except OSError as exc:
            errors.append(Diagnostic("target/state/parse_cache", None, f"cannot be read ({exc.strerror})"))
    for rel in files:
        kind = _kind(root / rel)
        if kind not in (None, "file"):
            errors.append(Diagnostic(rel, None, f"is a {kind}, but seekrun keeps a file here: move it away "
                                                "(seekrun writes it again)"))
        elif kind == "file" and not os.access(root / rel, os.R_OK):
            errors.append(Diagnostic(rel, None, "cannot be read: fix its permissions (seekrun reads and rewrites it)"))
    if database is not None:
        for path in (database, Path(str(database) + ".wal")):
            kind = _kind(path)
            if kind not in (None, "file"):
                where = os.path.relpath(path, root) if inside(root, path) else str(path)
                errors.append(Diagnostic(where, None, f"is a {kind}, not a database file: move it away"))
    if errors:
        raise ProjectError(errors)


def _kind(path: Path) -> str | None:
    try:
        mode = os.stat(path).st_mode  # follows links: what a write would reach
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None  # a parent is a file: reported for the parent
    except OSError as exc:
        return f"path seekrun cannot reach ({exc.strerror})"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def tidy(root: Path, output_files=(), exposure_paths=()) -> None:
    """Under the project lock: remove temp files a killed run left (in target/, and next to the
    files nodes write)."""
    from seekrun.fsutil import remove_stale_temps

    deep = os.path.exists(root / "target/state/execution_state.journal")  # the last run did not finish
    # (Spark's tables and the Parquet between engines hold many files and are written by runs
    # that finish: walked only after one that did not)
    remove_stale_temps(root / "target", skip=() if deep else ("spark-warehouse", "interchange"))
    remove_stale_temps(root / "target/feature_store", mark=".parquet.", recursive=False)  # .<name>.parquet.<pid>.tmp
    folders = {os.path.dirname(f) for f in output_files}  # exposures, under target/ too
    if deep:  # a killed run may have been writing where no node writes now (a path since changed)
        folders |= set(exposure_paths)
    for folder in sorted(folders):
        remove_stale_temps(root / folder, prefix=".seekrun-tmp-", mark="", recursive=deep)
        remove_stale_temps(root / folder, prefix="..seekrun-outputs.tmp-", mark="", recursive=deep)
