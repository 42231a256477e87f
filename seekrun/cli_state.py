"""The selector and state options the commands share (-s, --exclude, --state, --state-db,
--defer), and `seekrun diff`: what differs from another build, in code and in data."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from seekrun.completion import complete_selector

SELECT_HELP = ("Nodes to work on: space-separated terms are a union, comma-joined ones an intersection. A term "
               "is a node id or name, kind:K, tag:T, path:DIR, source_path:GLOB, state:new|modified"
               "[.body|.data|.metadata], result:failed|skipped|..., config.KEY:V; +term adds its ancestors, "
               "term+ its descendants (2+term, term+1: that many levels), @term its descendants and their "
               "ancestors. Repeatable (a union). E.g. -s 'state:modified+' or -s 'tag:daily,kind:transform'.")
ProjectDir = typer.Option(Path("."), "--project-dir", "-p", help="Project folder (holds seekrun_project.yml).")
Select = typer.Option(None, "--select", "-s", metavar="SELECTOR", help=SELECT_HELP, autocompletion=complete_selector)
Exclude = typer.Option(None, "--exclude", metavar="SELECTOR", help="Leave out what this selector picks (repeatable).",
                       autocompletion=complete_selector)
State = typer.Option(None, "--state", metavar="DIR", help="Another build's target/ folder (e.g. production's, "
                     "from a CI artifact): state: terms compare with it, --defer reads from it.")
StateDb = typer.Option(None, "--state-db", metavar="FILE", help="That build's database, if it is not in DIR "
                       "(default: DIR/seekrun.duckdb, or the file its manifest names).")
Defer = typer.Option(False, "--defer", help="With --state: read the unselected inputs that are not up to date here "
                     "from that build's database (read-only, through views) instead of building them.")


def load_state(state: Path | None, state_db: Path | None, project, defer: bool = False):
    """The other build (seekrun/otherbuild.py), or None; a project that has no env key yet
    borrows its key, so env var hashes compare."""
    from seekrun.errors import Diagnostic, UsageError

    if state is None:
        if defer or state_db is not None:
            raise UsageError([Diagnostic("", None, f"{'--defer' if defer else '--state-db'} needs --state DIR: "
                                                   "the target/ folder of the build to compare with and read from")])
        return None
    from seekrun.otherbuild import OtherBuild, borrow_env_key

    other = OtherBuild(state, state_db, given=str(state))
    if other.dir.resolve() == project.target_dir.resolve():
        raise UsageError([Diagnostic("", None, f"--state {state} is this project's own target/: give another "
                                               "build's (e.g. production's, copied into prod/)")])
    if (other.dir / "state" / "parse_cache").is_dir():  # a fresh checkout parses what it has the same as prod
        project.borrowed_parse_cache = other.dir / "state" / "parse_cache"
    warning = borrow_env_key(project, other)
    if warning:
        import sys

        print(f"warning: {warning}", file=sys.stderr)
    return other


def register(app: typer.Typer, project_opt) -> None:
    @app.command("diff", short_help="What differs from another build, in code and data.")
    def diff(state: Path = typer.Option(..., "--state", metavar="DIR", help="The other build's target/ folder."),
             project_dir: Path = project_opt,
             select: Optional[List[str]] = Select, exclude: Optional[List[str]] = Exclude,
             state_db: Optional[Path] = StateDb,
             data: bool = typer.Option(False, "--data", help="Also compare the changed tables' data (in DuckDB, "
                                       "both databases attached read-only): rows, schema, and with a key rows "
                                       "added, removed and changed."),
             key: Optional[List[str]] = typer.Option(None, "--key", metavar="COL[,COL]", help="With --data: the "
                                                     "columns that identify a row (default: a feature group's "
                                                     "join keys); tables without them are compared as multisets."),
             fmt: str = typer.Option("text", "--format", metavar="text|markdown|json",
                                     help="markdown: a pull-request comment; json: {state, added, removed, "
                                          "modified: [{node, kind, downstream, metadata_only, changes}], "
                                          "affected}."),
             exit_code: bool = typer.Option(False, "--exit-code", help="Exit 1 when anything differs.")):
        """What differs from another build: nodes added, removed and modified (with the fields
        that changed), their downstream counts and, with --data, their data.

        Example: seekrun diff --state prod/target --data --format markdown > diff.md"""
        from seekrun.errors import Diagnostic, ProjectError, UsageError
        from seekrun.secrets import redact

        try:
            if fmt not in ("text", "markdown", "json"):
                raise UsageError([Diagnostic("", None, "--format is text, markdown or json")])
            if key and not data:
                raise UsageError([Diagnostic("", None, "--key goes with --data")])
            report = _report(project_dir, state, state_db, select, exclude, data,
                             [k.strip() for v in key or [] for k in v.split(",") if k.strip()])
        except ProjectError as exc:
            from seekrun.clierrors import fail

            fail(exc, fmt == "json")
        from seekrun.diffcmd import differs
        from seekrun.diffreport import render

        print(redact(render(report, fmt)))
        raise typer.Exit(1 if exit_code and differs(report) else 0)


def _report(project_dir, state, state_db, select, exclude, data, keys) -> dict:
    """Parse (writing nothing), compare with the other build, select, diff."""
    from seekrun import target
    from seekrun.compiled import Compiled
    from seekrun.diffcmd import add_data, build_report
    from seekrun.project import find_project
    from seekrun.selector import context, resolve
    from seekrun.state import StateStore

    project = find_project(project_dir)
    target.check(project.root, project.database_path, writes=False)
    other = load_state(state, state_db, project)
    compiled = Compiled(project, False, diff=False)
    compiled.report()
    manifest = compiled.manifest
    chosen = None
    if select or exclude:
        records = StateStore(project.state_dir).load(repair=False) if project.state_dir.is_dir() else {}
        chosen = resolve(manifest, context(manifest, records, project.target_dir, other), select=select,
                         exclude=exclude).ids
    report = build_report(manifest, other, chosen)
    if data:
        add_data(report, manifest, other, project.database_path, keys)
    return report
