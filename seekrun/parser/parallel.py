"""Read many uncached node files on all cores (cold parse), by fork.

Each worker reads a contiguous slice of the files and sends its results back pickled
through a pipe; the parent reads the first slice itself.  Used only where fork is safe
and worth it: a POSIX system, several cores, enough files, and no duckdb loaded in this
process (its native threads make fork unsafe; the CLI parses before importing it).
SEEKRUN_PARSE_WORKERS=N sets the number of processes (1: no fork).
Any worker failure falls back to reading that slice in the parent, so the result never
depends on whether it ran in parallel.

With ``meanwhile`` (work the parent has to do next anyway, e.g. loading duckdb), even a few
files are read by one forked worker while the parent does that work on another core: the
files a commit changed are read (pydantic, YAML) in the time the parent loads duckdb.
"""
from __future__ import annotations

import os
import pickle
import sys
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MIN_FILES = 200


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def workers_for(n_jobs: int, overlap: bool = False) -> int:
    """How many processes read n_jobs files; with ``overlap``, 2 means one worker reads them
    all while the parent does other work (the parent's own slice is then empty)."""
    forced = os.environ.get("SEEKRUN_PARSE_WORKERS", "")
    if not hasattr(os, "fork") or "duckdb" in sys.modules or not n_jobs:
        return 1
    if forced.isdigit() and int(forced) >= 1:
        return min(int(forced), max(1, n_jobs))
    if n_jobs < MIN_FILES:
        return 2 if overlap and _cores() >= 2 else 1
    return max(1, min(_cores(), 8, n_jobs // (MIN_FILES // 2)))


def map_forked(func: Callable[[T], R], jobs: Sequence[T], meanwhile: Callable[[], None] | None = None) -> list[R]:
    """[func(j) for j in jobs], computed by up to one process per core.  ``meanwhile`` runs in
    this process once the workers are started (always exactly once, workers or not)."""
    k = workers_for(len(jobs), overlap=meanwhile is not None)
    if k <= 1:
        if meanwhile is not None:
            meanwhile()
        return [func(j) for j in jobs]
    if len(jobs) < MIN_FILES and not os.environ.get("SEEKRUN_PARSE_WORKERS", "").isdigit():
        slices = [[], list(jobs)]  # one worker reads them all; the parent does ``meanwhile``
    else:
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
    failure = None
    if meanwhile is not None:
        try:
            meanwhile()
        except BaseException as exc:  # raised once the workers are collected (none left behind)
            failure = exc
    results = [func(j) for j in slices[0]] if failure is None else []
    for pid, r, part in children:
        with os.fdopen(r, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(pid, 0)
        try:
            if status != 0:
                raise ValueError("worker failed")
            results.extend(pickle.loads(data))
        except Exception:
            if failure is None:
                results.extend(func(j) for j in part)  # same answer, computed here
    if failure is not None:
        raise failure
    return results


class Reader:
    """One worker forked before the parent knows which files it will read, so that it loads
    what reading needs (``warm``: pydantic, YAML) while the parent stats and looks the files up
    in the caches; ``map`` then hands it the jobs (``meanwhile`` runs in the parent as it reads).
    Without fork, with one core or with duckdb loaded, it is map_forked, unchanged.  A worker
    that fails is no loss: its jobs are computed in the parent."""

    def __init__(self, warm: Callable[[], None]):
        self.pid = None
        if workers_for(1, overlap=True) < 2 or os.environ.get("SEEKRUN_PARSE_WORKERS", "").isdigit():
            return
        jobs_r, jobs_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(jobs_w)
                os.close(out_r)
                warm()
                with os.fdopen(jobs_r, "rb") as inp:
                    data = inp.read()
                if data:
                    func, jobs = pickle.loads(data)
                    with os.fdopen(out_w, "wb") as out:
                        out.write(pickle.dumps([func(j) for j in jobs], protocol=pickle.HIGHEST_PROTOCOL))
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(jobs_r)
        os.close(out_w)
        self.pid, self.jobs_w, self.out_r = pid, jobs_w, out_r

    def map(self, func: Callable[[T], R], jobs: Sequence[T], meanwhile: Callable[[], None] | None = None) -> list[R]:
        if self.pid is None or not jobs or len(jobs) >= MIN_FILES:
            self.close()
            return map_forked(func, jobs, meanwhile)
        try:
            data = pickle.dumps((func, list(jobs)), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(self.jobs_w, "wb") as out:
                out.write(data)
        except Exception:  # (not picklable): read here
            self.close()
            return map_forked(func, jobs, meanwhile)
        self.jobs_w = None  # (closed by the with: the worker sees the end of its jobs)
        failure = None
        if meanwhile is not None:
            try:
                meanwhile()
            except BaseException as exc:
                failure = exc
        out_r, self.out_r = self.out_r, None
        with os.fdopen(out_r, "rb") as inp:
            data = inp.read()
        _, status = os.waitpid(self.pid, 0)
        self.pid = None
        if failure is not None:
            raise failure
        try:
            if status != 0:
                raise ValueError("worker failed")
            return pickle.loads(data)
        except Exception:
            return [func(j) for j in jobs]  # same answer, computed here

    def close(self) -> None:
        """No jobs for the worker: it leaves (collected here, none left running)."""
        if self.pid is None:
            return
        for fd in (self.jobs_w, self.out_r):
            if fd is not None:
                os.close(fd)
        self.jobs_w = self.out_r = None
        os.waitpid(self.pid, 0)
        self.pid = None
