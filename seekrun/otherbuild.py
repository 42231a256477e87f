"""Another build's target/ (``--state DIR``): production's, downloaded as a CI artifact.

It holds that build's manifest.json (or seekrun's own copy, state/manifest.json), its state
(state/execution_state.json), its last run_results.json and, optionally, its DuckDB database
(``seekrun.duckdb`` in it, the file its manifest names, or ``--state-db FILE``).  Everything is
read, never written: the database is opened read-only, and only when a command needs it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError


class OtherBuild:
    def __init__(self, path: Path | str, database: Path | str | None = None, given: str | None = None):
        self.dir = Path(path)
        self.given = given or str(path)  # as the user wrote it: what messages and run_results say
        if not self.dir.is_dir():
            raise ProjectError([Diagnostic(self.given, None, "--state: no such folder: give another build's "
                                           "target/ folder (its manifest.json, state/ and database)")])
        from seekrun.manifest import OWN_COPY, Manifest, SeeknalManifest

        found = [p for p in (self.dir / "manifest.json", self.dir / OWN_COPY) if p.is_file()]
        self.manifest = None
        for path in found:
            try:
                self.manifest = Manifest.load(path)
                break
            except SeeknalManifest:
                continue  # Seeknal wrote target/manifest.json: seekrun's own copy is in state/
        if self.manifest is None:
            raise ProjectError([Diagnostic(self.given, None, "--state: no seekrun manifest.json in this folder: "
                                           "give the target/ folder of a build seekrun made (after `seekrun run`)")])
        self._database = Path(database) if database else None
        self._records: dict | None = None
        self._results: dict | None = None

    @property
    def nodes(self) -> dict[str, dict]:
        return self.manifest.nodes

    def records(self) -> dict[str, dict]:
        """What that build built: node id -> trace (its state, read-only)."""
        if self._records is None:
            from seekrun.state import StateStore

            store = StateStore(self.dir / "state")
            self._records = store.load(repair=False) if (self.dir / "state").is_dir() else {}
            self.meta = store.meta
        return self._records

    meta: dict = {}  # its state's meta: the tables its last run left, with their build hashes

    def recorded_tables(self) -> dict[str, str | None] | None:
        """The tables that build's last run left in its database (id -> stamp), as its state says."""
        self.records()
        known = self.meta.get("database") if isinstance(self.meta, dict) else None
        return dict(known["tables"]) if isinstance(known, dict) and isinstance(known.get("tables"), dict) else None

    def results(self) -> dict[str, dict] | None:
        """Its last run_results.json: node id -> result, or None if it has none."""
        if self._results is None:
            self._results = read_results(self.dir / "run_results.json")
        return self._results

    def database(self) -> Path:
        """That build's database file; a clear error if there is none."""
        for path in self._database_candidates():
            if path.is_file():
                return path
        tried = ", ".join(str(p) for p in self._database_candidates())
        raise ProjectError([Diagnostic(self.given, None, f"--state: no database in this build (looked for {tried}): "
                                       "restore its database too, or name it with --state-db FILE")])

    def _database_candidates(self) -> list[Path]:
        if self._database is not None:
            return [self._database]
        out = [self.dir / "seekrun.duckdb"]
        db = self.manifest.metadata.get("database")
        if isinstance(db, str) and db:
            if os.path.isabs(db):
                out.append(Path(db))
            elif db.startswith("target/"):  # relative to that project: inside its target/, which this is
                out.insert(0, self.dir / db[len("target/"):])
        return list(dict.fromkeys(out))

    def env_key_file(self) -> Path:
        from seekrun.parser.templating import ENV_KEY_FILE

        return self.dir / "state" / ENV_KEY_FILE


def read_results(path: Path) -> dict[str, dict] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    rows = data.get("results") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        return None
    return {r["node_id"]: r for r in rows if isinstance(r, dict) and isinstance(r.get("node_id"), str)}


def borrow_env_key(project, other: OtherBuild) -> str | None:
    """Env var values are hashed with a key of the build's own (target/state/env_key), so two
    builds' hashes of the same value differ unless they share it.  A project with no key yet (a
    fresh CI checkout) parses with the other build's (and keeps it, once a run writes), so nodes
    reading env vars compare fairly; one with a different key gets a warning instead (returned)."""
    from seekrun.parser.templating import read_env_key

    theirs = read_env_key(other.env_key_file().parent)
    if theirs is None:
        return None
    ours = read_env_key(project.state_dir)
    if ours is None:
        project.borrowed_env_key = theirs
        return None
    if ours != theirs:
        return (f"this build and {other.given} hash env var values with different keys, so a node that reads "
                f"env vars counts as modified: copy {other.env_key_file()} into target/state/ to compare them")
    return None
