"""The command line: a thin layer over the Python API. Heavy modules load lazily."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
import typer.core

from seekrun import __version__
from seekrun.compiled import Compiled
from seekrun import cli_state
from seekrun.cli_run import _run, locals_for_run  # noqa: F401 (the workflow API runs through _run)
from seekrun.completion import complete_node

# Help as click prints it, without rich: `seekrun --help` costs 0.07 s less (rich's markdown
# import), and typer's rich escapes (a backslash before "[default: .]") do not leak into plain help text.
typer.core.HAS_RICH = False
app = typer.Typer(add_completion=True, no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode=None,
                  help="seekrun: incremental builds for Seeknal-format data pipelines on DuckDB.")

ProjectDir = cli_state.ProjectDir
# `seekrun run path/to/workflow.yaml [-- KEY=VALUE ...]`: a workflow file (or a project folder) instead of -p
TargetDir = typer.Option(None, "--target-dir", hidden=True, help="Keep target/ here (a child DAG's state).")
DagName = typer.Option(None, "--dag", hidden=True, help="The document of a multi-document workflow file to run.")
# {{ today }}, {{ run_date }}, {{ start_date }}, {{ end_date }} in SQL (seekrun/parser/runvars.py)
RunDate = typer.Option(None, "--run-date", "--date", metavar="YYYY-MM-DD",
                       help="Run as if today were this date: {{ today }} and {{ run_date }}. Default: today in the "
                            "local time zone (set TZ, e.g. TZ=UTC, to choose); {{ run_date }} is then the run's "
                            "start time (YYYY-MM-DDTHH:MM:SS), so its nodes rerun every run.")
StartDate = typer.Option(None, "--start-date", metavar="YYYY-MM-DD",
                         help="{{ start_date }}: the first day of the range (default: the end date).")
EndDate = typer.Option(None, "--end-date", metavar="YYYY-MM-DD",
                       help="{{ end_date }}: the last day of the range, included (default: the run date).")
# run params (seekrun/params.py): --param DAY=2026-01-02, or DAY=2026-01-02 after --
Param = typer.Option(None, "--param", metavar="NAME=VALUE",
                     help="Set a run param the project file declares under params: (repeatable; also "
                          "NAME=VALUE words after --). Tasks read it as ${NAME}, SQL as {{ var('NAME') }}.")
ParamWords = typer.Argument(None, metavar="[WORKFLOW.yaml|FOLDER] [-- NAME=VALUE...]", show_default=False,
                            help="A workflow file (or a project folder) to use instead of -p, and run params as "
                                 "NAME=VALUE words after --.")


def _version(value: bool) -> None:
    if value:
        print(f"seekrun {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                        help="Print the version and exit.")) -> None:
    """Incremental builds for data pipelines."""
    from seekrun import secrets

    secrets.reset()  # each command redacts the values it uses (a long-lived caller runs many)


def _fail(exc, as_json: bool = False) -> None:
    """Report project/usage errors (seekrun/clierrors.py): exit code 2, no traceback."""
    from seekrun.clierrors import fail

    fail(exc, as_json)


@app.command(short_help="Check the project and write target/manifest.json.")
def parse(project_dir: Path = ProjectDir,
          strict: bool = typer.Option(False, "--strict", help="Treat unknown keys as errors."),
          as_json: bool = typer.Option(False, "--json", help="Print {project, nodes, by_kind, diff: {added, "
                                       "removed, modified...}, warnings} as JSON."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list files that hold no node."),
          run_date: Optional[str] = RunDate, start_date: Optional[str] = StartDate, end_date: Optional[str] = EndDate,
          dry_run: bool = typer.Option(False, "--dry-run", help="Check and show what changed; write nothing."),
          param: Optional[List[str]] = Param, words: Optional[List[str]] = ParamWords,
          target_dir: Optional[Path] = TargetDir, dag: Optional[str] = DagName):
    """Compile the project into target/manifest.json and show what changed.

    Example: seekrun parse --dry-run --json"""
    from seekrun.errors import ProjectError
    from seekrun.lock import ProjectLock, note_run_in_progress
    from seekrun.project import find_project

    from seekrun import target

    try:
        values = _run_values(run_date, start_date, end_date)
        project_dir, words = _where(project_dir, words)
        given = _params(param, words)
        project = find_project(project_dir, target=target_dir, dag=dag)
        target.check(project.root, project.database_path, writes=not dry_run)
        if dry_run:
            note_run_in_progress(project.target_dir)
            compiled = Compiled(project, strict, values=values, params=given)
            compiled.report(verbose)
        else:
            with ProjectLock(project.target_dir):
                target.tidy(project.root)
                compiled = Compiled(project, strict, values=values, params=given)
                compiled.save()
                compiled.report(verbose)
        result, old, diff = compiled.result, compiled.old, compiled.diff
    except ProjectError as exc:
        _fail(exc, as_json)
    counts: dict[str, int] = {}
    for n in result.manifest.nodes.values():
        counts[n["kind"]] = counts.get(n["kind"], 0) + 1
    if as_json:
        print(json.dumps({"project": result.project.name, "nodes": len(result.manifest.nodes),
                          "by_kind": dict(sorted(counts.items())), "diff": diff.to_dict(),
                          "warnings": [str(w) for w in result.warnings]}, indent=1, sort_keys=True))
        return
    from seekrun.output import make_console

    console = make_console()
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    console.print(f"Parsed {result.project.name}: {len(result.manifest.nodes)} nodes ({kinds or 'none'})",
                  markup=False)
    lines = diff.lines()
    if old is None and getattr(compiled, "seeknal", None):
        console.print("No earlier seekrun manifest to compare with (Seeknal wrote over it); builds stay "
                      "incremental (target/state/ holds what seekrun built).")
    elif old is None:
        console.print("No previous manifest: every node is new.")
    elif not lines:
        console.print("No changes since the last parse.")
    else:
        for line in lines:
            console.print(line, markup=False)
    if dry_run:
        console.print("Dry run: nothing was written.")
    elif compiled.changed:
        console.print(f"Wrote {result.project.rel(result.project.target_dir / 'manifest.json')}")
    else:
        console.print("target/manifest.json is up to date.")


@app.command(short_help="Build what changed, and what depends on it.")
def run(project_dir: Path = ProjectDir,
        full: bool = typer.Option(False, "--full", help="Rebuild every selected node."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and why; write nothing."),
        select: Optional[List[str]] = cli_state.Select, exclude: Optional[List[str]] = cli_state.Exclude,
        state: Optional[Path] = cli_state.State, state_db: Optional[Path] = cli_state.StateDb,
        defer: bool = cli_state.Defer,
        types: Optional[List[str]] = typer.Option(None, "--types", help="Only these kinds (comma-separated)."),
        nodes: Optional[List[str]] = typer.Option(None, "--nodes", help="These nodes and their downstream."),
        tags: Optional[List[str]] = typer.Option(None, "--tags", help="Only nodes with these tags."),
        exclude_tags: Optional[List[str]] = typer.Option(None, "--exclude-tags", help="Leave out these tags."),
        continue_on_error: bool = typer.Option(False, "--continue-on-error",
                                               help="Keep running independent branches after a failure."),
        retry: int = typer.Option(0, "--retry", help="Retry a failed node up to N times (backoff, at most 30 s a wait)."),
        allow_removals: bool = typer.Option(False, "--allow-removals",
                                            help="Allow a run that drops more than half of the built nodes."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Worker threads (default: cores, max 8; "
                                              "max_active_nodes if the project sets it, max 64)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON: status, counts "
                                     "(total_nodes, changed_nodes, cached_nodes, failed_nodes...), results: "
                                     "[{node_id, status, reason, duration, row_count, error, started_at...}], "
                                     "as in target/run_results.json."),
        log_format: str = typer.Option("text", "--log-format", metavar="text|json",
                                       help="json: print the run's events, one JSON object a line, and nothing "
                                            "else on stdout (for CI log processors)."),
        strict: bool = typer.Option(False, "--strict", help="Treat unknown keys as errors."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list cached nodes in plans."),
        run_date: Optional[str] = RunDate, start_date: Optional[str] = StartDate, end_date: Optional[str] = EndDate,
        wait: bool = typer.Option(False, "--wait", help="If another run holds the project, wait for it."),
        wait_timeout: Optional[float] = typer.Option(None, "--wait-timeout", help="With --wait: give up after "
                                                     "this many seconds (exit 2)."),
        param: Optional[List[str]] = Param, words: Optional[List[str]] = ParamWords,
        target_dir: Optional[Path] = TargetDir, dag: Optional[str] = DagName):
    """Build what changed since the last run (and everything downstream of it).

    Example: seekrun run -s tag:daily --dry-run; in CI: seekrun run -s state:modified+ --defer --state prod/target"""
    from seekrun.errors import Diagnostic, ProjectError, UsageError
    from seekrun.lock import ProjectLock, note_run_in_progress
    from seekrun.project import find_project

    try:
        if wait_timeout is not None and (wait_timeout <= 0 or not wait):
            raise UsageError([Diagnostic("", None, "--wait-timeout needs --wait and a number of seconds above 0")])
        if threads is not None and threads < 1:
            raise UsageError([Diagnostic("", None, "--threads must be at least 1")])
        if log_format not in ("text", "json") or (as_json and log_format == "json"):
            raise UsageError([Diagnostic("", None, "--log-format is text or json (and json does not go with --json)")])
        if retry < 0:
            raise UsageError([Diagnostic("", None, "--retry must be 0 or more")])
        if retry > MAX_RETRY:
            raise UsageError([Diagnostic("", None, f"--retry must be at most {MAX_RETRY}")])
        values = _run_values(run_date, start_date, end_date)
        project_dir, words = _where(project_dir, words)
        params = _params(param, words)
        from seekrun.workflows.child import too_deep

        deep = too_deep()  # a child DAG past the depth limit: fails at once (exit 1), says so to its parent
        project = find_project(project_dir, target=target_dir, dag=dag)
        if deep:
            from seekrun.workflows.finish import refuse

            refuse(project, deep)
        from seekrun import target

        target.check(project.root, project.database_path, writes=not dry_run)
        state = cli_state.load_state(state, state_db, project, defer)
        if dry_run:
            busy = note_run_in_progress(project.target_dir) is not None
            summary = _run(project, dry_run=True, committed_only=busy, **locals_for_run(locals()))
        else:
            with ProjectLock(project.target_dir, wait=(wait_timeout or 0) if wait else None):
                summary = _run(project, dry_run=False, **locals_for_run(locals()))
    except ProjectError as exc:
        _fail(exc, as_json)
    from seekrun.secrets import redact

    for w in summary.warnings:  # on stderr, as parse's warnings are (and in the JSON too)
        print(redact(f"warning: {w}"), file=sys.stderr)
    if summary.timed_out:
        print(f"seekrun: run timed out after {summary.timed_out} (the project's timeout): the running nodes "
              "were stopped, the rest left undone", file=sys.stderr)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=1, sort_keys=True))
    elif log_format == "text":
        from seekrun.output import make_console, print_plan, print_summary

        if summary.dry_run:
            print_plan(summary, make_console(), verbose=verbose)
        else:
            print_summary(summary, make_console(), warnings=False)
    raise typer.Exit(summary.exit_code)


@app.command(short_help="Show one node: definition, columns, last run, SQL.")
def show(node: Optional[str] = typer.Argument(None, help="Node id (kind.name) or a unique name.",
                                       autocompletion=complete_node),
         project_dir: Path = ProjectDir,
         select: Optional[List[str]] = cli_state.Select, exclude: Optional[List[str]] = cli_state.Exclude,
         state: Optional[Path] = cli_state.State, state_db: Optional[Path] = cli_state.StateDb,
         as_json: bool = typer.Option(False, "--json", help="Print the manifest entry as JSON, with plan "
                                      "{runs, reason}, last_run, columns [{name, type, description}], row_count "
                                      "and run_in_progress."),
         run_date: Optional[str] = RunDate, start_date: Optional[str] = StartDate, end_date: Optional[str] = EndDate,
         param: Optional[List[str]] = Param, words: Optional[List[str]] = ParamWords):
    """Show one node: where it is defined, tags, owner, inputs, columns, rows, its last run,
    whether it would run now and why, and its SQL. Read-only: works while a run is going.
    With -s, every node the selector picks, in build order (--json: a list).

    Example: seekrun show transform.clean_orders; seekrun show -s 'tag:finance,kind:transform'"""
    from seekrun.errors import ProjectError
    from seekrun.show import load

    try:
        shown = load(project_dir, node, values=_run_values(run_date, start_date, end_date),
                     params=_params(param, words), select=select, exclude=exclude, state=state, state_db=state_db)
    except ProjectError as exc:
        _fail(exc, as_json)
    if node is not None:
        shown[0].print(as_json)
    elif as_json:  # one list of the nodes' objects
        import contextlib
        import io

        docs = []
        for one in shown:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                one.print(True)
            docs.append(json.loads(out.getvalue()))
        print(json.dumps(docs, indent=1, sort_keys=True))
    else:
        for i, one in enumerate(shown):
            if i:
                print()
            one.print(False)


MAX_RETRY = 100


def _run_values(run_date, start_date, end_date):
    from seekrun.parser.runvars import from_options

    return from_options(run_date, start_date, end_date)


def _where(project_dir: Path, where: list[str] | None) -> tuple[Path, list[str]]:
    """The workflow file or folder named as an argument (instead of -p), and the KEY=VALUE words."""
    from seekrun.errors import Diagnostic, UsageError

    import os

    # a workflow file or a folder; any other word is a param (and one without '=' is refused there)
    paths = [w for w in where or [] if "=" not in w and (w.endswith((".yaml", ".yml")) or os.path.isdir(w))]
    if len(paths) > 1:
        raise UsageError([Diagnostic("", None, f"run one workflow or project at a time (got {', '.join(paths)}); "
                                               "params are KEY=VALUE words")])
    return (Path(paths[0]) if paths else project_dir), [w for w in where or [] if w not in paths]


def _params(param, words) -> dict:
    from seekrun.params import parse_words

    return parse_words([*(param or []), *(words or [])])


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops like Ctrl-C: finished nodes kept, the rest left undone


def main() -> None:
    import os
    import signal

    from seekrun.errors import RunFailure

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        print("seekrun: interrupted", file=sys.stderr)
        code = 130
    except (OSError, RunFailure) as exc:  # the disk or the file system, not the project or seekrun
        from seekrun.errors import describe_os_error
        from seekrun.secrets import redact

        message, code = describe_os_error(exc) if isinstance(exc, OSError) else (str(exc), 1)
        print(redact(f"seekrun: {message}"), file=sys.stderr)
    except Exception as exc:  # a bug in seekrun: say so plainly; the traceback is opt-in
        from seekrun.secrets import redact

        if os.environ.get("SEEKRUN_DEBUG"):
            import traceback

            print(redact(traceback.format_exc()), file=sys.stderr, end="")

        print(redact(f"seekrun: internal error: {exc.__class__.__name__}: {exc}. "
                     + ("Please report it, with the traceback above." if os.environ.get("SEEKRUN_DEBUG") else
                        "Set SEEKRUN_DEBUG=1 for the traceback, and please report it.")), file=sys.stderr)
        code = 3
    _leave(code)


def _leave(code) -> None:
    """Exit without tearing the interpreter down object by object (about 0.1 s after a
    1,000-node run). Safe because everything seekrun writes is already durable by now:
    files are written atomically and closed, the database is closed, workers have stopped.
    If user Python code ran in this process, exit normally instead: its atexit handlers and
    open files are owed a regular shutdown."""
    import os

    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    user_code = sys.modules.get("seekrun.engines.user_code")
    if user_code is not None and user_code.any_ran():
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # e.g. `seekrun ... | head` closed the pipe
            pass
    os._exit(code)


from seekrun import cli_runs  # noqa: E402  (runs, logs, status, cancel)

cli_runs.register(app, ProjectDir)
cli_state.register(app, ProjectDir)  # diff
from seekrun import cli_everyday  # noqa: E402  (init, ls, lineage, schema, clean)

cli_everyday.register(app)

if __name__ == "__main__":
    main()
