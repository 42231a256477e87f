"""The command line: a thin layer over the Python API. Heavy modules load lazily."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from seekrun import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="seekrun: incremental builds for Seeknal-format data pipelines on DuckDB.")

ProjectDir = typer.Option(Path("."), "--project-dir", "-p", help="Project folder (holds seekrun_project.yml).")


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


def _print_warnings(warnings) -> None:
    from seekrun.secrets import redact

    for w in warnings:
        where = w.path if w.line is None else f"{w.path}:{w.line}"
        print(redact(f"{where}: warning: {w.message}" if where else f"warning: {w.message}"), file=sys.stderr)


def _sig(path: Path) -> list | None:
    from seekrun.hashing import file_sig

    return file_sig(path)


def _load_old(path: Path, warnings: list, seeknal: list | None = None):
    from seekrun.previous import load_previous

    return load_previous(path, warnings, seeknal)


class Compiled:
    """A parsed project, its diff against the current manifest, and how to persist both."""

    def __init__(self, project_dir, strict: bool, diff: bool = True):
        """project_dir: a folder, or a Project already found. diff=False (for `run`) skips
        loading the previous manifest when this seekrun wrote it: only `parse` shows a diff."""
        from seekrun.parser.parse import parse_project

        self.result = result = parse_project(project_dir, strict=strict)
        self.project = result.project
        self.manifest = result.manifest
        self.path = self.project.target_dir / "manifest.json"
        cache = result.parse_cache
        ours = cache.meta.get("manifest_sig") == _sig(self.path) and self.path.exists()
        self.changed = True
        if ours and cache.meta.get("digest") == result.digest:
            self.old, self.changed = self.manifest, False  # written from exactly this content
        elif ours and not diff:
            self.old = None  # ours (so not from a newer seekrun), and out of date: no need to read it
        else:
            self.seeknal: list = []
            self.old = _load_old(self.path, result.warnings, self.seeknal)
            if self.old is not None and not self.seeknal:
                self.changed = self.old.content_bytes() != self.manifest.content_bytes()
        self._diff = None

    @property
    def diff(self):
        from seekrun.diff import ManifestDiff

        if self._diff is None:
            self._diff = ManifestDiff(self.old, self.manifest)
        return self._diff

    def save(self) -> None:
        """Write the manifest (only if its content changed) and the caches, atomically."""
        result, manifest, cache = self.result, self.manifest, self.result.parse_cache
        if getattr(self, "seeknal", None):  # Seeknal's target/manifest.json: kept aside, said once
            from seekrun.previous import keep_seeknal

            note = keep_seeknal(self.path)
            if note is not None:
                result.warnings.append(note)
                if self.reported:
                    _print_warnings([note])
        if self.changed:  # Manifest.save also saves a new env key, before the hashes it keys
            manifest.save(self.path)
        root = self.project.root
        result.file_cache.save({str(root / f) for n in manifest.nodes.values()
                                for f in [*(n.get("data_files") or []), *(n.get("live_files") or []),
                                          *(n.get("output_files") or [])]})
        cache.meta.update(digest=result.digest, manifest_sig=_sig(self.path))
        cache.save(cache.seen)

    reported = False

    def report(self, verbose: bool = False) -> None:
        self.reported = True
        _print_warnings(self.result.warnings)
        if verbose:
            for note in self.result.notes:
                print(note, file=sys.stderr)


@app.command()
def parse(project_dir: Path = ProjectDir,
          strict: bool = typer.Option(False, "--strict", help="Treat unknown keys as errors."),
          as_json: bool = typer.Option(False, "--json", help="Print the summary and diff as JSON."),
          verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list files that hold no node.")):
    """Compile the project into target/manifest.json and show what changed."""
    from seekrun.errors import ProjectError
    from seekrun.lock import ProjectLock
    from seekrun.project import find_project

    from seekrun import target

    try:
        project = find_project(project_dir)
        target.check(project.root, project.database_path)
        with ProjectLock(project.target_dir):
            target.tidy(project.root)
            compiled = Compiled(project, strict)
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
    if compiled.changed:
        console.print(f"Wrote {result.project.rel(result.project.target_dir / 'manifest.json')}")
    else:
        console.print("target/manifest.json is up to date.")


@app.command()
def run(project_dir: Path = ProjectDir,
        full: bool = typer.Option(False, "--full", help="Rebuild every selected node."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan and why; write nothing."),
        types: Optional[List[str]] = typer.Option(None, "--types", help="Only these kinds (comma-separated)."),
        nodes: Optional[List[str]] = typer.Option(None, "--nodes", help="These nodes and their downstream."),
        tags: Optional[List[str]] = typer.Option(None, "--tags", help="Only nodes with these tags."),
        exclude_tags: Optional[List[str]] = typer.Option(None, "--exclude-tags", help="Leave out these tags."),
        continue_on_error: bool = typer.Option(False, "--continue-on-error",
                                               help="Keep running independent branches after a failure."),
        retry: int = typer.Option(0, "--retry", help="Retry a failed node up to N times (backoff, at most 30 s a wait)."),
        allow_removals: bool = typer.Option(False, "--allow-removals",
                                            help="Allow a run that drops more than half of the built nodes."),
        threads: Optional[int] = typer.Option(None, "--threads", help="Worker threads (default: cores, max 8)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        strict: bool = typer.Option(False, "--strict", help="Treat unknown keys as errors."),
        verbose: bool = typer.Option(False, "--verbose", "-v", help="Also list cached nodes in plans.")):
    """Build what changed since the last run (and everything downstream of it)."""
    from seekrun.errors import Diagnostic, ProjectError, UsageError
    from seekrun.lock import ProjectLock
    from seekrun.project import find_project

    try:
        if threads is not None and threads < 1:
            raise UsageError([Diagnostic("", None, "--threads must be at least 1")])
        if retry < 0:
            raise UsageError([Diagnostic("", None, "--retry must be 0 or more")])
        if retry > MAX_RETRY:
            raise UsageError([Diagnostic("", None, f"--retry must be at most {MAX_RETRY}")])
        project = find_project(project_dir)
        from seekrun import target

        target.check(project.root, project.database_path, writes=not dry_run)
        if dry_run:
            ProjectLock(project.target_dir).check()
            summary = _run(project, dry_run=True, **locals_for_run(locals()))
        else:
            with ProjectLock(project.target_dir):
                summary = _run(project, dry_run=False, **locals_for_run(locals()))
    except ProjectError as exc:
        _fail(exc, as_json)
    from seekrun.secrets import redact

    for w in summary.warnings:  # on stderr, as parse's warnings are (and in the JSON too)
        print(redact(f"warning: {w}"), file=sys.stderr)
    if as_json:
        print(json.dumps(summary.to_dict(), indent=1, sort_keys=True))
    else:
        from seekrun.output import make_console, print_plan, print_summary

        if summary.dry_run:
            print_plan(summary, make_console(), verbose=verbose)
        else:
            print_summary(summary, make_console(), warnings=False)
    raise typer.Exit(summary.exit_code)


@app.command()
def show(node: str = typer.Argument(..., help="Node id (kind.name) or a unique name."),
         project_dir: Path = ProjectDir,
         as_json: bool = typer.Option(False, "--json", help="Print the manifest entry as JSON.")):
    """Show one node: where it is defined, its inputs, whether it would run and why, and its SQL."""
    from seekrun.errors import ProjectError
    from seekrun.runner import DAGRunner

    from seekrun.lock import ProjectLock

    try:
        from seekrun import target
        from seekrun.project import find_project

        project = find_project(project_dir)
        target.check(project.root, project.database_path, writes=False)
        ProjectLock(project.target_dir).check()
        compiled = Compiled(project, strict=False)
        manifest = compiled.manifest
        ids = {node} if node in manifest.nodes else {n for n, v in manifest.nodes.items() if v["name"] == node}
        if len(ids) != 1:
            from seekrun.errors import Diagnostic, UsageError
            from seekrun.errors import suggest

            why = (f"'{node}' is ambiguous: use one of {', '.join(sorted(ids))}" if ids else
                   f"unknown node '{node}'{suggest(node, manifest.nodes)}")
            raise UsageError([Diagnostic("", None, why)])
        nid = next(iter(ids))
        summary = DAGRunner(manifest, compiled.old, compiled.project.state_dir, project_dir=compiled.project.root,
                            file_cache=compiled.result.file_cache).run(dry_run=True)
    except ProjectError as exc:
        _fail(exc, as_json)
    entry = manifest.nodes[nid]
    if as_json:
        print(json.dumps(entry, indent=1, sort_keys=True))
        return
    res = next(r for r in summary.results if r.node_id == nid)
    from seekrun.output import unbuildable

    status = ("up to date" if res.status.value == "cached" else
              f"skipped: {res.reason}{'; ' + res.error if res.error else ''}" if unbuildable(res) else
              f"would run ({res.reason})")
    print(f"{nid}  [{status}]")
    print(f"  defined in : {entry['file']}:{entry.get('line')}")
    if entry.get("description"):
        print(f"  description: {entry['description']}")
    print(f"  inputs     : {', '.join(entry['inputs']) or '-'}")
    print(f"  used by    : {', '.join(sorted(manifest.children[nid])) or '-'}")
    if entry.get("data_files"):
        print(f"  data files : {', '.join(entry['data_files'])}")
    if entry.get("output_files"):
        print(f"  writes     : {', '.join(entry['output_files'])}")
    if entry.get("python"):
        print(f"  python     : {entry['python']}")
    sql = entry.get("generated_sql") or entry.get("compiled_sql")
    if sql:
        print("  SQL (as run, with refs resolved):")
        for line in str(sql).splitlines():
            print(f"    {line}")


MAX_RETRY = 100


def locals_for_run(ns: dict) -> dict:
    keys = ("full", "types", "nodes", "tags", "exclude_tags", "continue_on_error", "retry", "threads",
            "strict", "as_json", "project_dir", "allow_removals")
    return {k: ns[k] for k in keys}


def _run(project, *, dry_run: bool, full, types, nodes, tags, exclude_tags, continue_on_error, retry,
         threads, strict, as_json, project_dir, allow_removals):
    from seekrun.output import ConsoleReporter
    from seekrun.runner import DAGRunner

    compiled = Compiled(project, strict, diff=False)
    compiled.report()
    if not dry_run:
        from seekrun import target

        target.tidy(project.root, [f for n in compiled.manifest.nodes.values() for f in n.get("output_files") or []],
                    project.exposure_paths)
    reporter = None if dry_run else ConsoleReporter(quiet=as_json)
    runner = DAGRunner(compiled.manifest, compiled.old, project.state_dir, project_dir=project.root,
                       threads=threads, reporter=reporter, file_cache=compiled.result.file_cache)
    args = {"full": full, "types": types, "nodes": nodes, "tags": tags, "exclude_tags": exclude_tags,
            "continue_on_error": continue_on_error, "retry": retry, "threads": runner.threads}
    return runner.run(full=full, dry_run=dry_run, node_types=types, nodes=nodes, tags=tags,
                      exclude_tags=exclude_tags, continue_on_error=continue_on_error, retry=retry, args=args,
                      on_commit=None if dry_run else compiled.save, allow_removals=allow_removals)


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
    user_code = sys.modules.get("seekrun.engine.user_code")
    if user_code is not None and user_code.any_ran():
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # e.g. `seekrun ... | head` closed the pipe
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
