"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A failed write (a full disk, say) removes its temp file before the error goes up, and
temp files left by a killed process are removed by the next run (``remove_stale_temps``,
called under the project lock).  Cache files carry a checksum line (``write_checked``),
so a garbled or hand-edited cache is recognised and ignored, never half-trusted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

TEMP_MARK = ".tmp-"  # atomic_write_bytes writes ".<name>.tmp-<pid>" next to <name>


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a stale temp file would keep its old permissions
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            from seekrun import faults

            faults.point("write", path.name)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """fsync a file or a folder, best effort (some file systems refuse folders)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def commit_file(tmp: Path, final: Path) -> None:
    """Make a finished temp file (same folder) the real one: fsync it, rename, fsync the folder."""
    fsync_path(tmp)
    os.replace(tmp, final)
    fsync_path(Path(final).parent)


def dump_json(obj, *, indent: int | None = None) -> bytes:
    """Deterministic JSON: sorted keys, stable separators, trailing newline. Compact by default:
    Python's json module only uses its C encoder without indent (5-10x faster on big files)."""
    if indent is None:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    else:
        text = json.dumps(obj, sort_keys=True, indent=indent, ensure_ascii=False, default=str)
    return (text + "\n").encode("utf-8")


def atomic_write_json(path: Path, obj, *, indent: int | None = None) -> None:
    atomic_write_bytes(path, dump_json(obj, indent=indent))


def write_checked(path: Path, obj) -> None:
    """JSON with a first line holding the hash of the rest: for caches, so that a damaged or
    edited file is recognised as such when read."""
    from seekrun.hashing import hash_bytes

    body = dump_json(obj)
    atomic_write_bytes(path, hash_bytes(body).encode() + b"\n" + body)


def read_checked(path: Path):
    """What write_checked wrote, or None if the file is missing, unreadable, not ours or damaged."""
    from seekrun.hashing import hash_bytes

    try:
        raw = Path(path).read_bytes()
    except OSError:
        return None
    head, sep, body = raw.partition(b"\n")
    if not sep or head.decode("ascii", "replace") != hash_bytes(body):
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def remove_stale_temps(folder: Path, prefix: str = ".", mark: str = TEMP_MARK, recursive: bool = True,
                       skip: tuple[str, ...] = ()) -> int:
    """Delete temp files a killed process left in folder (and below, when recursive, except the
    ``skip`` folders directly in it; only names this module or seekrun's writers give them).
    Call under the project lock: no other seekrun writes them then."""
    removed = 0
    if not os.path.isdir(folder):
        return 0
    for dirpath, dirnames, filenames in os.walk(folder):
        if not recursive:
            dirnames[:] = []
        elif skip and dirpath == str(folder):
            dirnames[:] = [d for d in dirnames if d not in skip]
        for fn in filenames:
            if fn.startswith(prefix) and mark in fn:
                try:
                    os.unlink(os.path.join(dirpath, fn))
                    removed += 1
                except OSError:
                    pass
    return removed


def too_deep(data, limit: int = 64) -> bool:
    """Whether a config tree nests deeper than limit (iterative: no recursion of its own)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((v, depth + 1) for v in children)
    return False
