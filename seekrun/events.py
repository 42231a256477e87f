"""A run's events, for people and for programs: typed objects, one line of JSON each.

``DAGRunner.run(on_event=callback)`` hears them as they happen; ``stream_events`` yields them
from a build running in a thread; ``seekrun run --log-format json`` prints them; every non-dry
run appends them to ``target/runs/<run_id>/events.jsonl`` (flushed per event: a killed run's
file holds everything up to the kill).

Each event has ``event`` (its type), ``ts`` (UTC, ISO 8601), ``run_id`` and, for a node's
events, ``node_id``.  Every node the run knows ends with exactly one ``node_finished``
(success, failed, cached) or ``node_skipped``.  Every string is redacted (seekrun/secrets.py).

A callback that raises stops the run as Ctrl-C does (what finished is recorded, the run ends
``cancelled``); it is not called again, and the error is in the summary's warnings and
``summary.event_error``.
"""
from __future__ import annotations

import json
import os
import queue
import threading
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, ClassVar, Iterator


def utc_ts() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def printer(out) -> Callable:
    """An on_event callback writing each event to ``out`` as one JSON line (``--log-format json``)."""
    def print_event(event) -> None:
        out.write(event.to_json() + "\n")
        out.flush()
    return print_event


@dataclass(kw_only=True)
class Event:
    event: ClassVar[str] = "event"
    run_id: str
    ts: str = field(default_factory=utc_ts)

    def to_dict(self) -> dict:
        from seekrun.secrets import redact_obj

        return redact_obj({"event": self.event, **{f.name: getattr(self, f.name) for f in fields(self)}})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)


@dataclass(kw_only=True)
class RunStarted(Event):
    event: ClassVar[str] = "run_started"
    project: str
    nodes: int  # in the project
    to_run: int  # planned to run
    dry_run: bool = False
    full: bool = False
    pid: int = field(default_factory=os.getpid)  # the process running it (`seekrun cancel` stops it)


@dataclass(kw_only=True)
class NodeStarted(Event):
    event: ClassVar[str] = "node_started"
    node_id: str
    reason: str | None = None


@dataclass(kw_only=True)
class NodeRetrying(Event):
    event: ClassVar[str] = "node_retrying"
    node_id: str
    attempt: int  # the attempt that failed
    error: str | None
    wait: float  # seconds before the next attempt
    exit_code: int | None = None


@dataclass(kw_only=True)
class NodeFinished(Event):
    event: ClassVar[str] = "node_finished"
    node_id: str
    status: str  # success, failed, cached (a dry run: pending, would run)
    reason: str | None = None
    duration: float = 0.0
    rows: int | None = None
    attempts: int = 0
    error: str | None = None
    continued: bool = False  # failed, but its continue_on let its dependents run


@dataclass(kw_only=True)
class NodeSkipped(Event):
    event: ClassVar[str] = "node_skipped"
    node_id: str
    skip: str | None  # filtered, precondition, after_failure, upstream_skipped, interrupted, not_executable
    reason: str | None = None  # what the skip says ("upstream task.a failed")


@dataclass(kw_only=True)
class RunFinished(Event):
    event: ClassVar[str] = "run_finished"
    status: str  # success, failed, partial, cancelled
    counts: dict
    duration: float
    exit_code: int
    error: str | None = None


EVENT_TYPES = {cls.event: cls for cls in (RunStarted, NodeStarted, NodeRetrying, NodeFinished, NodeSkipped,
                                         RunFinished)}


class CallbackFailed(KeyboardInterrupt):
    """An on_event callback raised: the run stops as after Ctrl-C (raised on a worker, the
    scheduler stops every node; caught where Ctrl-C is)."""


def counts_of(results) -> dict:
    """ran / cached / failed / skipped, as `seekrun runs` shows them."""
    from seekrun.history import counts

    return counts(r.status.value for r in results)


def node_event(run_id: str, res) -> Event:
    """A node's last event, from its result."""
    if res.status.value == "skipped":
        return NodeSkipped(run_id=run_id, node_id=res.node_id, skip=res.skip, reason=res.error)
    return NodeFinished(run_id=run_id, node_id=res.node_id, status=res.status.value, reason=res.reason,
                        duration=round(res.duration, 6), rows=res.row_count, attempts=res.attempts,
                        error=res.error, continued=res.continued)


