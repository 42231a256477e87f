"""Rule checks at parse time: the check types, their params and thresholds, validated with
line numbers and hints (used by seekrun/kinds/rule.py)."""
from __future__ import annotations

from seekrun.errors import suggest

import calendar
import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Callable





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
# Seeknal's metric names (top_values is text, so no threshold applies to it)
PROFILE_METRICS = ("row_count", "null_count", "null_percent", "distinct_count", "min", "max", "avg", "sum", "stddev",
                   "p25", "p50", "p75", "freshness_hours")
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
            err(("params", key), f"unknown rule param '{key}'{suggest(key, NODE_PARAMS)}: "
                                 f"a rule's params are {', '.join(NODE_PARAMS)} (check params go under "
                                 "the check: rule: {type: ..., params: {...}})")
    sev = params.get("severity", "error")
    if sev not in SEVERITIES:
        err(("params", "severity"), f"severity must be 'error' or 'warn', not {sev!r}")
    msg = params.get("error_message")
    if msg is not None and not isinstance(msg, str):
        err(("params", "error_message"), "error_message must be text")


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
            e(at(i, "type"), f"unknown check type {ctype!r}{suggest(ctype, TYPES)}: use one of {', '.join(TYPES)}")
            continue
        spec: dict[str, Any] = {"type": ctype, "name": chk.get("name"), "columns": [], "params": {},
                                "sql": None, "checks": [], "profile": None,
                                "raw_params": dict(chk["params"]) if isinstance(chk.get("params"), dict) else {}}
        for key in chk:
            if key not in CHECK_KEYS[ctype]:
                e(at(i, key), f"unknown key '{key}' in a {ctype} check{suggest(key, CHECK_KEYS[ctype])}: "
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
                                            f"{suggest(key, PARAMS[ctype])} (allowed: {allowed})")
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
            num = None if isinstance(value, (bool, dict, list)) else _number(value)
            if num is not None and not math.isfinite(num):
                e(at(key), f"{key} must be a finite number, not {value!r}")
                continue
            if num is None and (isinstance(value, (bool, dict, list)) or parse_time(value) is None):
                e(at(key), f"{key} must be a number or a date/timestamp (e.g. 0, 9.5, '2024-01-01'), not "
                           f"{value!r} (to check text, use a sql_assertion check)")
                continue
            bounds[key] = num if num is not None else str(value)
        if not bounds and not any(params.get(k) is not None for k in ("min_val", "max_val")):
            e(at() if params else at()[:-1], "a range check needs params.min_val and/or params.max_val")
        lo, hi = bounds.get("min_val"), bounds.get("max_val")
        if lo is not None and hi is not None and isinstance(lo, str) != isinstance(hi, str):
            e(at("max_val"), f"min_val ({lo!r}) and max_val ({hi!r}) must be of one type: both numbers, or "
                             "both dates/timestamps (one column cannot be compared with both)")
        elif isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
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
                e(at(j, key), f"unknown key '{key}' in a profile check{suggest(key, SUBCHECK_KEYS)}: "
                              f"use {', '.join(SUBCHECK_KEYS)}")
        metric, column = sub.get("metric"), sub.get("column")
        if metric not in PROFILE_METRICS:
            what = ("is missing" if metric is None else f"{metric!r} is a JSON list, not a number (thresholds "
                    "compare numbers)" if metric in ("top_values", "top_value") else
                    f"{metric!r} is not one seekrun profiles compute")
            e(at(j, "metric") if metric is not None else at(j),
              f"metric {what}{suggest(str(metric), PROFILE_METRICS)}: use one of {', '.join(PROFILE_METRICS)}")
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
