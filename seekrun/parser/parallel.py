"""Read many uncached node files on all cores (cold parse), by fork.

Each worker reads a contiguous slice of the files and sends its results back pickled
through a pipe; the parent reads the first slice itself.  Used only where fork is safe
and worth it: a POSIX system, several cores, enough files, and no duckdb loaded in this
process (its native threads make fork unsafe; the CLI parses before importing it).
SEEKRUN_PARSE_WORKERS=N sets the number of processes (1: no fork).
Any worker failure falls back to reading that slice in the parent, so the result never
depends on whether it ran in parallel.
"""
from __future__ import annotations

import os
import pickle
import sys
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MIN_FILES = 200


def workers_for(n_jobs: int) -> int:
    forced = os.environ.get("SEEKRUN_PARSE_WORKERS", "")
    if not hasattr(os, "fork") or "duckdb" in sys.modules:
        return 1
    if forced.isdigit() and int(forced) >= 1:
        return min(int(forced), max(1, n_jobs))
    if n_jobs < MIN_FILES:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 8, n_jobs // (MIN_FILES // 2)))


def map_forked(func: Callable[[T], R], jobs: Sequence[T]) -> list[R]:
    """[func(j) for j in jobs], computed by up to one process per core."""
    k = workers_for(len(jobs))
    if k <= 1:
        return [func(j) for j in jobs]
    size = -(-len(jobs) // k)
    slices = [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]
    children: list[tuple[int, int, list[T]]] = []
    for part in slices[1:]:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: compute, send, and leave without running any cleanup handlers
            code = 0
            try:
                os.close(r)
                data = pickle.dumps([func(j) for j in part], protocol=pickle.HIGHEST_PROTOCOL)
                with os.fdopen(w, "wb") as out:
                    out.write(data)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(w)
        children.append((pid, r, part))
    results = [func(j) for j in slices[0]]
    for pid, r, part in children:
        with os.fdopen(r, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(pid, 0)
        try:
            if status != 0:
                raise ValueError("worker failed")
            results.extend(pickle.loads(data))
        except Exception:
            results.extend(func(j) for j in part)  # same answer, computed here
    return results
