"""Every node's SQL through DuckDB's own parser, at parse time, on an in-memory connection.

The lexer (seekrun/parser/sql.py) rewrites refs and gives the canonical form; this module
asks DuckDB for the parse tree (``json_serialize_sql``, all statements of a parse in one
query) and reads from it what the SQL really reads:

- a syntax error, with its line in the node file and DuckDB's caret under the original text;
- every table it names: each must be a declared input (``kind.name``, case-insensitively, as
  DuckDB resolves names) or a CTE; a quoted path used as a table (``FROM '/x.csv'``), a
  database prefix, or any other table is refused;
- every table function: only pure ones (range, unnest...) are allowed; one that takes a file,
  a table name or a query as a string (read_csv, query_table, query...) is refused, whatever
  its spelling (``"read_csv"``, ``main.read_csv``).

Placeholders for env_var() values are parsed as a neutral word (outside quotes) or text (inside
them); a table named by one is refused, since seekrun could not tell which table it is.
"""
from __future__ import annotations

import json
import re

from seekrun.parser.kinds import KINDS
from seekrun.parser.sql import origin

PURE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree", "repeat_row"})
FILE_FUNCTIONS = frozenset({"read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
                            "read_ndjson", "read_ndjson_auto", "read_json_objects", "read_json_objects_auto",
                            "read_ndjson_objects", "read_text", "read_blob", "read_xlsx", "st_read", "sniff_csv",
                            "glob", "iceberg_scan", "delta_scan", "parquet_metadata", "parquet_schema",
                            "read_duckdb"})
QUERY_FUNCTIONS = frozenset({"query", "query_table"})
REFUSED_SCALARS = {"getenv": "use {{ env_var('NAME') }} so a change reruns the node"}
PLACEHOLDER = "__seekrun_env_{}__"
WIDTH = 100  # caret lines show at most this much of a long SQL line
_PLACEHOLDER_RE = re.compile(r"__seekrun_env_\d+__\Z")
_EXPR = re.compile(r"\{\{.*?\}\}", re.S)


def neutral(sql: str, unsafe: list | None = None) -> tuple[str, list[list[int]]]:
    """sql with {{ ... }} placeholders made parseable, and the spans to map positions back.
    Placeholders in quotes a value cannot be put into safely go to ``unsafe`` (positions)."""
    matches = list(_EXPR.finditer(sql))
    if not matches:
        return sql, []
    from seekrun.parser.templating import UNSAFE, _quote_contexts

    out, spans, last, pos = [], [], 0, 0
    for k, (m, quote) in enumerate(zip(matches, _quote_contexts(sql, matches))):
        if quote in UNSAFE and unsafe is not None and ("env_var(" in m.group(0) or "env:" in m.group(0)):
            unsafe.append(m.start())
        text = "x" if quote is not None else PLACEHOLDER.format(k)
        out.append(sql[last:m.start()])
        pos += m.start() - last
        spans.append([pos, pos + len(text), m.start(), m.end()])
        out.append(text)
        pos += len(text)
        last = m.end()
    out.append(sql[last:])
    return "".join(out), spans


