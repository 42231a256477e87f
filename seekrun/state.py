"""Per-node build state (verifying traces) in target/state/.

execution_state.json holds node id -> trace.  While a run is going, each finished
node is appended as one JSON line to execution_state.journal (one write syscall, so
a killed run leaves at most one torn last line, which is ignored).  At the end of
the run the journal is folded into execution_state.json atomically and removed.
Loading replays the journal, so a killed run keeps every node that finished.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError
from seekrun.fsutil import atomic_write_json

STATE_VERSION = 1
STATE_FILE = "execution_state.json"
JOURNAL_FILE = "execution_state.journal"


class StateStore:
    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir)
        self.path = self.dir / STATE_FILE
        self.journal_path = self.dir / JOURNAL_FILE
        self.nodes: dict[str, dict] = {}
        self.meta: dict = {}  # e.g. the database file's stat after the last run
        self.warnings: list[str] = []
        self._journal_fd: int | None = None
        self._pending = False
        self._loaded_meta: dict = {}

    def load(self, *, repair: bool = True) -> dict[str, dict]:
        """Read the state and replay the journal. A corrupt file is moved aside (when repair)."""
        self.nodes = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_bytes())
                if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
                    raise ValueError("not a state object")
            except (ValueError, UnicodeDecodeError) as exc:
                self._set_aside(self.path, exc, repair)
                data = {"version": STATE_VERSION, "nodes": {}}
            version = data.get("version")
            if isinstance(version, int) and version > STATE_VERSION:
                raise ProjectError([Diagnostic(str(self.path), None,
                    f"state version {version} is newer than this seekrun understands ({STATE_VERSION}): "
                    "upgrade seekrun, or delete target/state to rebuild from scratch")])
            self.nodes = {k: v for k, v in data["nodes"].items() if isinstance(v, dict)}
            self.meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        if self.journal_path.exists():
            self._pending = True
            for raw in self.journal_path.read_bytes().splitlines():
                try:
                    rec = json.loads(raw)
                    node_id = rec["id"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line from a killed run
                if rec.get("removed"):
                    self.nodes.pop(node_id, None)
                elif isinstance(rec.get("entry"), dict):
                    self.nodes[node_id] = rec["entry"]
        self._loaded_meta = dict(self.meta)
        return self.nodes

    def _set_aside(self, path: Path, exc: Exception, repair: bool) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        if repair:
            os.replace(path, aside)
            where = f"moved to {aside.name}"
        else:
            where = "left in place (dry run)"
        self.warnings.append(f"{path}: state file is corrupt ({exc.__class__.__name__}); {where}; "
                             "running as if there were no state")

    # ---- writing -----------------------------------------------------------------
    def _append(self, rec: dict) -> None:
        if self._journal_fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._journal_fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        line = (json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
        os.write(self._journal_fd, line)  # O_APPEND: one atomic append per node
        self._pending = True

    def record(self, node_id: str, entry: dict) -> None:
        self.nodes[node_id] = entry
        self._append({"id": node_id, "entry": entry})

    def remove(self, node_id: str) -> None:
        if self.nodes.pop(node_id, None) is not None:
            self._append({"id": node_id, "removed": True})

    def compact(self) -> None:
        """Fold the journal into execution_state.json (atomic), then drop the journal."""
        if self._journal_fd is not None:
            os.fsync(self._journal_fd)
            os.close(self._journal_fd)
            self._journal_fd = None
        if not self._pending and self.path.exists() and self.meta == self._loaded_meta:
            return
        atomic_write_json(self.path, {"version": STATE_VERSION, "meta": self.meta, "nodes": self.nodes},
                          indent=None)
        self.journal_path.unlink(missing_ok=True)
        self._pending = False

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None
