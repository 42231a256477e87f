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
     (?P<comment>--[^\n\r]*|/\*.*?(?:\*/|\Z))
    |(?P<str>[eE]'(?:[^'\\]|\\.|'')*'|[xXbBnNrR]?'(?:[^']|'')*')
    |(?P<dollar>\$(?P<tag>(?:[^\W\d]\w*)?)\$.*?\$(?P=tag)\$)
    |(?P<qid>"(?:[^"]|"")*")
    |(?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<id>[^\W\d][\w$]*)
    |(?P<op>(?:(?!--|/\*)[+\-*/<>=~!@#%^&|?:`])+)
    |(?P<other>\S)
    )""",
    re.S | re.X,
)

# What SQL reads besides its inputs (files, other tables, the environment) is found in DuckDB's
# own parse tree: seekrun/parser/sql_check.py.
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
    # where executable text came from: [exec start, exec end, original start, original end]
    # for each rewritten span, with positions in executable measured after its leading strip
    spans: list[list[int]] = field(default_factory=list)
    lead: int = 0  # characters stripped from the start of the original text

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


def _quote(node_id: str, mark: str = '"') -> str:
    kind, _, name = node_id.partition(".")
    return f"{mark}{kind}{mark}.{mark}{name}{mark}"


_INPUT_RE = re.compile(r"input_(\d+)\Z", re.I)


def analyse(sql: str, inputs: list[str], kinds: frozenset[str], require_select: bool = True,
            mark: str = '"') -> SqlAnalysis:
    """Find refs, check the statement shape, produce canonical and executable SQL.

    ``inputs`` are the declared input node ids in order; ``input_N`` and ``__THIS__``
    name them.  ``kind.name`` counts as a ref when it is a declared input or follows
    FROM/JOIN; anywhere else it may be a column of a table alias.  The result depends
    only on the node itself, so it can be cached per file. ``mark``: how the executable SQL
    quotes a ref (a backtick for Spark SQL).
    """
    toks = tokenize(sql)
    out = SqlAnalysis("", "")
    declared = {i.lower(): i for i in inputs}  # DuckDB names ignore case: so does the canonical form
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
            target = declared.get(target.lower(), target)
            out.refs.append(SqlRef(target, "ref()"))
            canon.append(_quote(target))
            replace.append((tok[START], toks[i + 3][END], _quote(target, mark)))
            prev_text = ")"
            i += 4
            continue
        if tok[KIND] == "id" and not after_dot and (low == "__this__" or _INPUT_RE.match(tok[TEXT])):
            idx = 0 if low == "__this__" else int(_INPUT_RE.match(tok[TEXT]).group(1))
            if idx < len(inputs):
                out.refs.append(SqlRef(inputs[idx], tok[TEXT]))
                canon.append(_quote(inputs[idx]))
                replace.append((tok[START], tok[END], _quote(inputs[idx], mark)))
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
            node_id = declared.get(node_id.lower(), node_id)
            if node_id in inputs or prev_text.lower() in ("from", "join"):
                out.refs.append(SqlRef(node_id, "name"))
                canon.append(_quote(node_id))
                replace.append((tok[START], toks[i + 2][END], _quote(node_id, mark)))
                prev_text = toks[i + 2][TEXT]
                i += 3
                continue
            out.candidates.append(node_id)  # a ref if such a node exists, else alias.column
        canon.append(tok[TEXT])
        prev_text = tok[TEXT]
        i += 1
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
    pieces, last, pos = [], 0, 0
    for start, end, text in replace:
        pieces.append(sql[last:start])
        pos += start - last
        out.spans.append([pos, pos + len(text), start, end])
        pieces.append(text)
        pos += len(text)
        last = end
    pieces.append(sql[last:limit])
    joined = "".join(pieces)
    out.executable = joined.strip()
    out.lead = len(joined) - len(joined.lstrip())
    for span in out.spans:
        span[0] -= out.lead
        span[1] -= out.lead
    return out


def origin(pos: int, spans: list[list[int]], lead: int = 0) -> int:
    """The position in the original text of position ``pos`` of a rewritten text (see
    SqlAnalysis.spans): inside a rewritten span, its start."""
    shift = lead
    for new_start, new_end, old_start, old_end in spans:
        if pos < new_start:
            break
        if pos < new_end:
            return old_start
        shift = old_end - new_end
    return pos + shift