def read_tree(raw: str) -> tuple[dict, dict]:
    """(the decoded JSON, what a serialized statement reads): tables (with a flag: a CTE of that
    name is in scope where it is named), table functions, functions, parameters and SHOW /
    DESCRIBE of the catalog. CTE names are scoped as SQL scopes them: a CTE is visible only
    inside the query that defines it. A tree too deep to decode is an error ("too deep")."""
    found = {"tables": [], "table_functions": [], "functions": [], "shows": [], "params": [], "too_deep": False}
    try:
        tree = json.loads(raw)
    except RecursionError:
        found["too_deep"] = True
        return {}, found
    stack: list[tuple[object, frozenset]] = [(tree.get("statements") or [], frozenset())]
    while stack:
        node, scope = stack.pop()
        if isinstance(node, list):
            stack.extend((v, scope) for v in node if isinstance(v, (dict, list)))
            continue
        cte = node.get("cte_map")
        if isinstance(cte, dict) and cte.get("map"):
            scope = scope | {str(item["key"]).lower() for item in cte["map"] if isinstance(item, dict) and "key" in item}
        kind = node.get("type")
        if kind == "BASE_TABLE" and "table_name" in node:
            found["tables"].append((node.get("catalog_name") or "", node.get("schema_name") or "", node["table_name"],
                                    node.get("query_location"), str(node["table_name"]).lower() in scope))
        elif kind == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
            found["table_functions"].append((str(node["function"].get("function_name", "")).lower(),
                                             node.get("query_location")))
        elif kind == "SHOW_REF" and not isinstance(node.get("query"), dict):
            found["shows"].append(node.get("query_location"))  # DESCRIBE/SUMMARIZE of a query read only it
        klass = node.get("class")
        if klass == "FUNCTION" and "function_name" in node:
            found["functions"].append((str(node["function_name"]).lower(), node.get("query_location")))
        elif klass == "PARAMETER":
            found["params"].append(node.get("query_location"))
        stack.extend((v, scope) for v in node.values() if isinstance(v, (dict, list)))
    return tree, found


def problems_in(found: dict, inputs: list[str]) -> tuple[list[tuple[str, int | None]], list[str]]:
    """(problems as (message, position), node ids read) for what a statement reads."""
    out: list[tuple[str, int | None]] = []
    reads: list[str] = []
    if found.get("too_deep"):
        return [("SQL nests too deeply for seekrun to check what it reads: simplify it", None)], []
    for catalog, schema, table, pos, is_cte in found["tables"]:
        if catalog:
            out.append((f"SQL names {catalog}.{schema}.{table} with a database prefix: refer to it as "
                        f"{schema}.{table} (declared in inputs) so seekrun knows the dependency", pos))
        elif schema and schema.lower() in KINDS:
            reads.append(f"{schema.lower()}.{table}")
        elif schema:
            out.append((f"SQL reads table {schema}.{table}, which is not a node: seekrun only tracks the "
                        "tables of declared inputs (kind.name)", pos))
        elif _PLACEHOLDER_RE.match(table):
            out.append(("SQL takes a table name from env_var(): seekrun cannot tell which table that is; "
                        "name the table with ref() and declare it in inputs", pos))
        elif is_cte:
            continue
        elif "/" in table or "." in table or "*" in table:
            out.append((f"SQL reads the file '{table}' directly: declare it as a source node and use it as an "
                        "input", pos))
        else:
            out.append((f"SQL reads table '{table}', which is neither a declared input nor a CTE in scope: name "
                        "inputs as kind.name, ref('kind.name') or input_N", pos))
    for name, pos in found["table_functions"]:
        if name in PURE_TABLE_FUNCTIONS:
            continue
        if name in FILE_FUNCTIONS:
            out.append((f"SQL reads a file with {name}(): declare the file as a source node and use it as an "
                        "input (so a change to it reruns this node)", pos))
        elif name in QUERY_FUNCTIONS:
            out.append((f"SQL calls {name}(), which takes its table or query as text: seekrun cannot see what "
                        "it reads; name the tables with ref() and declare them in inputs", pos))
        else:
            out.append((f"SQL calls the table function {name}(), which reads what seekrun cannot track: use a "
                        "declared input instead", pos))
    for pos in found["shows"]:
        out.append(("SQL lists the catalog (SHOW): its result depends on which tables exist, which seekrun does "
                    "not track", pos))
    for name, pos in found["functions"]:
        if name in REFUSED_SCALARS:
            out.append((f"SQL calls {name}(): {REFUSED_SCALARS[name]}", pos))
    for pos in found["params"][:1]:
        out.append(("SQL has a parameter ($1, ? or $name): seekrun runs SQL without parameters; write the value, "
                    "or use {{ env_var('NAME') }}", pos))
    return out, reads


