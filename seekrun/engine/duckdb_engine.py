"""The DuckDB engine: node kind.name becomes table "kind"."name" in one database file.

Each worker thread gets its own cursor.  A node's table is built with CREATE OR REPLACE
TABLE in its own transaction: DuckDB builds the new table and swaps it in at commit, so
a failed or killed build leaves the last good table in place.  What a kind builds is up
to its executor module (seekrun/engine/kinds/).
"""
from __future__ import annotations

import threading
from pathlib import Path

from seekrun.engine.base import BuildContext, BuildResult, NodeFailure, quote_ident, table_name
from seekrun.engine.kinds import executor
from seekrun.parser.templating import TemplateError, redact, substitute_env


class DuckDBEngine:
    def __init__(self, db_path: Path | None, threads: int | None = None, read_only: bool = False):
        """db_path None: an in-memory database (for checks that must write nothing)."""
        import duckdb

        self._duckdb = duckdb
        if db_path is not None and not read_only:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        import os

        threads = threads or int(os.environ.get("SEEKRUN_DUCKDB_THREADS", "0") or 0)
        config = {"threads": threads} if threads else {}
        self.con = duckdb.connect(":memory:" if db_path is None else str(db_path), read_only=read_only,
                                  config=config)
        if db_path is not None and not read_only:
            # One checkpoint at the end instead of one per 16 MB of WAL during the build.
            self.con.execute("SET checkpoint_threshold = '1GB'")
        self._fixed_threads = bool(threads)
        self._all_threads = self._threads_now = 0  # read on first use
        self._local = threading.local()
        self._cursors: list = []
        self._lock = threading.Lock()
        self._schemas: set[str] = set()

    def _cursor(self):
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self.con.cursor()
            with self._lock:
                self._cursors.append(cur)
        return cur

    def fit_threads(self, running: int) -> None:
        """Share DuckDB's threads among the nodes running at once: a node running alone gets
        all of them, k nodes get 1/k each.  Without this, k concurrent queries each fan out
        over every core and small queries spend their time handing work between threads.
        Called by the scheduler (one call at a time); a fixed thread count is left alone."""
        if self._fixed_threads:
            return
        try:
            cur = self._cursor()
            if not self._all_threads:  # fetchall: the cursor must hold no unfinished result
                self._all_threads = self._threads_now = int(
                    cur.execute("SELECT current_setting('threads')").fetchall()[0][0])
            want = max(1, self._all_threads // max(1, running))
            if want != self._threads_now:
                cur.execute(f"SET threads = {want}").fetchall()
                self._threads_now = want
        except self._duckdb.Error:  # a speed hint only: never fail the build over it
            self._fixed_threads = True

    def existing_outputs(self) -> set[str]:
        rows = self.con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall()
        return {f"{s}.{t}" for s, t in rows}

    def context(self, node: dict, root: Path, nodes: dict[str, dict], cur=None) -> BuildContext:
        return BuildContext(root, node, nodes, cur, self._duckdb)

    def check(self, node: dict, root: Path, nodes: dict[str, dict]) -> str | None:
        """Before anything runs: UnsupportedNode/BadInput propagate; a SQL problem is returned.
        A kind's check() gives the SQL it will run (one statement, or a list of them)."""
        ctx = self.context(node, root, nodes, self.con)
        mod = self._executor(node)
        check = getattr(mod, "check", None)
        sql = check(node, ctx) if check else None
        for one in ([sql] if isinstance(sql, str) else sql or []):
            secrets: list[str] = []
            try:
                one, secrets = substitute_env(one)
                if len(self.con.extract_statements(one)) != 1:
                    return "expected exactly one SELECT statement"
            except self._duckdb.Error as exc:
                return redact(" ".join(str(exc).split()), [*ctx.secrets, *secrets])
            except (NodeFailure, TemplateError):
                return None
        return None

    @staticmethod
    def _executor(node: dict):
        """The kind's module; a kind without its own Python support runs Python nodes generically."""
        mod = executor(node["kind"])
        if node.get("python") and not getattr(mod, "HANDLES_PYTHON", False):
            from seekrun.engine import python_node

            return python_node
        return mod

    def ensure_schemas(self, kinds: set[str]) -> None:
        for kind in sorted(kinds - self._schemas):
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(kind)}")
            self._schemas.add(kind)

    def build(self, node: dict, root: Path, nodes: dict[str, dict]) -> BuildResult:
        ctx = self.context(node, root, nodes, self._cursor())
        try:
            result = self._executor(node).build(node, ctx)
        except self._duckdb.Error as exc:
            raise NodeFailure(ctx.redact(str(exc).strip())) from None
        except (NodeFailure, KeyboardInterrupt):
            raise
        except Exception as exc:  # anything else: still only this node fails, and no secret leaks
            from seekrun.engine.base import UnsupportedNode

            if isinstance(exc, UnsupportedNode):
                raise
            raise NodeFailure(ctx.redact(f"{exc.__class__.__name__}: {exc}")) from None
        result.warnings = [*ctx.warnings, *result.warnings]
        return result

    def drop(self, node_id: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {table_name(node_id)}")

    def interrupt(self) -> None:
        with self._lock:
            for cur in self._cursors:
                try:
                    cur.interrupt()
                except Exception:
                    pass
        try:
            self.con.interrupt()
        except Exception:
            pass

    def close(self) -> None:
        with self._lock:
            for cur in self._cursors:
                try:
                    cur.close()
                except Exception:
                    pass
            self._cursors.clear()
        self.con.close()
