"""The process executor: runs a task's program, in its own process group, and never leaves it behind.

- stdout and stderr stream, line by line and redacted, to the task's log file; with
  ``capture``, stdout is also kept (the task's output value).
- ``timeout``: SIGTERM to the whole group, then SIGKILL after ``GRACE`` seconds.
- When the program exits, whatever it left running in its group gets the same treatment.
- ``interrupt()`` (Ctrl-C, SIGTERM, a run timeout) stops every running group the same way.
- kill -9 of seekrun itself: a small reaper process, started with the first task of a run, holds
  a pipe from seekrun; when that pipe closes without a goodbye it stops the groups it was told
  about (SIGTERM, then SIGKILL after the grace).
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

GRACE = float(os.environ.get("SEEKRUN_KILL_GRACE", "2"))
TAIL = 20  # lines of the log shown with a failure

_REAPER = r"""
import os, signal, sys, time
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line == "bye":
        sys.exit(0)
    if line[:1] == "+":
        groups.add(int(line[1:]))
    elif line[:1] == "-":
        groups.discard(int(line[1:]))
def kill(sig):
    for g in list(groups):
        try:
            os.killpg(g, sig)
        except OSError:
            groups.discard(g)
kill(signal.SIGTERM)
end = time.monotonic() + float(sys.argv[1])
while groups and time.monotonic() < end:
    time.sleep(0.05)
    for g in list(groups):
        try:
            os.killpg(g, 0)
        except OSError:
            groups.discard(g)
kill(signal.SIGKILL)
"""


@dataclass
class Finished:
    exit_code: int | None  # None: it could not be started
    timed_out: bool = False
    interrupted: bool = False
    stdout: str = ""
    tail: list[str] = field(default_factory=list)
    error: str | None = None  # why it could not start


class ProcessRunner:
    """One per run: the running groups, and the reaper that outlives a killed seekrun."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._reaper: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._dirs: set[Path] = set()  # log folders made

    # ---- the reaper ----------------------------------------------------------------------
    def _tell(self, line: str) -> None:
        if self._reaper is None:
            self._reaper = subprocess.Popen([sys.executable, "-S", "-I", "-c", _REAPER, str(GRACE)],
                                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True, text=True,
                                            bufsize=1)
        try:
            self._reaper.stdin.write(line + "\n")
            self._reaper.stdin.flush()
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """Normal end of the run: the reaper leaves without touching anything."""
        with self._lock:
            reaper, self._reaper = self._reaper, None
        if reaper is not None:
            try:
                reaper.stdin.write("bye\n")
                reaper.stdin.close()
            except (OSError, ValueError):
                pass
            try:
                reaper.wait(5)
            except subprocess.TimeoutExpired:
                reaper.kill()

    # ---- running -------------------------------------------------------------------------
    def run(self, argv: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout: float | None,
            capture: bool, redact=lambda text: text) -> Finished:
        if self._stopping.is_set():
            return Finished(None, interrupted=True, error="interrupted before it started")
        if log.parent not in self._dirs:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(log.parent)
        with open(log, "ab", buffering=0) as out:
            try:
                with self._lock:  # registered with the reaper before it can fork anything
                    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                            stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE if capture else subprocess.STDOUT,
                                            start_new_session=True)
                    self._groups.add(proc.pid)
                    self._tell(f"+{proc.pid}")
            except OSError as exc:
                return Finished(None, error=f"cannot start {argv[0]}: {exc.strerror or exc}")
            try:
                code, timed_out, tail, kept = follow(proc, out, timeout, capture, redact)
            except BaseException:  # e.g. Ctrl-C in the thread that follows it: it never outlives us
                self._stop_group(proc.pid, leftovers=True)
                raise
            finally:
                with self._lock:
                    self._groups.discard(proc.pid)
                    self._tell(f"-{proc.pid}")
        stdout = b"".join(kept).decode("utf-8", "replace") if capture else ""
        return Finished(code, timed_out=timed_out, interrupted=self._stopping.is_set(),
                        stdout=stdout, tail=tail[-TAIL:])

    def _stop_group(self, pgid: int, leftovers: bool = False) -> None:
        """SIGTERM to the group, then SIGKILL after the grace (on a thread: never blocks the caller
        for longer than it takes to send a signal, unless ``leftovers`` must be gone first)."""
        try:
            os.killpg(pgid, signal.SIGTERM)
        except OSError:
            return  # the group is empty: nothing left running
        if leftovers:
            _finish_off(pgid)
        else:
            threading.Thread(target=_finish_off, args=(pgid,), daemon=True).start()

    def interrupt(self) -> None:
        self._stopping.set()
        with self._lock:
            groups = list(self._groups)
        for g in groups:
            self._stop_group(g)


