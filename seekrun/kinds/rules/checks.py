"""Rule checks at run time: one function per check type, each returning result rows
(check, type, column, status, violations, message)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from seekrun.kinds.base import (BuildContext, NodeFailure, quote_ident, sql_literal)


from seekrun.errors import suggest


def _summary(rows: list[tuple], total: int, verb: str, limit: int = 5) -> str:
    parts = [f"{r[0]}{f' ({r[2]})' if r[2] else ''}: {r[5]}" for r in rows[:limit]]
    more = f"; and {len(rows) - limit} more" if len(rows) > limit else ""
    noun = "check" if total == 1 else "checks"
    return f"{len(rows)} of {total} {noun} {verb}: " + "; ".join(parts) + more


RESULT_COLUMNS = [("check", "VARCHAR"), ("type", "VARCHAR"), ("column", "VARCHAR"), ("status", "VARCHAR"),
                  ("violations", "BIGINT"), ("message", "VARCHAR")]


def _write(ctx: BuildContext, rows: list[tuple]) -> int:
    """The results table (data values never become SQL text)."""
    return ctx.write_rows(RESULT_COLUMNS, rows)


def _describe(ctx: BuildContext, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in ctx.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def _need_columns(node: dict, spec: dict, columns: dict[str, str], input_id: str) -> None:
    lower = {c.lower() for c in columns}
    for col in spec["columns"]:
        if col.lower() not in lower:
            raise NodeFailure(f"check '{spec['label']}': column '{col}' is not in {input_id}"
                              f"{suggest(col, columns)} (columns: {', '.join(columns)})")


def _pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def _null(ctx, s, source, violated) -> list[tuple]:
    cols = s["columns"]
    exprs = ", ".join(f"count(*) FILTER (WHERE {quote_ident(c)} IS NULL)" for c in cols)
    row = ctx.execute(f"SELECT count(*), {exprs} FROM {source}").fetchone()
    total, allowed = row[0], s["params"]["max_fraction"]
    out = []
    for col, nulls in zip(cols, row[1:]):
        frac = nulls / total if total else 0.0
        bad = frac > allowed
        if nulls == 0:
            msg = f"no NULLs in {total} row{'s' if total != 1 else ''}"
        else:
            msg = (f"{nulls} of {total} rows are NULL ({_pct(frac)}); "
                   + (f"allowed {_pct(allowed)}" if allowed else "no NULLs allowed"))
        out.append((s["label"], s["type"], col, violated if bad else "pass", nulls, msg))
    return out


def _bounds_text(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def _range(ctx, s, source, violated) -> list[tuple]:
    lo, hi = s["params"]["min"], s["params"]["max"]
    out = []
    for col in s["columns"]:
        q = quote_ident(col)
        conds = ([f"{q} < {sql_literal(lo)}"] if lo is not None else []) + \
                ([f"{q} > {sql_literal(hi)}"] if hi is not None else [])
        n, checked = ctx.execute(f"SELECT count(*) FILTER (WHERE {q} IS NOT NULL AND ({' OR '.join(conds)})), "
                                 f"count({q}) FROM {source}").fetchone()
        want = _bounds_text(lo, hi)
        msg = (f"all {checked} non-NULL values are {want}" if n == 0 else
               f"{n} of {checked} non-NULL values are not {want}")
        out.append((s["label"], s["type"], col, violated if n else "pass", n, msg))
    return out


def _uniqueness(ctx, s, source, violated) -> list[tuple]:
    cols = s["columns"]
    keys = ", ".join(quote_ident(c) for c in cols)
    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in cols)
    groups = f"SELECT {keys}, count(*) AS n FROM {source} WHERE {not_null} GROUP BY ALL HAVING count(*) > 1"
    rows_in, dup_keys = ctx.execute(f"SELECT coalesce(sum(n), 0), count(*) FROM ({groups})").fetchone()
    total = ctx.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
    rows_in = int(rows_in)
    frac = rows_in / total if total else 0.0
    allowed = s["params"]["max_fraction"]
    bad = frac > allowed
    label = ", ".join(cols)
    if rows_in == 0:
        msg = f"every non-NULL key is unique ({total} row{'s' if total != 1 else ''})"
    else:
        examples = ctx.execute(f"SELECT {keys}, n FROM ({groups}) ORDER BY n DESC, {keys} LIMIT 3").fetchall()
        shown = "; ".join(_key_text(cols, ex[:-1]) + f" ({ex[-1]} rows)" for ex in examples)
        more = ", ..." if dup_keys > len(examples) else ""
        msg = (f"{dup_keys} duplicate key{'s' if dup_keys != 1 else ''} covering {rows_in} of {total} rows "
               f"({_pct(frac)}): {shown}{more}" + (f"; allowed {_pct(allowed)}" if allowed else ""))
    return [(s["label"], s["type"], label, violated if bad else "pass", rows_in, msg)]


def _key_text(cols: list[str], values) -> str:
    return ", ".join(f"{c}={v!r}" if isinstance(v, str) else f"{c}={v}" for c, v in zip(cols, values))


def _freshness(ctx, s, source, columns, violated) -> list[tuple]:
    import time

    p = s["params"]
    reference = p.get("reference")
    as_of = p.get("reference_text") if reference is not None else "now"
    if reference is None:
        reference = time.time()
    out = []
    types = {c.lower(): t for c, t in columns.items()}
    for col in s["columns"]:
        q = quote_ident(col)
        ctype = types.get(col.lower(), "")
        if ctype.startswith("TIMESTAMP WITH TIME ZONE"):
            expr, shown = f"max({q})", f"max({q})"
        elif ctype == "DATE" or ctype.startswith("TIMESTAMP"):
            expr, shown = f"max(CAST({q} AS TIMESTAMP))", f"max({q})"
        elif ctype == "VARCHAR":
            expr = shown = f"max(CAST({q} AS TIMESTAMP))"
        else:
            raise NodeFailure(f"check '{s['label']}': freshness needs a DATE or TIMESTAMP column; "
                              f"'{col}' is {ctype}")
        latest, text = ctx.execute(f"SELECT epoch({expr}), CAST({shown} AS VARCHAR) FROM {source}").fetchone()
        if latest is None:
            out.append((s["label"], s["type"], col, violated, 1,
                        f"no values in {col}: cannot tell how fresh the data is (max age {p['max_age_text']})"))
            continue
        age = reference - float(latest)
        stale = age > p["max_age"]
        msg = (f"latest {col} is {text}, {_age_text(age)} old as of {as_of}; "
               + (f"older than the max age {p['max_age_text']}" if stale else f"within {p['max_age_text']}"))
        out.append((s["label"], s["type"], col, violated if stale else "pass", 1 if stale else 0, msg))
    return out


def _age_text(seconds: float) -> str:
    if seconds < 0:
        return "in the future, " + _age_text(-seconds).replace(" old", "")
    s = int(seconds)
    d, rem = divmod(s, 86400)
    h, rem = divmod(rem, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{d}d"] * bool(d) + [f"{h}h"] * bool(h) + [f"{m}m"] * bool(m)
    return " ".join(parts) if parts else f"{sec}s"


def _is_count(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return False
    return value >= 0 and (isinstance(value, int) or value == int(value))


COUNT_FUNCTIONS = {"count", "count_star", "count_if", "countif", "sum"}
_WRAPPERS = {"coalesce", "ifnull", "cast", "try_cast"}
_CLAUSE_END = {"from", "where", "group", "having", "qualify", "window", "order", "limit", "union", "except",
               "intersect"}


def is_count_query(sql: str) -> bool:
    """Whether the outermost SELECT is one count/sum without GROUP BY, e.g.
    ``SELECT count(*) AS bad FROM t WHERE ...``: its one number is a count of violations.
    Any other query returns the bad rows (so ``SELECT id ... `` returning one 0 is one row)."""
    from seekrun.parser.sql import KIND, TEXT, tokenize

    toks = tokenize(sql)
    depth, selects = 0, []
    for k, tok in enumerate(toks):
        text = tok[TEXT].lower()
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
        elif depth == 0 and tok[KIND] == "id" and text in ("select", "group", "union", "except", "intersect"):
            selects.append((k, text))
    if [t for _, t in selects] != ["select"]:
        return False  # several top-level SELECTs, or a GROUP BY: rows
    k = selects[0][0] + 1
    item: list[str] = []
    depth = 0
    while k < len(toks):
        text = toks[k][TEXT].lower()
        if depth == 0 and (text == "," or text in _CLAUSE_END):
            if text == ",":
                return False  # more than one column
            break
        depth += text == "("
        depth -= text == ")"
        item.append(text)
        k += 1
    while len(item) >= 3 and item[0] in _WRAPPERS and item[1] == "(":
        item = item[2:]
    return len(item) >= 2 and item[0] in COUNT_FUNCTIONS and item[1] == "("


def _assertion(ctx, s, violated) -> tuple:
    sql = s["sql"]
    cur = ctx.execute(f"SELECT * FROM (\n{sql}\n) AS assertion LIMIT 2")
    first = cur.fetchall()
    ncols = len(cur.description or [])
    if ncols == 1 and len(first) == 1 and _is_count(first[0][0]) and is_count_query(sql):
        n = int(first[0][0] or 0)
        msg = "the count is 0" if n == 0 else f"the query counts {n} violation{'s' if n != 1 else ''} (must be 0)"
    else:
        n = len(first) if len(first) < 2 else \
            int(ctx.execute(f"SELECT count(*) FROM (\n{sql}\n) AS assertion").fetchone()[0])
        msg = "the query returns no rows" if n == 0 else \
            f"the query returns {n} row{'s' if n != 1 else ''} (must return none)"
    return (s["label"], s["type"], None, violated if n else "pass", n, msg)


from seekrun.kinds.rules.profile_check import profile_check as _profile_check  # noqa: E402,F401
