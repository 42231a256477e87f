"""``--defer --state DIR``: build only what is selected; read the unselected inputs it needs
from that other build's database instead of building them here.

- An unselected input that is up to date here is read here (it is what a build would give).
  One that is not (never built here, or stale) is deferred: read from the other build.
- The other database is attached read-only (``ATTACH ... (READ_ONLY)``): nothing is ever
  written to it.  Each deferred input becomes a view ``"kind"."name"`` over its table there,
  made when the run starts building and dropped when it ends; a view left by a killed run is
  dropped the next time the database is opened for writing (its comment marks it).
- The output hash a deferred input stands for is the one its table there was built from (its
  stamp, else that build's record): what reads it records that, so a later plain run here,
  where it is built, rebuilds the readers only if it builds something else.
"""
from __future__ import annotations

from seekrun.errors import Diagnostic, ProjectError, first_few
from seekrun.kinds.base import quote_ident, table_name

ALIAS = "seekrun_state"  # the attached catalog's name
COMMENT = "seekrun-defer:"  # a deferral view's comment: COMMENT + the state folder


class Deferral:
    def __init__(self, other, manifest):
        if other is None:
            from seekrun.errors import UsageError

            raise UsageError([Diagnostic("", None, "--defer needs --state DIR: the build to read unselected inputs from")])
        self.other = other
        self.manifest = manifest
        self.path = other.database()  # a clear error when the build has none
        self._tables: dict[str, str | None] | None = None
        self.made: list[str] = []
        self.dropped: list[str] = []  # stale builds here of deferred nodes, dropped for their views

    def tables(self) -> dict[str, str | None]:
        """The other build's node tables: id -> the hash stamped on it (or None).  As its state
        recorded them after its last run (no need to open its database to plan; ``attach``
        checks the database holds them), else read from the database."""
        if self._tables is None:
            self._tables = self.other.recorded_tables()
        if self._tables is None:
            import duckdb

            try:
                con = duckdb.connect(str(self.path), read_only=True)
            except Exception as exc:  # held for writing by another program, or not a database
                raise ProjectError([Diagnostic(str(self.path), None, "--defer: cannot open the state's database "
                                               f"read-only ({' '.join(str(exc).split())[:200]})")]) from None
            try:
                self._tables = _stamps(con, None)
            finally:
                con.close()
        return self._tables

    def output_hash(self, nid: str) -> str | None:
        """What a deferred nid stands for, or None if it cannot be deferred (no table there,
        a kind without a table)."""
        from seekrun.outputs import has_table

        if not has_table(self.manifest.nodes[nid]["kind"]):
            return None
        tables = self.tables()
        if nid not in tables:
            return None
        record = self.other.records().get(nid) or {}
        return tables[nid] or record.get("output_hash") or f"deferred-{nid}"

    def check(self, items: dict) -> list[str]:
        """The deferred inputs the nodes to run read (the other deferred ones are not: nothing
        reads them).  A selected node that cannot run because an input it needs is neither
        built here nor deferrable is an error, naming that input and the database."""
        needed: set[str] = set()
        missing: list[str] = []
        for nid, it in items.items():
            if it.runs:
                needed.update(p for p in self.manifest.parents(nid) if items[p].deferred is not None)
            elif it.selected and it.reason is not None and it.blocked_by is not None \
                    and not items[it.blocked_by].selected:  # (a selected blocked input says it itself)
                missing.append(f"{it.blocked_by} (read by {nid}{self._why_not(it.blocked_by)})")
        for nid, it in items.items():
            if it.deferred is not None and nid not in needed:
                it.deferred = None  # read by nothing that runs: nothing to say about it
        if missing:
            raise ProjectError([Diagnostic(str(self.path), None,
                f"--defer: {first_few(sorted(set(missing)))} not built here and not readable from the state's "
                f"database {self.path}: select {'them' if len(missing) > 1 else 'it'} too (e.g. -s +NODE), "
                "or build it in that build")])
        return sorted(needed)

    def _why_not(self, nid: str) -> str:
        from seekrun.outputs import has_table

        if not has_table(self.manifest.nodes[nid]["kind"]):
            return f"; a {self.manifest.nodes[nid]['kind']}'s output is not a table"
        if nid not in self.tables():
            return ""
        return "; its table there is not a build of it as it is here"

    def attach(self, con, ids: list[str], store=None) -> None:
        """Make the views, in one transaction (before any node starts), once the database is
        seen to hold each table as planned (with the stamp the plan took from the state)."""
        if not ids:
            return
        con.execute(f"ATTACH '{_literal(str(self.path))}' AS {ALIAS} (READ_ONLY)")
        self.made = []  # (detach() lets go of the database even when a check below fails)
        there = _stamps(con)
        wrong = [nid for nid in ids if nid not in there or (there[nid] or self.tables().get(nid)) !=
                 self.tables().get(nid)]
        if wrong:
            con.execute(f"DETACH {ALIAS}")
            raise ProjectError([Diagnostic(str(self.path), None,
                f"--defer: the state's database {self.path} does not hold {first_few(wrong)} as its state "
                f"({self.other.dir / 'state'}) records: restore the database and the state of the same build")])
        from seekrun.parser.kinds import VIEW_KINDS

        con.execute("BEGIN TRANSACTION")
        try:
            existing = {f"{s}.{t}" for s, t in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()}
            for nid in ids:
                kind = nid.partition(".")[0]
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(kind)}")
                if nid in existing:  # a stale build of it here: it is not what the run reads
                    con.execute(f"DROP TABLE {table_name(nid)}")
                    self.dropped.append(nid)
                elif kind in VIEW_KINDS:
                    con.execute(f"DROP VIEW IF EXISTS {table_name(nid)}")
                con.execute(f"CREATE VIEW {table_name(nid)} AS SELECT * FROM {ALIAS}.{table_name(nid)}")
                con.execute(f"COMMENT ON VIEW {table_name(nid)} IS '{_literal(COMMENT + self.other.given)}'")
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            self.dropped = []
            raise
        self.made = list(ids)
        for nid in self.dropped if store is not None else ():
            store.remove(nid)  # its stale build is gone: it is not built here (the next run builds it as new)

    def detach(self, con) -> None:
        if self.made:
            drop_views(con)
            self.made = []
            con.execute(f"DETACH {ALIAS}")


def _stamps(con, alias: str | None = ALIAS) -> dict[str, str | None]:
    """A database's node tables and views (the attached one's, or with None the connection's
    own): id -> stamp (or None)."""
    from seekrun.engines.duckdb import META_SCHEMA, STAMP

    db = f"'{alias}'" if alias else "current_database()"
    rows = con.execute(f"SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = {db} "
                       f"AND schema_name <> '{META_SCHEMA}' UNION ALL SELECT schema_name, view_name, comment FROM "
                       f"duckdb_views() WHERE database_name = {db} AND NOT internal").fetchall()
    return {f"{s}.{t}": (c[len(STAMP):] if isinstance(c, str) and c.startswith(STAMP) else None) for s, t, c in rows}


def drop_views(con) -> None:
    """Drop every deferral view in the database (this run's, or one a killed run left)."""
    rows = con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = current_database() "
                       f"AND comment LIKE '{COMMENT}%'").fetchall()
    for schema, view in rows:
        con.execute(f"DROP VIEW IF EXISTS {quote_ident(schema)}.{quote_ident(view)}")


def _literal(text: str) -> str:
    return text.replace("'", "''")
