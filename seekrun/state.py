"""Per-node build state (verifying traces) in target/state/.

execution_state.json holds node id -> trace.  While a run is going, each finished
node is appended as one JSON line to execution_state.journal (one write syscall, so
a killed run leaves at most one torn last line, which is ignored; the next append starts
on a new line, so the torn one never swallows it).  At the end of the run the journal is
folded into execution_state.json atomically and removed.  Loading replays the journal, so
a killed run keeps every node that finished.  A record of the wrong shape (a damaged or
hand-edited file) is dropped, with a warning: that node is rebuilt, never half-trusted.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from seekrun import faults
from seekrun.errors import Diagnostic, ProjectError, first_few
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
        self.journal_found = False  # a journal was left: the last run did not finish
        self._aside: tuple[Path, Path] | None = None
        self._lock = threading.Lock()  # claim_hash() comes from a worker, the rest under the scheduler's lock

    def load(self, *, repair: bool = True) -> dict[str, dict]:
        """Read the state and replay the journal. A corrupt file is moved aside (when repair) by
        apply_repairs, when the run starts writing."""
        self.nodes = {}
        if self.path.exists():
            raw = _read(self.path, "the state", "move it away to rebuild everything")
            try:
                data = json.loads(raw)
                if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
                    raise ValueError("not a state object")
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                self._set_aside(self.path, exc, repair)
                data = {"version": STATE_VERSION, "nodes": {}}
            version = data.get("version")
            if isinstance(version, int) and version > STATE_VERSION:
                raise ProjectError([Diagnostic(str(self.path), None,
                    f"state version {version} is newer than this seekrun understands ({STATE_VERSION}): "
                    "upgrade seekrun, or delete target/state to rebuild from scratch")])
            self.nodes = {k: v for k, v in data["nodes"].items()}
            self.meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
        if self.journal_path.exists():
            self._pending = self.journal_found = True
            raw_journal = _read(self.journal_path, "the journal",
                                "remove it (the nodes of the interrupted run it holds then rebuild)")
            for raw in raw_journal.splitlines():
                try:
                    rec = json.loads(raw)
                    node_id = rec["id"]
                    if not isinstance(node_id, str):
                        raise TypeError
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue  # a torn last line from a killed run (or a damaged one)
                if rec.get("removed"):
                    self.nodes.pop(node_id, None)
                elif "claim" in rec and isinstance(rec["claim"], list):
                    self._add_claim(node_id, [f for f in rec["claim"] if isinstance(f, str)])
                elif "claim_hash" in rec and isinstance(rec["claim_hash"], dict):
                    self.claim_hashes().update({f: h for f, h in rec["claim_hash"].items()
                                                if isinstance(f, str) and isinstance(h, str)})
                elif "entry" in rec:
                    self.nodes[node_id] = rec["entry"]
                    self._settle_claim(node_id, rec["entry"])
        bad = sorted(k for k, v in self.nodes.items() if not valid_record(v))
        for k in bad:
            del self.nodes[k]
        if bad:
            many = len(bad) != 1
            self.warnings.append(f"{self.path}: {len(bad)} damaged record{'s' if many else ''} ignored "
                                 f"({first_few(bad)}): "
                                 f"{'those nodes are' if len(bad) != 1 else 'that node is'} rebuilt")
            self._pending = self._pending or repair
        self._loaded_meta = dict(self.meta)
        return self.nodes

    def _set_aside(self, path: Path, exc: Exception, repair: bool) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())  # UTC, as every time seekrun writes
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        if repair:
            self._aside = (path, aside)  # moved by apply_repairs, once the run has passed its checks
            where = f"moved to {aside.name}"
        else:
            where = "left in place (dry run)"
        self.warnings.append(f"{path}: state file is corrupt ({exc.__class__.__name__}); {where}; "
                             "running as if there were no state")

    def apply_repairs(self) -> None:
        """Move a corrupt state file aside (found by load): called when the run starts writing,
        so a run refused by its checks leaves target/ as it was."""
        if self._aside is not None:
            os.replace(*self._aside)
            self._aside = None

    # ---- writing -----------------------------------------------------------------
    def _append(self, rec: dict) -> None:
        line = (json.dumps(rec, sort_keys=True, separators=(",", ":"), default=str) + "\n").encode()
        if self._journal_fd is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._journal_fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(self._journal_fd).st_size
            if size and os.pread(self._journal_fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a killed run's torn last line: start on a line of our own
        faults.point("journal")
        os.write(self._journal_fd, line)  # O_APPEND: one atomic append per node
        self._pending = True

    def claims(self) -> dict[str, list[str]]:
        """Files a node was about to write when its run stopped (so they are seekrun's)."""
        claims = self.meta.get("claimed")
        if not isinstance(claims, dict) or not all(
                isinstance(v, list) and all(isinstance(f, str) for f in v) for v in claims.values()):
            claims = self.meta["claimed"] = {}
        return claims

    def claim(self, node_id: str, files: list[str]) -> None:
        """Journal, before a node writes its files, that they are seekrun's: a run killed
        between writing a file and recording the node still knows the file is its own."""
        self._add_claim(node_id, files)
        self._append({"id": node_id, "claim": list(files)})

    def claim_hashes(self) -> dict[str, str]:
        """The content of each claimed file as the killed build wrote it (journaled just before
        the file was put in place): a claimed file is deleted only if it still holds that."""
        hashes = self.meta.get("claim_hashes")
        if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
            hashes = self.meta["claim_hashes"] = {}
        return hashes

    def claim_hash(self, node_id: str, rel: str, digest: str) -> None:
        """Journal the content of a claimed file just before it is put in place (from a worker)."""
        with self._lock:
            self.claim_hashes()[rel] = digest
            self._append({"id": node_id, "claim_hash": {rel: digest}})

    def record(self, node_id: str, entry: dict) -> None:
        self.nodes[node_id] = entry
        self._settle_claim(node_id, entry)
        self._append({"id": node_id, "entry": entry})

    def _add_claim(self, node_id: str, files: list[str]) -> None:
        claims = self.claims()
        claims[node_id] = list(dict.fromkeys([*claims.get(node_id, []), *files]))

    def _settle_claim(self, node_id: str, entry) -> None:
        """A successful build records the files it wrote: those need no claim any more (a file
        an earlier, killed build of the node wrote elsewhere keeps its claim; see stale_claims)."""
        claims = self.claims()
        if isinstance(entry, dict) and entry.get("status") == "success" and node_id in claims:
            written = set(entry.get("output_files") or [])
            left = [f for f in claims[node_id] if f not in written]
            for f in written:
                self.claim_hashes().pop(f, None)
            if left:
                claims[node_id] = left
            else:
                del claims[node_id]

    def stale_claims(self, outputs: dict[str, list[str]], in_use: set[str]) -> list[str]:
        """Claimed files no node writes any more (a killed build wrote them for a path its node
        no longer has, or the node is gone): their claims are dropped, and they are returned,
        to be deleted.  A claimed file that its node (or another node) still writes keeps its
        claim: it is seekrun's, so a node may write over it."""
        stale: list[str] = []
        claims = self.claims()
        for node_id, files in list(claims.items()):
            keep = [f for f in files if f in outputs.get(node_id, ()) or f in in_use]
            stale += [f for f in files if f not in keep]
            if not keep:
                del claims[node_id]
            elif keep != files:
                claims[node_id] = keep
        return stale

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
        faults.point("state_fold")
        atomic_write_json(self.path, {"version": STATE_VERSION, "meta": self.meta, "nodes": self.nodes},
                          indent=None)
        faults.point("state_folded")
        self.journal_path.unlink(missing_ok=True)
        self._pending = False

    def close(self) -> None:
        if self._journal_fd is not None:
            os.close(self._journal_fd)
            self._journal_fd = None


def _read(path: Path, what: str, otherwise: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ProjectError([Diagnostic(str(path), None, f"cannot read {what} ({exc.strerror or exc}): fix its "
                                                        f"permissions, or {otherwise}")]) from None


_OPTIONAL_STR = (str, type(None))


def _shallow(entry: dict) -> bool:
    """Whether a record nests no deeper than seekrun's own (8 levels), looking deeper only
    under the few values that are containers (a trace is mostly strings and numbers)."""
    from seekrun.fsutil import too_deep

    for value in entry.values():
        items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        for item in items:
            if isinstance(item, (dict, list)) and too_deep(item, 6):
                return False
    return True


def valid_record(entry) -> bool:
    """Whether a trace has the shape seekrun writes (anything else is ignored and rebuilt)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("status"), str):
        return False
    if not _shallow(entry):  # a trace is shallow; a deep one is not seekrun's (and would crash a dump)
        return False
    if not isinstance(entry.get("config_hash"), _OPTIONAL_STR) or not isinstance(entry.get("output_hash"), _OPTIONAL_STR):
        return False
    if not isinstance(entry.get("data_hash"), _OPTIONAL_STR):
        return False
    fields, inputs = entry.get("fields", {}), entry.get("inputs", {})
    if not isinstance(fields, dict) or not isinstance(inputs, dict):
        return False
    if not all(isinstance(v, _OPTIONAL_STR) for v in inputs.values()):
        return False
    files, hashes = entry.get("output_files", []), entry.get("output_hashes", {})
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return False
    return isinstance(hashes, dict) and all(isinstance(v, str) for v in hashes.values())
