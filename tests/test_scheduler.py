"""The scheduler on its own: Kahn order, real concurrency, failures and callback errors.

The nodes here are plain Python callables (the engine is exercised by the run tests);
what is under test is run_queue itself, with its real worker threads.
"""
from __future__ import annotations

import random
import threading
import time

import pytest

from seekrun.scheduler import KahnQueue, Outcome, run_queue


def random_dag(seed: int, n: int = 60) -> dict[str, list[str]]:
    rnd = random.Random(seed)
    names = [f"n{i:03d}" for i in range(n)]
    return {name: sorted(set(rnd.sample(names[:i], k=min(i, rnd.randint(0, 3))))) for i, name in enumerate(names)}


def run(parents: dict[str, list[str]], execute, threads: int, continue_on_error: bool = False):
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def on_start(n):
        with lock:
            events.append(("start", n))

    def on_done(n, outcome):
        with lock:
            events.append(("done" if outcome.ok else "failed", n))

    def on_skip(n, failed):
        with lock:
            events.append(("skip", n))

    finished = run_queue(KahnQueue(list(parents), parents), execute, on_start, on_done, on_skip,
                         threads=threads, continue_on_error=continue_on_error)
    return finished, events


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("threads", [1, 3, 8])
def test_every_node_runs_once_and_only_after_all_its_inputs(seed, threads):
    parents = random_dag(seed)
    finished, events = run(parents, lambda n: Outcome(True), threads)
    assert finished
    starts = [n for kind, n in events if kind == "start"]
    assert sorted(starts) == sorted(parents)
    done_at = {n: i for i, (kind, n) in enumerate(events) if kind == "done"}
    for i, (kind, n) in enumerate(events):
        if kind == "start":
            assert all(done_at[p] < i for p in parents[n]), f"{n} started before one of {parents[n]} was done"


def test_one_thread_runs_in_node_id_order_among_ready_nodes():
    parents = {"c": [], "a": [], "b": ["c"], "d": ["a"]}
    _, events = run(parents, lambda n: Outcome(True), threads=1)
    assert [n for kind, n in events if kind == "start"] == ["a", "c", "b", "d"]


def test_threads_really_run_nodes_at_the_same_time():
    barrier = threading.Barrier(3, timeout=10)

    def execute(n):
        barrier.wait()  # only returns once three nodes are running at once
        return Outcome(True)

    finished, _ = run({"x": [], "y": [], "z": []}, execute, threads=3)
    assert finished


def test_after_a_failure_nothing_new_starts_by_default():
    parents = {"a": [], "b": ["a"], "c": [], "d": ["c"]}
    finished, events = run(parents, lambda n: Outcome(n != "a"), threads=1)
    assert not finished
    assert [n for kind, n in events if kind == "start"] == ["a"]


def test_continue_on_error_skips_only_the_dependents():
    parents = {"a": [], "b": ["a"], "e": ["b"], "c": [], "d": ["c"]}
    finished, events = run(parents, lambda n: Outcome(n != "a"), threads=2, continue_on_error=True)
    assert finished
    assert {n for kind, n in events if kind == "skip"} == {"b", "e"}
    assert {n for kind, n in events if kind == "done"} == {"c", "d"}


def test_an_error_in_a_callback_reaches_the_caller_after_the_workers_stop():
    started = []

    def execute(n):
        started.append(n)
        if n != "b":
            time.sleep(0.02)  # "b" (first in id order) finishes well before the rest
        return Outcome(True)

    def on_done(n, outcome):
        if n == "b":
            raise OSError("No space left on device")

    parents = {f"n{i}": [] for i in range(20)} | {"b": []}
    with pytest.raises(OSError, match="No space left"):
        run_queue(KahnQueue(list(parents), parents), execute, lambda n: None, on_done,
                  lambda n, f: None, threads=4, continue_on_error=False)
    workers = [t for t in threading.enumerate() if t.name.startswith("seekrun-")]
    for t in workers:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in workers)
    assert len(started) < len(parents)  # it stopped instead of running everything


def test_nodes_stopped_by_a_callback_error_are_not_reported_as_failures():
    interrupted = threading.Event()
    failures = []

    def execute(n):
        if n == "a_fast":
            return Outcome(True)
        interrupted.wait(10)  # a long query, cancelled by on_interrupt
        return Outcome(False, "INTERRUPT Error: Interrupted!")

    def on_done(n, outcome):
        if not outcome.ok:
            failures.append(n)
        if n == "a_fast":
            raise OSError("No space left on device")

    parents = {"a_fast": [], "slow_1": [], "slow_2": []}
    with pytest.raises(OSError):
        run_queue(KahnQueue(list(parents), parents), execute, lambda n: None, on_done, lambda n, f: None,
                  threads=3, continue_on_error=False, on_interrupt=interrupted.set)
    assert interrupted.is_set()
    assert failures == []