UNCHECKABLE = ("SQL with a PIVOT that does not list its values (PIVOT ... ON col without IN (...)) cannot be "
               "checked for what it reads: list them, e.g. PIVOT t ON col IN ('a', 'b') USING sum(v)")


def serialize(con, texts: list[str]) -> list[str]:
    """DuckDB's parse trees (JSON) for many statements in one query (an error object for each
    bad one)."""
    if not texts:
        return []
    return [r[0] for r in con.execute("SELECT json_serialize_sql(unnest(?::VARCHAR[]))", [texts]).fetchall()]




_NEAR = re.compile(r'(at or near )"(.*)"\Z', re.S)


def _near_original(message: str, pos: int, original: str, spans: list[list[int]]) -> str:
    """DuckDB names the token as it saw it (a ref already rewritten to "kind"."name"): name the
    token the user wrote instead."""
    m = _NEAR.search(message)
    if not m:
        return message
    token = next((original[s[2]:s[3]] for s in spans if s[2] == pos), None)
    if token is None:
        from seekrun.parser.sql import END, START, tokenize

        rest = original[pos:pos + 200]
        token = next((rest[t[START]:t[END]] for t in tokenize(rest) if t[START] == 0), None)
    return message if token is None else message[:m.start()] + f'{m.group(1)}"{token}"'


def char_pos(text: str, byte_pos) -> int | None:
    """DuckDB reports byte offsets into the UTF-8 text."""
    try:
        pos = int(byte_pos)
    except (TypeError, ValueError):
        return None
    if pos < 0 or pos > 1 << 40:
        return None
    return len(text.encode("utf-8")[:pos].decode("utf-8", "ignore"))


def caret(original: str, pos: int | None, src: dict | None = None) -> tuple[int, tuple[str, ...]]:
    """(0-based line within original, detail lines: that line and a caret under pos). With
    ``src`` (yaml_load.source_map: a folded or multi-line value), the line is the file's own line
    as shown in the file, and the first element is the file line itself (not 0-based)."""
    if pos is None:
        return 0, ()
    pos = max(0, min(pos, len(original)))
    if src:
        return _file_caret(pos, src)
    line_no = original.count("\n", 0, pos)
    start = original.rfind("\n", 0, pos) + 1
    end = original.find("\n", pos)
    text = original[start:end if end >= 0 else len(original)]
    return line_no, _caret_lines(text, pos - start)


def _file_caret(pos: int, src: dict) -> tuple[int, tuple[str, ...]]:
    import bisect

    segs = src["segs"]
    k = max(0, bisect.bisect_right([s[0] for s in segs], pos) - 1)
    vi, line, col = segs[k]
    col += pos - vi
    first, shown = src["lines"][str(line)]
    return line, _caret_lines(shown, max(0, min(col - first, len(shown))))


