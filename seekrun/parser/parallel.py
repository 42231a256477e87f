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
import signal
import sys
import threading
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")
MIN_FILES = 200


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _forced() -> int | None:
    """SEEKRUN_PARSE_WORKERS, when set to a number."""
    forced = os.environ.get("SEEKRUN_PARSE_WORKERS", "")
    return int(forced) if forced.isdigit() else None


def workers_for(n_jobs: int, overlap: bool = False) -> int:
    """How many processes read n_jobs files; with ``overlap``, 2 means one worker reads them
    all while the parent does other work (the parent's own slice is then empty).  Never with
    duckdb loaded or other threads running (a lock one of them holds stays held in a child)."""
    if not hasattr(os, "fork") or "duckdb" in sys.modules or not n_jobs or threading.active_count() > 1:
        return 1
    forced = _forced()
    if forced is not None and forced >= 1:
        return min(forced, max(1, n_jobs))
    if n_jobs < MIN_FILES:
        return 2 if overlap and _cores() >= 2 else 1
    return max(1, min(_cores(), 8, n_jobs // (MIN_FILES // 2)))


def _fork(work: Callable[[], bytes]) -> tuple[int, int]:
    """A child that sends what work() returns through a pipe, then leaves without running
    any cleanup handler: (pid, read end).  Signals are blocked across the fork, so none
    reaches the child in the parent's handlers (it dies of one instead: its jobs are redone)."""
    r, w = os.pipe()
    stop = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for sig in stop:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
            os.close(r)
            data = work()
            with os.fdopen(w, "wb") as out:
                out.write(data)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    try:  # (a signal that came meanwhile is delivered here)
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
        os.close(w)
    except BaseException:
        _reap(pid, r, kill=True)
        raise
    return pid, r


def _reap(pid: int, fd: int | None, kill: bool = False) -> None:
    """Close our end of a child's pipe and collect it (killed first when its work is not wanted)."""
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    if kill:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _collect(pid: int, fd: int) -> tuple[bool, bytes]:
    """(the child succeeded, what it sent), once it has left."""
    with os.fdopen(fd, "rb") as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    return status == 0, data


def _loads(ok: bool, data: bytes) -> list | None:
    try:
        return pickle.loads(data) if ok else None
    except Exception:
        return None


def map_forked(func: Callable[[T], R], jobs: Sequence[T], meanwhile: Callable[[], None] | None = None) -> list[R]:
    """[func(j) for j in jobs], computed by up to one process per core.  ``meanwhile`` runs in
    this process once the workers are started (always exactly once, workers or not)."""
    k = workers_for(len(jobs), overlap=meanwhile is not None)
    if k <= 1:
        if meanwhile is not None:
            meanwhile()
        return [func(j) for j in jobs]
    if len(jobs) < MIN_FILES and _forced() is None:
        slices = [[], list(jobs)]  # one worker reads them all; the parent does ``meanwhile``
    else:
        size = -(-len(jobs) // k)
        slices = [list(jobs[i:i + size]) for i in range(0, len(jobs), size)]
    children: list[list] = []  # [pid, read end or None once read, part]
    try:
        for part in slices[1:]:
            pid, r = _fork(lambda part=part: pickle.dumps([func(j) for j in part], protocol=pickle.HIGHEST_PROTOCOL))
            children.append([pid, r, part])
        if meanwhile is not None:
            meanwhile()
        results = [func(j) for j in slices[0]]
        for child in children:
            pid, r, part = child
            child[1] = None
            got = _loads(*_collect(pid, r))
            child[0] = None
            results.extend(got if got is not None else [func(j) for j in part])  # (a failed worker: redone here)
        return results
    finally:  # an exception (Ctrl-C, meanwhile's): no worker is left running
        for pid, r, _ in children:
            if pid is not None:
                _reap(pid, r, kill=True)


class Reader:
    """One worker forked before the parent knows which files it will read, so that it loads
    what reading needs (``warm``: pydantic, YAML) while the parent stats and looks the files up
    in the caches; ``map`` then hands it the jobs (``meanwhile`` runs in the parent as it reads).
    Without fork, with one core, other threads or duckdb loaded, it is map_forked, unchanged.  A
    worker that fails is no loss: its jobs are computed in the parent."""

    def __init__(self, warm: Callable[[], None]):
        self.pid = self.jobs_w = self.out_r = None
        if workers_for(1, overlap=True) < 2 or _forced() is not None:
            return
        jobs_r, jobs_w = os.pipe()

        def work() -> bytes:
            os.close(jobs_w)
            warm()
            with os.fdopen(jobs_r, "rb") as inp:
                data = inp.read()
            if not data:
                return b""
            func, jobs = pickle.loads(data)
            return pickle.dumps([func(j) for j in jobs], protocol=pickle.HIGHEST_PROTOCOL)

        try:
            self.pid, self.out_r = _fork(work)
        finally:
            os.close(jobs_r)
        self.jobs_w = jobs_w

    def map(self, func: Callable[[T], R], jobs: Sequence[T], meanwhile: Callable[[], None] | None = None) -> list[R]:
        if self.pid is None or not jobs or len(jobs) >= MIN_FILES:
            self.close()
            return map_forked(func, jobs, meanwhile)
        try:
            try:
                data = pickle.dumps((func, list(jobs)), protocol=pickle.HIGHEST_PROTOCOL)
                fd, self.jobs_w = self.jobs_w, None
                with os.fdopen(fd, "wb") as out:  # (closed either way: the worker sees the end of its jobs)
                    out.write(data)
            except Exception:  # not picklable, or the worker left before it took them (a broken pipe)
                self.close(kill=True)
                return map_forked(func, jobs, meanwhile)  # (no duckdb yet: meanwhile has not run)
            if meanwhile is not None:
                meanwhile()
            fd, self.out_r = self.out_r, None
            got = _loads(*_collect(self.pid, fd))
            self.pid = None
        except BaseException:  # meanwhile's error, Ctrl-C: the worker is not waited for
            self.close(kill=True)
            raise
        return got if got is not None else [func(j) for j in jobs]  # a failed worker: computed here

    def close(self, kill: bool = False) -> None:
        """No jobs for the worker (or no wait for it): it leaves, collected here."""
        if self.pid is None:
            return
        if self.jobs_w is not None:
            try:
                os.close(self.jobs_w)
            except OSError:
                pass
            self.jobs_w = None
        pid, fd, self.pid, self.out_r = self.pid, self.out_r, None, None
        _reap(pid, fd, kill=kill)
