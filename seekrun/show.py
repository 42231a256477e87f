"""`seekrun show NODE`: one node as a person wants to see it, read-only.

Where it is defined, its description, tags and owner, inputs and users, whether it would run
now and why, its columns (names and types from the database when it is built, else the
declared ones), its row count, the last run's status, duration and reason, and its SQL.

Nothing is written, and the project lock is not taken: while a run holds it, `show` says so
and reads the last committed state (the database itself is then not opened: DuckDB lets one
process at a time have it open for writing, and no one else in).
"""
from __future__ import annotations

import json
import sys


def _columns_from_db(db_path, node_id: str):
    """[(name, type)] and the row count of a node's table, or (None, None, why not)."""
    if not db_path.exists():
        return None, None, "not built yet"
    import duckdb

    from seekrun.kinds.base import table_name

    kind, _, name = node_id.partition(".")
    try:
        con = duckdb.connect(str(db_path), read_only=True)
    except Exception as exc:  # held by another program, or not readable
        text = str(exc)
        return None, None, ("the database is open in another program" if "lock" in text.lower()
                            else "the database cannot be read")
    try:  # noqa: SIM105 (a table dropped by hand, a damaged file: shown as unknown, never a crash)
        cols = con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = "
                           "current_database() AND schema_name = ? AND table_name = ? ORDER BY column_index",
                           [kind, name]).fetchall()
        if not cols:
            return None, None, "no table in the database yet"
        rows = con.execute(f"SELECT count(*) FROM {table_name(node_id)}").fetchone()[0]
        return cols, rows, None
    except Exception:
        return None, None, "the table cannot be read"
    finally:
        con.close()


def _declared(entry: dict) -> dict[str, dict]:
    """Declared columns: name -> {"dtype", "description"} (from `columns:` in the node)."""
    cols = (entry.get("config") or {}).get("columns") if isinstance(entry.get("config"), dict) else None
    out: dict[str, dict] = {}
    if isinstance(cols, dict):
        for k, v in cols.items():
            out[str(k)] = v if isinstance(v, dict) else {"description": v}
    elif isinstance(cols, list):
        for c in cols:
            if isinstance(c, dict) and c.get("name"):
                out[str(c["name"])] = c
            elif isinstance(c, str):
                out[c] = {}
    return out


def _fmt_seconds(d) -> str:
    return f"{d:.3f}s" if isinstance(d, (int, float)) else "-"


class Shown:
    """One node, looked up and planned (read-only), ready to print."""

    def __init__(self, compiled, nid, result, record, db_path, holder):
        self.args = (compiled, nid, result, record)
        self.db_path, self.holder = db_path, holder

    def print(self, as_json: bool) -> None:
        show(*self.args, db_path=self.db_path, holder=self.holder, as_json=as_json)


def load(project_dir, node: str | None, values=None, params: dict | None = None, select=None, exclude=None,
         state=None, state_db=None) -> list[Shown]:
    """Find the node (an id, or a unique name; or what the selectors pick), plan as a dry run
    would, read the records.  Takes no lock: while a run holds it, says so and plans from the
    committed state."""
    from seekrun.errors import Diagnostic, UsageError
    from seekrun.looking import look, node_named

    if (node is None) == (not select and not exclude):
        raise UsageError([Diagnostic("", None, "show takes a NODE or a selection (-s/--select, --exclude): "
                                               + ("not both" if node is not None else "give one"))])
    looked = look(project_dir, select=select, exclude=exclude, state=state, state_db=state_db, values=values,
                  params=params, plan=True)
    ids = looked.ids if node is None else [node_named(looked.manifest, node)]
    return [Shown(looked.compiled, nid, looked.results[nid], looked.records.get(nid), looked.db_path,
                  looked.holder) for nid in ids]


