"""Two engines behind the one the runner talks to: each node is built by its own (``engine`` in
the manifest), and an edge between engines goes through Parquet.

- A Spark node reading a DuckDB node's table reads a Parquet export of it, written by DuckDB
  into target/interchange/<kind>/<name>/<output hash>/ (the table's build stamp): an export is
  made once per build of the producer, and only for an edge that crosses engines.
- A DuckDB node (and ``seekrun query``, ``show``, the docs) reads a Spark node's table through a
  DuckDB view over its current Parquet version, made when the Spark node is built (and again
  before a DuckDB node reads it, if the database no longer has it).
- existing_outputs() answers for both: DuckDB's tables, and the Spark tables the warehouse has
  (read from its CURRENT files, without starting Spark).

A project with no Spark node never gets here (wrap() returns the DuckDB engine itself).
"""
from __future__ import annotations

import os
import shutil
import threading
import uuid
from pathlib import Path

from seekrun.engines import spark_store
from seekrun.kinds.base import quote_ident, table_name


def spark_ids(manifest) -> set[str]:
    return {nid for nid, n in manifest.nodes.items() if n.get("engine") == "spark"}


def wrap(engine, manifest, root: Path, target_dir: Path, session=None):
    ids = spark_ids(manifest)
    if ids or spark_store.warehouse(root, manifest.metadata).is_dir():  # (or a Spark node's table to drop)
        return EngineRouter(engine, manifest, root, target_dir, ids, session)
    return engine


def overlay(manifest, root: Path, tables: dict[str, str | None]) -> dict[str, str | None]:
    """Tables as a run sees them, with each Spark node's read from the warehouse now (a stat and
    a small read per Spark node: the database's shortcut cannot know the warehouse changed)."""
    ids = spark_ids(manifest)
    if not ids:
        return tables
    out = {k: v for k, v in tables.items() if k not in ids}
    out.update(spark_store.outputs(spark_store.warehouse(root, manifest.metadata), ids))
    return out


