"""`seekrun diff` output: the report the CLI builds (manifest changes and, with --data, data
diffs from seekrun.datadiff) as text for a terminal, markdown for a pull-request comment, or JSON."""
from __future__ import annotations

import html
import json
import re

CELL = 80  # longest value shown in a markdown cell (text output too), in characters


def render(report: dict, fmt: str) -> str:
    """The report as "text", "markdown" or "json"."""
    if fmt == "json":
        return json.dumps(report, indent=1, sort_keys=True)
    if fmt == "text":
        return _text(report)
    if fmt == "markdown":
        return _markdown(report)
    raise ValueError(f"unknown diff format {fmt!r}: use text, markdown or json")


# -- shared ---------------------------------------------------------------------------------

def _lists(report: dict) -> tuple[list, list, list, list, dict]:
    return (report.get("added") or [], report.get("removed") or [], report.get("modified") or [],
            report.get("affected") or [], report.get("data") or {})


def differs(d: dict) -> bool:
    """True when a data diff found anything: a missing table, an error, schema or row changes."""
    return bool(d.get("missing") or d.get("error") or d.get("columns_added")
                or d.get("columns_removed") or d.get("columns_retyped") or d.get("rows_added")
                or d.get("rows_removed") or d.get("rows_changed"))


def _summary(report: dict, state: str) -> str:
    added, removed, modified, affected, data = _lists(report)
    total = len(added) + len(removed) + len(modified)
    changed_data = sum(1 for d in data.values() if differs(d))
    if not total:
        if not changed_data:
            return f"No differences from {state}."
        return (f"No node differs from {state}, but the data of {changed_data} "
                f"table{'s' if changed_data != 1 else ''} does.")
    meta = sum(1 for m in modified if m.get("metadata_only"))
    verb = "node differs" if total == 1 else "nodes differ"
    return (f"{total} {verb} from {state}: {len(added)} added, {len(removed)} removed, "
            f"{len(modified)} modified ({meta} metadata only); {len(affected)} downstream")


def _order(report: dict) -> list[str]:
    """Node ids with a data diff: in the report's order (added, removed, modified, affected),
    then any others sorted."""
    added, removed, modified, affected, data = _lists(report)
    seen = [e["node"] for e in (*added, *removed, *modified, *affected) if e["node"] in data]
    return list(dict.fromkeys(seen)) + sorted(set(data) - set(seen))


def _counts(d: dict, minus: str = "-") -> str:
    """'+12 -0 ~3 rows' (with a key) or '+12 -0 rows' (without)."""
    text = f"+{d.get('rows_added') or 0} {minus}{d.get('rows_removed') or 0}"
    if d.get("rows_changed") is not None:
        text += f" ~{d['rows_changed']}"
    return text + " rows"


def _short(value: str, limit: int = CELL) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _text_value(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):  # quoted when it could be misread; newlines as \n: one line
        plain = v and v != "NULL" and not re.search(r'[\s"=,:\\]|->', v)
        return _short(v) if plain else json.dumps(_short(v), ensure_ascii=False)
    return json.dumps(v, ensure_ascii=False) if isinstance(v, (bool, list, dict)) else str(v)


def _pairs(row: dict) -> str:
    return " ".join(f"{k}={_text_value(v)}" for k, v in row.items())


# -- text -----------------------------------------------------------------------------------

def _text(report: dict) -> str:
    state = report.get("state", "")
    added, removed, modified, affected, data = _lists(report)
    lines = [_summary(report, state)]
    for e in added:
        lines.append(f"+ {e['node']}{_downstream(e)}")
    for e in removed:
        lines.append(f"- {e['node']}")
    for e in modified:
        labels = ", ".join(c["label"] for c in e.get("changes") or [])
        lines.append(f"~ {e['node']}{': ' + labels if labels else ''}{_downstream(e)}"
                     f"{' [metadata only]' if e.get('metadata_only') else ''}")
    for e in affected:
        lines.append(f"  {e['node']}: downstream of {', '.join(e.get('upstream') or [])}")
    if data:
        lines += ["", f"Data compared with {state}:"]
        for node in _order(report):
            lines += _text_data(node, data[node])
    return "\n".join(lines) + "\n"


def _downstream(e: dict) -> str:
    n = e.get("downstream") or 0
    return f" ({n} downstream)" if n else ""


def _rows_text(d: dict, arrow: str = "->", num=str) -> str:
    before, after = d.get("rows_before"), d.get("rows_after")
    if d.get("missing") == "before":
        return f"new table, {_rows(after, num)}"
    if d.get("missing") == "after":
        return f"not in this build (had {_rows(before, num)})"
    if before is None and after is None:
        return ""
    return f"{'-' if before is None else num(before)} {arrow} {'-' if after is None else num(after)}"


def _rows(n, num=str) -> str:
    return f"{num(n or 0)} row{'' if n == 1 else 's'}"


