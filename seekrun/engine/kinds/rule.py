"""rule: data-quality checks over the node's first input; results in table "rule"."<name>".

``rule:`` is one check or a list of them.  Each check type:

- ``null``: ``column``/``columns``; ``params.max_null_percentage`` is a *fraction* of
  rows, 0..1, as in Seeknal (0.05 allows 5% NULLs; default 0).  One result per column;
  violations = NULL rows in that column.
- ``range``: ``column``/``columns``; ``params.min_val`` / ``max_val`` (inclusive, at
  least one).  NULLs are not range violations (use a null check).  violations = non-NULL
  rows outside the range.
- ``uniqueness``: ``column``/``columns`` form one (composite) key; rows whose key has a
  NULL are ignored, like a SQL UNIQUE constraint.  violations = rows that share their key
  with another row (a key seen 3 times counts 3).  ``params.max_duplicate_percentage``
  (fraction 0..1, default 0) tolerates some.
- ``freshness``: ``column`` (DATE, TIMESTAMP, TIMESTAMPTZ, or text that casts to a
  timestamp); ``params.max_age`` like ``45s``, ``30m``, ``12h``, ``7d``, ``2w`` (a bare
  number is seconds).  Stale when max(column) is older than reference - max_age; the
  reference is now (UTC) or ``params.reference_time``.  Naive timestamps are read as UTC,
  a DATE as its midnight.  An empty (all-NULL) column is stale.  violations = 1 if stale.
  Freshness is evaluated when the rule runs (a change upstream, or ``--full``).
- ``sql_assertion`` (and ``custom`` with ``sql``): a SELECT returning the bad rows
  (violations = rows returned), or a count: when the outermost SELECT is a single
  ``count(...)``/``sum(...)`` (maybe inside coalesce/cast) without GROUP BY, its one number
  is the number of violations (NULL counts as 0).  Inputs are named ``ref('kind.name')``,
  ``kind.name``, ``input_N``, Seeknal's ``input_data`` (= input_0) and ``kind_name`` after
  FROM/JOIN.  ``custom`` without ``sql`` cannot run: exit 2 before anything runs.
- ``profile_check``: reads the first ``profile.*`` input; ``checks: [{column?, metric,
  warn, fail}]`` with thresholds ``> 50``, ``>= 1``, ``< 3``, ``<= 0``, ``= 0``, ``== 0``,
  ``!= 0`` or ``between 1 and 5``.  ``fail`` is evaluated first; a NULL metric value
  matches the fail threshold (else the warn one).

Node ``params``: ``severity: error|warn`` (default error) and ``error_message``.
Every result is a row (check, type, column, status, violations, message) with status
pass, warn or fail: a violated check is ``fail`` under severity error and ``warn`` under
severity warn; a profile_check warn threshold gives ``warn``.  The table is written in
every case; then any ``fail`` fails the node (its dependents are skipped), and any
``warn`` becomes a warning of a successful node.  Config problems (a column or metric
that is not there) fail the node whatever the severity.
"""
from __future__ import annotations

import calendar
import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

from seekrun.engine.base import (BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config,
                                 quote_ident, sql_literal, table_name)

ENGINE_VERSION = 1

TYPES = ("null", "range", "uniqueness", "freshness", "sql_assertion", "profile_check", "custom")
COLUMN_TYPES = ("null", "range", "uniqueness", "freshness")
SQL_TYPES = ("sql_assertion", "custom")
PARAMS = {
    "null": ("max_null_percentage",),
    "range": ("min_val", "max_val"),
    "uniqueness": ("max_duplicate_percentage",),
    "freshness": ("max_age", "reference_time"),
    "sql_assertion": (),
    "profile_check": (),
}
CHECK_KEYS = {
    "null": ("type", "name", "description", "column", "columns", "params"),
    "range": ("type", "name", "description", "column", "columns", "params"),
    "uniqueness": ("type", "name", "description", "column", "columns", "params"),
    "freshness": ("type", "name", "description", "column", "columns", "params"),
    "sql_assertion": ("type", "name", "description", "sql", "params"),
    "custom": ("type", "name", "description", "sql", "params"),
    "profile_check": ("type", "name", "description", "checks", "params"),
}
NODE_PARAMS = ("severity", "error_message")
SEVERITIES = ("error", "warn")
PROFILE_METRICS = ("row_count", "null_count", "null_percent", "distinct_count", "min", "max", "avg", "stddev")
SUBCHECK_KEYS = ("name", "description", "column", "metric", "warn", "fail")
TABLE_COLUMN = "_table_"  # profile rows of table-level metrics (row_count)

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_CMP = re.compile(rf"^\s*(>=|<=|==|!=|<>|=|>|<)\s*({_NUM})\s*$")
_BETWEEN = re.compile(rf"^\s*between\s+({_NUM})\s+and\s+({_NUM})\s*$", re.I)
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.I)
_AGE_UNITS = {
    "": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}


