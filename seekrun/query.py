"""`seekrun query --metric NAME [--by DIM] [--grain G]`: a metric from the built database.

The metric's SQL is compiled from the project's current definitions (the same compiler that
builds the view metric.<name>, so at the default grain the two agree) and run on a read-only
connection to the database: the tables it reads are the ones the last run built.  A metric
changed since the last run is computed from its current definition, with a note saying so.
Measures can be queried by name too (Seeknal makes each measure a simple metric).
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError, UsageError, suggest
from seekrun.semantic.spec import GRAINS


def _usage(message: str) -> UsageError:
    return UsageError([Diagnostic("", None, message)])


def _catalog(manifest):
    from seekrun.kinds.base import build_config
    from seekrun.semantic.compile import catalog
    from seekrun.semantic.spec import metric, semantic_model

    noop = lambda path, msg: None  # noqa: E731  (the parse has checked them)
    models, metrics = {}, {}
    for node in manifest.nodes.values():
        if node["kind"] == "semantic_model":
            spec = semantic_model(build_config(node), noop)
            spec.pop("inline")
            models[node["name"]] = spec
        elif node["kind"] == "metric":
            spec = metric(build_config(node), noop)
            if spec is not None:
                metrics[node["name"]] = spec
    return catalog(models, metrics)


def plan(manifest, name: str, by: list[str], grain: str | None) -> dict:
    """The compiled query, or a UsageError naming what is unknown (with a suggestion)."""
    from seekrun.semantic.compile import CompileError, compile_metric, resolve_metric

    cat = _catalog(manifest)
    known = sorted({*cat["metrics"], *cat["homes"]})
    if not known:
        raise _usage("this project defines no metrics: add a semantic_model with measures (and metrics)")
    if resolve_metric(cat, name) is None:
        raise _usage(f"unknown metric '{name}'{suggest(name, known)}: the metrics are {', '.join(known)}")
    if name not in cat["metrics"] and len(cat["homes"].get(name, ())) > 1:
        raise _usage(f"measure '{name}' is defined in several semantic models "
                     f"({', '.join(cat['homes'][name])}): rename it in all but one")
    if grain is not None and grain not in GRAINS:
        raise _usage(f"unknown grain '{grain}'{suggest(grain, GRAINS)}: use one of {', '.join(GRAINS)}")
    by = [d for part in by for d in part.split(",") if d.strip()]
    by = [d.strip() for d in by]
    try:
        first = compile_metric(cat, name)  # which semantic models it reads
    except CompileError as exc:
        raise _usage(f"metric '{name}': {exc}") from None
    readable: dict[str, set[str]] = {}
    for sm_name, sm in cat["models"].items():
        if sm["model"] in first["nodes"]:
            readable[sm_name] = {e["name"] for e in sm["entities"]} | set(sm["dimensions"])
    dims = set.intersection(*readable.values()) if readable else set()
    time = first["time"].rpartition("__")[0] if first["time"] else None
    for d in list(by):  # Seeknal's spelling of a grain: --dimensions order_date__month
        base, _, suffix = d.rpartition("__")
        if time and base == time and suffix in GRAINS and grain in (None, suffix):
            grain = suffix
            by.remove(d)
    for d in by:
        if d == time:
            raise _usage(f"'{d}' is the metric's time dimension: use --grain to choose its grain")
        if d not in dims:
            raise _usage(f"unknown dimension '{d}' for metric '{name}'{suggest(d, dims)}: "
                         f"use one of {', '.join(sorted(dims - {time})) or '(none)'}")
        if by.count(d) > 1:
            raise _usage(f"dimension '{d}' is given twice")
    try:
        return compile_metric(cat, name, grain, tuple(by))
    except CompileError as exc:
        raise _usage(f"metric '{name}': {exc}") from None


def run_query(project_dir: Path, name: str, by: list[str], grain: str | None, as_json: bool) -> None:
    from seekrun import target
    from seekrun.lock import ProjectLock
    from seekrun.parser.parse import parse_project
    from seekrun.project import find_project

    project = find_project(project_dir)
    target.check(project.root, project.database_path, writes=False)
    ProjectLock(project.target_dir).check()
    result = parse_project(project)
    q = plan(result.manifest, name, by, grain)
    _note_stale(project, result.manifest, name)
    rows, columns = _execute(project, q)
    if as_json:
        print(json.dumps([dict(zip(columns, map(_json_value, r))) for r in rows], indent=1))
        return
    print_table(columns, rows)


def _note_stale(project, manifest, name: str) -> None:
    node = manifest.nodes.get(f"metric.{name}")
    if node is None:
        return
    from seekrun.state import StateStore

    try:
        record = StateStore(project.state_dir).load(repair=False).get(node["id"])
    except (ProjectError, OSError):
        return
    if not record or record.get("config_hash") != node["hashes"]["config"] or record.get("status") != "success":
        print(f"note: {node['id']} changed since the last run (or has not been built): computed from its "
              "current definition over the tables of the last run", file=sys.stderr)


def _execute(project, q: dict):
    import duckdb

    path = project.database_path
    if not Path(path).exists():
        raise _usage(f"the database {project.rel(path)} does not exist yet: run `seekrun run` first")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise _usage(f"cannot open {project.rel(path)} to read it ({' '.join(str(exc).split())[:200]}): "
                     "if a run is writing it, wait for the run to finish") from None
    try:
        for nid in q["nodes"]:
            kind, _, table = nid.partition(".")
            found = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ? "
                                "AND database_name = current_database()", [kind, table]).fetchone()[0]
            if not found:
                raise _usage(f"{nid} is not built yet: run `seekrun run` first")
        try:
            cur = con.execute(q["sql"])
        except duckdb.Error as exc:
            raise _usage(f"the metric's SQL failed: {' '.join(str(exc).split())[:300]}") from None
        columns = [d[0] for d in cur.description]
        return cur.fetchall(), columns
    finally:
        con.close()


def _json_value(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, Decimal):
        return float(v)
    return v


def _text(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, float):
        return repr(round(v, 10)) if v == v else "NaN"
    return str(v)


def print_table(columns: list[str], rows: list[tuple]) -> None:
    cells = [[_text(v) for v in r] for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(r[i], (int, float, Decimal)) or r[i] is None for r in rows)
               for i in range(len(columns))]

    def line(values):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    print(line(columns))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print(line(r))
    print(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
