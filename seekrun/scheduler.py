"""The scheduler: Kahn order over the nodes that must run, on a pool of worker threads.

The queue owns ordering (ready nodes leave in node-id order); the caller's ``execute``
callback owns running one node; ``on_done`` hears each completion.  Workers wait on
completions (never poll).  After a failure the default is to start nothing new;
with continue_on_error the independent branches go on and every dependent of a
failed node is skipped without running.

Node policies come in as data (the scheduler knows nothing of kinds): ``run_always`` nodes
run once every parent is resolved (done, failed, skipped, or abandoned when the run stopped
after a failure), whatever became of them; ``continue_on(node, outcome)`` says whether a
failure (or skip) of that node leaves its dependents to run (and does not stop the run).
Without policies a failure skips every transitive dependent at once, as it always did.

Limits come in as data too: ``limits`` (group -> slots) and ``needs`` (node -> {group: slots
it holds while it runs}; a cap on all nodes is one more group every node needs 1 of).  A
ready node whose groups lack room waits "parked" on the first full group, and the others go
ahead in the usual order; a node that finishes frees its slots and wakes, from the groups it
held, as many parked nodes as the freed room can take (the workers are woken by the same
condition as ever: nothing polls).  Without limits none of this runs.
"""
from __future__ import annotations

import heapq
import threading
import time
from dataclasses import dataclass
from typing import Callable


@dataclass
class Outcome:
    ok: bool
    value: object = None
    skipped: bool = False  # not ok, but not a failure: e.g. a precondition not met


class RunTimedOut(Exception):
    """The run's deadline passed: the running nodes are interrupted, nothing new starts."""


_UPSTREAM = Outcome(False, None, True)  # what a dependent skipped because of an upstream node is


