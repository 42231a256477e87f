"""The scheduler: Kahn order over the nodes that must run, on a pool of worker threads.

The queue owns ordering (ready nodes leave in node-id order); the caller's ``execute``
callback owns running one node; ``on_done`` hears each completion.  Workers wait on
completions (never poll).  After a failure the default is to start nothing new;
with continue_on_error the independent branches go on and every dependent of a
failed node is skipped without running.
"""
from __future__ import annotations

import heapq
import threading
from dataclasses import dataclass
from typing import Callable


@dataclass
class Outcome:
    ok: bool
    value: object = None


class KahnQueue:
    def __init__(self, nodes: list[str], parents: dict[str, list[str]]):
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
        self.skipped: dict[str, str] = {}  # node -> the failed ancestor

    def pop(self) -> str | None:
        return heapq.heappop(self._ready) if self._ready else None

    def __bool__(self) -> bool:
        return bool(self._ready)

    def done(self, node: str) -> None:
        for c in self.children[node]:
            self.waiting[c] -= 1
            if self.waiting[c] == 0:
                heapq.heappush(self._ready, c)

    def failed(self, node: str) -> list[str]:
        """Skip every transitive dependent of a failed node; return them."""
        out, stack = [], list(self.children[node])
        while stack:
            c = stack.pop()
            if c in self.skipped:
                continue
            self.skipped[c] = node
            out.append(c)
            stack.extend(self.children[c])
        return out


def run_queue(queue: KahnQueue, execute: Callable[[str], Outcome], on_start: Callable[[str], None],
              on_done: Callable[[str, Outcome], None], on_skip: Callable[[str, str], None], *,
              threads: int, continue_on_error: bool, on_interrupt: Callable[[], None] = lambda: None,
              on_running: Callable[[int], None] = lambda n: None) -> bool:
    """Run everything the queue releases. Returns False if it stopped early after a failure.

    Each worker takes the next ready node itself when it finishes one (no round trip through
    a dispatcher thread, which costs a thread switch per node).  Bookkeeping (the queue and
    the callbacks) happens under one lock, so callbacks never run concurrently and a node's
    on_done always comes before any dependent starts.  Idle workers wait on a condition
    that every completion signals: nothing polls or sleeps.  ``on_running(k)`` hears how many
    nodes run at once whenever that changes for longer than a hand-over (a node starts, or a
    worker finds nothing to start), e.g. to share the cores among them.
    """
    cond = threading.Condition()
    state = {"stopped": False, "interrupted": False, "running": 0, "error": None, "live": 0}

    def finish(node: str, outcome: Outcome) -> None:
        on_done(node, outcome)
        if outcome.ok:
            queue.done(node)
        else:
            for s in queue.failed(node):
                on_skip(s, node)
            if not continue_on_error:
                state["stopped"] = True

    def next_node() -> str | None:
        """Under the lock: a node to run now, or None when this worker should leave."""
        while True:
            if state["stopped"] or state["error"] is not None:
                return None
            if queue:
                node = queue.pop()
                if node in queue.skipped:
                    continue
                return node
            if state["running"] == 0:
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
                w.join(0.1)
                if state["error"] is not None:
                    on_interrupt()  # after a callback error: keep cancelling until every worker is out
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
