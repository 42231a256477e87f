"""The scheduler: Kahn order over the nodes that must run, on a pool of worker threads.

The queue owns ordering (ready nodes leave in node-id order); the caller's ``execute``
callback owns running one node; ``on_done`` hears each completion.  The loop waits on
completions (never polls).  After a failure the default is to start nothing new;
with continue_on_error the independent branches go on and every dependent of a
failed node is skipped without running.
"""
from __future__ import annotations

import heapq
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
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
              threads: int, continue_on_error: bool, on_interrupt: Callable[[], None] = lambda: None) -> bool:
    """Run everything the queue releases. Returns False if it stopped early after a failure."""
    stopped = False

    def finish(node: str, outcome: Outcome) -> None:
        nonlocal stopped
        on_done(node, outcome)
        if outcome.ok:
            queue.done(node)
        else:
            for s in queue.failed(node):
                on_skip(s, node)
            if not continue_on_error:
                stopped = True

    # Even with one thread the node runs on a worker: the main thread only waits, so Ctrl-C
    # always arrives here as KeyboardInterrupt (not inside a DuckDB query).
    running: dict[Future, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="seekrun") as pool:
        try:
            while True:
                while not stopped and queue and len(running) < max(1, threads):
                    node = queue.pop()
                    if node in queue.skipped:
                        continue
                    on_start(node)
                    running[pool.submit(execute, node)] = node
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: running[f]):
                    node = running.pop(fut)
                    finish(node, fut.result())
        except BaseException:
            for fut in running:
                fut.cancel()
            on_interrupt()  # e.g. cancel the queries in flight, so the pool can shut down
            raise
    return not stopped
