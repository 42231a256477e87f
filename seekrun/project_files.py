"""The files of a project: node files found below the node paths (symlinks followed inside the
project, each real folder once; anything outside it or not a regular file refused), and the
checks every file a node reads goes through."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from seekrun.errors import Diagnostic

NODE_SUFFIXES = (".yml", ".yaml")


class Walker:
    """os.walk with symlinks followed inside the project (each real folder once) and every
    entry's type taken from the directory listing (no stat per file)."""

    def __init__(self, project, errors: list[Diagnostic]):
        self.project, self.errors = project, errors
        self.root = str(project.root)
        self.excluded = {os.path.normpath(os.path.join(self.root, e)) for e in project.excluded}
        self.seen: set[str] = set()
        self.yml: list[str] = []
        self.py: list[str] = []

    def _err(self, rel: str, message: str, line: int | None = None) -> None:
        self.errors.append(Diagnostic(rel, line, message))

    def walk(self, node_path: str) -> None:
        base = os.path.join(self.root, node_path)
        where = self.project.marker
        if not os.path.lexists(base):
            self._err(where, f"node path '{node_path}' does not exist: create the folder, or fix node_paths "
                             f"in {self.project.marker}" if self.project.flavour == "seekrun" else
                      f"node folder '{node_path}' does not exist: create it", self.project.node_paths_line)
            return
        if not os.path.isdir(base):
            self._err(where, f"node path '{node_path}' is not a folder: node_paths lists folders",
                      self.project.node_paths_line)
            return
        if not inside(self.project.root, base):
            self._err(where, f"node path '{node_path}' resolves outside the project: use a folder inside it",
                      self.project.node_paths_line)
            return
        self._walk_dir(base, node_path)

    def _walk_dir(self, path: str, rel: str) -> None:
        real = os.path.realpath(path)
        if real in self.seen:
            return  # a loop, or a folder reached twice through links
        self.seen.add(real)
        if os.path.normpath(path) in self.excluded:
            return
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._err(rel, f"cannot read this folder ({exc.strerror}): fix its permissions or remove it "
                           "from node_paths")
            return
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            child = f"{rel}/{name}"
            try:
                link = entry.is_symlink()
                is_dir = entry.is_dir()  # follows links
            except OSError:
                link, is_dir = True, False
            if is_dir:
                if name in ("target", "__pycache__"):
                    continue
                if link and not inside(self.project.root, entry.path):
                    self._err(child, "folder is a symlink to outside the project: node files must be inside "
                                     "the project (copy them in, or link to a folder inside it)")
                    continue
                self._walk_dir(entry.path, child)
                continue
            if name.endswith(NODE_SUFFIXES):
                bucket = self.yml
            elif name.endswith(".py") and not name.startswith("_"):
                bucket = self.py
            else:
                continue
            if link:
                if not os.path.exists(entry.path):
                    self._err(child, "cannot read this file (a broken symlink): fix or remove it")
                    continue
                if not inside(self.project.root, entry.path):
                    self._err(child, "file is a symlink to outside the project: node files must be inside "
                                     "the project")
                    continue
            try:
                regular = entry.is_file()
                if not regular:
                    kind = _kind_of(os.stat(entry.path).st_mode)
            except OSError as exc:
                self._err(child, f"cannot read this file ({exc.strerror}): fix or remove it")
                continue
            if not regular:
                self._err(child, f"is a {kind}, not a regular file: node files must be plain files")
                continue
            bucket.append(entry.path)


def _kind_of(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


def regular_file_problem(path: str | Path, root: Path) -> str | None:
    """Why a file a node reads cannot be used (outside the project, not a regular file,
    unreadable), or None."""
    if not inside(root, path):
        return "resolves outside the project directory: keep data files inside the project"
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"is a {_kind_of(st.st_mode)}, not a regular file"
    if not os.access(path, os.R_OK):
        return "cannot be read (permission denied)"
    return None


def inside(root: Path | str, path: Path | str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)
