"""`seekrun run` from the command line (and the workflow API): parse the project, then build
with DAGRunner, printing as the options ask."""
from __future__ import annotations

import sys

from seekrun.compiled import Compiled


def locals_for_run(ns: dict) -> dict:
    keys = ("full", "types", "nodes", "tags", "exclude_tags", "continue_on_error", "retry", "threads",
            "strict", "as_json", "project_dir", "allow_removals", "values", "params", "verbose", "log_format",
            "select", "exclude", "state", "defer")
    return {k: ns[k] for k in keys}


def _run(project, *, dry_run: bool, committed_only: bool = False, full, types, nodes, tags, exclude_tags,
         continue_on_error, retry, threads, strict, as_json, project_dir, allow_removals, values=None,
         params=None, verbose=False, log_format="text", on_event=None, on_runner=None, select=None,
         exclude=None, state=None, defer=False):
    """One run from the command line (or the workflow API): parse, then DAGRunner.run.
    ``state``: another build (seekrun/otherbuild.py), for state: terms and --defer."""
    from seekrun.output import ConsoleReporter
    from seekrun.runner import DAGRunner

    compiled = Compiled(project, strict, diff=False, values=values, params=params)
    compiled.report(verbose)  # -v: the notes too (a workflow's schedule, files that hold no node)
    if not dry_run:
        from seekrun import target

        target.tidy(project.root, [f for n in compiled.manifest.nodes.values() for f in n.get("output_files") or []],
                    project.exposure_paths)
    reporter = None if dry_run else ConsoleReporter(quiet=as_json or log_format == "json")
    runner = DAGRunner(compiled.manifest, compiled.old, project.state_dir, project_dir=project.root,
                       threads=threads, reporter=reporter, file_cache=compiled.result.file_cache)
    runner.committed_only = committed_only
    args = {"full": full, "types": types, "nodes": nodes, "tags": tags, "exclude_tags": exclude_tags,
            "continue_on_error": continue_on_error, "retry": retry, "threads": runner.threads,
            **({"select": select} if select else {}), **({"exclude": exclude} if exclude else {}),
            **({"state": state.given} if state is not None else {}), **({"defer": True} if defer else {})}
    if on_runner is not None:
        on_runner(runner)  # (the Python API: to cancel it)
    if not dry_run and project.notify:
        from seekrun.notify import register_urls

        register_urls(project)  # secrets from the start: a webhook URL is redacted in every log and event
    from seekrun.events import printer
    from seekrun.handlers import finish_run

    events_out = sys.stdout
    if log_format == "json":  # stdout holds the events only: what user code prints goes to stderr
        sys.stdout = sys.stderr
    try:
        summary = runner.run(full=full, dry_run=dry_run, node_types=types, nodes=nodes, tags=tags,
                             exclude_tags=exclude_tags, continue_on_error=continue_on_error, retry=retry, args=args,
                             on_commit=None if dry_run else compiled.save, allow_removals=allow_removals,
                             on_event=on_event or (printer(events_out) if log_format == "json" else None),
                             after_nodes=None if dry_run else
                             lambda s: finish_run(project, compiled.manifest, s, runner.run_id),
                             select=select, exclude=exclude, state=state, defer=defer)
    finally:
        sys.stdout = events_out
    return summary
