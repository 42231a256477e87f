"""One seekrun at a time per project: an flock'd file in target/, released by the kernel on death.

A lock left by a dead process is therefore taken over automatically; a live holder is
named in the refusal (pid, its command line when readable, and since when, in UTC).  A lock
is never a reason to delete anything: the messages say to wait for the holder or stop it.

- ``with ProjectLock(target)`` takes the lock or refuses at once; ``ProjectLock(target,
  wait=seconds)`` (``wait=0``: forever) waits for it, saying once on stderr whom it waits for.
- ``ProjectLock(target).holder()`` says who holds it, without taking or creating anything,
  for read-only commands (they go on, reading the last committed state).
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError

LOCK_REL = "target/.seekrun.lock"


def utc_now() -> str:
    """The time, as every message and artifact of seekrun gives it: UTC, with its zone."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def command_line(pid: int | str) -> str | None:
    """A process's command line (from /proc), shortened; None if it cannot be read."""
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    if not args:
        return None
    args[0] = os.path.basename(args[0])
    text = " ".join(" ".join(args).split())  # one line, whatever the arguments hold
    return text if len(text) <= 300 else text[:297] + "..."


def describe_process(pid: int | str) -> str:
    """'pid 123 (seekrun run -p proj)', or 'pid 123' when its command line is not readable."""
    cmd = command_line(pid)
    return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"


@dataclass
class Holder:
    pid: str
    since: str  # as written by the holder; UTC with its zone (older seekruns wrote local time)

    def describe(self) -> str:
        return f"{describe_process(self.pid) if self.pid.isdigit() else 'pid ' + self.pid} since {self.since}"


def _holder(fd: int) -> Holder:
    text = os.pread(fd, 300, 0).decode("utf-8", "replace").strip()
    pid, _, since = text.partition(" ")
    return Holder(pid if pid.isdigit() else "?", since.strip() or "?")


class ProjectLock:
    def __init__(self, target_dir: Path, wait: float | None = None):
        """wait: None refuses at once when another seekrun holds the lock; a number waits for
        it that many seconds at most (0: as long as it takes)."""
        self.path = Path(target_dir) / ".seekrun.lock"
        self.fd: int | None = None
        self.wait = wait

    def __enter__(self) -> "ProjectLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                if self.wait is None:
                    self._refuse(_holder(fd))
                self._wait_for(fd)
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {utc_now()}\n".encode(), 0)
        self.fd = fd
        return self

    def _wait_for(self, fd: int) -> None:
        holder = _holder(fd)
        limit = f" (at most {self.wait:g} s)" if self.wait else ""
        print(f"seekrun: waiting{limit} for the run in progress to finish: {holder.describe()}",
              file=sys.stderr, flush=True)
        deadline = time.monotonic() + self.wait if self.wait else None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            if deadline is not None and time.monotonic() >= deadline:
                raise ProjectError([Diagnostic(LOCK_REL, None,
                    f"gave up waiting after {self.wait:g} s: the project is still locked by "
                    f"{_holder(fd).describe()}: wait longer, or stop that process")])
            time.sleep(0.05)

    def holder(self) -> Holder | None:
        """Who holds the lock now (None: no one), without creating or taking anything."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(fd)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass
        return None

    def check(self) -> None:
        """Refuse if another seekrun holds the lock, without creating or taking anything."""
        holder = self.holder()
        if holder is not None:
            self._refuse(holder)

    @staticmethod
    def _refuse(holder: Holder) -> None:
        raise ProjectError([Diagnostic(LOCK_REL, None,
            f"project is locked by {holder.describe()}: a run is in progress; wait for it to finish "
            "(`seekrun run --wait` waits for it), or stop that process")])

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            finally:
                os.close(self.fd)  # closing releases the flock
                self.fd = None


def in_progress_note(holder: Holder) -> str:
    """What a read-only command says while a run holds the lock."""
    return (f"a run is in progress ({holder.describe()}): showing the last committed state "
            "(what that run has finished so far)")


def note_run_in_progress(target_dir: Path) -> Holder | None:
    """For a read-only command: if a run holds the lock, say so on stderr (the command goes
    on, reading the last committed state) and return its holder."""
    holder = ProjectLock(target_dir).holder()
    if holder is not None:
        print(f"seekrun: note: {in_progress_note(holder)}", file=sys.stderr, flush=True)
    return holder
