"""A small SQL lexer: canonical form for hashing and the refs a query uses.

Canonical form is the token sequence without whitespace and comments, joined by
single spaces, so whitespace-only and comment-only edits keep the hash while any
change inside a string literal changes it.  Two texts share a canonical form only
if they have the same tokens, which SQL treats the same.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(
    r"""
    \s*(?:
     (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    |(?P<str>[eExXbBnNrR]?'(?:[^']|'')*')
    |(?P<dollar>\$(?P<tag>[A-Za-z_]*)\$.*?\$(?P=tag)\$)
    |(?P<qid>"(?:[^"]|"")*")
    |(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<id>[^\W\d]\w*)
    |(?P<op>(?:(?!--|/\*)[+\-*/<>=~!@#%^&|?:`])+)
    |(?P<other>\S)
    )""",
    re.S | re.X,
)

# Functions that read files or the environment behind seekrun's back: what they read would not
# be hashed, so a change to it would never rerun the node.
FILE_READERS = {"read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto",
                "read_ndjson", "read_ndjson_auto", "read_json_objects", "read_text", "read_blob", "read_xlsx",
                "st_read", "sniff_csv", "glob", "iceberg_scan", "delta_scan"}
STATEMENT_STARTS = {"select", "with", "from", "values", "pivot", "unpivot", "table", "("}


# A token is a tuple (kind, text, start, end): plain tuples keep the lexer fast.
KIND, TEXT, START, END = range(4)


@dataclass
class SqlRef:
    node_id: str
    form: str  # "ref()", "name" or "input_N"
    start: int = 0
    end: int = 0


@dataclass
class SqlAnalysis:
    canonical: str
    executable: str
    refs: list[SqlRef] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # messages, no location
    bad_inputs: list[str] = field(default_factory=list)  # input_N out of range
    candidates: list[str] = field(default_factory=list)  # kind.name outside FROM/JOIN


def tokenize(sql: str) -> list[tuple[str, str, int, int]]:
    """Tokens without whitespace and comments, as (kind, text, start, end)."""
    out = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind == "comment" or kind is None:
            continue
        if kind == "tag":
            kind = "dollar"
        start, end = m.span(kind)
        out.append((kind, sql[start:end], start, end))
    return out


def _ident(tok: tuple) -> str | None:
    if tok[KIND] == "id":
        return tok[TEXT]
    if tok[KIND] == "qid":
        return tok[TEXT][1:-1].replace('""', '"')
    return None


def _quote(node_id: str) -> str:
    kind, _, name = node_id.partition(".")
    return f'"{kind}"."{name}"'


_INPUT_RE = re.compile(r"input_(\d+)\Z", re.I)


def analyse(sql: str, inputs: list[str], kinds: frozenset[str], require_select: bool = True) -> SqlAnalysis:
    """Find refs, check the statement shape, produce canonical and executable SQL.

    ``inputs`` are the declared input node ids in order; ``input_N`` and ``__THIS__``
    name them.  ``kind.name`` counts as a ref when it is a declared input or follows
    FROM/JOIN; anywhere else it may be a column of a table alias.  The result depends
    only on the node itself, so it can be cached per file.
    """
    toks = tokenize(sql)
    out = SqlAnalysis("", "")
    canon: list[str] = []
    replace: list[tuple[int, int, str]] = []  # executable rewrites (start, end, text)
    i, n = 0, len(toks)
    prev_text = ""
    while i < n:
        tok = toks[i]
        low = tok[TEXT].lower()
        after_dot = prev_text == "."
        # ref('kind.name')
        if (tok[KIND] == "id" and low == "ref" and i + 3 < n and toks[i + 1][TEXT] == "("
                and toks[i + 2][KIND] == "str" and toks[i + 3][TEXT] == ")" and not after_dot):
            target = toks[i + 2][TEXT].strip("'").replace("''", "'")
            out.refs.append(SqlRef(target, "ref()"))
            canon.append(_quote(target))
            replace.append((tok[START], toks[i + 3][END], _quote(target)))
            prev_text = ")"
            i += 4
            continue
        if tok[KIND] == "id" and not after_dot and (low == "__this__" or _INPUT_RE.match(tok[TEXT])):
            idx = 0 if low == "__this__" else int(_INPUT_RE.match(tok[TEXT]).group(1))
            if idx < len(inputs):
                out.refs.append(SqlRef(inputs[idx], tok[TEXT]))
                canon.append(_quote(inputs[idx]))
                replace.append((tok[START], tok[END], _quote(inputs[idx])))
            else:
                out.bad_inputs.append(tok[TEXT])
                canon.append(tok[TEXT])
            prev_text = tok[TEXT]
            i += 1
            continue
        # kind.name
        first = _ident(tok)
        if (first is not None and first.lower() in kinds and not after_dot and i + 2 < n
                and toks[i + 1][TEXT] == "." and _ident(toks[i + 2]) is not None):
            node_id = f"{first.lower()}.{_ident(toks[i + 2])}"
            if node_id in inputs or prev_text.lower() in ("from", "join"):
                out.refs.append(SqlRef(node_id, "name"))
                canon.append(_quote(node_id))
                replace.append((tok[START], toks[i + 2][END], _quote(node_id)))
                prev_text = toks[i + 2][TEXT]
                i += 3
                continue
            out.candidates.append(node_id)  # a ref if such a node exists, else alias.column
        canon.append(tok[TEXT])
        prev_text = tok[TEXT]
        i += 1
    for k, tok in enumerate(toks):
        nxt = toks[k + 1][TEXT] if k + 1 < len(toks) else ""
        low = tok[TEXT].lower()
        if tok[KIND] == "id" and nxt == "(" and (k == 0 or toks[k - 1][TEXT] != "."):
            if low in FILE_READERS:
                out.problems.append(f"SQL reads a file with {tok[TEXT]}(): declare the file as a source node "
                                    "and use it as an input (so a change to it reruns this node)")
            elif low == "getenv":
                out.problems.append("SQL calls getenv(): use {{ env_var('NAME') }} so a change reruns the node")
        elif (tok[KIND] in ("id", "qid") and k + 3 < len(toks) and nxt == "." and k > 0
              and toks[k - 1][TEXT].lower() in ("from", "join", ",")
              and (_ident(toks[k + 2]) or "").lower() in kinds and toks[k + 3][TEXT] == "."):
            name = f"{_ident(toks[k + 2]).lower()}.{_ident(toks[k + 4]) if k + 4 < len(toks) else ''}"
            out.problems.append(f"SQL names {tok[TEXT]}.{name} with a database prefix: refer to it as {name} "
                                "(declared in inputs) so seekrun knows the dependency")
        elif tok[KIND] == "str" and k > 0 and toks[k - 1][TEXT].lower() in ("from", "join"):
            out.problems.append(f"SQL reads the file {tok[TEXT]} directly: declare it as a source node and use "
                                "it as an input")
    while canon and canon[-1] == ";":
        canon.pop()
    out.canonical = " ".join(canon)
    # statement shape
    if require_select:
        if not toks:
            out.problems.append("SQL is empty: write a SELECT")
        else:
            head = toks[0][TEXT].lower()
            if head not in STATEMENT_STARTS:
                out.problems.append(f"SQL must be a single SELECT query, not '{toks[0][TEXT].upper()}'")
            semis = [k for k, t in enumerate(toks) if t[TEXT] == ";"]
            if semis and any(t[TEXT] != ";" for t in toks[semis[0]:]):
                out.problems.append("SQL must be a single SELECT statement: remove the extra statements after ';'")
    # executable: apply rewrites to the original text, drop trailing ';' (and what follows it)
    limit = len(sql)
    semis = [t for t in toks if t[TEXT] == ";"]
    if semis and all(t[TEXT] == ";" for t in toks[toks.index(semis[0]):]):
        limit = semis[0][START]
    pieces, last = [], 0
    for start, end, text in replace:
        pieces.append(sql[last:start])
        pieces.append(text)
        last = end
    pieces.append(sql[last:limit])
    out.executable = "".join(pieces).strip()
    return out
