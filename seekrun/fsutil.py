"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder."""
from __future__ import annotations

import json
import os
from pathlib import Path


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o644) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)  # a stale temp file would keep its old permissions
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
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