class EngineRouter:
    def __init__(self, duck, manifest, root: Path, target_dir: Path, ids: set[str], session=None):
        self.duck, self.manifest, self.root, self.target_dir = duck, manifest, Path(root), Path(target_dir)
        self.con = duck.con
        self.spark_ids = ids
        self.warehouse = spark_store.warehouse(self.root, manifest.metadata)
        self._spark = None
        self._session = session  # the caller's SparkSession, if given
        self._make = threading.Lock()
        self._export = threading.Lock()
        self._views = threading.Lock()
        self._exported: dict[str, str] = {}  # this run's exports: node id -> its Parquet

    def __getattr__(self, name):  # identity, set_identity, ensure_schemas, fit_threads, condition ...
        return getattr(self.duck, name)

    @property
    def spark(self):
        with self._make:
            if self._spark is None:
                from seekrun.engines.spark import SparkEngine

                self._spark = SparkEngine(self.root, self.target_dir, self.manifest.metadata, session=self._session)
            return self._spark

    def existing_outputs(self) -> dict[str, str | None]:
        out = {k: v for k, v in self.duck.existing_outputs().items() if k not in self.spark_ids}
        out.update(spark_store.outputs(self.warehouse, self.spark_ids))
        return out

    def check(self, node: dict, root: Path, nodes: dict[str, dict]) -> str | None:
        return self.duck.check(node, root, nodes)  # the SQL as written is DuckDB's, on either engine

    def condition(self, node: dict, sql: str):
        self._views_for(node)
        return self.duck.condition(node, sql)

    def build(self, node: dict, root: Path, nodes: dict[str, dict], stamp=None, on_file=None, run=None):
        nid = node["id"]
        if nid in self.spark_ids:
            inputs = {i: self._parquet_of(i) for i in node["inputs"]}
            try:
                return self.spark.build(node, root, nodes, inputs, stamp, run)
            finally:
                self._view(nid)  # (a failing rule's results are its table too)
        self._views_for(node)
        if spark_store.current(self.warehouse, nid) is not None:  # it moved from Spark to DuckDB
            self._drop_view(nid)
        result = self.duck.build(node, root, nodes, stamp=stamp, on_file=on_file, run=run)
        spark_store.remove(self.warehouse, nid)
        return result

    # ---- Parquet between engines ------------------------------------------------------
    def _parquet_of(self, nid: str) -> str:
        """The Parquet a Spark node reads for input ``nid``."""
        if nid in self.spark_ids:
            cur = spark_store.current(self.warehouse, nid)
            if cur is None:
                from seekrun.kinds.base import NodeFailure

                raise NodeFailure(f"input {nid} has no table on Spark: build it first")
            return cur["path"]
        return self._export_from_duck(nid)

    def _export_from_duck(self, nid: str) -> str:
        kind, _, name = nid.partition(".")
        base = self.target_dir / "interchange" / kind / spark_store.folder_name(name)
        with self._export:
            cur = self.duck._cursor()
            stamp = self._stamp(cur, kind, name)
            if stamp is None and nid in self._exported:  # (a table with no stamp: exported once per run,
                return self._exported[nid]               # so a second reader never removes the first's)
            key = stamp or f"unstamped-{uuid.uuid4().hex[:12]}"
            dest = base / key
            if (dest / "data.parquet").is_file() and stamp:
                self._exported[nid] = str(dest / "data.parquet")
                return self._exported[nid]  # the export of this very build
            tmp = base / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                target = str(tmp / "data.parquet").replace("'", "''")
                cur.execute(f"COPY (SELECT * FROM {table_name(nid)}) TO '{target}' (FORMAT parquet)")
                shutil.rmtree(dest, ignore_errors=True)
                os.rename(tmp, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            for old in base.iterdir():  # exports of earlier builds
                if old.name != dest.name and not old.name.startswith(".tmp-"):
                    shutil.rmtree(old, ignore_errors=True)
            self._exported[nid] = str(dest / "data.parquet")
            return self._exported[nid]

    @staticmethod
    def _stamp(cur, kind: str, name: str) -> str | None:
        from seekrun.engines.duckdb import STAMP

        row = cur.execute("SELECT comment FROM duckdb_tables() WHERE database_name = current_database() "
                          "AND schema_name = ? AND table_name = ?", [kind, name]).fetchone()
        comment = row[0] if row else None
        return comment[len(STAMP):] if isinstance(comment, str) and comment.startswith(STAMP) else None

    # ---- DuckDB views of Spark tables -------------------------------------------------
    def _views_for(self, node: dict) -> None:
        for i in node.get("inputs") or []:
            if i in self.spark_ids and not self._has_view(i):
                self._view(i)

    def _has_view(self, nid: str) -> bool:
        kind, _, name = nid.partition(".")
        row = self.duck._cursor().execute(
            "SELECT count(*) FROM duckdb_views() WHERE database_name = current_database() AND schema_name = ? "
            "AND view_name = ?", [kind, name]).fetchone()
        return bool(row and row[0])

    def _view(self, nid: str) -> None:
        cur_version = spark_store.current(self.warehouse, nid)
        if cur_version is None:
            return
        kind, _, name = nid.partition(".")
        files = (Path(cur_version["path"]) / "*.parquet").as_posix().replace("'", "''")
        with self._views:
            cur = self.duck._cursor()
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(kind)}")
            if self._is_table(cur, kind, name):
                cur.execute(f"DROP TABLE {table_name(nid)}")  # it was a DuckDB node before
            cur.execute(f"CREATE OR REPLACE VIEW {table_name(nid)} AS SELECT * FROM read_parquet('{files}', "
                        "hive_partitioning = false)")  # (a key=value folder in the path is not a column)

    @staticmethod
    def _is_table(cur, kind: str, name: str) -> bool:
        row = cur.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                          "AND schema_name = ? AND table_name = ?", [kind, name]).fetchone()
        return bool(row and row[0])

    def _drop_view(self, nid: str) -> None:
        if self._has_view(nid):
            with self._views:
                self.duck._cursor().execute(f"DROP VIEW IF EXISTS {table_name(nid)}")

    # ---- the rest of the engine interface ---------------------------------------------
    def drop(self, nid: str) -> None:
        if nid in self.spark_ids or spark_store.current(self.warehouse, nid) is not None:
            self._drop_view(nid)
            spark_store.remove(self.warehouse, nid)
            if nid in self.spark_ids:
                return
        self.duck.drop(nid)

    def interrupt(self) -> None:
        if self._spark is not None:
            self._spark.interrupt()
        self.duck.interrupt()

    def close(self) -> None:
        try:
            if self._spark is not None:
                self._spark.close()
        finally:
            self.duck.close()
