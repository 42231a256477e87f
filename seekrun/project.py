"""Project discovery: the marker file, the project config and the node files.

Every node folder must exist and be readable: a typo in ``node_paths`` is an error, never
a project with no nodes (whose next run would drop every table).  Node folders and files
may be symlinks to places inside the project (followed, loops cut); anything whose real
path is outside the project, and anything that is not a regular file (a FIFO would block
the read forever), is refused.  All problems are reported together.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError
from seekrun.project_files import NODE_SUFFIXES, inside, regular_file_problem  # noqa: F401 (for importers)

SEEKRUN_MARKER = "seekrun_project.yml"
SEEKNAL_MARKER = "seeknal_project.yml"
DEFAULT_DATABASE = "target/seekrun.duckdb"
OWN_FILES = frozenset({"target/manifest.json", "target/manifest.json.old", "target/manifest.seeknal.json",
                       "target/run_results.json",
                       "target/.seekrun.lock"})
OWN_FOLDERS = ("target/state/", "target/feature_store/", "target/logs/", "target/tasks/", "target/runs/")  # everything inside these is seekrun's


def seekrun_owned(rel: str) -> bool:
    """Whether a project-relative path is one of seekrun's own files, or inside its own folders."""
    return rel in OWN_FILES or rel.startswith(OWN_FOLDERS)


@dataclass
class Project:
    root: Path  # resolved, absolute
    name: str
    flavour: str  # "seekrun" or "seeknal"
    marker: str
    node_paths: list[str]
    excluded: list[str] = field(default_factory=list)  # relative folders that hold no nodes
    database: str = DEFAULT_DATABASE
    common_dir: str | None = None  # seeknal/common
    exposure_paths: list[str] = field(default_factory=list)  # folders exposures may write to, besides target/
    allow_external_database: bool = False
    node_paths_line: int | None = None  # where node_paths is in the project file (for its errors)
    timeout: float | None = None  # `timeout:` in the project file: seconds a run may take
    timeout_text: str | None = None  # ... as written
    # a workflow file (seekrun/workflows/load.py): flavour "workflow", marker = the file's name
    target: Path | None = None  # target/ elsewhere: a workflow's, or a child DAG's (under its parent's)
    workflow: str | None = None  # the document of the workflow file that runs ("" = the first)
    handlers: dict = field(default_factory=dict)  # on_success... / handlerOn: {success|failure|cancel|exit: step} (seekrun/handlers.py)
    notify: list = field(default_factory=list)  # notifications: [{when, webhook | command, line}] (seekrun/notify.py)
    notes: list = field(default_factory=list)  # verbose-only remarks about the project file
    warnings: list = field(default_factory=list)  # about the project file (shown with parse's)
    workflow_config: dict = field(default_factory=dict)  # a workflow's params, env, dotenv, maxActiveSteps
    workflow_lines: dict = field(default_factory=dict)  # ... and the lines of its keys
    chain: bool = False  # a workflow's `type: chain`
    params: dict[str, str] = field(default_factory=dict)  # `params:` declared, with their defaults (seekrun/params.py)
    env: dict[str, str] = field(default_factory=dict)  # the project environment (env: over dotenv:)
    env_entries: list = field(default_factory=list)  # env: as written: (name, text, line)
    dotenv_values: dict[str, str] = field(default_factory=dict)  # what the dotenv: files hold
    run_params: dict[str, str] = field(default_factory=dict)  # this run's params (defaults, then the given ones)
    max_active_nodes: int | None = None  # at most this many nodes run at once (parser/pools.py)
    pools: dict[str, int] = field(default_factory=dict)  # pool name -> its slots
    keep_runs: int | None = None  # `history: {keep_runs: N}`: run folders kept in target/runs/ (default 50)
    engine: str = "duckdb"  # `engine:`, and `spark:` settings (seekrun/parser/engines.py)
    spark: dict = field(default_factory=dict)

    @property
    def target_dir(self) -> Path:
        return self.target if self.target is not None else self.root / "target"

    @property
    def state_dir(self) -> Path:
        return self.target_dir / "state"

    @property
    def database_path(self) -> Path:
        path = Path(self.database)
        return path if path.is_absolute() else self.root / path

    @property
    def external_database(self) -> bool:
        return not inside(self.root, self.database_path)

    def rel(self, path: Path | str) -> str:
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def node_files(self, errors: list[Diagnostic] | None = None) -> tuple[list[Path], list[Path]]:
        """All node YAML files and Python pipeline files below the node paths, sorted.
        Problems (a missing or unreadable folder, a file outside the project, a special file)
        go to ``errors`` (raised as a ProjectError when no list is given)."""
        problems: list[Diagnostic] = [] if errors is None else errors
        if self.flavour == "workflow":
            return [self.root / self.marker], []
        from seekrun.project_files import Walker

        walker = Walker(self, problems)
        for node_path in self.node_paths:
            walker.walk(node_path)
        if errors is None and problems:
            raise ProjectError(problems)
        return [Path(p) for p in sorted(set(walker.yml))], [Path(p) for p in sorted(set(walker.py))]


