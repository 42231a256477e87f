"""`seekrun clean`: remove what seekrun wrote under target/ (the database, manifest, run history,
logs, feature store, docs, exposures written there), keeping target/state/ (what was built from
what) unless `--all`. Under the project lock, so never while a run goes on.

The next run rebuilds what is gone: a recorded node whose table or file is missing reruns
("output missing"). The lock file itself stays: removing a lock others may be waiting on would
let two runs in at once. Nothing outside target/ is touched (a `database:` elsewhere in the
project, exposure folders such as output/).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

KEEP_ALWAYS = (".seekrun.lock",)


def planned(target_dir: Path, everything: bool) -> list[str]:
    """The entries of target/ that clean removes, by name, sorted."""
    try:
        names = os.listdir(target_dir)
    except FileNotFoundError:
        return []
    keep = set(KEEP_ALWAYS) | (set() if everything else {"state"})
    return sorted(n for n in names if n not in keep)


def remove(target_dir: Path, names: list[str]) -> None:
    """Remove these entries (a symlink itself, never what it points at). Files go before
    folders, the state folder last: a clean stopped half-way leaves a state that still
    describes no more than what is there, and the next run rebuilds what is missing."""
    ordered = sorted(names, key=lambda n: (n == "state", os.path.isdir(target_dir / n)
                                           and not os.path.islink(target_dir / n), n))
    for name in ordered:
        path = target_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
