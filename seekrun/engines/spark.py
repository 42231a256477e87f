"""The Spark engine: a node's table is a folder of Parquet files in the warehouse, written by
Spark and switched to atomically (seekrun/engines/spark_store.py).

One session per run, started on the first Spark node that runs (a run with none never starts
a JVM). Locally (``master``, default ``local[2]``) the JVM is pyspark's own child, its output
in target/spark.log, and it dies with seekrun (pyspark's gateway exits when its stdin closes).
Through Spark Connect (``remote: sc://host:15002``) the server does the work.

Each node's inputs are registered in the session's catalog under their own names
(``transform.clean_orders``) as tables over their Parquet folders: a Spark node's current
version, or a DuckDB node's export (seekrun/engines/router.py). The kinds build through the
same BuildContext as on DuckDB: ``execute`` and ``materialize`` run their SQL, transpiled by
sqlglot, on Spark. Each build's jobs carry a group (a tag through Spark Connect), so a node's
timeout, or Ctrl-C, cancels its Spark jobs, not just the thread waiting for them.
"""
from __future__ import annotations

import shutil
import threading
import uuid
from pathlib import Path

from seekrun.engines import spark_store
from seekrun.engines.spark_context import SparkBuildContext, _message
from seekrun.kinds import executor
from seekrun.kinds.base import BuildResult, NodeFailure, UnsupportedNode

DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionOverwriteMode": "static",
}
# What seekrun's results depend on: set on a caller's session for the run, and put back after.
RESULT_CONF = ("spark.sql.session.timeZone", "spark.sql.parquet.outputTimestampType")


