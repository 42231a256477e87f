"""The scheduler with limits (pools, max_active_nodes): KahnQueue's ``limits`` and ``needs``.

The nodes are plain Python callables run by run_queue's real worker threads; what is under
test is that no group ever holds more than its slots, that the cap does not just serialise,
that a waiting node is woken when room frees up, and that failures still stop the run.
"""
from __future__ import annotations

import random
import threading
import time

import pytest

from seekrun.scheduler import KahnQueue, Outcome, run_queue


def test_pop_takes_the_first_ready_node_whose_groups_have_room():
    q = KahnQueue(["a", "b", "c", "d"], {}, limits={"api": 1}, needs={"a": {"api": 1}, "b": {"api": 1}})
    assert q.pop() == "a"
    assert q.pop() == "c"  # b waits for api; c and d need nothing
    assert q.pop() == "d"
    assert q.pop() is None and not q
    q.free("a")
    assert q.pop() == "b"  # woken by a's slot
    assert q.pop() is None


def test_a_node_needing_two_slots_waits_for_both_and_a_smaller_one_may_pass_it():
    needs = {"a": {"api": 1}, "b": {"api": 2}, "c": {"api": 1}}
    q = KahnQueue(["a", "b", "c"], {}, limits={"api": 2}, needs=needs)
    assert q.pop() == "a"
    assert q.pop() == "c"  # b needs 2, one is free: c (behind it) fits
    assert q.pop() is None
    q.free("a")
    assert q.pop() is None  # one slot free, b still needs two
    q.free("c")
    assert q.pop() == "b"


def test_a_finish_releases_dependents_and_slots_in_node_order():
    parents = {"a": [], "b": ["a"], "c": []}
    needs = {n: {"api": 1} for n in parents}
    q = KahnQueue(list(parents), parents, limits={"api": 1}, needs=needs)
    assert q.pop() == "a"
    assert q.pop() is None  # c waits for the slot
    q.free("a")
    q.done("a")
    assert q.pop() == "b"  # b and c both ready now: node order
    assert q.pop() is None
    q.free("b")
    q.done("b")
    assert q.pop() == "c"


def test_a_woken_node_blocked_on_another_group_hands_its_room_on():
    # c is woken when api frees, but heavy is full: d, parked on api behind it, must get the slot
    needs = {"a": {"api": 1}, "b": {"heavy": 1}, "c": {"api": 1, "heavy": 1}, "d": {"api": 1}}
    q = KahnQueue(["a", "b", "c", "d"], {}, limits={"api": 1, "heavy": 1}, needs=needs)
    assert q.pop() == "a" and q.pop() == "b"
    assert q.pop() is None  # c and d wait for api
    q.free("a")
    assert q.pop() == "d"
    q.free("b")
    assert q.pop() is None  # heavy free, api held by d
    q.free("d")
    assert q.pop() == "c"


def run_tracked(parents, limits, needs, threads, work=0.01, fail=()):
    """Run with real workers; return (events, peak slots used per group, peak nodes at once)."""
    lock = threading.Lock()
    used = dict.fromkeys(limits, 0)
    peak = dict.fromkeys(limits, 0)
    running = [0, 0]  # now, peak
    events = []

    def execute(n):
        with lock:
            for g, k in needs.get(n, {}).items():
                used[g] += k
                peak[g] = max(peak[g], used[g])
            running[0] += 1
            running[1] = max(running[1], running[0])
        time.sleep(work)
        with lock:
            for g, k in needs.get(n, {}).items():
                used[g] -= k
            running[0] -= 1
        return Outcome(n not in fail)

    def on_done(n, outcome):
        events.append(("done" if outcome.ok else "failed", n))

    queue = KahnQueue(list(parents), parents, limits=limits, needs=needs)
    finished = run_queue(queue, execute, lambda n: events.append(("start", n)), on_done,
                         lambda n, cause: events.append(("skip", n)), threads=threads, continue_on_error=False)
    return finished, events, peak, running[1]