def _caret_lines(text: str, col: int) -> tuple[str, ...]:
    """The line and a caret under column col (tabs shown as one space, so the caret stays
    under its character; a long line shown as a window around the caret)."""
    text = text.expandtabs(1)
    if len(text) > WIDTH:  # a window around the caret
        left = max(0, min(col - WIDTH // 3, len(text) - WIDTH))
        head, tail = ("..." if left else ""), ("..." if left + WIDTH < len(text) else "")
        text, col = head + text[left:left + WIDTH] + tail, col - left + len(head)
    return (text.rstrip(), " " * col + "^")


def file_position(chk: dict, pos: int | None) -> tuple[int | None, tuple[str, ...]]:
    """(file line, detail lines) of a position in a checked SQL text (chk: records.sql_check_entry)."""
    if pos is None:
        return chk["line"], ()
    line_no, detail = caret(chk["orig"], pos, chk.get("src"))
    if chk.get("src"):
        return line_no, detail
    return (chk["line"] + line_no if chk["line"] else None), detail


def connection():
    """An in-memory DuckDB that can read nothing from the disk (for parse-time checks)."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET enable_external_access = false")
    return con


def check_files(read: dict, connect=connection) -> None:
    """Check the SQL of freshly read files, in place: read maps a file to the tuple its reader
    returned (records, errors, ...); problems are appended to that file's errors, and each
    record learns the node ids its SQL reads (``sql_tables``)."""
    from seekrun.errors import Diagnostic

    items = []  # (rel, record, check)
    readers = []  # (rel, record, reader params to check)
    for rel, out in read.items():
        for rec in out[0]:
            for chk in rec.pop("sql_checks", None) or []:
                items.append((rel, rec, chk))
            if rec.get("reader_check"):
                readers.append((rel, rec, rec.pop("reader_check")))
            if rec.get("type_checks"):
                readers.append((rel, rec, {"types": rec.pop("type_checks")}))
    if not items and not readers:
        return
    texts, maps = [], []
    for rel, rec, chk in items:
        unsafe: list[int] = []
        text, spans = neutral(chk["sql"], unsafe)
        texts.append(text)
        maps.append(spans)
        for at in unsafe[:1]:
            line, detail = file_position(chk, origin(at, chk["spans"], chk["lead"]))
            read[rel][1].append(Diagnostic(rel, line,
                f"{rec['id']}: env_var() inside an E'...' or $$...$$ string cannot be quoted safely: put it in a "
                "plain '...' literal", detail=detail))
    con = connect()
    try:
        from seekrun.parser import reader_check

        cache: dict = {}
        for rel, rec, spec in readers:
            if "types" in spec:
                reader_check.check_types(con, rel, rec, spec["types"], read[rel][1])
            else:
                reader_check.check(con, rel, rec, spec, cache, read[rel][1])
        for (rel, rec, chk), text, spans, raw in zip(items, texts, maps, serialize(con, texts)):
            errors = read[rel][1]
            tree, found = read_tree(raw)

            def where(pos_in_text):
                """(file line, detail) of a position in the parsed text."""
                if pos_in_text is None:
                    return chk["line"], ()
                in_exec = origin(pos_in_text, spans)
                return file_position(chk, origin(in_exec, chk["spans"], chk["lead"]))

            label = f"{rec['id']}: {chk['label'] + ': ' if chk.get('label') else ''}"
            if found.get("too_deep"):
                errors.append(Diagnostic(rel, chk["line"], f"{label}{problems_in(found, [])[0][0][0]}"))
                continue
            if tree.get("error"):
                message = str(tree.get("error_message") or "syntax error")
                if message.startswith("Only SELECT statements"):  # a dynamic PIVOT: nothing to read it by
                    try:
                        con.extract_statements(text)
                        errors.append(Diagnostic(rel, chk["line"], f"{label}{UNCHECKABLE}"))
                    except Exception as exc:  # duckdb.Error: a real syntax error
                        line, _ = where(None)
                        errors.append(Diagnostic(rel, line, f"{label}SQL does not parse: "
                                                            f"{str(exc).splitlines()[0]}"))
                    continue
                pos = char_pos(text, tree.get("position"))
                line, detail = where(pos)
                if pos is not None:
                    message = _near_original(message, origin(origin(pos, spans), chk["spans"], chk["lead"]),
                                             chk["orig"], chk["spans"])
                errors.append(Diagnostic(rel, line, f"{label}SQL does not parse: {message}", detail=detail))
                continue
            if len(tree.get("statements") or []) != 1:
                errors.append(Diagnostic(rel, chk["line"], f"{label}SQL must be a single SELECT statement"))
                continue
            problems, reads = problems_in(found, chk["inputs"])
            for message, pos in problems:
                line, detail = where(char_pos(text, pos))
                errors.append(Diagnostic(rel, line, f"{label}{message}", detail=detail))
            if reads:
                rec["sql_tables"] = list(dict.fromkeys([*(rec.get("sql_tables") or []), *reads]))
    finally:
        con.close()