class EventSink:
    """Hands each event to the callbacks and the run's events file, one event at a time."""

    def __init__(self, run_id: str, callbacks=()):
        self.run_id = run_id
        self.callbacks: list[Callable] = [c for c in callbacks if c is not None]
        self.error: BaseException | None = None  # the first callback error
        self.done: set[str] = set()  # nodes whose last event was sent
        self.started = False  # run_started was sent
        self._file = None
        self._lock = threading.Lock()

    def open(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")

    def emit(self, event: Event, stop: bool = False) -> None:
        """Send one event. A callback that raises is dropped; with ``stop`` (on the scheduler's
        workers) CallbackFailed is raised, which stops the run as Ctrl-C does."""
        failed = None
        with self._lock:
            node = getattr(event, "node_id", None)
            if isinstance(event, (NodeFinished, NodeSkipped)):
                if node in self.done:
                    return
                self.done.add(node)
            if self._file is not None:
                self._file.write(event.to_json() + "\n")
                if stop or isinstance(event, (RunStarted, RunFinished)):  # (the end's cached nodes: one flush)
                    self._file.flush()  # survives a kill
            for cb in list(self.callbacks):
                try:
                    cb(event)
                except Exception as exc:  # noqa: BLE001 (the user's code: reported, never a crash)
                    self.callbacks.remove(cb)
                    if self.error is None:
                        self.error = failed = exc
        if failed is not None and stop:
            raise CallbackFailed(f"{failed.__class__.__name__}: {failed}")

    def node(self, res, stop: bool = True) -> None:
        self.emit(node_event(self.run_id, res), stop)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class RunEvents:
    """DAGRunner's side of the events: run_started, run_finished, streaming, cancelling."""

    def stream_events(self, **kwargs) -> Iterator:
        """Run the build (``run``'s arguments) in a thread and yield its events as they happen,
        ending after run_finished; the summary is ``self.summary`` afterwards. Leaving the loop
        early cancels the run, as Ctrl-C does."""
        return stream(self, kwargs)

    def cancel(self) -> None:
        """Stop the run going on (from another thread) as Ctrl-C does."""
        self._cancel.set()

    def _stopping(self) -> bool:
        """cancel() was called, or a callback failed: the run stops as after Ctrl-C."""
        return self._cancel.is_set() or self.events.error is not None

    def _started_event(self, summary, to_run, full, dry_run) -> None:
        name = str(self.manifest.metadata.get("project_name") or self.root.name)
        if not dry_run:  # target/runs/<run_id>/events.jsonl
            from seekrun.history import run_dir

            self.events.open(run_dir(self.target_dir, self.run_id) / "events.jsonl")
        self.events.started = True
        self.events.emit(RunStarted(run_id=self.run_id, project=name, nodes=len(summary.results),
                                    to_run=len(to_run), dry_run=dry_run, full=full))

    def _note_event_error(self, summary) -> None:
        if self.events.error is not None:
            summary.event_error = self.events.error
            summary.warnings.append(f"the on_event callback raised {self.events.error.__class__.__name__}: "
                                    f"{self.events.error}: the run was stopped as after Ctrl-C")

    def _close_run(self, summary, records: dict) -> None:
        """The end of a run that wrote its results: older run folders go, then run_finished."""
        from seekrun import history

        history.prune(self.target_dir, history.keep_runs(self.manifest.metadata), self.run_id,
                      history.pinned_runs(self.target_dir, records))
        self._finished_event(summary)

    def _finished_event(self, summary, error: BaseException | None = None) -> None:
        """Each node's last event not sent yet (cached, left out, left undone), then run_finished."""
        self.summary = summary
        for res in [*summary.results, *summary.handlers]:  # (handlers: on_success..., after the nodes)
            self.events.node(res, stop=False)
        status = summary.status if error is None else "cancelled" if isinstance(error, KeyboardInterrupt) else "failed"
        self.events.emit(RunFinished(run_id=self.run_id, status=status, counts=counts_of(summary.results),
                                     duration=round(summary.total_duration, 6),
                                     exit_code=summary.exit_code if error is None else 130 if status == "cancelled"
                                     else 1, error=None if error is None else f"{error.__class__.__name__}: {error}"))
        self.events.close()


_END = object()


def stream(runner, kwargs: dict) -> Iterator[Event]:
    """Run ``runner.run(**kwargs)`` in a thread and yield its events as they come, ending after
    run_finished; the summary is ``runner.summary`` then (the run's exception, if it raised, is
    raised here). Leaving the loop early cancels the run (as Ctrl-C) and waits for it."""
    user = kwargs.pop("on_event", None)

    def work(put) -> None:
        def hear(event: Event) -> None:
            put(event)
            if user is not None:
                user(event)
        runner.run(on_event=hear, **kwargs)
    yield from in_thread(work, runner.cancel, "seekrun-stream")


def in_thread(work: Callable, cancel: Callable[[], None], name: str) -> Iterator:
    """Run ``work(put)`` in a thread and yield what it puts, as it comes; leaving the loop early
    calls ``cancel()`` and waits for the thread.  Returns what ``work`` returned; raises what it
    raised."""
    items: queue.Queue = queue.Queue()
    outcome: dict = {}

    def build() -> None:
        try:
            outcome["value"] = work(items.put)
        except BaseException as exc:  # noqa: B902 (raised in the caller's thread)
            outcome["error"] = exc
        finally:
            items.put(_END)

    thread = threading.Thread(target=build, name=name, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not _END:
            yield item
    finally:
        if thread.is_alive():
            cancel()
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
