"""DAGRunner: plan with the rebuilder, order with the scheduler, build with the engine,
remember with the state store.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Protocol

from seekrun import __version__
from seekrun.errors import Diagnostic, ProjectError
from seekrun.fsutil import atomic_write_json
from seekrun.manifest import Manifest
from seekrun.rebuilder import PlanItem, plan, trace
from seekrun.results import ExecutionSummary, NodeResult, NodeStatus
from seekrun.scheduler import KahnQueue, Outcome, run_queue
from seekrun.selection import select
from seekrun.state import StateStore


class Reporter(Protocol):
    def plan(self, to_run: list[str], total: int) -> None: ...
    def start(self, node_id: str) -> None: ...
    def result(self, result: NodeResult) -> None: ...
    def close(self) -> None: ...


class _Quiet:
    def plan(self, to_run, total): pass
    def start(self, node_id): pass
    def result(self, result): pass
    def close(self): pass


def default_threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


class DAGRunner:
    retry_base_delay = 0.2  # seconds; doubled on each retry

    def __init__(self, manifest: Manifest, old_manifest: Manifest | None = None,
                 state_dir: Path | str | None = None, *, project_dir: Path | str | None = None,
                 threads: int | None = None, reporter: Reporter | None = None,
                 engine_factory: Callable[[Path], object] | None = None):
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
        db = manifest.metadata.get("database") or "target/seekrun.duckdb"
        self.db_path = Path(db) if os.path.isabs(db) else self.root / db
        self.threads = threads or default_threads()
        self.reporter = reporter or _Quiet()
        self.engine_factory = engine_factory
        self.plan_items: dict[str, PlanItem] = {}
        self._in_use: set[str] | None = None

    # ---- engine --------------------------------------------------------------------
    def _open_engine(self, read_only: bool = False):
        if self.engine_factory is not None:
            return self.engine_factory(self.db_path)
        from seekrun.engine.duckdb_engine import DuckDBEngine

        try:
            return DuckDBEngine(self.db_path, read_only=read_only)
        except Exception as exc:  # not a DuckDB file, another version's file, held by another program
            raise ProjectError([Diagnostic(self._rel(self.db_path), None,
                f"cannot open the database ({' '.join(str(exc).split())[:200]}): close other programs "
                "using it, or delete it to rebuild everything")]) from None

    def _rel(self, path: Path) -> str:
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def _db_signature(self) -> list | None:
        """The database file's stat signature; None while a WAL holds changes not in the file."""
        from seekrun.hashing import file_sig

        if os.path.exists(str(self.db_path) + ".wal"):
            return None
        return file_sig(self.db_path)

    def _existing(self, store: StateStore) -> set[str] | None:
        """Tables known to be in the database without opening it: the set the last run left,
        trusted only while the file (and its WAL) are exactly as that run left them.
        None: open the database and look."""
        known = store.meta.get("database")
        if isinstance(known, dict) and known.get("sig") is not None and known.get("sig") == self._db_signature():
            return set(known.get("tables") or [])
        if not self.db_path.exists():
            return set()
        return None

    def _present(self, tables: set[str]) -> set[str]:
        """Nodes whose outputs are all there: their table (if the kind has one) and files."""
        from seekrun.engine.kinds import executor

        present = set()
        for nid, node in self.manifest.nodes.items():
            mod = executor(node["kind"])
            ok = nid in tables if getattr(mod, "HAS_TABLE", True) else True
            files = getattr(mod, "output_files", None)
            if ok and files is not None:
                ok = all(p.exists() for p in files(node, self.root))
            if ok:
                present.add(nid)
        return present

    # ---- run -----------------------------------------------------------------------
    def run(self, full: bool = False, dry_run: bool = False, node_types=None, nodes=None,
            exclude_tags=None, continue_on_error: bool = False, retry: int = 0, tags=None,
            args: dict | None = None, on_commit: Callable[[], None] | None = None) -> ExecutionSummary:
        """Plan, check, then build. Nothing under target/ is written until the plan has passed
        its checks; ``on_commit`` (e.g. saving the manifest) is called at that point."""
        started = time.perf_counter()
        started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        selected = select(self.manifest, node_types=node_types, nodes=nodes, tags=tags,
                          exclude_tags=exclude_tags)
        store = StateStore(self.state_dir)
        records = store.load(repair=not dry_run)
        summary = ExecutionSummary(dry_run=dry_run, warnings=list(store.warnings))
        removed = sorted(nid for nid in records if nid not in self.manifest.nodes)
        engine = None
        writing = False
        tables: set[str] | None = None
        try:
            tables = self._existing(store)
            if tables is None:
                tables = self._read_tables()
            items = plan(self.manifest, records, self._present(tables), full=full, selected=selected)
            self.plan_items = items
            to_run = [nid for nid, it in items.items() if it.runs]
            if not dry_run and to_run:
                if (self.engine_factory is None and self.db_path.exists()
                        and not os.path.exists(str(self.db_path) + ".wal")):
                    # Check on the database the build will use: opening and closing it
                    # unchanged writes nothing (but a WAL left by a killed run would be
                    # replayed into it, so then the checks use a separate in-memory DuckDB).
                    engine = self._open_engine()
                    self._preflight_with(engine, to_run)
                else:
                    self._preflight(to_run)
            results = self._initial_results(items, dry_run)
            summary.results = list(results.values())
            summary.removed_nodes = removed
            if dry_run:
                summary.total_duration = time.perf_counter() - started
                return summary
            writing = True
            if on_commit is not None:
                on_commit()
            if getattr(self.manifest, "new_env_key", None) is not None:  # API use without `parse`
                from seekrun.parser.templating import save_env_key

                save_env_key(self.manifest, self.root / "target" / "state")  # where parsing reads it
            self.reporter.plan(to_run, len(items))
            if to_run or removed:
                engine = engine or self._open_engine()
                engine.ensure_schemas({self.manifest.nodes[n]["kind"] for n in to_run})
                for nid in removed:
                    engine.drop(nid)
                    self._remove_files(store.nodes.get(nid) or {})
                    store.remove(nid)
            if to_run:
                self._execute(engine, store, items, to_run, results, continue_on_error, retry, summary)
        finally:
            if engine is not None:
                engine.close()
            if writing:
                # tables now: those there before, plus the ones built, minus the ones dropped
                built = {r.node_id for r in summary.results if r.status is NodeStatus.SUCCESS}
                now = (tables | built) - set(removed) if tables is not None else None
                store.meta["database"] = ({"sig": self._db_signature(), "tables": sorted(now)}
                                          if now is not None else None)
                store.compact()
            store.close()
            self.reporter.close()
        summary.total_duration = time.perf_counter() - started
        self._write_results(summary, started_at, args or {})
        return summary

    def _remove_files(self, record: dict) -> None:
        """Delete the files a removed node wrote (only inside the project, and never a file the
        project now reads or another node now writes)."""
        from seekrun.engine.base import inside

        files = record.get("output_files")
        if not files:
            return
        if self._in_use is None:  # once per run, and only when something is to be deleted
            self._in_use = {f for n in self.manifest.nodes.values() for key in ("data_files", "live_files",
                                                                               "output_files")
                            for f in n.get(key) or []}
        in_use = self._in_use
        for rel in files:
            path = self.root / rel
            if rel not in in_use and inside(self.root, path):
                path.unlink(missing_ok=True)

    def _read_tables(self) -> set[str]:
        """Tables in the database, read without writing to it (none if there is no database)."""
        if not self.db_path.exists():
            return set()
        engine = self._open_engine(read_only=True)
        try:
            return engine.existing_outputs()
        finally:
            engine.close()

    def _preflight(self, to_run: list[str]) -> None:
        """Refuse, before anything runs, what cannot run: missing or unusable data, unsupported
        kinds, SQL that does not parse. Uses an in-memory DuckDB, so it writes nothing."""
        from seekrun.engine.duckdb_engine import DuckDBEngine

        engine = DuckDBEngine(None)
        try:
            self._preflight_with(engine, to_run)
        finally:
            engine.close()

    def _preflight_with(self, engine, to_run: list[str]) -> None:
        from seekrun.engine.base import BadInput, UnsupportedNode

        errors: list[Diagnostic] = []
        for nid in to_run:
            node = self.manifest.nodes[nid]
            lines = node.get("lines") or {}
            where = (node["file"], lines.get("sql") or lines.get("table") or node.get("line"))
            if node["kind"] == "source" and not node.get("data_files") and not node.get("python"):
                errors.append(Diagnostic(*where, f"{nid}: source data file '{node['config'].get('table')}' "
                                                 "not found: create it or fix 'table'"))
                continue
            try:
                message = engine.check(node, self.root, self.manifest.nodes)
            except UnsupportedNode as exc:
                errors.append(Diagnostic(*where, f"{exc}"))
                continue
            except BadInput as exc:
                errors.append(Diagnostic(*where, f"{nid}: {exc}"))
                continue
            if message:
                errors.append(Diagnostic(*where, f"{nid}: SQL does not parse: {message}"))
        if errors:
            raise ProjectError(errors)

    def _initial_results(self, items: dict[str, PlanItem], dry_run: bool) -> dict[str, NodeResult]:
        results: dict[str, NodeResult] = {}
        for nid, it in items.items():
            if it.runs:
                results[nid] = NodeResult(nid, NodeStatus.PENDING, str(it.reason))
            elif it.reason is None:
                results[nid] = NodeResult(nid, NodeStatus.CACHED, None)
            elif it.blocked_by is not None:
                results[nid] = NodeResult(nid, NodeStatus.SKIPPED, str(it.reason),
                                          error=f"input {it.blocked_by} has not been built")
            else:
                results[nid] = NodeResult(nid, NodeStatus.SKIPPED, str(it.reason),
                                          error="not selected (still needs to run)")
        return results

    def _execute(self, engine, store: StateStore, items, to_run, results, continue_on_error, retry,
                 summary: ExecutionSummary) -> None:
        from seekrun.engine.base import NodeFailure, UnsupportedNode

        import threading

        manifest = self.manifest
        stop = threading.Event()  # set on Ctrl-C: no retries, no new attempts

        def execute(nid: str) -> Outcome:
            node = manifest.nodes[nid]
            attempts, error, t0 = 0, None, time.perf_counter()
            while True:
                attempts += 1
                try:
                    built = engine.build(node, self.root, manifest.nodes)
                    return Outcome(True, (built.rows, time.perf_counter() - t0, attempts, None,
                                          built.warnings))
                except (NodeFailure, UnsupportedNode) as exc:
                    error = str(exc)
                except Exception as exc:  # a bug or an engine error: still only this node fails
                    error = f"{exc.__class__.__name__}: {exc}"
                if attempts > retry or stop.wait(self.retry_base_delay * 2 ** (attempts - 1)):
                    return Outcome(False, (None, time.perf_counter() - t0, attempts, error, []))

        def on_start(nid: str) -> None:
            results[nid].status = NodeStatus.RUNNING
            self.reporter.start(nid)

        def on_done(nid: str, outcome: Outcome) -> None:
            rows, duration, attempts, error, warnings = outcome.value
            res = results[nid]
            res.duration, res.attempts, res.row_count, res.error = duration, attempts, rows, error
            res.warnings = warnings
            node = manifest.nodes[nid]
            now = datetime.now(timezone.utc).isoformat(timespec="seconds")
            if outcome.ok:
                res.status = NodeStatus.SUCCESS
                inputs = {p: items[p].expected_output if items[p].runs else
                          (store.nodes.get(p) or {}).get("output_hash") for p in manifest.parents(nid)}
                entry = trace(node, inputs, items[nid].expected_output)
                old_files = (store.nodes.get(nid) or {}).get("output_files")
                if old_files:  # e.g. an exposure whose path changed: the old file goes
                    self._remove_files({"output_files": sorted(set(old_files) - set(entry.get("output_files", [])))})
            else:
                res.status = NodeStatus.FAILED
                entry = dict(store.nodes.get(nid) or {})
                entry["error"] = error
            entry.update(status=res.status.value, duration=round(duration, 6), row_count=rows,
                         last_run=now, reason=res.reason, warnings=warnings)
            store.record(nid, entry)
            self.reporter.result(res)

        def on_skip(nid: str, failed: str) -> None:
            res = results[nid]
            res.status, res.error = NodeStatus.SKIPPED, f"upstream {failed} failed"
            self.reporter.result(res)

        queue = KahnQueue(to_run, {n: manifest.parents(n) for n in to_run})
        try:
            finished = run_queue(queue, execute, on_start, on_done, on_skip, threads=self.threads,
                                 continue_on_error=continue_on_error,
                                 on_interrupt=lambda: (stop.set(), engine.interrupt()),
                                 on_running=getattr(engine, "fit_threads", lambda n: None))
        except KeyboardInterrupt:
            summary.interrupted = True
            finished = False
        if not finished:
            why = "interrupted" if summary.interrupted else "not started: the run stopped after a failure"
            for nid in to_run:
                res = results[nid]
                if res.status in (NodeStatus.PENDING, NodeStatus.RUNNING):
                    res.status, res.error = NodeStatus.SKIPPED, why

    def _write_results(self, summary: ExecutionSummary, started_at: str, args: dict) -> None:
        data = {
            "metadata": {"seekrun_version": __version__, "started_at": started_at,
                         "elapsed": round(summary.total_duration, 6), "args": args,
                         "interrupted": summary.interrupted},
            "results": [r.to_dict() for r in summary.results],
            "removed": summary.removed_nodes,
        }
        atomic_write_json(self.root / "target" / "run_results.json", data)
