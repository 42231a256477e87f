"""What the docs site shows, gathered once: every node (with its columns, last run and SQL),
the graph, the recent runs, and the latest run's timeline in lanes with its critical path.

Read-only: the database is opened read-only, once, and not at all while a run holds it.
"""
from __future__ import annotations

import json
from datetime import datetime

from seekrun.lineage import KIND_COLOURS, STATUS_STROKES  # noqa: F401 (the site's colours)


def _db_columns(db_path, holder) -> dict[str, list[tuple[str, str]]]:
    """{"kind.name": [(column, type)]} for every table in the database (empty if none or busy)."""
    if holder is not None or db_path is None or not db_path.exists():
        return {}
    import duckdb

    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except Exception:  # held by another program, or unreadable: types then come from the node files
        return {}
    try:
        out: dict[str, list[tuple[str, str]]] = {}
        for schema, table, col, typ in con.execute(
                "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = current_database() ORDER BY schema_name, table_name, column_index").fetchall():
            out.setdefault(f"{schema}.{table}", []).append((col, typ))
        return out
    except Exception:
        return {}
    finally:
        con.close()


def nodes(looked) -> list[dict]:
    """Every node as its page shows it, in build order."""
    from seekrun.outputs import has_table
    from seekrun.show import _declared

    manifest = looked.manifest
    db = _db_columns(getattr(looked.project, "database_path", None), looked.holder)
    out = []
    for nid in manifest.topological_order():
        entry = manifest.nodes[nid]
        record = looked.records.get(nid) or {}
        declared = _declared(entry)
        built = db.get(nid) if record and has_table(entry["kind"]) else None
        if built is not None:
            columns = [{"name": c, "type": t, "description": (declared.get(c) or {}).get("description")}
                       for c, t in built]
        else:
            columns = [{"name": c, "type": d.get("dtype") or d.get("data_type") or d.get("type"),
                        "description": d.get("description")} for c, d in declared.items()]
        out.append({"id": nid, "kind": entry["kind"], "name": entry["name"], "file": entry["file"],
                    "line": entry.get("line"), "description": entry.get("description") or "",
                    "owner": entry.get("owner"), "tags": list(entry.get("tags") or []),
                    "inputs": manifest.parents(nid), "children": sorted(manifest.children[nid]),
                    "status": record.get("status"), "duration": record.get("duration"),
                    "rows": record.get("row_count"), "reason": record.get("reason"),
                    "last_run": record.get("last_run"), "error": record.get("error"),
                    "sql": entry.get("spark_sql") or entry.get("generated_sql") or entry.get("compiled_sql") or "",
                    "engine": entry.get("engine") or "duckdb",
                    "columns": columns, "types_from_db": built is not None,
                    "command": (entry.get("task") or {}).get("command") if entry.get("task") else None})
    return out


def runs(target_dir, limit: int = 30) -> list[dict]:
    from seekrun import history

    return [history.describe_run(target_dir, rid) for rid in history.run_ids(target_dir)[:limit]]


def _stamp(text) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp()
    except (TypeError, ValueError):
        return None


def timeline(target_dir, manifest) -> dict | None:
    """The newest run that built anything: its nodes that ran, as bars in lanes (a bar goes in the first lane free at
    its start), and the critical path: back from the last to end, through the input that
    ended last before each started."""
    from seekrun import history

    newest, bars = None, []
    for rid in history.run_ids(target_dir)[:50]:  # the newest run that built something
        try:
            data = json.loads((history.run_dir(target_dir, rid) / "run_results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        newest = newest or rid
        bars = _bars(data)
        if bars:
            break
    if newest is None:
        return None
    if not bars:
        return {"run_id": newest, "newest": newest, "bars": [], "lanes": 0, "span": 0.0, "critical": []}
    bars.sort(key=lambda b: (b["start"], b["id"]))
    lane_ends: list[float] = []
    for b in bars:
        lane = next((i for i, e in enumerate(lane_ends) if e <= b["start"]), len(lane_ends))
        if lane == len(lane_ends):
            lane_ends.append(b["end"])
        else:
            lane_ends[lane] = b["end"]
        b["lane"] = lane
    t0 = bars[0]["start"]
    by_id = {b["id"]: b for b in bars}
    critical = []
    current = max(bars, key=lambda b: b["end"])
    while current is not None:
        critical.append(current["id"])
        ins = [by_id[p] for p in (manifest.parents(current["id"]) if current["id"] in manifest.nodes else [])
               if p in by_id and by_id[p]["end"] <= current["start"] + 1e-3]
        current = max(ins, key=lambda b: b["end"]) if ins else None
    for b in bars:
        b["start"], b["end"] = b["start"] - t0, b["end"] - t0
    return {"run_id": rid, "newest": newest, "bars": bars, "lanes": len(lane_ends),
            "span": max(b["end"] for b in bars), "critical": critical[::-1]}


def _bars(data: dict) -> list[dict]:
    bars = []
    for r in data.get("results") or []:
        start, end = _stamp(r.get("started_at")), _stamp(r.get("ended_at"))
        if r.get("status") in ("cached", "skipped") or start is None:
            continue
        bars.append({"id": r["node_id"], "status": r.get("status"), "start": start,
                     "end": end if end is not None else start + (r.get("duration") or 0.0),
                     "duration": r.get("duration") or 0.0, "reason": r.get("reason")})
    return bars


def graph_data(node_list: list[dict], large: bool) -> dict:
    """What index.html's script draws (data.js): nodes by index, inputs as indices."""
    index = {n["id"]: i for i, n in enumerate(node_list)}
    return {"large": large, "nodes": [
        {"id": n["id"], "kind": n["kind"], "file": n["file"], "status": n["status"],
         "description": n["description"][:300], "inputs": [index[p] for p in n["inputs"] if p in index]}
        for n in node_list], "colours": KIND_COLOURS, "strokes": STATUS_STROKES}