class SparkEngine:
    def __init__(self, root: Path, target_dir: Path, metadata: dict, secrets: list[str] | None = None,
                 session=None):
        self.root, self.target_dir = Path(root), Path(target_dir)
        self.settings = dict(metadata.get("spark") or {})
        self.warehouse = spark_store.warehouse(self.root, metadata)
        self._session = session
        self._owned = session is None  # a session the caller gave is used, never stopped
        self._start = threading.Lock()
        self._catalog = threading.Lock()
        self._registered: dict[str, str] = {}  # node id -> the Parquet its catalog entry reads
        self._databases: set[str] = set()  # kinds whose database this session has
        self._made: set[str] = set()  # (a caller's session) the databases and tables seekrun made in its catalog
        self._conf_before: dict[str, str | None] = {}
        self._borrowed = False
        self._tags: set[str] = set()  # the builds running now: what an interrupt cancels
        self._log = None
        self._gateway = None
        self._env_before: set[str] = set()
        self.secrets = secrets if secrets is not None else []

    # ---- the session ---------------------------------------------------------------
    def session(self):
        with self._start:
            if self._session is None:
                import warnings

                # pyspark's remarks on the pandas version (also when a node calls toPandas): not the user's
                warnings.filterwarnings("ignore", module=r"pyspark(\.|$)")
                self._session = self._open()
            elif not self._owned and not self._borrowed:
                from seekrun.engines.spark_borrowed import borrow

                borrow(self, self._session)
            return self._session

    @property
    def started(self) -> bool:
        return self._session is not None

    def _value(self, text: str) -> str:
        from seekrun.params import env_of
        from seekrun.parser.templating import substitute_env

        out, secrets = substitute_env(str(text), sql=False, env=env_of(self.root))
        self.secrets.extend(secrets)
        return out

    def _open(self):
        import os

        from seekrun.secrets import redact

        self._env_before = set(os.environ)
        import logging

        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):  # pyspark's JSON dumps of an
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)  # error seekrun reports in one line

        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise UnsupportedNode("a node runs on Spark, but pyspark is not installed: pip install 'seekrun[spark]'") \
                from None
        if not self.settings.get("remote"):
            from pyspark import SparkContext

            if SparkContext._active_spark_context is not None:  # (one per process: Spark's own rule)
                raise NodeFailure("a Spark session is already running in this process: give it to seekrun as "
                                  "DAGRunner(..., spark_session=spark) rather than have seekrun start its own")
        conf = {**DEFAULT_CONF, "spark.sql.warehouse.dir": str(self.warehouse / "_catalog"),
                **{str(k): self._value(v) for k, v in (self.settings.get("conf") or {}).items()}}
        try:
            if self.settings.get("remote"):
                builder = SparkSession.builder.remote(self._value(self.settings["remote"]))
                for k, v in conf.items():
                    if not k.startswith("spark.ui") and k != "spark.sql.warehouse.dir":
                        builder = builder.config(k, v)
                return builder.getOrCreate()
            return self._local(conf)
        except Exception as exc:
            raise NodeFailure(redact(f"cannot start Spark ({_message(exc)}): see {self._rel(self.target_dir / 'spark.log')}",
                                     self.secrets)) from None

    def _local(self, conf: dict):
        from pyspark import SparkConf, SparkContext
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession

        spark_conf = SparkConf().setMaster(self._value(self.settings.get("master") or "local[2]")).setAppName("seekrun")
        for k, v in conf.items():
            spark_conf.set(k, v)
        self.target_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.target_dir / "spark.log", "ab")
        gateway = self._gateway = launch_gateway(spark_conf, popen_kwargs={"stdout": self._log, "stderr": self._log,
                                                                            "cwd": str(self.target_dir)})
        sc = SparkContext(conf=spark_conf, gateway=gateway)
        sc.setLogLevel("ERROR")
        return SparkSession(sc)

    def _rel(self, path: Path) -> str:
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    # ---- tables --------------------------------------------------------------------
    def register(self, node_id: str, parquet_path: str) -> None:
        """Make ``kind.name`` in the session's catalog read that Parquet folder or file (once per
        path in a run: nodes built at once that read the same input share its entry)."""
        spark = self.session()
        kind, _, name = node_id.partition(".")
        name = spark_store.catalog_name(name)
        location = parquet_path.replace("'", "\\'")
        with self._catalog:
            if self._registered.get(node_id) == parquet_path:
                return
            if kind not in self._databases:
                if not self._owned and not spark.catalog.databaseExists(kind):
                    self._made.add(kind)
                spark.sql(f"CREATE DATABASE IF NOT EXISTS `{kind}`")
                self._databases.add(kind)
            if not self._owned and f"{kind}.{name}" not in self._made:
                from seekrun.engines.spark_borrowed import refuse_theirs

                refuse_theirs(self, spark, kind, name)
            spark.sql(f"DROP TABLE IF EXISTS `{kind}`.`{name}`")
            spark.sql(f"CREATE TABLE `{kind}`.`{name}` USING parquet LOCATION '{location}'")
            self._registered[node_id] = parquet_path
            if not self._owned:
                self._made.add(f"{kind}.{name}")  # (by its catalog name)

    def exists(self, node_id: str) -> bool:
        return spark_store.current(self.warehouse, node_id) is not None

    def row_count(self, node_id: str) -> int | None:
        cur = spark_store.current(self.warehouse, node_id)
        return None if cur is None else int(self.session().read.parquet(cur["path"]).count())

    def drop(self, node_id: str) -> None:
        spark_store.remove(self.warehouse, node_id)

    def export_parquet(self, node_id: str) -> str | None:
        """Its table as Parquet for a task or another engine: the version folder itself."""
        cur = spark_store.current(self.warehouse, node_id)
        return None if cur is None else cur["path"]

    # ---- building ------------------------------------------------------------------
    def build(self, node: dict, root: Path, nodes: dict[str, dict], inputs: dict[str, str], stamp=None,
              run: dict | None = None) -> BuildResult:
        """Build one node; ``inputs``: input id -> the Parquet it reads."""
        spark = self.session()
        for nid, path in inputs.items():
            self.register(nid, path)
        ctx = SparkBuildContext(root, node, nodes, timeout=node.get("timeout"), spark=spark, engine=self,
                                secrets=self.secrets)
        for key, value in (run or {}).items():
            setattr(ctx, key, value)
        tag = f"seekrun-{uuid.uuid4().hex[:12]}"
        self._tag(spark, tag, node["id"])
        self._tags.add(tag)
        deadline = _Deadline(lambda: self._cancel(spark, tag), ctx.timeout) if ctx.timeout else None
        switched = False
        try:
            try:
                result = _executor(node).build(node, ctx)
            except NodeFailure:
                if ctx.commit_on_failure and ctx.version is not None:
                    spark_store.switch(self.warehouse, node["id"], ctx.version, None if callable(stamp) else stamp)
                    switched = True
                raise
            if deadline is not None and deadline.fired:
                raise NodeFailure("timed out", timed_out=True)
            if ctx.version is None:
                raise NodeFailure(f"{node['id']}: built no table on Spark")
            spark_store.switch(self.warehouse, node["id"], ctx.version, stamp(result) if callable(stamp) else stamp)
            switched = True
            for then in ctx.after_commit:  # e.g. a feature group's offline file put in place
                try:
                    then()
                except OSError as exc:
                    raise NodeFailure(ctx.redact(f"{node['id']}: cannot put its output file in place: "
                                                 f"{exc.strerror or exc}")) from None
            result.location = {"engine": "spark", "path": self._rel(spark_store.node_dir(self.warehouse, node["id"]))}
        except NodeFailure as exc:
            if deadline is not None and deadline.fired:
                exc.timed_out = True
            raise
        finally:
            ctx.close()
            self._tags.discard(tag)
            self._untag(spark, tag)
            if deadline is not None:
                deadline.cancel()
            if not switched:
                for undo in ctx.on_abort:
                    try:
                        undo()
                    except Exception:
                        pass
                if ctx.version is not None:
                    shutil.rmtree(ctx.version, ignore_errors=True)
        result.warnings = [*ctx.warnings, *result.warnings]
        return result

    # Jobs are cancelled by group (a local session: its tasks are interrupted, not left to finish)
    # or by tag (Spark Connect).
    def _connect(self) -> bool:
        if self._owned:
            return bool(self.settings.get("remote"))
        return type(self._session).__module__.startswith("pyspark.sql.connect")

    def _tag(self, spark, tag: str, what: str) -> None:
        if self._connect():
            spark.addTag(tag)
        else:
            spark.sparkContext.setJobGroup(tag, what, interruptOnCancel=True)

    def _untag(self, spark, tag: str) -> None:
        try:
            if self._connect():
                spark.removeTag(tag)
            else:
                spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        except Exception:
            pass

    def _cancel(self, spark, tag: str) -> None:
        if self._connect():
            spark.interruptTag(tag)
        else:
            spark.sparkContext.cancelJobGroup(tag)

    def interrupt(self) -> None:
        """Cancel the jobs of the builds running now (only seekrun's: a caller's session may run others)."""
        if self._session is not None:
            for tag in list(self._tags):
                try:
                    self._cancel(self._session, tag)
                except Exception:
                    pass

    def close(self) -> None:
        """Stop the session; a local one's JVM is shut down and waited for (never left running),
        and what pyspark set in the environment for Spark Connect is taken back."""
        import os

        if self._session is not None and not self._owned:
            from seekrun.engines.spark_borrowed import give_back

            give_back(self, self._session)
            self._session = None
        if self._session is not None:
            try:
                self._session.stop()
            except Exception:
                pass
            self._session = None
            self._stop_gateway()
            for key in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE"):
                if key not in self._env_before:
                    os.environ.pop(key, None)
        if self._log is not None:
            self._log.close()
            self._log = None


    def _stop_gateway(self) -> None:
        gateway = getattr(self, "_gateway", None)
        self._gateway = None
        if gateway is None:
            return
        proc = getattr(gateway, "proc", None)
        try:
            gateway.shutdown()
        except Exception:
            pass
        try:
            from pyspark import SparkContext

            SparkContext._gateway = SparkContext._jvm = None
        except Exception:
            pass
        if proc is not None:
            try:
                proc.stdin.close()  # the JVM exits when its stdin closes
                proc.wait(timeout=20)
            except Exception:
                proc.kill()
                proc.wait()


def _executor(node: dict):
    if node.get("gather") is not None:  # a fan-out's node: the union of its instances
        from seekrun.kinds import gather

        return gather
    return executor(node["kind"])


class _Deadline:
    """A node's timeout on Spark: its tagged jobs are cancelled when it passes."""

    def __init__(self, cancel, seconds: float):
        self.fired = False
        self._cancel = cancel
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self._cancel()
        except Exception:
            pass

    def cancel(self) -> None:
        self._timer.cancel()
