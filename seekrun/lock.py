"""One seekrun at a time per project: an flock'd file in target/, released by the kernel on death.

A lock left by a dead process is therefore taken over automatically; a live holder is
named in the refusal (pid and start time).
"""
from __future__ import annotations

import fcntl
import os
from datetime import datetime
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError


class ProjectLock:
    def __init__(self, target_dir: Path):
        self.path = Path(target_dir) / ".seekrun.lock"
        self.fd: int | None = None

    def __enter__(self) -> "ProjectLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                self._refuse(fd)
            finally:
                os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {datetime.now().isoformat(timespec='seconds')}\n".encode(), 0)
        self.fd = fd
        return self

    def check(self) -> None:
        """Refuse if another seekrun holds the lock, without creating or taking anything
        (for read-only commands such as --dry-run)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            self._refuse(fd)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass

    def _refuse(self, fd: int) -> None:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        pid = holder[0] if holder else "?"
        since = holder[1] if len(holder) > 1 else "?"
        raise ProjectError([Diagnostic("target/.seekrun.lock", None,
            f"project is locked by pid {pid} since {since}: wait for it to finish, or stop that process")])

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            finally:
                os.close(self.fd)  # closing releases the flock
                self.fd = None