@pytest.mark.parametrize("seed", range(6))
def test_random_dags_never_go_over_a_limit_and_every_node_runs(seed):
    rnd = random.Random(seed)
    names = [f"n{i:02d}" for i in range(40)]
    parents = {n: sorted(rnd.sample(names[:i], k=min(i, rnd.randint(0, 2)))) for i, n in enumerate(names)}
    limits = {"api": rnd.randint(1, 3), "heavy": rnd.randint(1, 2), "*": rnd.randint(2, 5)}
    needs = {}
    for n in names:
        need = {"*": 1}
        for g in ("api", "heavy"):
            if rnd.random() < 0.5:
                need[g] = rnd.randint(1, limits[g])
        needs[n] = need
    finished, events, peak, _ = run_tracked(parents, limits, needs, threads=6, work=0.003)
    assert finished
    starts = [n for kind, n in events if kind == "start"]
    assert sorted(starts) == names  # each once: none left waiting for room
    done_at = {n: i for i, (kind, n) in enumerate(events) if kind == "done"}
    for i, (kind, n) in enumerate(events):
        if kind == "start":
            assert all(done_at[p] < i for p in parents[n])
    assert all(peak[g] <= limits[g] for g in limits), (peak, limits)


def test_a_pool_caps_its_nodes_but_not_the_others_and_does_not_serialise():
    parents = {f"p{i}": [] for i in range(6)} | {f"x{i}": [] for i in range(3)}
    needs = {f"p{i}": {"api": 1} for i in range(6)}
    finished, _, peak, most = run_tracked(parents, {"api": 2}, needs, threads=8, work=0.05)
    assert finished
    assert peak["api"] == 2  # never more, and more than one at once
    assert most >= 3  # the x nodes ran beside the pool's two


def test_max_active_nodes_as_a_group_every_node_needs_serialises_everything():
    parents = {f"n{i}": [] for i in range(5)}
    needs = {n: {"*": 1} for n in parents}
    finished, _, peak, most = run_tracked(parents, {"*": 1}, needs, threads=5, work=0.02)
    assert finished and peak["*"] == 1 and most == 1


def test_a_waiting_worker_is_woken_when_a_slot_frees_not_on_a_timer():
    # 8 nodes of 40 ms through a pool of 1, with 4 workers: ~0.32 s of work back to back; a
    # scheduler that re-checked the pool every 0.1 s would take about 0.8 s
    parents = {f"n{i}": [] for i in range(8)}
    needs = {n: {"api": 1} for n in parents}
    t0 = time.monotonic()
    finished, _, peak, _ = run_tracked(parents, {"api": 1}, needs, threads=4, work=0.04)
    elapsed = time.monotonic() - t0
    assert finished and peak["api"] == 1
    assert elapsed < 0.65, elapsed


def test_a_failure_stops_the_run_and_gives_up_the_nodes_waiting_for_room():
    parents = {"a": [], "b": [], "c": []}
    needs = {n: {"api": 1} for n in parents}
    finished, events, _, _ = run_tracked(parents, {"api": 1}, needs, threads=3, fail={"a"})
    assert not finished
    assert [n for kind, n in events if kind == "start"] == ["a"]  # b and c waited for a's slot: never started


def test_a_run_always_node_waiting_for_room_still_runs_after_a_failure():
    parents = {"a": [], "b": [], "z": []}
    needs = {n: {"api": 1} for n in parents}
    started = []
    queue = KahnQueue(list(parents), parents, run_always=["z"], limits={"api": 1}, needs=needs)
    finished = run_queue(queue, lambda n: Outcome(n != "a"), started.append, lambda n, o: None,
                         lambda n, c: None, threads=3, continue_on_error=False)
    assert not finished
    assert started == ["a", "z"]  # b given up; z (run_always) waited for the slot, then ran


def test_a_need_bigger_than_its_group_runs_alone_instead_of_waiting_forever():
    parents = {"a": [], "b": []}
    finished, events, _, _ = run_tracked(parents, {"api": 2}, {"a": {"api": 5}, "b": {"api": 1}}, threads=2)
    assert finished and sorted(n for kind, n in events if kind == "start") == ["a", "b"]
