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


from seekrun.kinds.base import (BuildContext, BuildResult, NodeFailure, UnsupportedNode, build_config)

from seekrun.kinds.rules.spec import (COLUMN_TYPES, SQL_TYPES, _without_descriptions, _line, seeknal_names, _node_params, parse_checks)
from seekrun.kinds.rules.explain import Verdict, check_range_types, explain_error
from seekrun.kinds.rules.checks import (_summary, _write, _describe, _need_columns, _null, _range, _uniqueness, _freshness, _assertion, _profile_check)

ENGINE_VERSION = 1


# ---- parse time -------------------------------------------------------------------------
CLOCK_PERIODS = (86400, 3600, 60, 1)


def clock_period(max_age: float) -> int:
    """Seconds between re-checks of a freshness verdict measured against now: the coarsest of a
    day, an hour, a minute and a second that is at most a tenth of max_age, so a verdict is never
    more than 10% of max_age out of date (max_age 30d: daily; 24h or 7d: hourly; 1h: each minute)."""
    for period in CLOCK_PERIODS:
        if period <= max_age / 10:
            return period
    return 1


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
    custom = next((c for c in checks if c["type"] == "custom" and c["sql"] is None), None)
    if custom is not None and not rec.get("python"):  # Seeknal calls a Python validator there
        pc.not_executable = (f"check '{custom['label']}' is a 'custom' rule without 'sql': seekrun runs custom "
                             "rules only as SQL (add 'sql: SELECT ...' returning the bad rows)")
    # hashed: the checks without their descriptions, assertion SQL in canonical form (so
    # whitespace and comments do not rerun); run: the SQL with refs resolved
    canonical = [_without_descriptions(c) for c in raw]
    executable = [dict(c) for c in raw]
    pc.fields["rule"] = canonical[0] if single else canonical
    periods = [clock_period(c["params"]["max_age"]) for c in checks
               if c["type"] == "freshness" and c["params"].get("reference") is None and c["params"].get("max_age")]
    from seekrun.kinds.rules.profile_check import freshness_period

    periods += [p for c in checks if c["type"] == "profile_check" for p in [freshness_period(c["checks"])] if p]
    if periods:  # measured against now: re-checked when its clock ticks (see clock_period)
        rec["volatile"] = min(periods)
    refs: list[str] = []
    maybe: list[str] = []
    first_sql: tuple | None = None
    flagged: tuple | None = None  # the first assertion with a ref the graph check may report
    for i, chk in enumerate(checks):
        if chk["sql"] is None:
            continue
        named = seeknal_names(chk["sql"], inputs)
        result = analyse(named, inputs, KINDS)
        if not result.problems and not result.bad_inputs:  # DuckDB's own parse (parser/sql_check.py)
            from seekrun.parser.records import sql_check_entry

            rec.setdefault("sql_checks", []).append(
                sql_check_entry(result, named, pc.text_start(at(i, "sql")), inputs, f"check {chk['label']}"))
        for problem in result.problems:
            pc.error(at(i, "sql"), problem)
        for bad in dict.fromkeys(result.bad_inputs):
            names = "input_0" if len(inputs) == 1 else f"input_0..input_{len(inputs) - 1}"
            pc.error(at(i, "sql"), f"{bad} is out of range: the rule declares {len(inputs)} "
                                   f"input{'s' if len(inputs) != 1 else ''}" + (f" ({names})" if inputs else ""))
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


def check(node: dict, ctx: BuildContext) -> list[str] | None:
    specs, _ = _specs(node)
    for s in specs:
        if s["type"] == "custom" and s["sql"] is None:
            raise UnsupportedNode(f"{node['id']}: check '{s['label']}' is a 'custom' rule without 'sql': "
                                  "seekrun runs custom rules only as SQL (add 'sql: SELECT ...' returning "
                                  "the bad rows)")
    return [s["sql"] for s in specs if s["sql"] is not None] or None


def build(node: dict, ctx: BuildContext) -> BuildResult:
    specs, params = _specs(node)
    severity = params.get("severity", "error")
    violated = "fail" if severity == "error" else "warn"
    source = ctx.input_table(0)
    columns = _describe(ctx, source)
    rows: list[tuple] = []
    for s in specs:
        try:
            rows += _run_check(ctx, node, s, source, columns, violated)
        except Exception as exc:
            raise explain_error(node, s, columns, exc) from None
    count = _write(ctx, rows)
    fails = [r for r in rows if r[3] == "fail"]
    warns = [r for r in rows if r[3] == "warn"]
    prefix = f"{params['error_message']}: " if params.get("error_message") else ""
    where = f"(results in table {ctx.table.replace(chr(34), '')})"
    if fails:
        ctx.commit_on_failure = True  # the verdicts are the node's output: keep them, fail the node
        raise Verdict(ctx.redact(f"{prefix}{_summary(fails, len(rows), 'failed')} {where}"))
    if warns:
        verb = "warned" if severity == "error" else "failed (severity warn)"
        ctx.warn(f"{prefix}{_summary(warns, len(rows), verb)} {where}")
    return BuildResult(count)


def _run_check(ctx, node: dict, s: dict, source: str, columns: dict, violated: str) -> list[tuple]:
    if s["type"] in COLUMN_TYPES:
        _need_columns(node, s, columns, node["inputs"][0])
    if s["type"] == "null":
        return _null(ctx, s, source, violated)
    if s["type"] == "range":
        check_range_types(s, columns)
        return _range(ctx, s, source, violated)
    if s["type"] == "uniqueness":
        return _uniqueness(ctx, s, source, violated)
    if s["type"] == "freshness":
        return _freshness(ctx, s, source, columns, violated)
    if s["type"] in SQL_TYPES:
        if s["sql"] is None:
            raise UnsupportedNode(f"{node['id']}: check '{s['label']}' is a 'custom' rule without 'sql'")
        return [_assertion(ctx, s, violated)]
    return _profile_check(ctx, node, s, violated)
