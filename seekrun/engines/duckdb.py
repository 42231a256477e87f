"""The DuckDB engine: node kind.name becomes table "kind"."name" in one database file.

Each worker thread gets its own cursor.  A node's build runs in one transaction: DuckDB
builds the new table and swaps it in at commit, so a failed or killed build leaves the last
good table in place.  In the same transaction the table gets the hash of what it was built
from as its comment (``seekrun:<output hash>``): the table says what it holds, so a kill
between the commit and the journal line, or an older database file put back, is seen on
the next run (the comment does not match the recorded build) instead of trusted.

Node SQL can read no file: the connection allows file access under the project folder only
(``allowed_directories``), and node SQL is checked to read nothing but its inputs anyway.
What a kind builds is up to its executor module (seekrun/kinds/).
"""
from __future__ import annotations

import threading
from pathlib import Path

import os

from seekrun import faults
from seekrun.kinds.base import BuildContext, BuildResult, NodeFailure, quote_ident, table_name
from seekrun.kinds import executor
from seekrun.parser.templating import TemplateError, redact, substitute_env

STAMP = "seekrun:"  # table comment: STAMP + the output hash the table was built from
META_SCHEMA = "_seekrun"  # seekrun's own tables in the database (the database's identity)


class DuckDBEngine:
    def __init__(self, db_path: Path | None, threads: int | None = None, read_only: bool = False,
                 root: Path | None = None, allow: tuple[Path, ...] = ()):
        """db_path None: an in-memory database (for checks that must write nothing). With
        ``root``, the connection may touch files under that folder only (and its own, and the
        ``allow`` folders': another build's database, attached read-only by --defer)."""
        import duckdb

        self._duckdb = duckdb
        if db_path is not None and not read_only:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        threads = threads or int(os.environ.get("SEEKRUN_DUCKDB_THREADS", "0") or 0)
        config = {"threads": threads} if threads else {}
        self.con = duckdb.connect(":memory:" if db_path is None else str(db_path), read_only=read_only,
                                  config=config)
        if db_path is not None and not read_only:
            # One checkpoint at the end instead of one per 16 MB of WAL during the build.
            self.con.execute("SET checkpoint_threshold = '1GB'")
        if root is not None:
            self._confine(Path(root), db_path, allow)
        if db_path is not None and not read_only:
            from seekrun.defer import drop_views

            drop_views(self.con)  # views a killed --defer run left (they read a database no longer attached)
        self._fixed_threads = bool(threads)
        self._all_threads = self._threads_now = 0  # read on first use
        self._local = threading.local()
        self._cursors: list = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()  # set by interrupt(): no build starts after it
        self._schemas: set[str] = set()

    def _confine(self, root: Path, db_path: Path | None, allow: tuple[Path, ...] = ()) -> None:
        """Files only under the project (and the database's own temp folder): SQL that names a
        file outside fails in DuckDB itself, whatever the spelling."""
        allowed = [str(root.resolve()) + os.sep]
        temp = self.con.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
        if not temp or not os.path.isabs(temp):
            temp = str(root.resolve() / "target" / ".duckdb_tmp")
            self.con.execute(f"SET temp_directory = '{temp}'")
        if not temp.startswith(allowed[0]):
            allowed.append(temp.rstrip(os.sep) + os.sep)
        for where in ([Path(db_path).resolve().parent] if db_path is not None else []) + [
                Path(a).resolve() for a in allow]:  # a child DAG's target/ (its state) is under its parent's
            folder = str(where) + os.sep
            if not any(folder.startswith(a) for a in allowed):
                allowed.append(folder)
        listed = ", ".join("'" + a.replace("'", "''") + "'" for a in allowed)
        self.con.execute(f"SET allowed_directories = [{listed}]")
        self.con.execute("SET enable_external_access = false")

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

    def existing_outputs(self) -> dict[str, str | None]:
        """Every node table in the database: "kind.name" -> the output hash it was built from
        (None for a table without seekrun's comment)."""
        rows = self.con.execute(
            "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = current_database()"
            f" AND schema_name <> '{META_SCHEMA}'").fetchall()
        return {f"{s}.{t}": (c[len(STAMP):] if isinstance(c, str) and c.startswith(STAMP) else None)
                for s, t, c in rows}

    def identity(self) -> dict[str, str] | None:
        """The database's identity (id, project root, project name), or None if it has none."""
        try:
            rows = self.con.execute(f"SELECT key, value FROM {META_SCHEMA}.identity").fetchall()
        except self._duckdb.Error:
            return None
        return {k: v for k, v in rows} or None

    def set_identity(self, values: dict[str, str]) -> None:
        cur = self.con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}")
            cur.execute(f"CREATE OR REPLACE TABLE {META_SCHEMA}.identity (key VARCHAR PRIMARY KEY, value VARCHAR)")
            cur.execute(f"INSERT INTO {META_SCHEMA}.identity VALUES " + ", ".join(["(?, ?)"] * len(values)),
                        [x for kv in sorted(values.items()) for x in kv])
            cur.execute("COMMIT")
        finally:
            cur.close()

    def context(self, node: dict, root: Path, nodes: dict[str, dict], cur=None) -> BuildContext:
        return BuildContext(root, node, nodes, cur, self._duckdb, timeout=node.get("timeout"))

    def condition(self, node: dict, sql: str):
        """A precondition's query (refs already resolved), on the worker's cursor, in a
        transaction rolled back after: its first value, or None for no rows."""
        if self._stopping.is_set():
            raise NodeFailure("interrupted before it started")
        cur = self._cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                row = cur.execute(sql).fetchone()
            finally:
                cur.execute("ROLLBACK")
        except self._duckdb.Error as exc:
            raise NodeFailure(redact(" ".join(str(exc).split()), [])) from None
        return None if row is None else row[0]

    def check(self, node: dict, root: Path, nodes: dict[str, dict]) -> str | None:
        """Before anything runs: UnsupportedNode/BadInput propagate; a SQL problem is returned.
        A kind's check() gives the SQL it will run (one statement, or a list of them)."""
        ctx = self.context(node, root, nodes, self.con)
        mod = self._executor(node)
        check = getattr(mod, "check", None)
        sql = check(node, ctx) if check else None
        for one in ([sql] if isinstance(sql, str) else sql or []):
            secrets: list[str] = []
            templated = "{{" in one
            try:
                from seekrun.params import env_of

                one, secrets = substitute_env(one, sql=True, env=env_of(root))
                if len(self.con.extract_statements(one)) != 1:
                    return "expected exactly one SELECT statement"
                if templated:  # env_var() values are known now: what does the SQL read with them in?
                    problem = self._reads_only_inputs(one, node)
                    if problem:
                        return redact(problem, [*ctx.secrets, *secrets])
            except self._duckdb.Error as exc:  # redacted before anything reformats it
                return " ".join(redact(str(exc), [*ctx.secrets, *secrets]).split())
            except (NodeFailure, TemplateError):
                return None
        return None

    def _reads_only_inputs(self, sql: str, node: dict) -> str | None:
        """Parse-time checks (seekrun/parser/sql_check.py) on SQL with its env_var() values in."""
        from seekrun.parser.sql_check import UNCHECKABLE, problems_in, read_tree, serialize

        tree, found = read_tree(serialize(self.con, [sql])[0])
        if tree.get("error"):
            return UNCHECKABLE if str(tree.get("error_message", "")).startswith("Only SELECT") else None
        problems, reads = problems_in(found, node["inputs"])
        if problems:
            return problems[0][0]
        declared = {i.lower() for i in node["inputs"]}
        extra = [r for r in reads if r.lower() not in declared]
        if extra:
            return (f"with its env_var() values in, the SQL reads {extra[0]}, which is not a declared input: "
                    "name inputs with ref() and declare them")
        return None

    @staticmethod
    def _executor(node: dict):
        """The kind's module; a kind without its own Python support runs Python nodes generically
        (and a fan-out's node gathers its instances: seekrun/kinds/gather.py)."""
        if node.get("gather") is not None:
            from seekrun.kinds import gather

            return gather
        mod = executor(node["kind"])
        if node.get("python") and not getattr(mod, "HANDLES_PYTHON", False):
            from seekrun.engines import python_node

            return python_node
        return mod

    def ensure_schemas(self, kinds: set[str]) -> None:
        for kind in sorted(kinds - self._schemas):
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(kind)}")
            self._schemas.add(kind)

    def build(self, node: dict, root: Path, nodes: dict[str, dict], stamp: str | None = None,
              on_file=None, run: dict | None = None) -> BuildResult:
        """Build one node in one transaction; its table (if its kind has one) is stamped with
        ``stamp`` in that transaction (a callable: worked out from the BuildResult, e.g. from
        the hash of what was read). ``on_file(rel, tmp)``: see BuildContext.on_file."""
        if self._stopping.is_set():
            raise NodeFailure("interrupted before it started")
        ctx = self.context(node, root, nodes, self._cursor())
        ctx.on_file = on_file
        for key, value in (run or {}).items():  # the run's context (seekrun/kinds/base.py)
            setattr(ctx, key, value)
        mod = self._executor(node)
        has_table = getattr(executor(node["kind"]), "HAS_TABLE", True)
        cur = ctx.cur
        committed = False
        timer = _Deadline(cur, ctx.timeout) if ctx.timeout else None
        try:
            cur.execute("BEGIN TRANSACTION")
            try:
                result = mod.build(node, ctx)
            except NodeFailure:
                if not ctx.commit_on_failure:
                    raise
                self._commit(ctx, node, has_table, None if callable(stamp) else stamp)  # a failing rule's results
                committed = True
                raise
            if timer is not None and timer.fired:  # it passed between two statements
                raise NodeFailure("timed out", timed_out=True)
            self._commit(ctx, node, has_table, stamp(result) if callable(stamp) else stamp)
            committed = True
        except self._duckdb.Error as exc:
            raise NodeFailure(ctx.redact(str(exc).strip()), timed_out=timer is not None and timer.fired) from None
        except NodeFailure as exc:
            if timer is not None and timer.fired:  # e.g. a kind that wrapped DuckDB's "Interrupted"
                exc.timed_out = True
            raise
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # anything else: still only this node fails, and no secret leaks
            from seekrun.kinds.base import UnsupportedNode

            if isinstance(exc, UnsupportedNode):
                raise
            raise NodeFailure(ctx.redact(f"{exc.__class__.__name__}: {exc}")) from None
        finally:
            if timer is not None:
                timer.cancel()
            if not committed:
                try:
                    cur.execute("ROLLBACK")
                except Exception:  # nothing open (the error was before BEGIN), or interrupted
                    pass
                for undo in ctx.on_abort:
                    try:
                        undo()
                    except Exception:
                        pass
        for then in ctx.after_commit:  # e.g. rename a finished file into place
            try:
                then()
            except OSError as exc:
                raise NodeFailure(ctx.redact(f"{node['id']}: cannot put its output file in place: "
                                             f"{exc.strerror or exc}")) from None
        faults.point("after_commit", node["id"])
        result.warnings = [*ctx.warnings, *result.warnings]
        if has_table:
            result.location = {"engine": "duckdb", "table": node["id"]}
        return result

    @staticmethod
    def _commit(ctx: BuildContext, node: dict, has_table: bool, stamp: str | None) -> None:
        if has_table and stamp is not None:
            ctx.cur.execute(f"COMMENT ON TABLE {table_name(node['id'])} IS '{STAMP}{stamp}'")
        ctx.cur.execute("COMMIT")

    def drop(self, node_id: str) -> None:
        from seekrun.parser.kinds import VIEW_KINDS

        what = "VIEW" if node_id.partition(".")[0] in VIEW_KINDS else "TABLE"  # a metric is a view
        self.con.execute(f"DROP {what} IF EXISTS {table_name(node_id)}")

    def interrupt(self) -> None:
        self._stopping.set()
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
        try:
            self.con.close()  # the checkpoint: a full disk shows here
        except self._duckdb.Error as exc:
            from seekrun.errors import RunFailure

            raise RunFailure(f"DuckDB could not finish writing the database ({' '.join(str(exc).split())[:300]}): "
                             "what was committed is kept in its write-ahead log; free space and run again") from None


class _Deadline:
    """A node's timeout: when it passes, the query running on that node's cursor is interrupted
    (DuckDB's interrupt: the transaction then rolls back, the last good table stays)."""

    def __init__(self, cur, seconds: float):
        self.fired = False
        self._cur = cur
        self._lock = threading.Lock()
        self._done = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            try:
                self._cur.interrupt()
            except Exception:
                pass

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
