"""Run results: node statuses, the execution summary, target/run_results.json."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class NodeStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CACHED = "cached"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"  # it was running when the run was stopped (Ctrl-C, SIGTERM, the run's timeout)


# Why a node was skipped (NodeResult.skip, "skip" in run_results.json; status stays "skipped",
# with the detail in "error"). Counted apart in the summary, labelled by SKIP_LABELS.
SKIP_FILTERED = "filtered"  # left out by --types/--nodes/--tags (or its input was)
SKIP_AFTER_FAILURE = "after_failure"  # not started: an upstream node failed, or the run stopped after a failure
SKIP_INTERRUPTED = "interrupted"  # left undone by Ctrl-C / SIGTERM
SKIP_NOT_EXECUTABLE = "not_executable"  # a kind seekrun accepts but cannot execute
SKIP_PRECONDITION = "precondition"  # a precondition did not hold (it still needs to run)
SKIP_UPSTREAM_SKIPPED = "upstream_skipped"  # an upstream node was skipped (a precondition)
SKIP_DEFERRED = "deferred"  # --defer: not built here, read from another build (deferred_from)
FILTERED = "left out by the filter: still needs to run"  # the error of a node skipped SKIP_FILTERED
SKIP_LABELS = {SKIP_FILTERED: "left out by a filter", SKIP_AFTER_FAILURE: "not started after a failure",
               SKIP_INTERRUPTED: "interrupted", SKIP_NOT_EXECUTABLE: "not executable by seekrun",
               SKIP_PRECONDITION: "precondition not met", SKIP_UPSTREAM_SKIPPED: "upstream skipped",
               SKIP_DEFERRED: "deferred to the state's build"}


@dataclass
class NodeResult:
    node_id: str
    status: NodeStatus
    reason: str | None = None
    duration: float = 0.0
    row_count: int | None = None
    attempts: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    skip: str | None = None  # a SKIP_* code when status is SKIPPED
    # planned cached against what these re-read (database) nodes read last time: decided again once
    # they have run (a dry run cannot know: "runs if what they read has changed")
    after_reread: list[str] = field(default_factory=list)
    command: str | None = None  # a task in a dry run: the command as it would run
    declared: str | None = None  # ... and what it declares it reads and writes
    retry_waits: list[float] = field(default_factory=list)  # seconds waited before each retry
    continued: bool = False  # failed or skipped, but its continue_on let its dependents run
    condition: str | None = None  # a dry run: "runs if <its preconditions>"
    detail: str | None = None  # e.g. a dag node's "child: 2 ran, 3 cached"
    started_at: str | None = None  # when it started and ended (see to_dict)
    ended_at: str | None = None
    instances: dict[str, str] | None = None  # a fan-out that ran: instance key -> status (seekrun/fanout.py)
    deferred_from: str | None = None  # --defer: the state folder its table was read from (not built here)

    def to_dict(self) -> dict:
        """One node in run_results.json. ``started_at`` / ``ended_at``: when the node started
        (its preconditions, then its attempts) and ended, in UTC ISO 8601 to the microsecond
        (e.g. "2026-01-02T03:04:05.123456+00:00"); null for a node that did not start (cached,
        skipped after a failure, left out, a dry run), ``ended_at`` null for one interrupted.
        A node's end is stamped before any node that takes its pool slot starts."""
        return {"node_id": self.node_id, "status": self.status.value, "reason": self.reason,
                "duration": round(self.duration, 6), "row_count": self.row_count,
                "attempts": self.attempts, "error": self.error, "warnings": self.warnings,
                "skip": self.skip if self.status in (NodeStatus.SKIPPED, NodeStatus.CANCELLED) else None,
                "after_reread": list(self.after_reread), "retry_waits": list(self.retry_waits),
                "continued": self.continued, "condition": self.condition,
                **({"command": self.command} if self.command is not None else {}),
                **({"detail": self.detail} if self.detail else {}),
                "started_at": self.started_at, "ended_at": self.ended_at, "deferred_from": self.deferred_from,
                **({"instances": dict(self.instances)} if self.instances is not None else {})}


