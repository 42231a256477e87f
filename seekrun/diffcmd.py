"""`seekrun diff --state DIR`: what differs between this project and another build.

The report (rendered by seekrun/diffreport.py) lists added, removed and modified nodes with
the fields that changed and whether only metadata did, each changed node's downstream count,
and the nodes downstream of a build change ("affected").  With ``data``, each changed or
affected table that both databases hold is compared in DuckDB (seekrun/datadiff.py): rows
before and after, schema changes and, with a key (``--key``, or a feature group's join keys),
rows added, removed and changed, with a few samples.
"""
from __future__ import annotations

from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError

MAX_UPSTREAM = 5  # changed ancestors named per affected node


def build_report(manifest, other, selected: set[str] | None = None) -> dict:
    from seekrun.selector.compare import compare

    nodes = manifest.nodes
    changes = compare(nodes, other.nodes)
    keep = (lambda nid: True) if selected is None else selected.__contains__
    added, modified = [], []
    for nid in sorted(changes):
        c = changes[nid]
        if not keep(nid):
            continue
        down = len(manifest.downstream([nid])) - 1
        if c.new:
            added.append({"node": nid, "kind": nodes[nid]["kind"], "downstream": down})
        else:
            modified.append({"node": nid, "kind": nodes[nid]["kind"], "downstream": down,
                             "metadata_only": not c.modified, "changes": [f.to_dict() for f in c.changes]})
    removed = [] if selected is not None else [
        {"node": nid, "kind": other.nodes[nid]["kind"]} for nid in sorted(set(other.nodes) - set(nodes))]
    # downstream of a build change, unchanged itself: its data may differ all the same
    upstream: dict[str, list[str]] = {}
    for nid in sorted(n for n, c in changes.items() if c.modified):
        for d in manifest.downstream([nid], include_self=False):
            if d not in changes:
                upstream.setdefault(d, []).append(nid)
    affected = [{"node": d, "upstream": ups[:MAX_UPSTREAM] + ([f"{len(ups) - MAX_UPSTREAM} more"]
                                                             if len(ups) > MAX_UPSTREAM else [])}
                for d, ups in sorted(upstream.items()) if keep(d)]
    return {"state": other.given, "added": added, "removed": removed, "modified": modified, "affected": affected}


def add_data(report: dict, manifest, other, db_path: Path, keys: list[str]) -> None:
    """report["data"]: the data diff of every changed or affected table both databases hold."""
    from seekrun.datadiff import data_diff
    from seekrun.outputs import has_table

    if not db_path.is_file():
        raise ProjectError([Diagnostic(str(db_path), None, "diff --data: this project has no database yet: "
                                       "run `seekrun run` first (in CI: with --defer --state DIR)")])
    ids = [e["node"] for e in (*report["modified"], *report["added"], *report["affected"])
           if not e.get("metadata_only") and has_table(manifest.nodes[e["node"]]["kind"])]
    if not ids:
        report["data"] = {}
        return
    columns = _columns(db_path)
    tables = [(nid, _key(manifest.nodes[nid], keys, columns.get(nid))) for nid in ids]
    report["data"] = data_diff(db_path, other.database(), tables)


def _key(node: dict, keys: list[str], columns: set[str] | None) -> list[str] | None:
    """--key columns where the table has them all; else a feature group's join keys; else none."""
    if keys and columns is not None and all(k.lower() in columns for k in keys):
        return keys
    if node["kind"] == "feature_group":  # an entity's join keys (and its event time: one row per key and time)
        from seekrun.kinds.feature_group import spec_of

        try:
            spec = spec_of(node.get("config") or {})
        except Exception:  # a config seekrun could not read the keys from: compared without a key
            return None
        found = [*spec.join_keys, *([spec.event_time_col] if spec.event_time_col else [])]
        if found and (columns is None or all(str(k).lower() in columns for k in found)):
            return [str(k) for k in found]
    return None


def _columns(db_path: Path) -> dict[str, set[str]]:
    import duckdb

    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except Exception as exc:
        raise ProjectError([Diagnostic(str(db_path), None, f"cannot open the database read-only "
                                       f"({' '.join(str(exc).split())[:200]}): is a run holding it?")]) from None
    try:
        rows = con.execute("SELECT schema_name, table_name, column_name FROM duckdb_columns() "
                           "WHERE database_name = current_database()").fetchall()
    finally:
        con.close()
    out: dict[str, set[str]] = {}
    for s, t, c in rows:
        out.setdefault(f"{s}.{t}", set()).add(c.lower())
    return out


def differs(report: dict) -> bool:
    """Anything to tell a reviewer: a node added, removed or modified, or a table whose data differs."""
    from seekrun.diffreport import differs as data_differs

    return bool(report["added"] or report["removed"] or report["modified"]
                or any(data_differs(d) for d in (report.get("data") or {}).values()))