def _finish_off(pgid: int, end: float | None = None) -> None:
    """SIGKILL to the group at ``end`` (default: the grace from now) unless it is gone by then."""
    end = time.monotonic() + GRACE if end is None else end
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except OSError:
            return
        time.sleep(0.02)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def follow(proc: subprocess.Popen, out, timeout: float | None, capture: bool, redact):
    """On the calling thread: copy the program's output to the log as it comes, line by line and
    redacted, until it has exited and its pipes are closed; on its timeout, stop its group. When
    it exits, what it left running in its group is stopped (else a background child holding
    the pipe would keep this waiting). Returns (exit code, timed out, last lines, stdout)."""
    streams = {proc.stdout.fileno(): proc.stdout}
    if capture:
        streams[proc.stderr.fileno()] = proc.stderr
    pending = {fd: b"" for fd in streams}
    tail: list[str] = []
    kept: list[bytes] = []
    stdout_fd = proc.stdout.fileno()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux 5.3+: poll for the exit instead
        pidfd = None
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN | select.POLLHUP)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    kill_at = None  # SIGKILL then, once SIGTERM has been sent
    give_up = None  # after SIGKILL: a pipe still open then is held outside the group: stop reading
    timed_out, code = False, None

    def line(fd: int, raw: bytes) -> None:
        if capture and fd == stdout_fd:
            kept.append(raw)
        text = redact(raw.decode("utf-8", "replace"))
        out.write(text.encode("utf-8"))
        tail.append(text.rstrip("\n"))
        if len(tail) > 4 * TAIL:
            del tail[: -TAIL]

    def term() -> float | None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            return None
        return time.monotonic() + GRACE

    try:
        while streams or code is None:
            now = time.monotonic()
            if deadline is not None and now >= deadline and not timed_out:
                timed_out, kill_at = True, term()
            if kill_at is not None and now >= kill_at:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                kill_at, give_up = None, now + 1.0
            if give_up is not None and now >= give_up and code is not None:
                break
            wait = [t for t in (deadline if not timed_out else None, kill_at, give_up) if t is not None]
            ms = -1 if not wait else max(0, int((min(wait) - now) * 1000) + 1)
            if pidfd is None and code is None:
                ms = 20 if ms < 0 else min(ms, 20)
            for fd, _ in poller.poll(ms):
                if fd == pidfd:
                    poller.unregister(pidfd)
                    os.close(pidfd)
                    pidfd = None
                    continue
                data = os.read(fd, 65536)
                if not data:
                    poller.unregister(fd)
                    if pending[fd]:
                        line(fd, pending[fd])
                    del streams[fd]
                    continue
                chunk = pending[fd] + data
                *lines, pending[fd] = chunk.split(b"\n")
                for raw in lines:
                    line(fd, raw + b"\n")
            if code is None and (pidfd is None or not streams):
                code = proc.poll()
                if code is not None and kill_at is None and give_up is None:
                    kill_at = term()  # it exited: what it left running in its group goes too
                    if kill_at is None and streams:  # nothing left in its group: the pipe is held outside it
                        give_up = time.monotonic() + 1.0
        if kill_at is not None:  # leftovers that let go of the pipe: gone before the task counts as done
            _finish_off(proc.pid, kill_at)
    finally:
        if pidfd is not None:
            os.close(pidfd)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    return code, timed_out, tail, kept


def describe(seconds: float) -> str:
    """90 -> '1m30s', 600 -> '10m'."""
    s = int(round(seconds))
    if s < 60 and seconds != s:
        return f"{seconds:g}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"