def find_project(project_dir: Path | str, *, target: Path | str | None = None, dag: str | None = None) -> Project:
    """The project in a folder, or the workflow in a YAML file (seekrun/workflows/load.py).
    ``target``: keep target/ there (a child DAG's state, under its parent's target/)."""
    if str(project_dir).endswith((".yaml", ".yml")) and not os.path.isdir(project_dir):
        from seekrun.workflows.load import find_workflow

        return find_workflow(project_dir, target=target, dag=dag)
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise ProjectError([Diagnostic(str(project_dir), None,
                                       "project directory does not exist: pass an existing folder with -p")])
    has_seekrun = os.path.lexists(root / SEEKRUN_MARKER)
    has_seeknal = os.path.lexists(root / SEEKNAL_MARKER)
    if not has_seekrun and not has_seeknal:
        raise ProjectError([Diagnostic(str(project_dir), None,
            f"not a seekrun project: no {SEEKRUN_MARKER} or {SEEKNAL_MARKER} found; "
            f"create {SEEKRUN_MARKER} (with 'name: my_project') or pass the project folder with -p")])
    if has_seekrun and has_seeknal:
        raise ProjectError([Diagnostic(SEEKRUN_MARKER, None,
            f"both {SEEKRUN_MARKER} and {SEEKNAL_MARKER} are present: keep only one marker file")])
    marker = SEEKRUN_MARKER if has_seekrun else SEEKNAL_MARKER
    why = regular_file_problem(root / marker, root)
    if why is not None:
        raise ProjectError([Diagnostic(marker, None, f"the project file {why.replace('data files', 'it')}: "
                                                     "make it a plain, readable YAML file")])
    from seekrun.parser.yaml_load import load_marker

    cfg, line = load_marker(root / marker, marker)
    errors: list[Diagnostic] = []
    if has_seekrun:
        node_paths = cfg.get("node_paths") or ["nodes"]
        if not isinstance(node_paths, list) or any(not isinstance(p, str) or not p.strip() for p in node_paths):
            raise ProjectError([Diagnostic(marker, line("node_paths"), "node_paths must be a list of folder names")])
        for p in node_paths:
            if not inside(root, root / p):
                errors.append(Diagnostic(marker, line("node_paths"),
                    f"node path '{p}' is outside the project: use a folder inside {root.name}"))
        project = Project(root, str(cfg.get("name") or root.name), "seekrun", marker, list(node_paths),
                          node_paths_line=line("node_paths") if "node_paths" in cfg else None)
    else:
        project = Project(root, str(cfg.get("name") or root.name), "seeknal", marker, ["seeknal"],
                          excluded=["seeknal/common"], common_dir="seeknal/common")
    _read_outputs_config(project, cfg, line, errors)
    read_timeout(project, cfg, marker, line, errors)
    _read_params(project, cfg, line, errors)
    _read_history(project, cfg, line, errors)
    if target is not None:  # a child DAG's state: its database too (each set of params has its own)
        project.target = Path(target).resolve()
        if project.database == DEFAULT_DATABASE:
            project.database = str(project.target / "seekrun.duckdb")
            project.allow_external_database = True
    from seekrun.parser import engines
    from seekrun.parser.pools import read_limits

    read_limits(project, cfg, line, errors)  # max_active_nodes, pools
    engines.read_project(project, cfg, line, errors)  # engine, spark
    if has_seekrun:
        from seekrun import handlers, notify

        handlers.read_project(project, cfg, line, errors)  # on_success, on_failure, on_cancel, on_exit
        notify.read(project, cfg, line, errors)
    if errors:
        raise ProjectError(errors)
    return project


def read_timeout(project: Project, cfg: dict, marker: str, line, errors: list[Diagnostic]) -> None:
    """``timeout:``, a limit for the whole run."""
    if cfg.get("timeout") is not None:
        from seekrun.controls import parse_duration, shown_duration

        seconds = parse_duration(cfg["timeout"])
        if seconds is None or seconds <= 0:
            errors.append(Diagnostic(marker, line("timeout"), f"timeout '{cfg['timeout']}' is not a duration above 0: "
                                     "write a duration such as 90s, 10m, 2h or 1h30m (or a number of seconds)"))
        else:
            project.timeout, project.timeout_text = seconds, shown_duration(cfg["timeout"], seconds)


