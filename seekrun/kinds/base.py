"""The executor interface shared by every kind, and small SQL helpers.

Each kind lives in its own module under seekrun/kinds/ and provides:

- ``prepare(rec, built, pc)`` (optional, parse time, no duckdb): check the kind's own
  config, add build-relevant facts to the record (e.g. generated SQL, output files,
  extra hashed fields).  Problems go to ``pc.error(key_path, message)``.  Every check that
  needs no data belongs here, not in ``check``.  A node seekrun accepts but cannot build
  sets ``pc.not_executable = "<why>"``.
- ``check(node, ctx)`` (optional, run time, before anything runs): raise
  ``UnsupportedNode`` for what cannot run, or return SQL to syntax-check.
- ``build(node, ctx)`` -> ``BuildResult``: produce the node's outputs.
- ``output_files(node, root)`` (optional): files the node writes; a missing one means
  "output missing".  ``HAS_TABLE = False`` for kinds without a table (exposures).

The scheduler and the rebuilder never change when a kind is added.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


class NodeFailure(Exception):
    """A node could not be built; the message is shown to the user as is.

    ``exit_code``: a process's exit code, when the failure is one (retry.exit_codes and
    continue_on.exit_codes match on it); ``timed_out``: the node ran past its ``timeout``
    (the runner reports "timed out after <timeout>")."""

    timed_out = False

    def __init__(self, *args, exit_code: int | None = None, timed_out: bool | None = None):
        super().__init__(*args)
        self.exit_code = exit_code
        if timed_out is not None:
            self.timed_out = timed_out


class NodeTimedOut(NodeFailure):
    """The node ran longer than its ``timeout:`` (a kind raises it, or NodeFailure(timed_out=True))."""

    timed_out = True


class UnsupportedNode(Exception):
    """The project asks for something this seekrun cannot run (exit 2)."""


class BadInput(Exception):
    """An input the node reads is unusable (empty file, bad header...): refused before the run (exit 2)."""


@dataclass
class BuildResult:
    rows: int | None = None
    warnings: list[str] = field(default_factory=list)
    data_hash: str | None = None  # a node flagged ``reread``: the content hash of what it read
    # (a ``content_output`` node, e.g. a task: the content hash of what it wrote and printed)
    value: str | None = None  # a task's captured output (``output: NAME``)
    exit_code: int | None = None  # a task's exit code
    # where its table now lives, set by the engine that built it, kept in its state record:
    # {"engine": "duckdb", "table": "kind.name"} or {"engine": "spark", "path": <its warehouse folder>}
    location: dict | None = None


@dataclass
class PrepareContext:
    """Parse-time helper handed to a kind's prepare()."""
    node_id: str
    root: Path
    error: Callable[[tuple, str], None]  # (key path in the YAML, message)
    fields: dict[str, Any] = field(default_factory=dict)  # extra build fields to hash
    line: Callable[[tuple], int | None] = lambda path: None  # line of a key path in the YAML
    text_line: Callable[[tuple], int | None] | None = None  # file line of line 1 of a text value
    # set to why, for a node seekrun accepts but cannot build (an api exposure): parse warns
    # "<id>: not executable by seekrun: <why>", run skips it (and its dependents) and builds the rest
    not_executable: str | None = None

    def text_start(self, path: tuple) -> int | None:
        return self.text_line(path) if self.text_line is not None else self.line(path)


