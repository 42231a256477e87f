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
    order = manifest.topological_order()
    bit = {nid: 1 << i for i, nid in enumerate(order)}
    below: dict[str, int] = {}  # node -> its descendants, as a bit set (one pass, not one walk per node)
    for nid in reversed(order):
        mask = 0
        for c in manifest.children[nid]:
            mask |= bit[c] | below[c]
        below[nid] = mask
    added, modified = [], []
    for nid in sorted(changes):
        c = changes[nid]
        if not keep(nid):
            continue
        down = below[nid].bit_count()
        if c.new:
            added.append({"node": nid, "kind": nodes[nid]["kind"], "downstream": down})
        else:
            modified.append({"node": nid, "kind": nodes[nid]["kind"], "downstream": down,
                             "metadata_only": not c.modified, "changes": [f.to_dict() for f in c.changes]})
    removed = [] if selected is not None else [
        {"node": nid, "kind": other.nodes[nid]["kind"]} for nid in sorted(set(other.nodes) - set(nodes))]
    # downstream of a build change, unchanged itself (its data may differ all the same), with
    # the changed nodes above it: the first few, in one pass in build order
    above: dict[str, list[str]] = {}
    for nid in order:
        names: list[str] = []
        for p in manifest.parents(nid):
            for name in [*above.get(p, []), *([p] if changes.get(p) is not None and changes[p].modified else [])]:
                if name not in names and len(names) <= MAX_UPSTREAM:
                    names.append(name)
        if names:
            above[nid] = names
    def named(ups: list[str]) -> list[str]:
        return sorted(ups)[:MAX_UPSTREAM] + (["and more"] if len(ups) > MAX_UPSTREAM else [])

    affected = [{"node": d, "upstream": named(ups)} for d, ups in sorted(above.items()) if d not in changes and keep(d)]
    for entry in modified:  # a metadata-only change downstream of a build change: its data may differ too
        if entry["metadata_only"] and entry["node"] in above:
            entry["upstream"] = named(above[entry["node"]])
    return {"state": other.given, "added": added, "removed": removed, "modified": modified, "affected": affected}


def add_data(report: dict, manifest, other, db_path: Path, keys: list[str]) -> None:
    """report["data"]: the data diff of every changed or affected table both databases hold."""
    from seekrun.datadiff import data_diff
    from seekrun.outputs import has_table

    if not db_path.is_file():
        raise ProjectError([Diagnostic(str(db_path), None, "diff --data: this project has no database yet: "
                                       "run `seekrun run` first (in CI: with --defer --state DIR)")])
    ids = [e["node"] for e in (*report["modified"], *report["added"], *report["affected"])
           if (not e.get("metadata_only") or e.get("upstream")) and has_table(manifest.nodes[e["node"]]["kind"])]
    if not ids:
        report["data"] = {}
        return
    columns = _columns(db_path)
    if keys and not any(all(k.lower() in (columns.get(nid) or ()) for k in keys) for nid in ids):
        from seekrun.errors import UsageError, suggest

        every = sorted({c for nid in ids for c in columns.get(nid) or ()})
        raise UsageError([Diagnostic("", None, f"--key {','.join(keys)}: no changed table has "
                                               f"{'these columns' if len(keys) > 1 else 'this column'}"
                                               f"{suggest(keys[0].lower(), every)}")])
    tables = [(nid, _key(manifest.nodes[nid], keys, columns.get(nid))) for nid in ids]
    # a table built from env_var() values (here, or further up) may hold one: its rows are
    # counted, never shown (production's values are not known here, so they cannot be masked)
    env = _env_fed(manifest)
    shown, hidden = [t for t in tables if t[0] not in env], [t for t in tables if t[0] in env]
    report["data"] = {**(data_diff(db_path, other.database(), shown) if shown else {}),
                      **{nid: {**d, "samples_hidden": "built from env_var() values: rows counted, not shown"}
                         for nid, d in (data_diff(db_path, other.database(), hidden, samples=0) if hidden
                                        else {}).items()}}


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


def _env_fed(manifest) -> set[str]:
    """Nodes that read env var values, and everything built from them."""
    out: set[str] = set()
    for nid in manifest.topological_order():
        if manifest.nodes[nid]["hashes"]["fields"].get("env") or any(p in out for p in manifest.parents(nid)):
            out.add(nid)
    return out


def differs(report: dict) -> bool:
    """Anything to tell a reviewer: a node added, removed or modified, or a table whose data differs."""
    from seekrun.diffreport import differs as data_differs

    return bool(report["added"] or report["removed"] or report["modified"]
                or any(data_differs(d) for d in (report.get("data") or {}).values()))
