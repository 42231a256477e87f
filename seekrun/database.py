"""The project's database as the runner sees it: which node tables it holds and what each was
built from (the table comments), whose database it is, and a stat shortcut.

- **Shortcut.** After a run the database file's stat signature and its tables (with their
  build hashes) are recorded in the state; while the file (and its WAL) are exactly as that run
  left them, they are trusted without opening DuckDB, so a no-op run costs a stat.  The
  signature is only recorded once the file's mtime is in a past clock tick, so a later write
  can never leave the same signature behind.
- **Identity.** The database holds a random id, the project's folder and name
  (``_seekrun.identity``), and the state records the id.  A database outside the project
  (``allow_external_database: true``) must be this project's, or be new: two projects sharing
  one file would drop and overwrite each other's tables.  A database that is not the one the
  last run left (replaced, or an older copy put back) is said so, and every table is checked
  against its recorded build by its comment.
"""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError
from seekrun.hashing import file_sig

TICK_SECONDS = 0.02  # longer than a file-system timestamp tick (1-10 ms on Linux)
MAGIC = b"DUCK"  # a DuckDB file's bytes 8-11


class Database:
    def __init__(self, path: Path, root: Path, project_name: str, external: bool, rel: str):
        self.path, self.root, self.project_name, self.external, self.rel = path, root, project_name, external, rel
        self.identity: dict | None = None
        self.replaced = False  # not the database the last run left

    def signature(self) -> list | None:
        """The database file's stat signature; None while a WAL holds changes not in the file."""
        if os.path.exists(str(self.path) + ".wal"):
            return None
        return file_sig(self.path)

    def known_tables(self, meta: dict) -> dict[str, str | None] | None:
        """The tables the last run left, if the file is exactly as it left it; else None."""
        known = meta.get("database")
        if (isinstance(known, dict) and known.get("sig") is not None and isinstance(known.get("tables"), dict)
                and known.get("sig") == self.signature()):
            self.identity = {"id": known.get("id")} if isinstance(known.get("id"), str) else None
            return dict(known["tables"])
        return None

    def committed_tables(self, records: dict, meta: dict) -> dict[str, str | None]:
        """The tables as the state says they are, without opening DuckDB (another run holds
        it): those the last finished run left, and those the run in progress has built so far."""
        known = meta.get("database")
        tables = dict(known["tables"]) if isinstance(known, dict) and isinstance(known.get("tables"), dict) else {}
        for nid, rec in records.items():
            if rec.get("status") == "success" and rec.get("output_hash"):
                tables[nid] = rec["output_hash"]
        return tables

    def check_file(self) -> None:
        """An existing database file must be a DuckDB file: DuckDB would open a CSV or JSON file
        as a database in memory, and a build would then keep nothing."""
        try:
            with open(self.path, "rb") as f:
                head = f.read(12)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise ProjectError([Diagnostic(self.rel, None, f"cannot read the database ({exc.strerror}): fix its "
                                                           "permissions")]) from None
        if head and head[8:12] != MAGIC:
            raise ProjectError([Diagnostic(self.rel, None, "is not a DuckDB database file: move it away (seekrun "
                                                           "then builds a new database there), or point "
                                                           "'database:' at another file")])

    def inspect(self, engine_factory, meta: dict) -> dict[str, str | None]:
        """Tables and their build hashes (shortcut, or read without writing), after checking
        the database is this project's."""
        tables = self.known_tables(meta)
        if tables is not None:
            return tables
        self.check_file()
        if not self.path.exists():
            return {}
        engine = engine_factory(read_only=True)
        try:
            tables = engine.existing_outputs()
            self.identity = engine.identity() if hasattr(engine, "identity") else None
        finally:
            engine.close()
        self.check_owner(tables, meta)
        return tables

    def check_owner(self, tables: dict, meta: dict) -> None:
        ident, recorded = self.identity, meta.get("database") if isinstance(meta.get("database"), dict) else {}
        if ident is None:
            if self.external and tables:
                raise ProjectError([Diagnostic(self.rel, None,
                    f"database {self.path} holds tables but was not made by seekrun for this project: "
                    "point 'database:' at a file of its own")])
            return
        root = ident.get("project_root")
        if self.external and root is not None and root != str(self.root):
            raise ProjectError([Diagnostic(self.rel, None,
                f"database {self.path} belongs to the project at {root}: two projects sharing a database "
                "overwrite each other's tables; give each project its own 'database:'")])
        if recorded.get("id") and ident.get("id") and recorded["id"] != ident["id"]:
            self.replaced = True

    def adopt(self, engine) -> None:
        """Give a database without an identity this project's (when the run first writes)."""
        if hasattr(engine, "identity") and engine.identity() is None:
            engine.set_identity({"id": uuid.uuid4().hex, "project_root": str(self.root),
                                 "project_name": self.project_name,
                                 "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        if hasattr(engine, "identity"):
            self.identity = engine.identity()

    def record(self, meta: dict, tables: dict[str, str | None] | None) -> None:
        """Remember the tables (with their build hashes) and the file's signature, after close."""
        if tables is None:
            meta["database"] = None
            return
        sig = self.signature()
        if sig is not None:
            # never record a signature while its mtime tick is still current: a write later in
            # the same tick would leave the signature unchanged
            age = time.time() - os.stat(self.path).st_mtime
            if 0 <= age < TICK_SECONDS:
                time.sleep(TICK_SECONDS - age)
        ident = (self.identity or {}).get("id")
        meta["database"] = {"sig": sig, "tables": dict(sorted(tables.items())), "id": ident}


def open_engine(db_path: Path, root: Path, rel: str, read_only: bool = False, allow: tuple = ()):
    """The project's DuckDB engine; a database that cannot be opened is a one-line project error."""
    from seekrun.engines.duckdb import DuckDBEngine

    try:
        return DuckDBEngine(db_path, read_only=read_only, root=root, allow=allow)
    except Exception as exc:  # not a DuckDB file, another version's file, held by another program
        from seekrun.secrets import redact

        text = " ".join(redact(str(exc)).split())
        if "lock" in text.lower():
            from seekrun.lock import describe_process
            import re

            held = re.search(r"\(PID (\d+)\)", text)
            who = describe_process(held.group(1)) if held else "a program"
            raise ProjectError([Diagnostic(rel, None,
                f"the database is open in another program: {who} holds DuckDB's lock on it; close the "
                "database there, or stop that program or wait for it to finish, then run again")]) from None
        if "permission denied" in text.lower():
            hint = "fix its permissions: seekrun reads and writes it"
        else:
            hint = "it is not a database this DuckDB can open: move it away to rebuild from scratch"
        raise ProjectError([Diagnostic(rel, None, f"cannot open the database ({text[:200]}): {hint}")]) from None