@dataclass
class ExecutionSummary:
    results: list[NodeResult] = field(default_factory=list)
    total_duration: float = 0.0
    dry_run: bool = False
    interrupted: bool = False
    timed_out: str | None = None  # the project's timeout, as written, when the run ran past it
    removed_nodes: list[str] = field(default_factory=list)
    dropped_nodes: list[str] = field(default_factory=list)  # built before, not executable by seekrun now
    warnings: list[str] = field(default_factory=list)
    full: bool = False  # --full
    notes: list[str] = field(default_factory=list)  # e.g. "task.x ran, outputs unchanged: 3 dependents stay cached"
    selected: int | None = None  # how many nodes the filters selected
    handlers: list[NodeResult] = field(default_factory=list)  # on_success... / handlerOn, after the nodes (seekrun/handlers.py)
    event_error: BaseException | None = None  # an on_event callback's error (it stopped the run)

    def _count(self, *statuses: NodeStatus) -> int:
        return sum(1 for r in self.results if r.status in statuses)

    @property
    def total_nodes(self) -> int:
        return len(self.results)

    @property
    def changed_nodes(self) -> int:
        """Nodes that needed to run (had a reason), whether or not they ran."""
        return sum(1 for r in self.results if r.status is not NodeStatus.CACHED and r.reason)

    @property
    def cached_nodes(self) -> int:
        return self._count(NodeStatus.CACHED)

    @property
    def recheck_nodes(self) -> int:
        """Cached nodes decided after a re-read (in a dry run: to be decided then)."""
        return sum(1 for r in self.results if r.status is NodeStatus.CACHED and r.after_reread)

    @property
    def successful_nodes(self) -> int:
        return self._count(NodeStatus.SUCCESS)

    @property
    def failed_nodes(self) -> int:
        return self._count(NodeStatus.FAILED)

    @property
    def skipped_nodes(self) -> int:
        return self._count(NodeStatus.SKIPPED)

    @property
    def cancelled_nodes(self) -> int:
        return self._count(NodeStatus.CANCELLED)

    def skipped_by(self) -> dict[str, int]:
        """Skipped nodes counted by why (SKIP_* codes), in SKIP_LABELS order."""
        counts: dict[str, int] = {}
        for r in self.results:
            if r.status is NodeStatus.SKIPPED:
                code = r.skip or "other"
                counts[code] = counts.get(code, 0) + 1
        order = list(SKIP_LABELS)
        return dict(sorted(counts.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))

    @property
    def ran(self) -> list[str]:
        return [r.node_id for r in self.results if r.status in (NodeStatus.SUCCESS, NodeStatus.FAILED)]

    @property
    def exit_code(self) -> int:
        """The nodes' exit code; 1 if that is 0 but a handler failed (it never changes the status)."""
        code = self._nodes_exit_code()
        return 1 if code == 0 and any(h.status is NodeStatus.FAILED for h in self.handlers) else code

    def _nodes_exit_code(self) -> int:
        if self.timed_out:
            return 1
        if self.interrupted:
            return 130
        # a failure that a continue_on covers does not fail the run
        return 1 if any(r.status is NodeStatus.FAILED and not r.continued for r in self.results) else 0

    @property
    def status(self) -> str:
        """How the run ended: ``cancelled`` (Ctrl-C, SIGTERM), ``failed`` (a node failed, or the
        run passed its timeout), ``partial`` (a node failed but its continue_on covered it:
        Dagu's partial success) or ``success``.  A node skipped by a precondition is a normal
        outcome, not a partial run."""
        if self.interrupted and not self.timed_out:
            return "cancelled"
        if self._nodes_exit_code():
            return "failed"
        if any(r.status is NodeStatus.FAILED and r.continued for r in self.results):
            return "partial"
        return "success"

    def to_dict(self) -> dict:
        return {"status": self.status, "total_nodes": self.total_nodes, "changed_nodes": self.changed_nodes,
                "cached_nodes": self.cached_nodes, "recheck_nodes": self.recheck_nodes,
                "successful_nodes": self.successful_nodes,
                "failed_nodes": self.failed_nodes, "skipped_nodes": self.skipped_nodes,
                "cancelled_nodes": self.cancelled_nodes,
                "skipped_by": self.skipped_by(),
                "total_duration": round(self.total_duration, 6), "dry_run": self.dry_run,
                "interrupted": self.interrupted, "timed_out": self.timed_out, "removed_nodes": self.removed_nodes,
                "dropped_nodes": self.dropped_nodes,
                "warnings": list(self.warnings), "notes": list(self.notes),
                "results": [r.to_dict() for r in self.results],
                **({"handlers": [h.to_dict() for h in self.handlers]} if self.handlers else {})}
