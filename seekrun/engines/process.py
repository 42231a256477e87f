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
        log.parent.mkdir(parents=True, exist_ok=True)
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
            tail: list[str] = []
            kept: list[bytes] = []
            readers = [threading.Thread(target=_pump, args=(proc.stdout, out, tail, kept if capture else None,
                                                             redact), daemon=True)]
            if capture:
                readers.append(threading.Thread(target=_pump, args=(proc.stderr, out, tail, None, redact),
                                                daemon=True))
            for r in readers:
                r.start()
            timed_out = threading.Event()
            timer = None
            if timeout is not None:
                def expire():
                    timed_out.set()
                    self._stop_group(proc.pid)
                timer = threading.Timer(timeout, expire)
                timer.daemon = True
                timer.start()
            code = proc.wait()
            if timer is not None:
                timer.cancel()
            self._stop_group(proc.pid, leftovers=True)  # what it left running in its group
            for r in readers:
                r.join()
            with self._lock:
                self._groups.discard(proc.pid)
                self._tell(f"-{proc.pid}")
        stdout = b"".join(kept).decode("utf-8", "replace") if capture else ""
        return Finished(code, timed_out=timed_out.is_set(), interrupted=self._stopping.is_set(),
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


def _finish_off(pgid: int) -> None:
    end = time.monotonic() + GRACE
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


def _pump(stream, out, tail: list[str], kept: list[bytes] | None, redact) -> None:
    """Copy a pipe to the log, line by line, redacted; keep the last lines (and all of stdout)."""
    for raw in iter(stream.readline, b""):
        if kept is not None:
            kept.append(raw)
        text = redact(raw.decode("utf-8", "replace"))
        out.write(text.encode("utf-8"))
        tail.append(text.rstrip("\n"))
        if len(tail) > 4 * TAIL:
            del tail[: -TAIL]
    stream.close()


def describe(seconds: float) -> str:
    """90 -> '1m30s', 600 -> '10m'."""
    s = int(round(seconds))
    if s < 60 and seconds != s:
        return f"{seconds:g}s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (sec, "s")) if v) or "0s"
