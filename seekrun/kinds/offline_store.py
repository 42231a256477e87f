"""A feature group's offline store: ``target/feature_store/<name>.parquet``, or with
``materialization.offline.partition_by`` a Hive-partitioned folder
``target/feature_store/<name>/<col>=<value>/data_0.parquet`` (see seekrun/partitioned.py).

``offline`` is on with ``offline: true`` or a mapping (``offline: {format: parquet}``):
a mapping without ``enabled`` is enabled, as in Seeknal 2.13 (whose DuckDB engine writes
the offline store for any mapping, even ``enabled: false``; seekrun honours that one).
Seeknal honours ``partition_by`` only for Spark and Iceberg writes; seekrun writes it with
DuckDB's ``COPY ... (PARTITION_BY ...)``.

The file (or folder) is written to a temporary path beside it inside the build's
transaction and put in place only after the commit (``after_commit``); a failed build
removes it, so the last good output stays.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from seekrun import partitioned
from seekrun.kinds.base import BuildContext
from seekrun.fsutil import fsync_path

FEATURE_STORE = Path("target") / "feature_store"


def offline_of(mat: dict) -> tuple[bool, str, list[str] | None]:
    """(enabled, format, partition columns or None) from ``materialization``."""
    off = mat.get("offline")
    if isinstance(off, dict):
        cols = partitioned.columns_of(off.get("partition_by")) if off.get("partition_by") is not None else None
        return bool(off.get("enabled", True)), str(off.get("format") or "parquet").lower(), cols
    return bool(off), "parquet", None


def output_rel(name: str, partition_by: list[str] | None) -> str:
    return (FEATURE_STORE / (name if partition_by else f"{name}.parquet")).as_posix()


def check_config(mat: dict, error) -> None:
    """Parse time: offline.partition_by is a list of distinct column names."""
    off = mat.get("offline")
    if isinstance(off, dict) and off.get("partition_by") is not None:
        partitioned.check_config(off["partition_by"], error, ("materialization", "offline", "partition_by"))


def write(node: dict, ctx: BuildContext, partition_by: list[str] | None) -> None:
    """Write the node's built table to the offline store (put in place after the commit)."""
    folder = ctx.root / FEATURE_STORE
    name = node["name"]
    final = ctx.root / output_rel(name, partition_by)
    folder.mkdir(parents=True, exist_ok=True)
    if partition_by:
        cols = partitioned.resolve_columns(ctx, ctx.table, partition_by, f"{node['id']}: offline store")
        tmp = partitioned.temp_folder(final)
        opts = f"FORMAT parquet, {partitioned.clause(cols)}"
    else:
        for stale in folder.glob(f".{name}.parquet.*.tmp"):  # left by a killed run
            stale.unlink(missing_ok=True)
        tmp = folder / f".{name}.parquet.{os.getpid()}-{threading.get_ident()}.tmp"
        opts = "FORMAT parquet"
    ctx.on_abort.append(lambda: partitioned.remove_path(tmp))
    ctx.copy_table(tmp, opts)

    def put_in_place() -> None:
        try:
            if partition_by:
                partitioned.swap_in(tmp, final)
            else:
                fsync_path(tmp)
                if final.is_dir() and not final.is_symlink():  # was partitioned before
                    partitioned.remove_path(final)
                os.replace(tmp, final)
        except OSError:
            partitioned.remove_path(tmp)
            raise
        fsync_path(folder)

    ctx.after_commit.append(put_in_place)