# ---- parse time -------------------------------------------------------------------------
def prepare(rec: dict, built: dict, pc) -> None:
    """Validate the checks; analyse assertion SQL (refs, canonical form for the hash)."""
    from seekrun.parser.kinds import KINDS
    from seekrun.parser.sql import analyse

    inputs: list[str] = rec["inputs"]
    if not inputs:
        pc.error(("inputs",), "a rule needs an input to check: add 'inputs: [- ref: kind.name]'")
    _node_params(built.get("params"), pc.error)
    rule = built.get("rule")
    single = isinstance(rule, dict)
    if rule is not None and not single and not isinstance(rule, list):
        pc.error(("rule",), "rule must be one check ({type: ..., ...}) or a list of checks")
        return
    raw = [rule] if single else list(rule or [])

    def at(i: int, *rest) -> tuple:
        return ("rule", *rest) if single else ("rule", i, *rest)

    if not raw:
        pc.error(("rule",), "the rule has no checks: add one, e.g. rule: {type: \"null\", columns: [id]}")
        return
    checks = parse_checks(raw, inputs, pc.error, at)
    if checks is None:
        return
    # hashed: the checks without their descriptions, assertion SQL in canonical form (so
    # whitespace and comments do not rerun); run: the SQL with refs resolved
    canonical = [_without_descriptions(c) for c in raw]
    executable = [dict(c) for c in raw]
    pc.fields["rule"] = canonical[0] if single else canonical
    refs: list[str] = []
    maybe: list[str] = []
    first_sql: tuple | None = None
    flagged: tuple | None = None  # the first assertion with a ref the graph check may report
    for i, chk in enumerate(checks):
        if chk["sql"] is None:
            continue
        result = analyse(seeknal_names(chk["sql"], inputs), inputs, KINDS)
        for problem in result.problems:
            pc.error(at(i, "sql"), problem)
        for bad in dict.fromkeys(result.bad_inputs):
            pc.error(at(i, "sql"), f"{bad} is out of range: the rule declares {len(inputs)} input(s)"
                     + (f" (input_0..input_{len(inputs) - 1})" if inputs else ""))
        own = [r.node_id for r in result.refs]
        first_sql = first_sql or at(i, "sql")
        if flagged is None and (any(r not in inputs for r in own) or result.candidates):
            flagged = at(i, "sql")
        refs += own
        maybe += result.candidates
        canonical[i]["sql"] = result.canonical
        executable[i]["sql"] = result.executable
    if first_sql is None:
        return
    rec["sql_refs"] = list(dict.fromkeys(refs))
    rec["sql_maybe_refs"] = list(dict.fromkeys(maybe))
    rec["sql_line"] = _line(pc, rec, flagged or first_sql)
    rec["built_config"] = {**built, "rule": executable[0] if single else executable}
    rec["generated_sql"] = "\n\n".join(  # for `seekrun show`
        f"-- check {c['label']} ({c['type']})\n{executable[i]['sql']}"
        for i, c in enumerate(checks) if c["sql"] is not None)


def _without_descriptions(check: dict) -> dict:
    out = {k: v for k, v in check.items() if k != "description"}
    if isinstance(out.get("checks"), list):
        out["checks"] = [{k: v for k, v in sub.items() if k != "description"} if isinstance(sub, dict) else sub
                         for sub in out["checks"]]
    return out


