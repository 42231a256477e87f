"""The scheduler's node policies (issue 12): run_always and continue_on, given as data, on
random DAGs with real worker threads. Every node resolves exactly once (ran, or skipped), and
no node starts before each of its parents is resolved.
"""
from __future__ import annotations

import random
import threading

import pytest

from seekrun.scheduler import KahnQueue, Outcome, run_queue
from test_scheduler import random_dag


def run(parents, failing, *, run_always=(), shielded=(), threads=4, continue_on_error=False):
    events: list[tuple[str, str]] = []
    lock = threading.Lock()

    def log(kind, n):
        with lock:
            events.append((kind, n))

    queue = KahnQueue(list(parents), parents, run_always=run_always,
                      continue_on=lambda n, outcome: n in shielded)
    finished = run_queue(queue, lambda n: Outcome(n not in failing), lambda n: log("start", n),
                         lambda n, o: log("done" if o.ok else "failed", n), lambda n, cause: log("skip", n),
                         threads=threads, continue_on_error=continue_on_error)
    return finished, events, queue


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("continue_on_error", [False, True])
def test_policies_on_random_dags(seed, continue_on_error):
    rnd = random.Random(seed)
    parents = random_dag(seed, 40)
    names = sorted(parents)
    failing = set(rnd.sample(names, 4))
    always = set(rnd.sample(names, 6))
    shielded = set(rnd.sample(names, 6))
    finished, events, queue = run(parents, failing, run_always=always, shielded=shielded,
                                  continue_on_error=continue_on_error)
    started = [n for k, n in events if k == "start"]
    skipped = [n for k, n in events if k == "skip"]
    assert len(started) == len(set(started)) and not set(started) & set(skipped)
    resolved_at = {n: i for i, (k, n) in enumerate(events) if k in ("done", "failed", "skip")}
    bad = {n for k, n in events if k in ("failed", "skip")}
    for i, (k, n) in enumerate(events):
        if k != "start":
            continue
        for p in parents[n]:  # a parent is resolved first, or was abandoned by the stop
            assert resolved_at.get(p, len(events)) < i or p in queue.abandoned, (n, p)
            if n not in always and p in bad:
                assert p in shielded, f"{n} started although {p} failed or was skipped"
    for n in always:  # a run_always node always runs (nothing here interrupts the run)
        assert n in started, n
    for n in skipped:
        assert n not in always
        assert any(p in bad and p not in shielded for p in parents[n])
    if continue_on_error:
        assert not queue.abandoned
        assert set(started) | set(skipped) == set(names)


def test_without_policies_a_failure_skips_its_dependents_at_once():
    parents = {"a": [], "b": ["a"], "c": ["b"], "d": []}
    finished, events, _ = run(parents, {"a"}, threads=1, continue_on_error=True)
    assert events == [("start", "a"), ("failed", "a"), ("skip", "b"), ("skip", "c"), ("start", "d"), ("done", "d")]


def test_run_always_waits_for_every_parent():
    parents = {"a": [], "slow": [], "r": ["a", "slow"]}
    gate, slow_started = threading.Event(), threading.Event()

    def execute(n):
        if n == "slow":
            slow_started.set()
            gate.wait(5)
        if n == "a":
            slow_started.wait(5)  # a fails while slow runs
        return Outcome(n != "a")

    events = []
    queue = KahnQueue(list(parents), parents, run_always=["r"])

    def on_done(n, o):
        events.append(n)
        if n == "a":
            gate.set()  # slow finishes only after a failed: r must still wait for it

    run_queue(queue, execute, lambda n: None, on_done, lambda n, c: None, threads=3, continue_on_error=False)
    assert events == ["a", "slow", "r"]
