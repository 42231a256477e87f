"""The previous manifest, for parse's diff: seekrun's own, even after Seeknal wrote over it.

Seeknal and seekrun both write target/manifest.json, in different formats, and Seeknal writes
it in place. When the file there is Seeknal's, it is moved to target/manifest.seeknal.json
(one rename: atomic) as seekrun writes its own, and said once; the previous manifest is then
seekrun's own copy in target/state/manifest.json (Manifest.save keeps it). Builds never depend
on either: what was built is in target/state/, so they stay incremental.
"""
from __future__ import annotations

import json
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError
from seekrun.manifest import OWN_COPY, SEEKNAL_COPY, Manifest, SeeknalManifest, is_seeknal, newer_version


def load_previous(path: Path, warnings: list, seeknal: list | None = None) -> Manifest | None:
    """The current manifest, or None. An unreadable one is only a warning: parse rebuilds it.
    A manifest from a newer seekrun is refused (exit 2), so it is never silently replaced.
    One Seeknal wrote is noted in ``seeknal`` (a list), and seekrun's own last manifest is
    returned instead."""
    if not path.exists():
        return None
    try:
        return Manifest.load(path)
    except SeeknalManifest:
        if seeknal is None:
            return None
        seeknal.append(path)
        own = path.parent / OWN_COPY
        return load_previous(own, warnings, None) if own.exists() else None
    except ProjectError as exc:
        if newer_version(exc):
            raise
        warnings.append(Diagnostic("target/manifest.json", None,
                                   "previous manifest is unreadable; treating every node as new", "warning"))
        return None


def keep_seeknal(path: Path) -> Diagnostic | None:
    """Move Seeknal's manifest at ``path`` (target/manifest.json) to target/manifest.seeknal.json
    (an older copy there is replaced by this newer one); the warning to show, or None if the
    file is not Seeknal's any more."""
    from seekrun.fsutil import fsync_path

    try:
        if not is_seeknal(json.loads(path.read_bytes())):
            return None
    except (OSError, ValueError, RecursionError):
        return None
    path.replace(path.parent / SEEKNAL_COPY)
    fsync_path(path.parent)
    return Diagnostic("", None, f"target/manifest.json was written by Seeknal: kept it as target/{SEEKNAL_COPY} "
                                "(seekrun writes its own target/manifest.json; its build state in target/state/ "
                                "is unchanged)", "warning")