def _line(pc, rec: dict, path: tuple) -> int | None:
    """The line of a key path in this node's YAML (the parser's PrepareContext may offer it;
    otherwise read the node's document again)."""
    finder = getattr(pc, "line", None)
    if callable(finder):
        return finder(path)
    try:
        from seekrun.parser.yaml_load import decode, line_of, load_documents

        rel = rec["file"]
        for doc in load_documents(decode((Path(pc.root) / rel).read_bytes(), rel), rel):
            if doc.line == rec["line"]:
                return line_of(doc.node, path)
    except Exception:  # the file changed under us: the node's own line still points at it
        pass
    return rec.get("line")


def seeknal_names(sql: str, inputs: list[str]) -> str:
    """Seeknal's names for a rule's inputs: ``input_data`` (the first input) and
    ``kind_name`` after FROM/JOIN.  Rewritten to input_0 / kind.name for the analyser."""
    from seekrun.parser.sql import END, KIND, START, TEXT, tokenize

    low_sql = sql.lower()
    if "input_data" not in low_sql and not any(i.replace(".", "_").lower() in low_sql for i in inputs):
        return sql
    underscored = {i.replace(".", "_").lower(): i for i in inputs}
    out, last, prev = [], 0, ""
    for tok in tokenize(sql):
        low = tok[TEXT].lower()
        new = None
        if tok[KIND] == "id" and prev != ".":
            if low == "input_data" and inputs:
                new = "input_0"
            elif low in underscored and prev in ("from", "join"):
                new = underscored[low]
        if new is not None:
            out += [sql[last:tok[START]], new]
            last = tok[END]
        prev = low
    out.append(sql[last:])
    return "".join(out)


def _node_params(params: Any, err: Callable) -> None:
    if params is None:
        return
    if not isinstance(params, dict):
        err(("params",), "params must be a mapping such as {severity: warn}")
        return
    for key in params:
        if key not in NODE_PARAMS:
            err(("params", key), f"unknown rule param '{key}'{_hint(key, NODE_PARAMS)}: "
                                 f"a rule's params are {', '.join(NODE_PARAMS)} (check params go under "
                                 "the check: rule: {type: ..., params: {...}})")
    sev = params.get("severity", "error")
    if sev not in SEVERITIES:
        err(("params", "severity"), f"severity must be 'error' or 'warn', not {sev!r}")
    msg = params.get("error_message")
    if msg is not None and not isinstance(msg, str):
        err(("params", "error_message"), "error_message must be text")