class KahnQueue:
    def __init__(self, nodes: list[str], parents: dict[str, list[str]], run_always=(),
                 continue_on: Callable[[str, Outcome], bool] | None = None,
                 limits: dict[str, int] | None = None, needs: dict[str, dict[str, int]] | None = None):
        members = set(nodes)
        self.children: dict[str, list[str]] = {n: [] for n in nodes}
        self.waiting: dict[str, int] = {}
        for n in nodes:
            ps = [p for p in dict.fromkeys(parents.get(n, ())) if p in members]
            self.waiting[n] = len(ps)
            for p in ps:
                self.children[p].append(n)
        self._ready = [n for n in nodes if self.waiting[n] == 0]
        heapq.heapify(self._ready)
        self.skipped: dict[str, str] = {}  # node -> the failed (or skipped) ancestor that caused it
        self.run_always = frozenset(run_always) & members
        self.continue_on = continue_on
        self.resolved: set[str] = set()  # done, failed, skipped or abandoned
        self.started: set[str] = set()
        self.abandoned: set[str] = set()  # never started: the run stopped after a failure
        self.stopping = False  # after abandon(): only run_always nodes start
        self.limited = bool(limits)
        if self.limited:
            # a node never needs more than a group has (the parser refuses it; here it would wait forever)
            self.needs = {n: {g: min(k, limits[g]) for g, k in (needs or {}).get(n, {}).items() if g in limits}
                          for n in nodes}
            self.room = dict(limits)  # free slots per group
            self.parked: dict[str, list[str]] = {g: [] for g in limits}  # heaps: ready, waiting for room
            self.pending = dict.fromkeys(limits, 0)  # slots of woken nodes, back in _ready, not yet started
            self.woken: dict[str, str] = {}  # node -> the group that woke it
            self.pop = self._pop_limited

    def pop(self) -> str | None:
        while self._ready:
            node = heapq.heappop(self._ready)
            if node in self.resolved or node in self.started:
                continue
            if self.stopping and node not in self.run_always:
                self._give_up(node)  # released after the stop: given up, which may release run_always nodes
                continue
            self.started.add(node)
            return node
        return None

    # ---- limits (only when there are any) -------------------------------------------
    def _pop_limited(self) -> str | None:
        """The first ready node whose groups all have room; the others wait parked."""
        while self._ready:
            node = heapq.heappop(self._ready)
            from_group = self.woken.pop(node, None)
            if from_group is not None:
                self.pending[from_group] -= self.needs[node][from_group]
            if node in self.resolved or node in self.started:
                pass
            elif self.stopping and node not in self.run_always:
                self._give_up(node)
            else:
                need = self.needs[node]
                full = next((g for g, k in need.items() if self.room[g] < k), None)
                if full is None:
                    for g, k in need.items():
                        self.room[g] -= k
                    self.started.add(node)
                    return node
                heapq.heappush(self.parked[full], node)
            if from_group is not None:
                self._wake(from_group)  # the room it was woken for is free again
        return None

    def free(self, node: str) -> None:
        """A started node finished (however): its slots are free, parked nodes may go."""
        for g, k in self.needs[node].items():
            self.room[g] += k
            self._wake(g)

    def _wake(self, group: str) -> None:
        """Back to _ready, in order, as many nodes parked on the group as its room can take."""
        parked = self.parked[group]
        budget = self.room[group] - self.pending[group]
        kept: list[str] = []
        while parked and budget > 0:
            node = heapq.heappop(parked)
            k = self.needs[node][group]
            if k > budget:
                kept.append(node)  # needs more than is free: a smaller one behind it may fit
                continue
            budget -= k
            self.pending[group] += k
            self.woken[node] = group
            heapq.heappush(self._ready, node)
        for node in kept:
            heapq.heappush(parked, node)

    def unpark_all(self) -> bool:
        """Every parked node back to _ready (a safety net: nothing runs, yet some wait)."""
        if not self.limited or not any(self.parked.values()):
            return False
        for g, parked in self.parked.items():
            for node in parked:
                heapq.heappush(self._ready, node)
            parked.clear()
        self.woken.clear()
        self.pending = dict.fromkeys(self.pending, 0)
        return True

    def __bool__(self) -> bool:
        return bool(self._ready)

    def covers(self, node: str, outcome: Outcome) -> bool:
        """Whether the node's continue_on policy covers this failure or skip."""
        return self.continue_on is not None and self.continue_on(node, outcome)

    def _release(self, node: str, covered: bool, doomed: list[str]) -> None:
        """A resolved node: each child waits for one parent less; a child that a bad, uncovered
        parent dooms (and is not run_always) goes to ``doomed``."""
        for c in self.children[node]:
            if c in self.resolved:
                continue
            self.waiting[c] -= 1
            if covered or c in self.run_always:
                if self.waiting[c] == 0:
                    heapq.heappush(self._ready, c)
            elif c not in self.skipped:
                self.skipped[c] = self.skipped.get(node, node)
                doomed.append(c)

    def done(self, node: str) -> None:
        self.resolved.add(node)
        self._release(node, True, [])

    def failed(self, node: str, outcome: Outcome | None = None) -> list[str]:
        """A node failed (or was skipped): skip every transitive dependent its failure reaches
        (not through a run_always node, or a node whose continue_on covers it); return them."""
        self.resolved.add(node)
        out: list[str] = []
        stack: list[str] = []
        self._release(node, outcome is not None and self.covers(node, outcome), stack)
        while stack:
            c = stack.pop()
            if c in self.resolved:
                continue
            self.resolved.add(c)
            out.append(c)
            self._release(c, self.covers(c, _UPSTREAM), stack)
        return out

    def abandon(self) -> None:
        """The run stops after a failure: nothing that has not started starts, except run_always
        nodes. A node is given up only once each of its parents is resolved, so a run_always node
        below another one (a notification below a cleanup) still waits for it."""
        self.stopping = True
        self.unpark_all()  # parked nodes are ready ones too
        ready, self._ready = self._ready, []
        for n in ready:
            if n in self.run_always:
                heapq.heappush(self._ready, n)
            else:
                self._give_up(n)

    def _give_up(self, node: str) -> None:
        stack = [node]
        while stack:
            n = stack.pop()
            if n in self.resolved or n in self.started:
                continue
            self.resolved.add(n)
            self.abandoned.add(n)
            for c in self.children[n]:
                if c in self.resolved:
                    continue
                self.waiting[c] -= 1
                if self.waiting[c] == 0:
                    if c in self.run_always:
                        heapq.heappush(self._ready, c)
                    else:
                        stack.append(c)