def show(compiled, nid: str, res, record: dict | None, *, db_path, holder, as_json: bool) -> None:
    from seekrun.outputs import has_table
    from seekrun.output import plural

    manifest = compiled.manifest
    entry = manifest.nodes[nid]
    runs = res.status.value != "cached"
    declared = _declared(entry)
    columns, rows, why_not = None, None, None
    if has_table(entry["kind"]):
        if holder is not None:
            why_not = "a run holds the database"
        elif record is None:
            why_not = "not built yet"
        else:
            columns, rows, why_not = _columns_from_db(db_path, nid)
    if rows is None and record is not None and isinstance(record.get("row_count"), int):
        rows = record["row_count"]
    last = None
    if record is not None:
        last = {k: record.get(k) for k in ("status", "duration", "last_run", "reason", "row_count", "error")}
    command = None
    if entry.get("task"):
        from seekrun.kinds.task_run import preview
        from seekrun.state import StateStore

        project = compiled.project
        command = preview(entry, project.root, StateStore(project.state_dir).load(repair=False))
    if as_json:
        out = dict(entry)
        if command is not None:
            out["command"] = command
        out["plan"] = {"runs": runs, "reason": res.reason if runs or res.after_reread else None,
                       "after_reread": list(res.after_reread)}
        out["last_run"] = last
        out["columns"] = ([{"name": c, "type": t, "description": (declared.get(c) or {}).get("description")}
                           for c, t in columns] if columns is not None else None)
        out["row_count"] = rows
        out["run_in_progress"] = holder is not None
        print(json.dumps(out, indent=1, sort_keys=True, default=str))
        return
    p = print
    from seekrun.output import unbuildable

    status = (f"skipped: {res.reason}{'; ' + res.error if res.error else ''}" if unbuildable(res) else
              f"would run ({res.reason})" if runs else f"may run ({res.reason})" if res.after_reread else
              "up to date")
    p(f"{nid}  [{status}]")
    p(f"  defined in : {entry['file']}:{entry.get('line')}")
    if entry.get("description"):
        p(f"  description: {entry['description']}")
    p(f"  tags       : {', '.join(entry.get('tags') or []) or '-'}")
    p(f"  owner      : {entry.get('owner') or '-'}")
    p(f"  inputs     : {', '.join(entry['inputs']) or '-'}")
    if entry.get("gather_text"):  # a table fan-out's node (seekrun/parser/instances.py)
        p(f"  fan-out    : {entry['gather_text']} (the union of their tables)")
    if entry.get("instance_of"):
        p(f"  instance of: {entry['instance_of']}")
    p(f"  used by    : {', '.join(sorted(manifest.children[nid])) or '-'}")
    if entry.get("data_files"):
        p(f"  data files : {', '.join(entry['data_files'])}")
    if entry.get("output_files"):
        p(f"  writes     : {', '.join(entry['output_files'])}")
    if entry.get("python"):
        p(f"  python     : {entry['python']}")
    if entry.get("engine") == "spark":
        p("  engine     : spark (its table: Parquet in the Spark warehouse, read here through a view)")
    if command is not None:
        task = entry["task"]
        p(f"  command    : {command}")
        if task.get("dir"):
            p(f"  runs in    : {task['dir']}")
        p(f"  files      : {', '.join(task['files']) or '-'}")
        p(f"  outputs    : {', '.join(entry.get('output_files') or []) or '-'}")
        if entry.get("fanout"):
            from seekrun.parser.fanout import described

            p(f"  fan-out    : {described(entry['fanout'])}")
        if task.get("output"):
            value = (record or {}).get("value")
            p(f"  captures   : {task['output']}" + (f" (last value: {value})" if value is not None else ""))
    from seekrun.controls import summary as controls

    for label, text in controls(entry):  # timeout, retry, preconditions, continue_on, run_always
        p(f"  {label:<11}: {text}")
    if last is None:
        p("  last run   : never built")
    else:
        line = f"{last['status']}, {_fmt_seconds(last['duration'])}, at {_utc(last['last_run'])}"
        if last.get("reason"):
            line += f" (ran because: {last['reason']})"
        p(f"  last run   : {line}")
        if last["status"] == "failed" and last.get("error"):
            p(f"  last error : {str(last['error']).splitlines()[0]}")
    if has_table(entry["kind"]):
        p(f"  rows       : {plural(rows, 'row') if rows is not None else '-'}"
          + (" (as of the last run)" if rows is not None and columns is None else ""))
    if columns is not None:
        p(f"  columns    : {plural(len(columns), 'column')}")
        width = max(len(c) for c, _ in columns)
        for c, t in columns:
            desc = (declared.get(c) or {}).get("description")
            p(f"    {c:<{width}}  {t}" + (f"  -- {desc}" if desc else ""))
    elif declared:
        p(f"  columns    : {plural(len(declared), 'column')} declared"
          + (f" (types from the database: {why_not})" if why_not else ""))
        for c, d in declared.items():
            t, desc = d.get("dtype") or d.get("data_type") or d.get("type"), d.get("description")
            p(f"    {c}" + (f"  {t}" if t else "") + (f"  -- {desc}" if desc else ""))
    elif why_not and has_table(entry["kind"]):
        p(f"  columns    : - ({why_not})")
    sql = entry.get("spark_sql") or entry.get("generated_sql") or entry.get("compiled_sql")
    if sql:
        p("  SQL (as Spark runs it, transpiled from DuckDB's):" if entry.get("spark_sql") else
          "  SQL (as run, with refs resolved):")
        for line in str(sql).splitlines():
            p(f"    {line}")
    sys.stdout.flush()


def _utc(stamp) -> str:
    """An ISO timestamp from the state (UTC) as messages give times: '2026-12-01 15:40:06 UTC'."""
    if not isinstance(stamp, str):
        return "-"
    from datetime import datetime, timezone

    try:
        t = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp
    if t.tzinfo is None:
        return stamp
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