def _hint(word: str, choices) -> str:
    import difflib

    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def parse_checks(raw: list, inputs: list[str], err: Callable, at: Callable) -> list[dict] | None:
    """Validate raw checks into specs; problems go to err(key path, message). None if any."""
    problems = [0]

    def e(path: tuple, msg: str) -> None:
        problems[0] += 1
        err(path, msg)

    specs: list[dict] = []
    for i, chk in enumerate(raw):
        if not isinstance(chk, dict):
            e(at(i), "a check must be a mapping such as {type: 'null', columns: [id]}")
            continue
        ctype = "null" if chk.get("type") is None else chk.get("type")  # `type: null` unquoted
        if ctype not in TYPES:
            e(at(i, "type"), f"unknown check type {ctype!r}{_hint(ctype, TYPES)}: use one of {', '.join(TYPES)}")
            continue
        spec: dict[str, Any] = {"type": ctype, "name": chk.get("name"), "columns": [], "params": {},
                                "sql": None, "checks": [], "profile": None}
        for key in chk:
            if key not in CHECK_KEYS[ctype]:
                e(at(i, key), f"unknown key '{key}' in a {ctype} check{_hint(key, CHECK_KEYS[ctype])}: "
                              f"use {', '.join(k for k in CHECK_KEYS[ctype] if k != 'type')}")
        if spec["name"] is not None and not isinstance(spec["name"], str):
            e(at(i, "name"), "a check's name must be text")
        params = chk.get("params") or {}
        if not isinstance(params, dict):
            e(at(i, "params"), "params must be a mapping")
            params = {}
        if ctype in PARAMS:
            for key in params:
                if key not in PARAMS[ctype]:
                    allowed = ", ".join(PARAMS[ctype]) or "none"
                    e(at(i, "params", key), f"unknown param '{key}' for a {ctype} check"
                                            f"{_hint(key, PARAMS[ctype])} (allowed: {allowed})")
        if ctype in COLUMN_TYPES:
            spec["columns"] = _columns(chk, ctype, e, lambda *p: at(i, *p))
            _type_params(ctype, params, spec, e, lambda *p: at(i, "params", *p))
        elif ctype in SQL_TYPES:
            sql = chk.get("sql")
            if ctype == "sql_assertion" and (not isinstance(sql, str) or not sql.strip()):
                e(at(i, "sql") if "sql" in chk else at(i), "a sql_assertion check needs 'sql: SELECT ...' "
                                                          "returning the rows that break the rule")
            elif sql is not None and not isinstance(sql, str):
                e(at(i, "sql"), "sql must be text")
            elif isinstance(sql, str):
                spec["sql"] = sql
            if ctype == "custom" and spec["sql"] is None:
                spec["params"] = params  # runs only with sql: refused at run time, exit 2
        else:  # profile_check
            spec["profile"] = next((k for k, ref in enumerate(inputs) if ref.startswith("profile.")), None)
            if spec["profile"] is None:
                e(at(i, "type"), "a profile_check reads a profile node: add '- ref: profile.<name>' to inputs")
            spec["checks"] = _subchecks(chk.get("checks"), e, lambda *p: at(i, "checks", *p))
        specs.append(spec)
    # labels: the name, else the type (numbered when a type repeats)
    counts: dict[str, int] = {}
    for s in specs:
        if not s["name"]:
            counts[s["type"]] = counts.get(s["type"], 0) + 1
    seen: dict[str, int] = {}
    for i, s in enumerate(specs):
        if s["name"]:
            s["label"] = str(s["name"])
        else:
            seen[s["type"]] = seen.get(s["type"], 0) + 1
            s["label"] = s["type"] if counts[s["type"]] == 1 else f"{s['type']}_{seen[s['type']]}"
    names = [s["name"] for s in specs if isinstance(s["name"], str) and s["name"]]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        e(at(next(i for i, s in enumerate(specs) if s["name"] == dup), "name"),
          f"two checks are named '{dup}': give each check its own name")
    return None if problems[0] else specs


def _columns(chk: dict, ctype: str, e: Callable, at: Callable) -> list[str]:
    col, cols = chk.get("column"), chk.get("columns")
    if col is not None and cols is not None:
        e(at("columns"), "give either 'column' or 'columns', not both")
        return []
    if col is None and cols is None:
        e(at(), f"a {ctype} check needs 'column: <name>' or 'columns: [<name>, ...]'")
        return []
    out = [col] if col is not None else cols
    if not isinstance(out, list) or not out or not all(isinstance(c, str) and c for c in out):
        e(at("columns" if cols is not None else "column"), "columns must be a non-empty list of column names")
        return []
    if len(set(out)) != len(out):
        e(at("columns"), "a column is listed twice")
    return list(out)