def run_queue(queue: KahnQueue, execute: Callable[[str], Outcome], on_start: Callable[[str], None],
              on_done: Callable[[str, Outcome], None], on_skip: Callable[[str, str], None], *,
              threads: int, continue_on_error: bool, on_interrupt: Callable[[], None] = lambda: None,
              on_running: Callable[[int], None] = lambda n: None, deadline: float | None = None,
              cancelled: Callable[[], bool] = lambda: False) -> bool:
    """Run everything the queue releases. Returns False if it stopped early after a failure.

    ``deadline`` (time.monotonic()): when it passes, the running nodes are interrupted as by
    Ctrl-C and RunTimedOut is raised once every worker is out.  ``cancelled()`` (checked every
    0.1 s) turning true stops the run exactly as Ctrl-C does (KeyboardInterrupt).

    Each worker takes the next ready node itself when it finishes one (no round trip through
    a dispatcher thread, which costs a thread switch per node).  Bookkeeping (the queue and
    the callbacks) happens under one lock, so callbacks never run concurrently and a node's
    on_done always comes before any dependent starts.  Idle workers wait on a condition
    that every completion signals: nothing polls or sleeps.  ``on_running(k)`` hears how many
    nodes run at once whenever that changes for longer than a hand-over (a node starts, or a
    worker finds nothing to start), e.g. to share the cores among them.
    """
    cond = threading.Condition()
    limited = queue.limited
    state = {"stopped": False, "interrupted": False, "running": 0, "error": None, "live": 0}

    def finish(node: str, outcome: Outcome) -> None:
        on_done(node, outcome)
        if outcome.ok:
            queue.done(node)
        else:
            for s in queue.failed(node, outcome):
                on_skip(s, queue.skipped[s])
            if not (outcome.skipped or continue_on_error or state["stopped"] or queue.covers(node, outcome)):
                state["stopped"] = True  # start nothing new (but run_always nodes)
                queue.abandon()

    def next_node() -> str | None:
        """Under the lock: a node to run now, or None when this worker should leave."""
        while True:
            if state["interrupted"] or state["error"] is not None:
                return None
            if queue:
                node = queue.pop()
                if node is None:
                    continue
                return node
            if state["running"] == 0:
                if queue.limited and queue.unpark_all():
                    continue  # (cannot happen: a node parked only while another holds the room)
                return None  # nothing ready and nothing running: the queue is drained
            on_running(state["running"])  # this worker idles: fewer nodes now share the cores
            cond.wait()

    def worker() -> None:
        with cond:
            state["live"] += 1
            try:
                while (node := next_node()) is not None:
                    state["running"] += 1
                    on_running(state["running"])
                    on_start(node)
                    cond.release()
                    try:
                        outcome = execute(node)
                    finally:
                        cond.acquire()
                    state["running"] -= 1
                    if limited:
                        queue.free(node)
                    # a failure after Ctrl-C (or after a callback error, which also interrupts the
                    # running nodes) was most likely caused by that interrupt: it is left undone
                    if outcome.ok or not (state["interrupted"] or state["error"] is not None):
                        finish(node, outcome)
                    cond.notify_all()
            except BaseException as exc:  # a bug or e.g. a full disk in a callback: stop everything
                if state["error"] is None:
                    state["error"] = exc
                    on_interrupt()  # the running nodes stop too
            finally:
                state["live"] -= 1
                cond.notify_all()

    # Even with one thread the nodes run on workers: the main thread only waits, so Ctrl-C
    # always arrives here as KeyboardInterrupt, never inside a DuckDB query.
    workers = [threading.Thread(target=worker, name=f"seekrun-{i}", daemon=True)
               for i in range(max(1, min(threads, len(queue.waiting))))]
    try:
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))
                if state["error"] is not None:
                    on_interrupt()  # after a callback error: keep cancelling until every worker is out
                elif deadline is not None and time.monotonic() >= deadline and w.is_alive():
                    raise RunTimedOut()
                elif w.is_alive() and cancelled():
                    raise KeyboardInterrupt
    except BaseException:
        # Wait on our own count, not join(): an interrupted join can mark a running thread
        # finished (Python 3.11).  A worker started but not yet counted sees `stopped` and
        # leaves without touching anything.
        with cond:
            state["stopped"] = state["interrupted"] = True
            cond.notify_all()
        # Cancel the queries in flight, so the workers can finish; again every 0.1 s while any
        # worker lives: a query that was just about to start when the first cancel came would
        # otherwise run to its end.
        on_interrupt()
        with cond:
            while state["live"]:
                if not cond.wait(0.1):
                    on_interrupt()
        raise
    if state["error"] is not None:
        raise state["error"]
    return not state["stopped"]
