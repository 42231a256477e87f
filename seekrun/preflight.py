"""Before a run: refuse what cannot run (missing or unusable data, unsupported kinds, SQL that
does not parse), all of it together, before anything runs."""
from __future__ import annotations

from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError


def preflight(manifest, root: Path, to_run: list[str]) -> None:
    """The checks on an in-memory DuckDB, so they write nothing."""
    from seekrun.engines.duckdb import DuckDBEngine

    engine = DuckDBEngine(None, root=root)
    try:
        preflight_with(engine, manifest, root, to_run)
    finally:
        engine.close()


def preflight_with(engine, manifest, root: Path, to_run: list[str]) -> None:
    from seekrun.kinds.base import BadInput, UnsupportedNode

    errors: list[Diagnostic] = []
    for nid in to_run:
        node = manifest.nodes[nid]
        if node.get("fed_files") or node.get("dialect") == "spark":
            continue  # what it reads is written during the run, by a task; Spark SQL: Spark checks it
        lines = node.get("lines") or {}
        where = (node["file"], lines.get("sql") or lines.get("table") or node.get("line"))
        try:
            message = engine.check(node, root, manifest.nodes)
        except UnsupportedNode as exc:
            errors.append(Diagnostic(*where, f"{exc}"))
            continue
        except BadInput as exc:
            errors.append(Diagnostic(*where, f"{nid}: {exc}"))
            continue
        if message:
            errors.append(Diagnostic(*where, f"{nid}: SQL does not parse: {message}"))
    if errors:
        raise ProjectError(errors)
