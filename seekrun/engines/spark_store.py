"""Where a Spark node's table lives, and what it was built from, read without Spark.

A Spark node's table is a folder of Parquet files under the warehouse:
``<warehouse>/<kind>/<name>/v-<id>/``. Its ``CURRENT`` file names the version in use and the
output hash it was built from (``{"version": "v-...", "stamp": "..."}``). A build writes a new
version folder, then replaces CURRENT (temp file, fsync, rename): a failed or killed Spark job
never touches the version in use, and a half-written folder is never named. Older versions
are removed after the switch.

Reading CURRENT costs a file read per Spark node, so a no-op run learns whether each table is
still there without starting a JVM.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from seekrun.tablenames import catalog_name, folder_name, is_plain

POINTER = "CURRENT"


def warehouse(root: Path, metadata: dict) -> Path:
    where = ((metadata.get("spark") or {}).get("warehouse")) or "target/spark-warehouse"
    return Path(where) if os.path.isabs(where) else Path(root) / where


def node_dir(wh: Path, node_id: str) -> Path:
    kind, _, name = node_id.partition(".")
    return wh / kind / folder_name(name)


def table_ref(node_id: str) -> str:
    """``kind`.`name`` as Spark SQL names the node's table."""
    kind, _, name = node_id.partition(".")
    return f"`{kind}`.`{catalog_name(name)}`"


def current(wh: Path, node_id: str) -> dict | None:
    """{"version", "stamp", "path"} of the version in use, or None (never built, or its folder is gone).
    (String paths and one open: a no-op run asks this of every Spark node.)"""
    kind, _, name = node_id.partition(".")
    base = f"{wh}{os.sep}{kind}{os.sep}{name if is_plain(name) else folder_name(name)}"
    try:
        with open(base + os.sep + POINTER, "rb") as f:
            data = json.loads(f.read())
        version = str(data["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if "/" in version or os.sep in version or not os.path.isdir(base + os.sep + version):
        return None
    return {"version": version, "stamp": data.get("stamp"), "path": base + os.sep + version}


def outputs(wh: Path, node_ids) -> dict[str, str | None]:
    """The Spark tables there now: node id -> the output hash it was built from."""
    found = {}
    for nid in node_ids:
        cur = current(wh, nid)
        if cur is not None:
            found[nid] = cur["stamp"]
    return found


def new_version(wh: Path, node_id: str) -> Path:
    return node_dir(wh, node_id) / f"v-{uuid.uuid4().hex[:12]}"


def switch(wh: Path, node_id: str, version: Path, stamp: str | None) -> None:
    """Make ``version`` the table (atomically), then remove the versions before it."""
    from seekrun.fsutil import atomic_write_json

    base = node_dir(wh, node_id)
    atomic_write_json(base / POINTER, {"version": version.name, "stamp": stamp})
    for old in base.iterdir():
        if old.is_dir() and old.name.startswith("v-") and old.name != version.name:
            shutil.rmtree(old, ignore_errors=True)


def remove(wh: Path, node_id: str) -> None:
    base = node_dir(wh, node_id)
    try:
        (base / POINTER).unlink()
    except FileNotFoundError:
        pass
    shutil.rmtree(base, ignore_errors=True)
