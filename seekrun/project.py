"""Project discovery: the marker file, the project config and the node files."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError

SEEKRUN_MARKER = "seekrun_project.yml"
SEEKNAL_MARKER = "seeknal_project.yml"
NODE_SUFFIXES = (".yml", ".yaml")


@dataclass
class Project:
    root: Path  # resolved, absolute
    name: str
    flavour: str  # "seekrun" or "seeknal"
    marker: str
    node_paths: list[str]
    excluded: list[str] = field(default_factory=list)  # relative folders that hold no nodes
    database: str = "target/seekrun.duckdb"
    common_dir: str | None = None  # seeknal/common

    @property
    def target_dir(self) -> Path:
        return self.root / "target"

    @property
    def state_dir(self) -> Path:
        return self.target_dir / "state"

    @property
    def database_path(self) -> Path:
        path = Path(self.database)
        return path if path.is_absolute() else self.root / path

    def rel(self, path: Path | str) -> str:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def node_files(self) -> tuple[list[Path], list[Path]]:
        """All node YAML files and Python pipeline files below the node paths, sorted."""
        yml: list[str] = []
        py: list[str] = []
        excluded = {os.path.normpath(self.root / e) for e in self.excluded}
        for node_path in self.node_paths:
            base = os.path.join(self.root, node_path)
            if not os.path.isdir(base):
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                if os.path.normpath(dirpath) in excluded:
                    dirnames[:] = []
                    continue
                dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("target", "__pycache__")]
                for fn in filenames:
                    if fn.startswith("."):
                        continue
                    if fn.endswith(NODE_SUFFIXES):
                        yml.append(os.path.join(dirpath, fn))
                    elif fn.endswith(".py") and not fn.startswith("_"):
                        py.append(os.path.join(dirpath, fn))
        return [Path(p) for p in sorted(set(yml))], [Path(p) for p in sorted(set(py))]


def find_project(project_dir: Path | str) -> Project:
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise ProjectError([Diagnostic(str(project_dir), None,
                                       "project directory does not exist: pass an existing folder with -p")])
    has_seekrun = (root / SEEKRUN_MARKER).is_file()
    has_seeknal = (root / SEEKNAL_MARKER).is_file()
    if not has_seekrun and not has_seeknal:
        raise ProjectError([Diagnostic(str(project_dir), None,
            f"not a seekrun project: no {SEEKRUN_MARKER} or {SEEKNAL_MARKER} found; "
            f"create {SEEKRUN_MARKER} (with 'name: my_project') or pass the project folder with -p")])
    if has_seekrun and has_seeknal:
        raise ProjectError([Diagnostic(SEEKRUN_MARKER, None,
            f"both {SEEKRUN_MARKER} and {SEEKNAL_MARKER} are present: keep only one marker file")])
    marker = SEEKRUN_MARKER if has_seekrun else SEEKNAL_MARKER
    from seekrun.parser.yaml_load import load_marker

    cfg, line = load_marker(root / marker, marker)
    if has_seekrun:
        node_paths = cfg.get("node_paths") or ["nodes"]
        if not isinstance(node_paths, list) or any(not isinstance(p, str) for p in node_paths):
            raise ProjectError([Diagnostic(marker, line("node_paths"), "node_paths must be a list of folder names")])
        for p in node_paths:
            if not _inside(root, root / p):
                raise ProjectError([Diagnostic(marker, line("node_paths"),
                    f"node path '{p}' is outside the project: use a folder inside {root.name}")])
        database = cfg.get("database", "target/seekrun.duckdb")
        if not isinstance(database, str):
            raise ProjectError([Diagnostic(marker, line("database"), "database must be a file path string")])
        return Project(root, str(cfg.get("name") or root.name), "seekrun", marker, list(node_paths),
                       database=database)
    return Project(root, str(cfg.get("name") or root.name), "seeknal", marker, ["seeknal"],
                   excluded=["seeknal/common"], common_dir="seeknal/common")


def _inside(root: Path, path: Path) -> bool:
    try:
        Path(os.path.realpath(path)).relative_to(root)
        return True
    except ValueError:
        return False
