"""DAGRunner: plan with the rebuilder, order with the scheduler, build with the engine,
remember with the state store.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
import threading
from typing import Callable, Protocol

from seekrun import faults, history, late
from seekrun.events import EventSink, RunEvents
from seekrun.errors import ProjectError, first_few
from seekrun.manifest import Manifest
from seekrun.database import Database
from seekrun.execute import NodeRunner
from seekrun.outputs import problem
from seekrun.preflight import preflight, preflight_with
from seekrun.rebuilder import PlanItem, plan
from seekrun.planned import (guard_removals, initial_results, mark_undone, maybe_reason, stale_inputs,
                             unbuildable_built, verify_tables, warn_stale_tables)
from seekrun.results import ExecutionSummary, NodeResult
from seekrun.controls import describe_all, format_duration
from seekrun.scheduler import KahnQueue, RunTimedOut, run_queue
from seekrun.selector import context, note_differences, resolve
from seekrun.state import StateStore


class Reporter(Protocol):
    def plan(self, to_run: list[str], total: int, maybe: int = 0, maybe_why: str = "") -> None: ...
    def removed(self, node_id: str, why: str = "removed from the project") -> None: ...
    def start(self, node_id: str) -> None: ...
    def result(self, result: NodeResult) -> None: ...
    def close(self) -> None: ...


class _Quiet:
    def plan(self, to_run, total, maybe=0, maybe_why=""): pass
    def removed(self, node_id, why=""): pass
    def start(self, node_id): pass
    def result(self, result): pass
    def close(self): pass


def _run_all(steps) -> BaseException | None:
    """Run every step; return the first error (the others are dropped: the first says most)."""
    first = None
    for step in steps:
        try:
            step()
        except BaseException as exc:  # noqa: B902 (re-raised by the caller)
            first = first or exc
    return first


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class DAGRunner(RunEvents):
    retry_base_delay = 0.2  # seconds; doubled on each retry
    retry_max_delay = 30.0  # no wait between attempts is longer than this

    def __init__(self, manifest: Manifest, old_manifest: Manifest | None = None,
                 state_dir: Path | str | None = None, *, project_dir: Path | str | None = None,
                 threads: int | None = None, reporter: Reporter | None = None,
                 engine_factory: Callable[[Path], object] | None = None, file_cache=None,
                 spark_session=None):
        self.manifest = manifest
        self.old_manifest = old_manifest
        if project_dir is None:  # the project that holds the loaded manifest, else target/state's
            if getattr(manifest, "path", None) is not None:
                project_dir = manifest.path.parent.parent
            elif state_dir:
                project_dir = Path(state_dir).resolve().parent.parent
            else:
                project_dir = Path.cwd()
        self.root = Path(project_dir).resolve()
        self.state_dir = Path(state_dir) if state_dir else self.root / "target" / "state"
        self.target_dir = self.state_dir.parent  # target/ (a child DAG's: under its parent's target/)
        db = manifest.metadata.get("database") or "target/seekrun.duckdb"
        self.db_path = Path(db) if os.path.isabs(db) else self.root / db
        from seekrun.project import inside

        self.db = Database(self.db_path, self.root, str(manifest.metadata.get("project_name") or self.root.name),
                           not inside(self.root, self.db_path), self._rel(self.db_path))
        from seekrun.parser.pools import default_threads as limits_threads

        self.threads = threads or limits_threads(manifest.metadata, default_threads())
        self.reporter = reporter or _Quiet()
        self.engine_factory = engine_factory
        self.file_cache = file_cache
        self.spark_session = spark_session  # the caller's SparkSession for Spark nodes: used, never stopped
        self.plan_items: dict[str, PlanItem] = {}
        # dry run while another run holds the lock: plan from the recorded state, never open DuckDB
        self.committed_only = False
        self.deferral = None  # --defer (seekrun/defer.py)
        self._cancel = threading.Event()  # cancel(): stop as Ctrl-C does

    # ---- engine --------------------------------------------------------------------
    def _open_engine(self, read_only: bool = False):
        if self.engine_factory is not None:
            return self.engine_factory(self.db_path)
        from seekrun.database import open_engine

        from seekrun.engines.router import wrap  # Spark nodes: their own engine (seekrun/engines/router.py)

        allow = (self.deferral.path.parent,) if self.deferral is not None else ()
        return wrap(open_engine(self.db_path, self.root, self._rel(self.db_path), read_only, allow), self.manifest,
                    self.root, self.target_dir, self.spark_session)

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _hash_cache(self):
        if self.file_cache is None:
            from seekrun.hashing import FileHashCache

            self.file_cache = FileHashCache(self.state_dir / "file_hashes.json")
        return self.file_cache

    # ---- run -----------------------------------------------------------------------
    def run(self, full: bool = False, dry_run: bool = False, node_types=None, nodes=None,
            exclude_tags=None, continue_on_error: bool = False, retry: int = 0, tags=None,
            args: dict | None = None, on_commit: Callable[[], None] | None = None,
            allow_removals: bool = False, on_event: Callable | None = None,
            after_nodes: Callable[[ExecutionSummary], None] | None = None, select=None, exclude=None,
            state=None, defer: bool = False) -> ExecutionSummary:
        """Plan, check, then build. Nothing under target/ is written until the plan has passed
        its checks; ``on_commit`` (e.g. saving the manifest) is called at that point.
        ``on_event`` hears the run's events as they happen (seekrun/events.py); ``after_nodes``
        (the CLI's handlers and notifications) runs once the results are written, before
        run_finished.  ``select``/``exclude``: selectors (seekrun/selector/); ``state``: another
        build (seekrun/otherbuild.py) for state: terms and, with ``defer``, to read from."""
        started = time.perf_counter()
        self.started = time.monotonic()  # the project's timeout counts from here
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.run_id = history.new_run_id()  # sorts by time
        from seekrun.otel import tracing

        tracing, why = tracing()  # SEEKRUN_OTEL=1: spans from the events
        self.events = EventSink(self.run_id, [on_event, tracing])
        self.summary = None
        store = StateStore(self.state_dir)
        records = store.load(repair=not dry_run)
        ctx = context(self.manifest, records, self.target_dir, state)
        selection = resolve(self.manifest, ctx, select=select, exclude=exclude, node_types=node_types, nodes=nodes,
                            tags=tags, exclude_tags=exclude_tags)
        selected = selection.ids
        from seekrun.defer import Deferral

        self.deferral = Deferral(state, self.manifest) if defer else None
        summary = ExecutionSummary(dry_run=dry_run, warnings=list(store.warnings) + ([why] if why else []), full=full,
                                   selected=len(selected) if selection.given else None,
                                   notes=[selection.note] if selection.note else [])
        removed = sorted(nid for nid in records if nid not in self.manifest.nodes)
        engine = None
        writing = False
        tables: dict[str, str | None] | None = None
        node_runner = None
        try:
            if self.committed_only:  # another run holds the database: what the state says it left
                tables = self.db.committed_tables(records, store.meta)
            else:
                tables = self.db.inspect(lambda read_only: self._open_engine(read_only=read_only), store.meta)
                from seekrun.engines.router import overlay

                tables = overlay(self.manifest, self.root, tables)
            if self.db.replaced:
                summary.warnings.append(f"{self._rel(self.db_path)} is not the database the last run left "
                                        "(replaced, or an older copy put back): every table is checked "
                                        "against its recorded build")
            cache = self._hash_cache()
            items = plan(self.manifest, records,
                         lambda nid: problem(self.manifest.nodes[nid], records[nid], tables, self.root, cache),
                         full=full, selected=selected, defer=self.deferral and self.deferral.output_hash)
            self.plan_items = items
            warn_stale_tables(self, items, store, summary)
            faults.point("plan")
            to_run = [nid for nid, it in items.items() if it.runs]
            recheck = [nid for nid, it in items.items() if it.recheck]  # after a re-read input
            deferred = self.deferral.check(items) if self.deferral else []
            stale = stale_inputs(self.manifest, items, to_run)
            summary.warnings += [stale] if stale else []
            results = initial_results(items, state and state.given)
            if state is not None:  # what differs from that build, for the nodes that run
                note_differences(results, ctx, to_run)
            dropped = unbuildable_built(results, records)  # built before, not executable now: they go
            guard_removals(removed, records, allow_removals, dry_run, summary, dropped, self.manifest.nodes)
            # a killed run may have built (and stamped) a table it never recorded, for a node
            # since removed from the project: it goes too (not counted by the removal guard)
            removed = sorted({*removed, *(nid for nid, stamp in tables.items()
                                          if stamp and nid not in self.manifest.nodes and nid not in records)})
            if not dry_run and to_run:
                from seekrun.outputs import overwrite_problems

                damaged = self._rel(self.state_dir / "execution_state.json") if store.warnings else None
                errors = overwrite_problems(self.root, self.manifest, to_run, records, store.claims(), damaged)
                if errors:
                    raise ProjectError(errors)
                # (a new database, made by this opening, in a folder that is there: a plain file
                # this run created, removed again if the checks fail; not through a symlink)
                fresh = not os.path.lexists(self.db_path) and self.db_path.parent.is_dir()
                if self.engine_factory is None and (self.db_path.exists() or fresh) and not os.path.exists(
                        str(self.db_path) + ".wal"):
                    # Check on the database the build will use: opening and closing it
                    # unchanged writes nothing (but a WAL left by a killed run would be
                    # replayed into it, so then the checks use a separate in-memory DuckDB).
                    engine = self._open_engine()
                    try:
                        preflight_with(engine, self.manifest, self.root, to_run)
                    except BaseException:
                        if fresh:
                            engine, made = None, engine
                            _discard_new_database(made, self.db_path)
                        raise
                else:
                    preflight(self.manifest, self.root, to_run)
            summary.results = list(results.values())
            summary.removed_nodes, summary.dropped_nodes = removed, dropped
            if dry_run:
                self._started_event(summary, to_run, full, dry_run)
                late.show_commands(self.manifest, self.root, items, results, records)
                tasks = late.content_nodes(self.manifest)
                for nid in recheck:  # what it reads is known only once it has run
                    results[nid].reason = maybe_reason(results[nid], items[nid].selected, tasks)
                for nid in to_run:  # evaluated only when the node is about to run
                    if self.manifest.nodes[nid].get("preconditions"):
                        results[nid].condition = f"runs if {describe_all(self.manifest.nodes[nid]['preconditions'])}"
                summary.total_duration = time.perf_counter() - started
                self._note_event_error(summary)
                self._finished_event(summary)
                return summary
            writing = True
            store.apply_repairs()
            if on_commit is not None:
                on_commit()
            if store.claims():
                from seekrun.outputs import remove_stale_claims

                kept = remove_stale_claims(self.root, self.manifest, store, self._hash_cache())
                if kept:
                    summary.warnings.append(f"kept {first_few(kept)}: a killed run was about to write there and no "
                                            "node writes there now, but it does not hold what seekrun wrote: "
                                            "delete it if it is not yours")
            if getattr(self.manifest, "new_env_key", None) is not None:  # API use without `parse`
                from seekrun.parser.templating import save_env_key

                # where parsing reads it: the project's target/state (and a workflow's or child's, which
                # is this run's state folder)
                save_env_key(self.manifest, self.root / "target" / "state", self.state_dir)
            maybe = [nid for nid in recheck if items[nid].selected]
            self.reporter.plan(to_run, len(items), len(maybe), late.maybe_why(self.manifest, items, maybe))
            self._started_event(summary, to_run, full, dry_run)
            before = {nid: (records.get(nid) or {}).get("output_hash") for nid in to_run
                      if self.manifest.nodes[nid].get("content_output")}
            if to_run or removed or dropped:
                engine = engine or self._open_engine()
                self.db.adopt(engine)
                engine.ensure_schemas({self.manifest.nodes[n]["kind"] for n in to_run})
                if deferred:
                    self.deferral.attach(engine.con, deferred, store)
                node_runner = NodeRunner(self, engine, store, results, retry, cache, recheck)
                node_runner.full = full
                for nid in removed:  # said node by node, before each table goes
                    self.reporter.removed(nid)
                    engine.drop(nid)
                    record = store.nodes.get(nid) or {}
                    if not record.get("process_outputs"):  # what a removed task wrote is left in place
                        node_runner.remove_files(record.get("output_files"), record)
                    store.remove(nid)
                node_runner.drop_unbuildable(dropped)
            if to_run:
                self._execute(node_runner, items, to_run + recheck, results, continue_on_error, summary)
                late.note_cutoffs(before, store, results, summary)
            if node_runner is not None and node_runner.kept:
                summary.warnings.append(f"kept {first_few(node_runner.kept)}: seekrun no longer writes "
                                        f"{'them' if len(node_runner.kept) > 1 else 'it'}, but "
                                        f"{'they were' if len(node_runner.kept) > 1 else 'it was'} changed since "
                                        "seekrun wrote it; delete by hand if it is not needed")
        finally:
            # each step runs even if one before it failed (a full disk): the first error is raised
            steps = []
            final = tables
            if node_runner is not None:
                steps.append(node_runner.close)  # the process reaper leaves
            if engine is not None:
                if self.deferral is not None and self.deferral.made:
                    steps.append(lambda: self.deferral.detach(engine.con))
                if writing:
                    final = verify_tables(self, engine, store, summary, tables or {})
                steps.append(engine.close)
            if writing:
                steps += [lambda: self.db.record(store.meta, final),
                          lambda: self.file_cache is not None and self.file_cache.save(), store.compact]
            steps += [store.close, self.reporter.close]
            failure = _run_all(steps)
            if (sys.exc_info()[1] is not None or failure is not None) and self.events.started:
                self._finished_event(summary, sys.exc_info()[1] or failure)
            if failure is not None and sys.exc_info()[1] is None:
                raise failure
        summary.total_duration = time.perf_counter() - started
        self._note_event_error(summary)
        history.write_results(self.target_dir, self.run_id, summary, started_at, args or {})
        try:
            if after_nodes is not None:
                after_nodes(summary)
        finally:
            if summary.handlers:  # their results too
                history.write_results(self.target_dir, self.run_id, summary, started_at, args or {})
            self._close_run(summary, store.nodes)  # older runs pruned, run_finished
        return summary

    def _execute(self, node_runner: NodeRunner, items, to_run, results, continue_on_error,
                 summary: ExecutionSummary) -> None:
        manifest = self.manifest
        nodes = manifest.nodes
        from seekrun.parser.pools import scheduler_limits

        limits, needs = scheduler_limits(manifest.metadata, nodes, to_run)  # max_active_nodes, pools
        queue = KahnQueue(to_run, {n: manifest.parents(n) for n in to_run},
                          run_always=[n for n in to_run if nodes[n].get("run_always")],
                          continue_on=node_runner.continue_on, limits=limits, needs=needs)
        limit = manifest.metadata.get("timeout")  # the project's timeout: a limit for the whole run
        deadline = self.started + limit if isinstance(limit, (int, float)) else None
        try:
            if self._stopping():
                raise KeyboardInterrupt  # cancelled, or a callback failed, before anything started
            finished = run_queue(queue, node_runner.execute, node_runner.on_start, node_runner.on_done,
                                 node_runner.on_skip, threads=self.threads, continue_on_error=continue_on_error,
                                 on_interrupt=node_runner.interrupt,
                                 on_running=getattr(node_runner.engine, "fit_threads", lambda n: None),
                                 deadline=deadline, cancelled=self._stopping)
        except KeyboardInterrupt:
            summary.interrupted = True
            finished = False
        except RunTimedOut:
            summary.interrupted = True
            summary.timed_out = manifest.metadata.get("timeout_text") or format_duration(limit)
            finished = False
        if not finished:
            mark_undone(self.manifest, node_runner, to_run, results, summary.interrupted,
                        why=f"run timed out after {summary.timed_out}" if summary.timed_out else None)


def _discard_new_database(engine, path: Path) -> None:
    """Close a database this run created for its checks, and remove it (and its WAL), if the
    file there is still the one it made."""
    try:
        made = os.stat(path)
    except OSError:
        made = None
    try:
        engine.close()
    finally:
        for leftover in (path, Path(str(path) + ".wal")):
            try:
                st = os.stat(leftover, follow_symlinks=False)
            except OSError:
                continue
            if leftover != path or (made is not None and (st.st_dev, st.st_ino) == (made.st_dev, made.st_ino)):
                leftover.unlink(missing_ok=True)