def _text_data(node: str, d: dict) -> list[str]:
    rows = _rows_text(d)
    head = f"  {node}: " + (rows if d.get("missing") else f"rows {rows}" if rows else "")
    if not differs(d):
        return [head + ", no differences"]
    out = [head.rstrip(": ")]
    if d.get("error"):
        out.append(f"    error: {d['error']}")
    out += [f"    + column {c['name']} {c['type']}" for c in d.get("columns_added") or []]
    out += [f"    - column {c['name']} {c['type']}" for c in d.get("columns_removed") or []]
    out += [f"    ~ column {c['name']} {c['before']} -> {c['after']}"
            for c in d.get("columns_retyped") or []]
    if d.get("rows_added") is not None:
        key = d.get("key")
        out.append(f"    {_counts(d)} ({'key ' + ', '.join(key) if key else 'no key'})")
    s = d.get("samples") or {}
    out += [f"    + {_pairs(r)}" for r in s.get("added") or []]
    out += [f"    - {_pairs(r)}" for r in s.get("removed") or []]
    for c in s.get("changed") or []:
        cols = ", ".join(f"{k} {_text_value(v)} -> {_text_value(c['after'].get(k))}"
                         for k, v in c["before"].items())
        out.append(f"    ~ {_pairs(c['key'])}: {cols}")
    return out


# -- markdown -------------------------------------------------------------------------------

def md(value, limit: int = CELL) -> str:
    """A value for a markdown table cell: short, with HTML and markdown characters escaped,
    newlines as <br>; NULL in italics."""
    if value is None:
        return "*NULL*"
    text = value if isinstance(value, str) else (
        json.dumps(value, ensure_ascii=False) if isinstance(value, (bool, list, dict))
        else str(value))
    text = html.escape(_short(text, limit), quote=False)
    text = re.sub(r"([\\`*_\[\]|~#])", r"\\\1", text)
    return re.sub(r"\r\n|\r|\n", "<br>", text)


def code(name: str) -> str:
    """name as inline code, safe in a table cell."""
    if "`" in name or "|" in name or "\n" in name:
        return "<code>" + html.escape(name).replace("|", "&#124;").replace("\n", " ") + "</code>"
    return f"`{name}`"


def _num(n) -> str:
    return f"{n:,}"


def _markdown(report: dict) -> str:
    state = str(report.get("state", ""))
    added, removed, modified, affected, data = _lists(report)
    summary = _summary(report, code(state))
    if not (added or removed or modified or affected or data):
        return summary + "\n"
    out = [f"**{summary}**", "", "| Node | Change | Fields | Downstream | Rows |",
           "|---|---|---|---|---|"]

    def row(node, change, fields="", downstream=""):
        rows = _rows_text(data[node], "→", _num) if node in data else ""
        out.append(f"| {code(node)} | {change} | {fields} | {downstream} | "
                   f"{md(rows) if rows else ''} |")

    for e in added:
        row(e["node"], "added", "", e.get("downstream", ""))
    for e in removed:
        row(e["node"], "removed")
    for e in modified:
        row(e["node"], "metadata only" if e.get("metadata_only") else "modified",
            ", ".join(md(c["label"]) for c in e.get("changes") or []), e.get("downstream", ""))
    for e in affected:
        row(e["node"], "affected",
            "downstream of " + ", ".join(code(u) for u in e.get("upstream") or []))
    listed = {e["node"] for e in (*added, *removed, *modified, *affected)}
    for node in sorted(set(data) - listed):
        row(node, "unchanged")
    same = [n for n in _order(report) if not differs(data[n])]
    for node in _order(report):  # a missing table says all in its Rows cell
        if differs(data[node]) and (data[node].get("error") or not data[node].get("missing")):
            out += [""] + _md_details(node, data[node])
    if same:
        out += ["", "Same data: " + ", ".join(code(n) for n in same) + "."]
    return "\n".join(out) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(r) + " |" for r in rows] + [""])


def _md_details(node: str, d: dict) -> list[str]:
    if d.get("error"):
        brief = "could not compare"
    elif d.get("rows_added") is not None:
        brief = _counts(d, "−")
    else:
        brief = "schema changed"
    out = [f"<details><summary><code>{html.escape(node)}</code>: {html.escape(brief)}"
           "</summary>", ""]
    if d.get("error"):
        out += [f"> **Error:** {md(d['error'], 1000)}", ""]
    rows = _rows_text(d, "→", _num)
    if rows and not d.get("missing"):
        key = d.get("key")
        out += [f"Rows: {rows}; " + ("key " + ", ".join(code(k) for k in key) if key
                                     else "no key: whole rows compared"), ""]
    schema = ([[code(c["name"]), "added", "", md(c["type"])] for c in d.get("columns_added") or []]
              + [[code(c["name"]), "removed", md(c["type"]), ""]
                 for c in d.get("columns_removed") or []]
              + [[code(c["name"]), "retyped", md(c["before"]), md(c["after"])]
                 for c in d.get("columns_retyped") or []])
    if schema:
        out += ["**Schema changes**", ""] + _table(["Column", "Change", "Before", "After"], schema)
    s = d.get("samples") or {}
    for label, rows_of in (("added", s.get("added")), ("removed", s.get("removed"))):
        if rows_of:
            total = d.get(f"rows_{label}")
            out += [f"**{label.capitalize()} rows** ({len(rows_of)} of {_num(total or 0)})", ""]
            header = list(rows_of[0])
            out += _table([md(h) for h in header], [[md(r.get(h)) for h in header] for r in rows_of])
    if s.get("changed"):
        changed = s["changed"]
        keys = list(changed[0]["key"])
        out += [f"**Changed rows** ({len(changed)} of {_num(d.get('rows_changed') or 0)})", ""]
        body = [[md(c["key"].get(k)) for k in keys] + [md(col), md(v), md(c["after"].get(col))]
                for c in changed for col, v in c["before"].items()]
        out += _table([md(k) for k in keys] + ["Column", "Before", "After"], body)
    return out + ["</details>"]
