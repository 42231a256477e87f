"""Outputs that are folders: a table written with DuckDB's ``COPY ... (PARTITION_BY ...)``.

``partition_by: [a, b]`` (an exposure's ``params.partition_by``, a feature group's
``materialization.offline.partition_by``) makes the output a folder in Hive layout,
``<folder>/a=<value>/b=<value>/data_0.<ext>``; the partition columns are in the folder
names, not in the files (as Spark writes them; DuckDB, Spark and pandas read them back with
hive partitioning).  A NULL value is the folder ``a=__HIVE_DEFAULT_PARTITION__``.

The folder is written whole to a temporary folder beside it (``.seekrun-tmp-<id>-<name>``),
then swapped in: an atomic exchange of the two (Linux renameat2), then the old one deleted.
A failed or killed write leaves the last good folder; a killed swap leaves at worst the
old folder under a ``.seekrun-old-`` name (deleted by the next write) and no folder in
place, which the next run sees as "output missing".

The folder is one entry of the node's output files; its content hash is the hash of every
file in it with its relative path (see ``digest``), so a partition file deleted, changed or
added by hand is "output changed", and reruns the node.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

TMP_PREFIX, OLD_PREFIX = ".seekrun-tmp-", ".seekrun-old-"
_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def columns_of(value) -> list[str] | None:
    """partition_by as a list of column names (a single name is a list of one); None if not one."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(c, str) and c.strip() for c in value):
        return None
    return [c.strip() for c in value]


def check_config(value, error, key: tuple) -> list[str] | None:
    """Parse time: partition_by must be a non-empty list of distinct column names."""
    cols = columns_of(value)
    if cols is None:
        error(key, "partition_by must be a column name or a list of them, e.g. partition_by: [region]")
        return None
    dupes = sorted({c for c in cols if [x.lower() for x in cols].count(c.lower()) > 1})
    if dupes:
        error(key, f"partition_by lists {', '.join(dupes)} twice")
        return None
    return cols


def resolve_columns(ctx, table: str, cols: list[str], what: str) -> list[str]:
    """Run time: the partition columns as the table spells them (a missing one fails the node)."""
    have = [r[0] for r in ctx.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
    by_lower = {c.lower(): c for c in have}
    missing = [c for c in cols if c.lower() not in by_lower]
    if missing:
        ctx.fail(f"{what}: partition_by column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                 f"{'are' if len(missing) > 1 else 'is'} not in the table (columns: {', '.join(have)})")
    if len(cols) >= len(have):
        ctx.fail(f"{what}: partition_by lists every column ({', '.join(have)}): leave at least one column "
                 "to write in the files")
    return [by_lower[c.lower()] for c in cols]


def clause(cols: list[str]) -> str:
    from seekrun.kinds.base import quote_ident

    return f"PARTITION_BY ({', '.join(quote_ident(c) for c in cols)})"


def temp_folder(final: Path) -> Path:
    """A fresh temporary folder path beside ``final`` (not created: DuckDB creates it); what a
    killed write left for this name is deleted first."""
    clear_leftovers(final)
    return final.parent / f"{TMP_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}"


def clear_leftovers(final: Path) -> None:
    parent = final.parent
    if not parent.is_dir():
        return
    for entry in os.scandir(parent):
        if entry.name.endswith("-" + final.name) and entry.name.startswith((TMP_PREFIX, OLD_PREFIX)):
            remove_path(Path(entry.path))


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where not available."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(str(a)), _AT_FDCWD, os.fsencode(str(b)), _RENAME_EXCHANGE) == 0


def fsync_tree(folder: Path) -> None:
    from seekrun.fsutil import fsync_path

    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def swap_in(tmp: Path, final: Path) -> None:
    """Put a finished folder in place of ``final`` (a folder, a file or nothing)."""
    from seekrun.fsutil import fsync_path

    fsync_tree(tmp)
    if not os.path.lexists(final):
        os.rename(tmp, final)
    elif _exchange(tmp, final):
        remove_path(tmp)  # now the old output
    else:
        old = final.parent / f"{OLD_PREFIX}{uuid.uuid4().hex[:12]}-{final.name}"
        os.rename(final, old)
        os.rename(tmp, final)
        remove_path(old)
    fsync_path(final.parent)


def files_in(folder: Path) -> list[Path]:
    """Every file under a folder (symlinks as files: their target is not followed), sorted."""
    out = []
    for dirpath, dirs, files in os.walk(folder):
        dirs.sort()
        out += [Path(dirpath) / f for f in sorted(files)]
    return out


def digest(path: Path, cache=None) -> str:
    """The content hash of a file, or of a folder: every file in it with its relative path (so a
    file renamed, removed or added changes it).  ``cache``: a FileHashCache (stat first)."""
    from seekrun.hashing import hash_file_content, hash_parts

    path = Path(path)
    if not (path.is_dir() and not path.is_symlink()):
        return cache.hash(path) if cache is not None else hash_file_content(path)
    parts = ["folder"]
    for f in files_in(path):
        rel = f.relative_to(path).as_posix()
        if f.is_symlink():
            parts += [rel, "symlink:" + os.readlink(f)]
        else:
            parts += [rel, cache.hash(f) if cache is not None else hash_file_content(f)]
    return hash_parts(*parts)
