"""Running the planned nodes: the scheduler's callbacks (execute on a worker; on_start,
on_done, on_skip under the scheduler's lock).

- A node is built from its inputs' outputs as recorded when it starts (a parent that just
  ran has recorded its own by then), and its output hash is worked out from those: what the
  state says a table was built from is what it was built from, even when a parent's data
  turned out not to be the hashed data.
- A node planned cached against a re-read input's last output (``provisional``) is decided
  again when it starts, against what its inputs recorded by then: still cached, it is not
  built and keeps its record; else it is built, with the reason (a node left out by a filter
  is not built: it is skipped, still to run, and keeps its record).
- Retries follow the node's ``retry:`` policy, else ``--retry N``'s: ``retry_base_delay * 2**k``
  seconds, at most ``retry_max_delay`` a wait (seekrun/controls.py).  A policy with
  ``exit_codes`` retries only failures with one of those exit codes.  The waits are recorded.
- A node with ``preconditions`` checks them first (seekrun/conditions.py): one that does not
  hold skips the node (its record stays: it still needs to run).
- A node that runs past its ``timeout`` fails "timed out after <timeout>" (the engine
  interrupts its SQL; a kind running a process raises NodeFailure(timed_out=True) itself).
- Every message that is shown or stored is redacted first (seekrun/secrets.py).
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from seekrun import secrets
from seekrun.controls import covers, format_duration, retry_wait
from seekrun.events import EventSink, NodeRetrying, NodeStarted, utc_ts
from seekrun.hashing import data_sigs, hash_parts, stat_sig
from seekrun.rebuilder import Reason, content_output_hash, output_hash, trace
from seekrun.results import (FILTERED, SKIP_AFTER_FAILURE, SKIP_DEFERRED, SKIP_FILTERED, SKIP_PRECONDITION,
                             SKIP_UPSTREAM_SKIPPED, NodeStatus)
from seekrun.scheduler import Outcome


@dataclass
class Built:
    """What one node's build gave (the value of its Outcome)."""
    rows: int | None
    duration: float
    attempts: int
    error: str | None
    warnings: list[str] = field(default_factory=list)
    inputs: dict = field(default_factory=dict)  # input -> its output hash when this node started
    output: str | None = None  # this build's output hash (its table's stamp)
    read_sigs: dict | None = None  # data files and code files read: stat after the build (None: unstable)
    data_hash: str | None = None  # a re-read node: the content hash of what it read
    value: str | None = None  # a task's captured output
    retry_waits: list = field(default_factory=list)  # seconds waited before each retry
    exit_code: int | None = None  # a failure's (or a task's) exit code, if it had one
    unmet: str | None = None  # skipped: the precondition that did not hold
    outputs: dict | None = None  # key=value lines a step wrote to $DAG_RUN_OUTPUT_FILE
    log: str | None = None  # a task's log file (${step.stdout})
    detail: str | None = None  # e.g. a dag node's "child: 2 ran, 3 cached"
    instances: dict | None = None  # a fan-out: instance key -> status (seekrun/fanout.py)
    location: dict | None = None  # where its table lives, as its engine says (BuildResult.location)


