"""Crash points for the reliability tests: SEEKRUN_FAULT=<point>[:<node id>][#<n>] makes the
process SIGKILL itself the n-th time (default: the first) it reaches that point (for that
node); SEEKRUN_FAULT=raise@<point>... raises an exception there instead (an internal error),
and SEEKRUN_FAULT=enospc@<point>... the error a full disk gives.
Unset, as it always is outside the tests, a point costs one comparison.

Points: ``after_commit`` (a node's table and files are committed, its journal line is not
written yet), ``before_build`` (a node is about to start), ``state_fold`` (the journal is
being folded into execution_state.json), ``manifest_write`` (manifest.json's temp file is
written, not renamed), ``exposure_write`` (an exposure's temp file is written, not renamed),
``plan`` (a run has made its plan, before anything is checked or written), ``write:<file
name>`` (an atomic write of target/ has its temp file open), ``journal`` (a journal line is
about to be appended).
"""
from __future__ import annotations

import os
import threading

_SPEC = os.environ.get("SEEKRUN_FAULT") or None
_lock = threading.Lock()
_seen: dict[str, int] = {}


def _parse(spec: str) -> tuple[str, str, str | None, int]:
    action, _, spec = spec.rpartition("@")
    where, _, nth = spec.partition("#")
    point, _, node = where.partition(":")
    return action or "kill", point, node or None, int(nth) if nth.isdigit() else 1


def point(name: str, node: str | None = None) -> None:
    if _SPEC is None:
        return
    action, want, want_node, nth = _parse(_SPEC)
    if want != name or (want_node is not None and want_node != node):
        return
    with _lock:
        _seen[name] = _seen.get(name, 0) + 1
        if _seen[name] != nth:
            return
    if action == "raise":
        raise RuntimeError(f"fault injected at {name}")
    if action == "enospc":
        import errno

        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), node or name)
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