@dataclass
class BuildContext:
    """Run-time helper handed to a kind's build(): one per node build, on the worker's cursor."""
    root: Path
    node: dict
    nodes: dict[str, dict]  # the manifest's nodes, e.g. to read an input's config
    cur: Any = None  # the worker's DuckDB cursor
    duckdb: Any = None  # the duckdb module
    secrets: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The build runs in one transaction (DuckDBEngine.build): work that must wait for its
    # commit (renaming a finished file into place) goes here; on_abort undoes what a failed
    # build left (temp files).
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    on_abort: list[Callable[[], None]] = field(default_factory=list)
    # called with (relative path, finished temp file) just before a file outside the database is
    # put in place (the runner journals its content: see StateStore.claim_hash)
    on_file: Callable[[str, Path], None] | None = None
    commit_on_failure: bool = False  # e.g. a failing rule still writes its results table
    # a run's context, for kinds that need it (tasks): the run id, the state records of the
    # node's inputs (their status, exit code and captured value), the process runner, the timeout
    run_id: str = ""
    upstream: dict[str, dict] = field(default_factory=dict)
    processes: Any = None
    # the node's ``timeout:`` in seconds (None: none). SQL on ``cur`` is interrupted by the engine
    # when it passes; a kind that runs something else (a process) enforces it itself and raises
    # NodeTimedOut (or NodeFailure(timed_out=True)) for the same "timed out after ..." result.
    timeout: float | None = None

    @property
    def table(self) -> str:
        return table_name(self.node["id"])

    def input_table(self, i: int = 0) -> str:
        inputs = self.node["inputs"]
        if i >= len(inputs):
            raise NodeFailure(f"{self.node['id']} needs at least {i + 1} input(s)")
        return table_name(inputs[i])

    def sql(self, text: str) -> str:
        """SQL with env_var() values put in: as data inside quotes (quotes doubled), as written
        outside them.  The values are remembered, so messages can be redacted."""
        return self._fill(text, True)

    def value(self, text: str) -> str:
        """A config value (a reader param, a Python node's config) with env_var() values put in."""
        return self._fill(text, False)

    def _fill(self, text: str, sql: bool) -> str:
        from seekrun.parser.templating import TemplateError, substitute_env

        try:
            from seekrun.params import env_of

            text, secrets = substitute_env(text, sql=sql, env=env_of(self.root))
        except TemplateError as exc:
            raise NodeFailure(str(exc)) from None
        self.secrets.extend(secrets)
        if "__seekrun_output_" in text and self.node.get("consumes"):
            text = self._outputs(text)
        return text

    def _outputs(self, text: str) -> str:
        """{{ output('NAME') }}: the value the input task that captures NAME printed, as raw text
        (empty when that task failed and its continue_on let this node run)."""
        from seekrun.parser.templating import OUTPUT_MARKER

        consumes = self.node["consumes"]

        def one(m):
            producer = consumes.get(m.group(1))
            if producer is None:
                return m.group(0)
            return str((self.upstream.get(producer) or {}).get("value") or "")
        return OUTPUT_MARKER.sub(one, text)

    def redact(self, message: str) -> str:
        from seekrun.parser.templating import redact

        return redact(message, self.secrets)

    def execute(self, sql: str, params: list | None = None):
        try:
            return self.cur.execute(self.sql(sql), params) if params else self.cur.execute(self.sql(sql))
        except self.duckdb.Error as exc:
            raise NodeFailure(self.redact(str(exc).strip())) from None

    def materialize(self, select_sql: str, table: str | None = None) -> int | None:
        """CREATE OR REPLACE the node's table from a SELECT, in one transaction (build, then swap)."""
        row = self.execute(f"CREATE OR REPLACE TABLE {table or self.table} AS\n{select_sql}\n").fetchone()
        return int(row[0]) if row else None

    def python_context(self, seeknal: bool = False):
        """What a Python node's function is called with, on this engine."""
        from seekrun.engines.python_context import PythonContext

        return PythonContext(self, seeknal)

    def store_python(self, result, func: str) -> BuildResult:
        """A Python node's returned table, stored as the node's table on this engine."""
        from seekrun.engines.python_node import store

        return store(result, self, func)

    def write_rows(self, columns: list[tuple[str, str]], rows: list[tuple]) -> int:
        """The node's table from rows of Python values, its columns (name, DuckDB type) cast as
        given; values are bound as parameters, never made SQL text (a rule's results, a profile)."""
        names = [f"c{i}" for i in range(len(columns))]
        select = ", ".join(f"CAST({n} AS {t}) AS {quote_ident(c)}" for n, (c, t) in zip(names, columns))
        if rows:
            one = "(" + ", ".join("?" * len(columns)) + ")"
            src = f"(VALUES {', '.join([one] * len(rows))}) AS r({', '.join(names)})"
        else:
            src = f"(SELECT {', '.join(f'NULL AS {n}' for n in names)}) AS r WHERE false"
        self.execute(f"CREATE OR REPLACE TABLE {self.table} AS\nSELECT {select}\nFROM {src}",
                     [x for row in rows for x in row] or None)
        return len(rows)

    def materialize_union(self, ids: list[str]) -> int | None:
        """The node's table as the union of those nodes' tables, columns matched by name (a
        column one lacks is NULL there)."""
        return self.materialize("\nUNION ALL BY NAME\n".join(f"SELECT * FROM {table_name(i)}" for i in ids))

    def describes(self, sql: str) -> bool:
        """Whether the query's columns can be known (DESCRIBE of it succeeds), without touching
        the build's transaction."""
        probe = self.cur.cursor()
        try:
            probe.execute(f"DESCRIBE {self.sql(sql)}")
            return True
        except self.duckdb.Error:
            return False
        finally:
            probe.close()

    def valid_type(self, dtype: str) -> bool:
        """Whether ``dtype`` is a DuckDB type and nothing else (what may go into a CAST)."""
        try:
            self.cur.sqltype(dtype)
            return True
        except self.duckdb.Error:
            return False

    def copy_table(self, path, options: str) -> None:
        """Write the node's built table to a file (or a partitioned folder) by DuckDB's COPY."""
        self.execute(f"COPY (SELECT * FROM {self.table}) TO {sql_literal(str(path))} ({options})")

    def read_source(self, node: dict) -> BuildResult:
        """A file source's table from its files (seekrun/kinds/source.py)."""
        from seekrun.kinds.source import read_with_duckdb

        return read_with_duckdb(node, self)

    def profile_column(self, source: str, name: str, typ: str, top: int, now: float) -> list[tuple]:
        """A profile's rows for one column of ``source`` (seekrun/kinds/profile.py says which)."""
        from seekrun.kinds.profile import column_rows

        return column_rows(self, source, name, typ, top, now)

    def fail(self, message: str) -> None:
        raise NodeFailure(self.redact(message))

    def warn(self, message: str) -> None:
        self.warnings.append(self.redact(message))


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_name(node_id: str) -> str:
    kind, _, name = node_id.partition(".")
    return f"{quote_ident(kind)}.{quote_ident(name)}"


def sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{sql_literal(str(k))}: {sql_literal(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("'", "''") + "'"


def build_config(node: dict) -> dict:
    """The config with seeknal/common templates rendered (env_var placeholders stay)."""
    return node.get("build_config") or node["config"]


def inside(root: Path, path: Path) -> bool:
    import os

    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