class NodeRunner:
    def __init__(self, runner, engine, store, results, retry: int, file_cache, provisional=()):
        self.runner, self.engine, self.store, self.results = runner, engine, store, results
        self.provisional = set(provisional)  # rechecked when they start (see above)
        self.still_cached: set[str] = set()  # provisional nodes decided not to be built here
        self.started: set[str] = set()
        self.manifest, self.root, self.reporter = runner.manifest, runner.root, runner.reporter
        self.retry, self.file_cache = retry, file_cache
        self.stop = threading.Event()  # set on Ctrl-C: no retries, no new attempts
        self._in_use: set[str] | None = None
        self.kept: list[str] = []  # files seekrun no longer writes but kept: changed by hand
        self.run_id = getattr(runner, "run_id", "")
        self.events = getattr(runner, "events", None) or EventSink(self.run_id)  # seekrun/events.py
        self.processes = None  # the process runner, made when the first task starts
        self.full = False  # --full: a fan-out reruns every instance too
        self._lock = threading.Lock()
        from seekrun.conditions import Commands

        self.commands = Commands()  # precondition commands running now

    def continue_on(self, nid: str, outcome: Outcome) -> bool:
        """The scheduler's policy: whether nid's continue_on covers this failure or skip."""
        policy = self.manifest.nodes[nid].get("continue_on")
        if not policy:
            return False
        value = outcome.value
        return covers(policy, outcome.skipped, getattr(value, "exit_code", None))

    def retry_policy(self, node: dict) -> dict:
        return node.get("retry") or {"limit": self.retry, "interval": self.runner.retry_base_delay, "backoff": 2.0,
                                     "max_interval": self.runner.retry_max_delay, "exit_codes": None}

    # ---- on a worker ------------------------------------------------------------------
    def execute(self, nid: str) -> Outcome:
        if nid in self.still_cached:
            return Outcome(True, None)
        node = self.manifest.nodes[nid]
        parents = self.manifest.parents(nid)
        inputs = {p: self.input_hash(p) for p in parents}
        for p in parents:  # a parent that failed or was skipped, and whose continue_on let this run:
            res = self.results.get(p)  # built from what it left (and its status), not from its build
            if res is not None and (res.status is NodeStatus.FAILED or
                                    (res.status is NodeStatus.SKIPPED and res.skip not in (SKIP_FILTERED, SKIP_DEFERRED))):
                inputs[p] = f"{res.status.value}:{inputs[p]}"
        out = output_hash(node, [inputs[p] for p in parents])
        reread = bool(node.get("reread"))
        by_content = reread or bool(node.get("content_output"))  # a task: what it wrote and printed
        stamped: list[str] = []
        run = self._run_context(node, parents) if node.get("task") or node.get("consumes") or node.get("fanout") \
            else None

        def stamp(result) -> str:  # a re-read node: its output hash is what it read
            stamped.append(content_output_hash(node, result.data_hash) if result.data_hash
                           else f"unverified-{uuid.uuid4().hex}")  # (a build that did not say)
            return stamped[-1]
        attempts, t0 = 0, time.perf_counter()
        if node.get("preconditions"):
            from seekrun.conditions import unmet
            from seekrun.kinds.base import NodeFailure

            try:
                which = unmet(node, self.root, self.engine, self.commands, run and run.get("upstream"))
            except NodeFailure as exc:
                return Outcome(False, Built(None, time.perf_counter() - t0, 1, secrets.redact(str(exc)), [],
                                            inputs, out))
            if which is not None:
                return Outcome(False, Built(None, time.perf_counter() - t0, 0, f"precondition not met: {which}",
                                            [], inputs, out, unmet=which), skipped=True)
        policy, waits = self.retry_policy(node), []
        while True:
            attempts += 1
            try:
                before = data_sigs(node, self.root)
                built = self.engine.build(node, self.root, self.manifest.nodes, stamp=stamp if by_content else out,
                                          on_file=lambda rel, tmp: self._claim_content(nid, rel, tmp), run=run)
                after = data_sigs(node, self.root)
                got = (stamped[-1] if stamped else stamp(built)) if by_content else out
                return Outcome(True, Built(built.rows, time.perf_counter() - t0, attempts, None,
                                           [secrets.redact(w) for w in built.warnings], inputs, got,
                                           after if after == before else None, built.data_hash if reread else None,
                                           retry_waits=waits, value=built.value, exit_code=built.exit_code,
                                           outputs=getattr(built, "outputs", None), log=getattr(built, "log", None),
                                           detail=getattr(built, "detail", None),
                                           instances=getattr(built, "instances", None),
                                           location=getattr(built, "location", None)))
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # NodeFailure, UnsupportedNode, or an engine bug: only this node fails
                from seekrun.kinds.base import NodeFailure, UnsupportedNode

                error = str(exc) if isinstance(exc, (NodeFailure, UnsupportedNode)) else \
                    f"{exc.__class__.__name__}: {exc}"
                if getattr(exc, "timed_out", False) and not self.stop.is_set():
                    error = f"timed out after {node.get('timeout_text') or format_duration(node.get('timeout') or 0)}"
                error = secrets.redact(error)
                code = getattr(exc, "exit_code", None)
                failed_value = getattr(exc, "value", None)  # a failed child DAG still says what it gave
                fanned = getattr(exc, "instances", None)
                codes = policy.get("exit_codes")
                # a rule's verdict on the data is not transient; with exit_codes, only those are retried
                again = getattr(exc, "retryable", True) and (codes is None or code in codes)
            wait = retry_wait(policy, attempts)
            retrying = again and attempts <= policy["limit"] and not self.stop.is_set()
            if retrying:
                self.events.emit(NodeRetrying(run_id=self.run_id, node_id=nid, attempt=attempts, error=error,
                                              wait=round(wait, 6), exit_code=code), stop=True)
            if not retrying or self.stop.wait(wait):
                return Outcome(False, Built(None, time.perf_counter() - t0, attempts, error, [], inputs, out,
                                            retry_waits=waits, exit_code=code, value=failed_value,
                                            instances=fanned))
            waits.append(round(wait, 6))

    def _run_context(self, node: dict, parents: list[str]) -> dict:
        """What a task sees of its run: the run id, its inputs' status, exit code and captured
        value (empty for one that failed), the process runner, its timeout."""
        upstream = {}
        for p in parents:
            rec = self.store.nodes.get(p) or {}
            status = self.results[p].status.value if p in self.results else rec.get("status")
            # skipped or failed in this run: no value (what it gave last time is not this run's)
            ok = rec.get("status") == "success" and status in ("success", "cached")
            upstream[p] = {"status": "success" if status == "cached" else status,
                           "exit_code": rec.get("exit_code"), "log": rec.get("log") or "",
                           # a failed dag node still says what its child gave ({"status": "failed"...})
                           "value": rec.get("value") if ok else (rec.get("failed_value") or ""),
                           "output_hash": rec.get("output_hash")}  # (a fan-out's instances are built from it)
        with self._lock:
            if self.processes is None:
                from seekrun.engines.process import ProcessRunner

                self.processes = ProcessRunner()
                if self.stop.is_set():
                    self.processes.interrupt()
        return {"run_id": self.run_id, "upstream": upstream, "processes": self.processes,
                "timeout": node.get("timeout"), "target_dir": self.runner.target_dir,
                "dag_name": self.manifest.metadata.get("project_name") or "", "full": self.full}

    def close(self) -> None:
        if self.processes is not None:
            self.processes.close()

    def _claim_content(self, nid: str, rel: str, tmp) -> None:
        """Journal what a claimed file will hold, just before it is put in place: after a kill,
        the file is deleted as a stale claim only if it still holds exactly that."""
        if rel.startswith("target/"):
            return  # seekrun's own folder: no one else's files there
        from seekrun.outputs import content_digest  # a file, or a partitioned folder

        self.store.claim_hash(nid, rel, content_digest(tmp))

    # ---- under the scheduler's lock -----------------------------------------------------
    def on_start(self, nid: str) -> None:
        self.started.add(nid)
        if nid in self.provisional:
            reason = self.recheck(nid)
            if reason is None:
                self.still_cached.add(nid)
                return
            res = self.results[nid]
            res.reason = str(reason)
            item = self.runner.plan_items.get(nid)
            if item is not None and not item.selected:  # left out by the filter: still needs to run
                res.status, res.skip, res.error = NodeStatus.SKIPPED, SKIP_FILTERED, FILTERED
                self.still_cached.add(nid)
                return
            if isinstance(getattr(self.reporter, "total", None), int):
                self.reporter.total += 1
        self.results[nid].status = NodeStatus.RUNNING
        # UTC to the microsecond, under the scheduler's lock: a node's end is stamped before the node
        # that takes its slot starts
        self.results[nid].started_at = utc_ts()
        files = self.manifest.nodes[nid].get("output_files")
        if files and not self.manifest.nodes[nid].get("process_outputs"):  # a task writes its own files
            from seekrun.outputs import mark_written

            self.store.claim(nid, files)
            mark_written(self.root, files)  # survives target/ being deleted
        self.reporter.start(nid)
        self.events.emit(NodeStarted(run_id=self.run_id, node_id=nid, reason=self.results[nid].reason), stop=True)

    def input_hash(self, p: str) -> str | None:
        """The output hash an input holds now: its record's, or (--defer) the other build's it is read from."""
        deferred = self.runner.plan_items.get(p)
        if deferred is not None and deferred.deferred is not None:
            return deferred.deferred
        return (self.store.nodes.get(p) or {}).get("output_hash")

    def recheck(self, nid: str) -> Reason | None:
        """A provisional node, now that its inputs have run: whether what they recorded is still
        what it was built from (everything else was checked by the plan)."""
        recorded = (self.store.nodes.get(nid) or {}).get("inputs") or {}
        for p in self.manifest.parents(nid):
            if recorded.get(p) != self.input_hash(p):
                return Reason("upstream_changed", p)
        return None

    def on_done(self, nid: str, outcome: Outcome) -> None:
        if nid in self.still_cached:
            return  # rechecked and still cached: its record stands
        b: Built = outcome.value
        res, store = self.results[nid], self.store
        res.ended_at = utc_ts()
        res.duration, res.attempts, res.row_count, res.error = b.duration, b.attempts, b.rows, b.error
        res.warnings, res.retry_waits = list(b.warnings), list(b.retry_waits)
        if b.instances is not None:
            res.instances = dict(b.instances)
        node = self.manifest.nodes[nid]
        if not outcome.ok:
            res.continued = self.continue_on(nid, outcome)
        if outcome.skipped:  # a precondition did not hold: its record stays (it still needs to run)
            res.status, res.skip = NodeStatus.SKIPPED, SKIP_PRECONDITION
            self.reporter.result(res)
            self.events.node(res)
            return
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        old = store.nodes.get(nid) or {}
        if outcome.ok:
            res.status = NodeStatus.SUCCESS
            output, data_hash = b.output, "" if b.data_hash is None else b.data_hash
            moved = self._changed_while_read(node, b.read_sigs)
            if moved:
                # files changed while they were read: what the table holds is not known to be
                # built from the hashed bytes, so this node and what is built from it now rebuild
                # next run
                output, data_hash = f"unverified-{uuid.uuid4().hex}", None
                res.warnings.append(f"{', '.join(moved)} changed while {nid} read it: {nid} "
                                    "and what depends on it will be rebuilt on the next run")
            from seekrun.outputs import hashes_after_build

            entry = trace(node, b.inputs, output, hashes_after_build(node, self.root, self.file_cache),
                          data_hash)
            if b.location:
                entry["location"] = b.location
            if node.get("task"):
                entry.update(value=b.value, exit_code=b.exit_code, process_outputs=True)
                entry.pop("failed_value", None)
                if b.outputs:
                    entry["outputs"] = b.outputs
                if b.log:
                    entry["log"] = b.log
            if old.get("output_files") and not old.get("process_outputs"):  # e.g. an exposure whose path changed: the old file goes
                self.remove_files(sorted(set(old["output_files"]) - set(entry.get("output_files", []))), old)
        else:
            res.status = NodeStatus.FAILED
            entry = dict(old)
            entry["error"] = b.error
            if node.get("task"):
                entry["exit_code"] = b.exit_code
                entry["failed_value"] = b.value
        res.detail = b.detail
        if not outcome.ok and res.continued and (node.get("continue_on") or {}).get("mark_success"):
            res.warnings.append(f"failed, marked success by continue_on.mark_success: {b.error}")
            res.status, res.error = NodeStatus.SUCCESS, None  # its record stays failed: it reruns next time
        entry.update(status="failed" if not outcome.ok else res.status.value, duration=round(b.duration, 6),
                     row_count=b.rows,
                     last_run=now, reason=res.reason, warnings=res.warnings)
        store.record(nid, entry)
        self.reporter.result(res)
        self.events.node(res)

    def on_skip(self, nid: str, cause: str) -> None:
        res = self.results[nid]
        if self.results[cause].status is NodeStatus.SKIPPED:
            res.error, res.skip = f"upstream {cause} skipped", SKIP_UPSTREAM_SKIPPED
        else:
            res.error, res.skip = f"upstream {cause} failed", SKIP_AFTER_FAILURE
        res.status = NodeStatus.SKIPPED
        res.continued = self.continue_on(nid, Outcome(False, None, True))
        self.reporter.result(res)
        self.events.node(res)

    def interrupt(self) -> None:
        self.stop.set()
        self.commands.kill()
        self.engine.interrupt()
        if self.processes is not None:
            self.processes.interrupt()

    # ---- helpers ----------------------------------------------------------------------
    def _changed_while_read(self, node: dict, sigs: dict | None) -> list[str]:
        """The files a node read (its data files, its Python code and helpers) that are not
        the bytes hashed at parse: changed during the build (stat before and after differ) or
        since the parse (content hash now, through the file-hash cache, differs)."""
        groups = [(node.get("data_files"), node["hashes"].get("data")),
                  (node.get("live_files"), node["hashes"]["fields"].get("code"))]
        moved: list[str] = []
        for files, recorded in groups:
            if not files:
                continue
            parts: list[str | None] = []
            for rel in files:
                path = self.root / rel
                try:
                    st = os.stat(path)
                    if sigs is None or stat_sig(st) != sigs.get(rel):
                        moved.append(rel)
                        continue
                    parts += [rel, self.file_cache.hash(path, st)]
                except OSError:
                    moved.append(rel)
            if not moved and hash_parts(*parts) != recorded:
                moved.extend(files)
        return list(dict.fromkeys(moved))

    def drop_unbuildable(self, ids: list[str]) -> None:
        """Nodes seekrun cannot execute now (or that read one) lose their build, as a node removed
        from the project does: table, files and state record (a later edit that makes them
        executable again builds them as new)."""
        if not ids:
            return
        from seekrun.outputs import files_in_use

        self._in_use = files_in_use(self.manifest, leaving=set(ids))
        for nid in ids:
            self.reporter.removed(nid, "not executable by seekrun")
            self.engine.drop(nid)
            record = self.store.nodes.get(nid) or {}
            if not record.get("process_outputs"):  # what a task wrote is left where it is
                self.remove_files(record.get("output_files"), record)
            self.store.remove(nid)

    def remove_files(self, files, record: dict | None = None) -> None:
        """Delete files a node wrote and no longer writes; a file changed since seekrun wrote it
        is kept, with a warning."""
        from seekrun.outputs import files_in_use, remove_files

        if not files:
            return
        if self._in_use is None:  # once per run, and only when something is to be deleted
            self._in_use = files_in_use(self.manifest)
        hashes = (record or {}).get("output_hashes")
        kept = remove_files(self.root, files, self._in_use, hashes if isinstance(hashes, dict) else {},
                            self.file_cache)
        if kept:
            self.kept.extend(kept)

