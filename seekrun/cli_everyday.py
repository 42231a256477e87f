"""The everyday commands: `init`, `ls`, `lineage`, `schema`, `clean` and `query`.

Each command is thin over its module (scaffold, listing, lineage, schema, clean); the read-only
ones parse the project as `show` does (seekrun/looking.py) and take no lock.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from seekrun import cli_state

def register(app: typer.Typer) -> None:
    app.command("init", short_help="Create a small working project to start from.")(init)
    app.command("ls", short_help="List nodes, their last run, and whether each would run now.")(ls)
    app.command("lineage", short_help="Print the lineage graph as Mermaid, dot or JSON.")(lineage)
    app.command("docs", short_help="Write a static docs site: lineage, a page per node, runs.")(docs)
    app.command("query", short_help="Print a metric from the built database.")(query)
    app.command("schema", short_help="Print the JSON Schema of a node file, for editors.")(schema)
    app.command("clean", short_help="Remove what seekrun wrote in target/ (keeping its state).")(clean)


def _fail(exc, as_json: bool = False) -> None:
    from seekrun.clierrors import fail

    fail(exc, as_json)


def _usage(message: str):
    from seekrun.errors import Diagnostic, UsageError

    return UsageError([Diagnostic("", None, message)])


ProjectDir, Select, Exclude = cli_state.ProjectDir, cli_state.Select, cli_state.Exclude


def init(folder: Path = typer.Argument(Path("."), metavar="[DIR]", help="Where to create it (default: here)."),
         fmt: str = typer.Option("seekrun", "--format", metavar="seekrun|seeknal",
                                 help="seekrun: seekrun_project.yml and nodes/; seeknal: seeknal_project.yml and "
                                      "seeknal/, as Seeknal lays a project out."),
         as_json: bool = typer.Option(False, "--json", help='Print {"project": DIR, "files": [...]} as JSON.')):
    """Create a small working project: a source with a tiny CSV, a transform, a rule.

    Never overwrites a file: if any it would write exists, it writes nothing and names them.

    Example: seekrun init shop && cd shop && seekrun run"""
    from seekrun.errors import ProjectError
    from seekrun.scaffold import init as make

    try:
        files = make(folder, fmt)
    except ProjectError as exc:
        _fail(exc, as_json)
    if as_json:
        print(json.dumps({"project": str(folder), "files": files}, indent=1))
        return
    print(f"Created a seekrun project in {folder} ({len(files)} files):")
    for rel in files:
        print(f"  {rel}")
    where = "" if folder == Path(".") else f"cd {folder} && "
    print(f"Next: {where}seekrun run")


def ls(project_dir: Path = ProjectDir, select: Optional[List[str]] = Select,
       exclude: Optional[List[str]] = Exclude, state: Optional[Path] = cli_state.State,
       state_db: Optional[Path] = cli_state.StateDb,
       output: str = typer.Option("table", "--output", "-o", metavar="table|json|ids|paths",
                                  help="ids, paths: one node id, or one node file, per line (for shell "
                                       "pipelines); json: a list of objects (id, kind, name, file, line, tags, "
                                       "owner, description, status, last_run, would_run, reason)."),
       as_json: bool = typer.Option(False, "--json", help="The same as --output json.")):
    """List nodes: id, kind, file:line, tags, last run's status, whether it would run now.

    Read-only (takes no lock).

    Example: seekrun ls -s 'tag:daily' -o ids | xargs -n1 seekrun show"""
    from seekrun.errors import ProjectError
    from seekrun.listing import OUTPUTS, render, rows
    from seekrun.looking import look

    if as_json:
        output = "json"
    try:
        if output not in OUTPUTS:
            raise _usage(f"--output is {', '.join(OUTPUTS)} (got '{output}')")
        looked = look(project_dir, select=select, exclude=exclude, state=state, state_db=state_db, plan=True)
    except ProjectError as exc:
        _fail(exc, output == "json")
    sys.stdout.write(render(rows(looked), output))


def lineage(project_dir: Path = ProjectDir, select: Optional[List[str]] = Select,
            exclude: Optional[List[str]] = Exclude, state: Optional[Path] = cli_state.State,
            state_db: Optional[Path] = cli_state.StateDb,
            fmt: str = typer.Option("mermaid", "--format", "-f", metavar="mermaid|dot|json",
                                    help="mermaid: paste into a ```mermaid block (GitHub renders it); dot: for "
                                         "`dot -Tsvg`; json: {nodes: [{id, kind, name, file, line, status, "
                                         "selected}], edges: [{from, to}]}."),
            upstream: int = typer.Option(0, "--upstream", metavar="N", help="Also N levels of inputs."),
            downstream: int = typer.Option(0, "--downstream", metavar="N", help="Also N levels of dependents."),
            as_json: bool = typer.Option(False, "--json", help="The same as --format json.")):
    """Print the lineage of the selected nodes (default: all) as Mermaid, dot or JSON.

    Nodes are coloured by kind and outlined by the last run's status.

    Example: seekrun lineage -s transform.clean_orders --upstream 2 --downstream 1 -f dot | dot -Tsvg > l.svg"""
    from seekrun.errors import ProjectError
    from seekrun.lineage import FORMATS, render, subgraph
    from seekrun.looking import look

    if as_json:
        fmt = "json"
    try:
        if fmt not in FORMATS:
            raise _usage(f"--format is {', '.join(FORMATS)} (got '{fmt}')")
        if upstream < 0 or downstream < 0:
            raise _usage("--upstream and --downstream are a number of levels, 0 or more")
        looked = look(project_dir, select=select, exclude=exclude, state=state, state_db=state_db)
    except ProjectError as exc:
        _fail(exc, fmt == "json")
    sys.stdout.write(render(subgraph(looked, upstream, downstream), fmt))


def docs(project_dir: Path = ProjectDir,
         out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="DIR",
                                            help="Where to write the site (default: target/docs)."),
         port: Optional[int] = typer.Option(None, "--serve", metavar="PORT",
                                            help="Then serve it on http://127.0.0.1:PORT/ until Ctrl-C (0: any "
                                                 "free port)."),
         as_json: bool = typer.Option(False, "--json", help='Print {"out": DIR, "pages": N, "nodes": N} as JSON.')):
    """Write a static site of the project: the lineage graph, a page per node, the runs.

    It opens from file:// and loads nothing from the internet. Read-only on the project (takes
    no lock); while a run goes on, column types come from the node files.

    Example: seekrun docs --serve 8080"""
    from seekrun.errors import ProjectError
    from seekrun.looking import look

    try:
        if port is not None and not 0 <= port <= 65535:
            raise _usage("--serve takes a port number, 0 to 65535")
        looked = look(project_dir)
        from seekrun.docsite import build

        where = out if out is not None else looked.project.target_dir / "docs"
        written = build(looked, where)
    except ProjectError as exc:
        _fail(exc, as_json)
    if as_json:
        print(json.dumps(written, indent=1))
    else:
        print(f"Wrote {written['pages']} pages to {written['out']} (open {Path(written['out']) / 'index.html'})",
              flush=True)
    if port is not None:
        from seekrun.docsite import serve

        try:
            serve(Path(written["out"]), port)
        except OSError as exc:
            _fail(_usage(f"cannot serve on 127.0.0.1:{port}: {exc.strerror or exc}"))


def schema(out: Optional[Path] = typer.Option(None, "--out", "-o", metavar="FILE",
                                              help="Write it to FILE (default: print it).")):
    """Print the JSON Schema of a node file (every kind, its keys, their types and meaning).

    Point your editor at it: put `# yaml-language-server: $schema=PATH` as a node file's first
    line (VS Code's YAML extension and other YAML language servers read it).

    Example: seekrun schema --out .seekrun/node.schema.json"""
    from seekrun.schema import text

    body = text()
    if out is None:
        sys.stdout.write(body)
        return
    from seekrun.fsutil import atomic_write_bytes

    if out.is_dir():
        _fail(_usage(f"--out {out} is a folder: give a file name, e.g. {out / 'node.schema.json'}"))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, body.encode("utf-8"))
    except OSError as exc:
        _fail(_usage(f"cannot write {out}: {exc.strerror or exc}"))
    print(f"Wrote {out}")


def clean(project_dir: Path = ProjectDir,
          everything: bool = typer.Option(False, "--all", help="Also remove target/state/ (what was built from "
                                          "what): the next run then rebuilds every node."),
          dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be removed; remove nothing."),
          as_json: bool = typer.Option(False, "--json", help='Print {"removed": [...], "kept": [...]} as JSON.')):
    """Remove what seekrun wrote in target/ (database, manifest, runs, logs), keeping its state.

    Under the project lock: refused while a run goes on. The next run rebuilds what is gone.

    Example: seekrun clean --dry-run"""
    from seekrun.clean import planned, remove
    from seekrun.errors import ProjectError
    from seekrun.lock import ProjectLock
    from seekrun.project import find_project

    try:
        project = find_project(project_dir)
        target_dir = project.target_dir
        names = planned(target_dir, everything)
        if not dry_run and names:
            with ProjectLock(target_dir):
                names = planned(target_dir, everything)
                remove(target_dir, names)
    except ProjectError as exc:
        _fail(exc, as_json)
    kept = [n for n in ("state",) if (target_dir / n).exists()]
    if as_json:
        print(json.dumps({"removed": [f"target/{n}" for n in names], "kept": [f"target/{n}" for n in kept],
                          "dry_run": dry_run}, indent=1))
        return
    if not names:
        print("Nothing to clean in target/.")
        return
    print(("Would remove" if dry_run else "Removed") + f" {len(names)} entr{'y' if len(names) == 1 else 'ies'} "
          f"from target/: {', '.join(names)}")
    if kept:
        print("Kept target/state/ (seekrun clean --all removes it too).")


def query(metric: str = typer.Option(..., "--metric", help="The metric (or a measure) to print."),
          by: List[str] = typer.Option([], "--by", help="A dimension to break it down by (repeatable)."),
          grain: Optional[str] = typer.Option(None, "--grain", help="day, week, month, quarter or year "
                                                                     "(default: its semantic model's)."),
          project_dir: Path = ProjectDir,
          as_json: bool = typer.Option(False, "--json", help="Print the rows as JSON: a list of objects, "
                                       "column -> value.")):
    """Print a metric per period of its time grain, from the built database (read-only).

    Example: seekrun query --metric revenue --by country --grain month"""
    from seekrun.errors import ProjectError, UsageError
    from seekrun.query import run_query

    try:
        run_query(project_dir, metric, by, grain, as_json)
    except UsageError as exc:
        print(f"seekrun query: {exc.diagnostics[0].message}", file=sys.stderr)
        raise typer.Exit(2)
    except ProjectError as exc:
        _fail(exc, as_json)