def _number(value: Any) -> float | int | None:
    """A number from YAML or from a rendered {{ template }} (text); None if it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and re.fullmatch(_NUM, value.strip()):
        text = value.strip()
        return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
    return None


def _fraction(params: dict, key: str, e: Callable, at: Callable) -> float:
    if params.get(key) is None:
        return 0.0
    value = _number(params[key])
    if value is None or not 0 <= value <= 1:
        e(at(key), f"{key} is a fraction of rows between 0 and 1 (0.05 allows 5%), as in Seeknal; "
                   f"got {params[key]!r}")
        return 0.0
    return float(value)


def _type_params(ctype: str, params: dict, spec: dict, e: Callable, at: Callable) -> None:
    p = spec["params"]
    if ctype == "null":
        p["max_fraction"] = _fraction(params, "max_null_percentage", e, at)
    elif ctype == "uniqueness":
        p["max_fraction"] = _fraction(params, "max_duplicate_percentage", e, at)
    elif ctype == "range":
        bounds = {}
        for key in ("min_val", "max_val"):
            value = params.get(key)
            if value is None:
                continue
            if isinstance(value, (bool, dict, list)):
                e(at(key), f"{key} must be a number (or a date/text to compare with), not {value!r}")
                continue
            num = _number(value)
            bounds[key] = num if num is not None else str(value)
        if not bounds and not any(params.get(k) is not None for k in ("min_val", "max_val")):
            e(at() if params else at()[:-1], "a range check needs params.min_val and/or params.max_val")
        lo, hi = bounds.get("min_val"), bounds.get("max_val")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
            e(at("min_val"), f"min_val ({lo}) is greater than max_val ({hi})")
        p["min"], p["max"] = lo, hi
    elif ctype == "freshness":
        if len(spec["columns"]) > 1:
            e(at()[:-1] + ("columns",), "a freshness check reads one column: use 'column: <name>'")
        if params.get("max_age") is None:
            e(at() if params else at()[:-1], "a freshness check needs params.max_age, e.g. '24h' or '7d'")
        else:
            seconds = parse_age(params["max_age"])
            if seconds is None:
                e(at("max_age"), f"max_age {params['max_age']!r} is not a duration: use a number and a unit "
                                 "(s, m, h, d, w), e.g. '30m', '12h', '7d'")
            p["max_age"], p["max_age_text"] = seconds, str(params["max_age"]).strip()
        ref = params.get("reference_time")
        if ref is not None:
            epoch = parse_time(ref)
            if epoch is None:
                e(at("reference_time"), f"reference_time {ref!r} is not a date or timestamp: "
                                        "use e.g. '2024-03-15' or '2024-03-15 12:00:00'")
            p["reference"], p["reference_text"] = epoch, str(ref)


def parse_age(value: Any) -> float | None:
    """Seconds in a duration such as 7d, 12h, 30m, 45s, 2w (a bare number is seconds)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    m = _AGE.match(str(value))
    if not m or m.group(2).lower() not in _AGE_UNITS:
        return None
    seconds = float(m.group(1)) * _AGE_UNITS[m.group(2).lower()]
    return seconds if seconds > 0 else None


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO date or timestamp (naive means UTC)."""
    text = str(value).strip()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        return None
    if dt.tzinfo is not None:
        return dt.timestamp()
    return calendar.timegm(dt.timetuple()) + dt.microsecond / 1e6


def parse_threshold(value: Any) -> tuple | None:
    """('>', 50.0, None) from '> 50'; ('between', 1.0, 5.0) from 'between 1 and 5'."""
    if not isinstance(value, str):
        return None
    m = _CMP.match(value)
    if m:
        op = {"==": "=", "<>": "!="}.get(m.group(1), m.group(1))
        return (op, float(m.group(2)), None)
    m = _BETWEEN.match(value)
    if m and float(m.group(1)) <= float(m.group(2)):
        return ("between", float(m.group(1)), float(m.group(2)))
    return None


def matches(threshold: tuple, value: float) -> bool:
    op, a, b = threshold
    return {">": value > a, ">=": value >= a, "<": value < a, "<=": value <= a, "=": value == a,
            "!=": value != a, "between": b is not None and a <= value <= b}[op]


def _subchecks(raw: Any, e: Callable, at: Callable) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        e(at() if raw is not None else at()[:-1], "a profile_check needs 'checks: [{metric: row_count, "
                                                  "fail: \"= 0\"}, ...]'")
        return []
    out = []
    for j, sub in enumerate(raw):
        if not isinstance(sub, dict):
            e(at(j), "a profile check must be a mapping such as {metric: row_count, fail: \"= 0\"}")
            continue
        for key in sub:
            if key not in SUBCHECK_KEYS:
                e(at(j, key), f"unknown key '{key}' in a profile check{_hint(key, SUBCHECK_KEYS)}: "
                              f"use {', '.join(SUBCHECK_KEYS)}")
        metric, column = sub.get("metric"), sub.get("column")
        if metric not in PROFILE_METRICS:
            what = "is missing" if metric is None else f"{metric!r} is not one seekrun profiles compute"
            e(at(j, "metric") if metric is not None else at(j),
              f"metric {what}{_hint(str(metric), PROFILE_METRICS)}: use one of {', '.join(PROFILE_METRICS)}")
        if column is not None and not isinstance(column, str):
            e(at(j, "column"), "column must be a column name")
        if metric in PROFILE_METRICS and metric != "row_count" and column in (None, TABLE_COLUMN):
            e(at(j, "metric"), f"{metric} is a per-column metric: add 'column: <name>'")
        spec = {"name": sub.get("name"), "metric": metric,
                "column": TABLE_COLUMN if metric == "row_count" else column}
        if sub.get("warn") is None and sub.get("fail") is None:
            e(at(j), "a profile check needs a 'fail' and/or 'warn' threshold, e.g. fail: \"= 0\"")
        for level in ("fail", "warn"):
            text = sub.get(level)
            if text is None:
                spec[level] = None
                continue
            parsed = parse_threshold(text)
            if parsed is None:
                e(at(j, level), f"bad {level} threshold {text!r}: write an operator (>, >=, <, <=, =, ==, !=) "
                                "and a number, e.g. \"> 50\", or \"between 1 and 5\" (quote it in YAML)")
            spec[level] = None if parsed is None else [*parsed, str(text).strip()]
        out.append(spec)
    return out


# ---- run time ---------------------------------------------------------------------------
def _specs(node: dict) -> tuple[list[dict], dict]:
    cfg = build_config(node)
    rule = cfg.get("rule")
    single = isinstance(rule, dict)
    raw = [rule] if single else list(rule) if isinstance(rule, list) else []

    def err(path, msg):
        raise NodeFailure(f"{node['id']}: {'.'.join(str(p) for p in path)}: {msg}")

    specs = parse_checks(raw, node["inputs"], err, lambda i, *rest: ("rule", *rest) if single
                         else ("rule", i, *rest))
    return specs or [], cfg.get("params") or {}


def check(node: dict, ctx: BuildContext) -> str | None:
    specs, _ = _specs(node)
    for s in specs:
        if s["type"] == "custom" and s["sql"] is None:
            raise UnsupportedNode(f"{node['id']}: check '{s['label']}' is a 'custom' rule without 'sql': "
                                  "seekrun runs custom rules only as SQL (add 'sql: SELECT ...' returning "
                                  "the bad rows)")
    sqls = [s["sql"] for s in specs if s["sql"] is not None]
    return ";\n".join(sqls) or None


def build(node: dict, ctx: BuildContext) -> BuildResult:
    specs, params = _specs(node)
    severity = params.get("severity", "error")
    violated = "fail" if severity == "error" else "warn"
    source = ctx.input_table(0)
    columns = _describe(ctx, source)
    rows: list[tuple] = []
    for s in specs:
        if s["type"] in COLUMN_TYPES:
            _need_columns(node, s, columns, node["inputs"][0])
        if s["type"] == "null":
            rows += _null(ctx, s, source, violated)
        elif s["type"] == "range":
            rows += _range(ctx, s, source, violated)
        elif s["type"] == "uniqueness":
            rows += _uniqueness(ctx, s, source, violated)
        elif s["type"] == "freshness":
            rows += _freshness(ctx, s, source, columns, violated)
        elif s["type"] in SQL_TYPES:
            if s["sql"] is None:
                raise UnsupportedNode(f"{node['id']}: check '{s['label']}' is a 'custom' rule without 'sql'")
            rows.append(_assertion(ctx, s, violated))
        else:
            rows += _profile_check(ctx, node, s, violated)
    count = _write(ctx, rows)
    fails = [r for r in rows if r[3] == "fail"]
    warns = [r for r in rows if r[3] == "warn"]
    prefix = f"{params['error_message']}: " if params.get("error_message") else ""
    where = f"(results in table {ctx.table.replace(chr(34), '')})"
    if fails:
        ctx.fail(f"{prefix}{_summary(fails, len(rows), 'failed')} {where}")
    if warns:
        verb = "warned" if severity == "error" else "failed (severity warn)"
        ctx.warn(f"{prefix}{_summary(warns, len(rows), verb)} {where}")
    return BuildResult(count)


def _summary(rows: list[tuple], total: int, verb: str, limit: int = 5) -> str:
    parts = [f"{r[0]}{f' ({r[2]})' if r[2] else ''}: {r[5]}" for r in rows[:limit]]
    more = f"; and {len(rows) - limit} more" if len(rows) > limit else ""
    noun = "check" if total == 1 else "checks"
    return f"{len(rows)} of {total} {noun} {verb}: " + "; ".join(parts) + more


def _write(ctx: BuildContext, rows: list[tuple]) -> int:
    """The results table, written with parameters (data values never become SQL text)."""
    values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows))
    ctx.execute(
        f"CREATE OR REPLACE TABLE {ctx.table} AS\n"
        "SELECT CAST(c AS VARCHAR) AS \"check\", CAST(t AS VARCHAR) AS \"type\", "
        "CAST(col AS VARCHAR) AS \"column\", CAST(s AS VARCHAR) AS status, "
        "CAST(v AS BIGINT) AS violations, CAST(m AS VARCHAR) AS message\n"
        f"FROM (VALUES {values}) AS r(c, t, col, s, v, m)",
        [x for row in rows for x in row])
    return len(rows)


def _describe(ctx: BuildContext, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in ctx.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}


def _need_columns(node: dict, spec: dict, columns: dict[str, str], input_id: str) -> None:
    lower = {c.lower() for c in columns}
    for col in spec["columns"]:
        if col.lower() not in lower:
            raise NodeFailure(f"check '{spec['label']}': column '{col}' is not in {input_id}"
                              f"{_hint(col, columns)} (columns: {', '.join(columns)})")


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
            msg = f"no NULLs in {total} rows"
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
        msg = f"every non-NULL key is unique ({total} rows)"
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


def _profile_check(ctx, node, s, violated) -> list[tuple]:
    profile_id = node["inputs"][s["profile"]]
    stats = {}
    for col, metric, value in ctx.execute(
            f"SELECT column_name, metric, value FROM {table_name(profile_id)} WHERE metric <> 'top_value'"
    ).fetchall():
        stats[(col, metric)] = value
    out = []
    for sub in s["checks"]:
        col, metric = sub["column"], sub["metric"]
        if (col, metric) not in stats:
            cols = sorted({c for c, m in stats if m == metric})
            why = (" (avg and stddev are computed for numeric columns only)" if metric in ("avg", "stddev")
                   and col in {c for c, _ in stats} else "")
            raise NodeFailure(f"check '{s['label']}': {profile_id} has no {metric} for column '{col}'{why}"
                              + (f"; it has {metric} for: {', '.join(cols)}" if cols else ""))
        raw = stats[(col, metric)]
        label = sub["name"] or metric
        shown_col = None if col == TABLE_COLUMN else col
        what = metric if col == TABLE_COLUMN else f"{metric} of {col}"
        if raw is None:
            level = "fail" if sub["fail"] else "warn"
            status = violated if level == "fail" else "warn"
            out.append((label, "profile_check", shown_col, status, 1,
                        f"{what} is NULL, which counts as meeting the {level} threshold '{sub[level][3]}'"))
            continue
        value = _number(raw)
        if value is None:
            raise NodeFailure(f"check '{s['label']}': {what} in {profile_id} is {raw!r}, not a number: "
                              "thresholds compare numbers")
        if sub["fail"] and matches(sub["fail"][:3], float(value)):
            out.append((label, "profile_check", shown_col, violated, 1,
                        f"{what} = {raw}, which meets the fail threshold '{sub['fail'][3]}'"))
        elif sub["warn"] and matches(sub["warn"][:3], float(value)):
            out.append((label, "profile_check", shown_col, "warn", 1,
                        f"{what} = {raw}, which meets the warn threshold '{sub['warn'][3]}'"))
        else:
            limits = "; ".join(f"{lvl} if {sub[lvl][3]}" for lvl in ("fail", "warn") if sub[lvl])
            out.append((label, "profile_check", shown_col, "pass", 0, f"{what} = {raw} ({limits})"))
    return out