def _read_history(project: Project, cfg: dict, line, errors: list[Diagnostic]) -> None:
    """history: {keep_runs: N}: how many runs target/runs/ keeps (seekrun/history.py)."""
    if "history" not in cfg:
        return
    history = cfg["history"]
    keep = history.get("keep_runs", 50) if isinstance(history, dict) else None
    where = line("history")
    node = getattr(line, "node", None)
    if node is not None and isinstance(history, dict) and "keep_runs" in history:
        from seekrun.parser.yaml_load import line_of

        where = line_of(node, ("history", "keep_runs")) or where
    if not isinstance(history, dict) or set(history) - {"keep_runs"}:
        errors.append(Diagnostic(project.marker, where, "history must be a mapping such as "
                                 "'history: {keep_runs: 50}' (keep_runs is its only key)"))
    elif isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        errors.append(Diagnostic(project.marker, where, f"history.keep_runs '{keep}' is not a whole number "
                                 "above 0: write how many runs target/runs/ keeps, e.g. 50"))
    else:
        project.keep_runs = keep


def _read_params(project: Project, cfg: dict, line, errors: list[Diagnostic]) -> None:
    """params:, env: and dotenv: (seekrun/params.py); the env worked out with the defaults."""
    if not any(k in cfg for k in ("params", "env", "dotenv")):
        return
    from seekrun import params

    node = getattr(line, "node", None)
    try:
        project.params = params.declared(cfg, project.marker, line, node)
    except ProjectError as exc:
        errors.extend(exc.diagnostics)
    project.env_entries, project.dotenv_values, problems = params.read_env_config(
        project.root, cfg, project.marker, line, node)
    errors.extend(problems)
    if not errors:
        try:
            params.apply_to_project(project, None)
        except ProjectError as exc:
            errors.extend(exc.diagnostics)


def _own_file(root: Path, path) -> bool:
    """Whether path (however spelt: relative, absolute, through links) is one of seekrun's own
    files or folders, which the database must never be."""
    try:
        rel = os.path.relpath(os.path.realpath(path), os.path.realpath(root)).replace(os.sep, "/")
    except ValueError:
        return False
    return seekrun_owned(rel) or rel in ("target", "target/state", SEEKRUN_MARKER, SEEKNAL_MARKER)


def _read_outputs_config(project: Project, cfg: dict, line, errors: list[Diagnostic]) -> None:
    """database, allow_external_database and exposure_paths: where seekrun may write."""
    marker, root = project.marker, project.root
    allow = cfg.get("allow_external_database", False)
    if not isinstance(allow, bool):
        errors.append(Diagnostic(marker, line("allow_external_database"), "allow_external_database must be true or false"))
        allow = False
    project.allow_external_database = allow
    database = cfg.get("database", DEFAULT_DATABASE)
    if not isinstance(database, str) or not database.strip():
        errors.append(Diagnostic(marker, line("database"),
            f"database must be a file path, e.g. {DEFAULT_DATABASE}"))
    else:
        project.database = database
        path = project.database_path
        if os.path.isdir(path) and "database" not in cfg:  # the default path: the project file is fine
            errors.append(Diagnostic(DEFAULT_DATABASE, None, "is a folder, but seekrun keeps its database here: "
                                                             "move it away"))
        elif os.path.isdir(path) or database.endswith(("/", os.sep)):
            errors.append(Diagnostic(marker, line("database"), f"database '{database}' is a folder: give a file path"))
        elif _own_file(root, path):
            errors.append(Diagnostic(marker, line("database"),
                f"database '{database}' is one of seekrun's own files: use another path, e.g. {DEFAULT_DATABASE}"))
        elif project.external_database and not allow:
            errors.append(Diagnostic(marker, line("database"),
                f"database '{database}' is outside the project: keep it inside (default {DEFAULT_DATABASE}), "
                "or set 'allow_external_database: true' in the project file"))
    paths = cfg.get("exposure_paths") or []
    if not isinstance(paths, list) or any(not isinstance(p, str) or not p.strip() for p in paths):
        errors.append(Diagnostic(marker, line("exposure_paths"), "exposure_paths must be a list of folder names"))
        return
    for p in paths:
        norm = os.path.normpath(p).replace(os.sep, "/")
        if os.path.isabs(p) or not inside(root, root / p) or norm in (".", ""):
            errors.append(Diagnostic(marker, line("exposure_paths"),
                f"exposure path '{p}' must be a folder inside the project (not the project folder itself)"))
        elif norm.split("/")[0] in ("target",) and norm != "target":
            continue  # already allowed
        else:
            project.exposure_paths.append(norm.rstrip("/"))
