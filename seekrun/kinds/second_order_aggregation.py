"""second_order_aggregation: aggregates of an already aggregated table, as Seeknal defines them.

    kind: second_order_aggregation
    name: region_metrics
    id_col: region                  # one output row per value
    feature_date_col: day
    application_date_col: app_date  # optional: the latest feature date in the input
    source: feature_group.customer_daily   # the node aggregated (an input; the first when not given)
    features:
      customers:   {basic: [count], source_feature: customer_id}
      spend_sum:   {basic: [sum, mean]}                         # source_feature defaults to the key
      weekly:      {window: [0, 6], basic: [sum], source_feature: spend_sum}
      recent:      {ratio: {numerator: [0, 6], denominator: [7, 30], aggs: [sum]}, source_feature: spend_sum}
      big_days:    {since: {condition: "spend_sum >= 20", aggs: [count]}, source_feature: spend_sum}

Each input row's age is ``days = date_diff('day', feature date, application date)`` (0 on
the application day; the dates cast to DATE).  Per feature, with F its ``source_feature``
and AGG each aggregate as written, upper-cased (Seeknal's names):

- ``basic``: AGG over the rows with days >= 0 -> ``F_AGG``;
- ``window: [lo, hi]`` with ``basic``: over the rows with lo <= days <= hi -> ``F_AGG_lo_hi``
  (the feature's plain ``F_AGG`` columns are output as well, as Seeknal does);
- ``ratio``: numerator range over denominator range, as DOUBLE (NULL when the denominator
  is 0 or NULL); aggs default to sum -> ``F_AGGlo1_hi1_AGGlo2_hi2``;
- ``since``: over the rows with days >= 0 that meet the SQL condition; aggs default to count
  -> ``SINCE_AGG_F_GEO_D``.

Aggregates: count, sum, mean/avg, min, max, std/stddev.  Two features asking for the same
column (same name, same SQL) give it once; the same name for different SQL is an error.

As a Python decorator (``@second_order_aggregation(name=..., id_col=..., features={...})``)
the function's result is the table aggregated (it is built into a staging table first).

The SQL is generated at parse time (``generated_sql`` in the manifest, part of the hash).
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from seekrun.errors import suggest

from seekrun.kinds.base import BuildContext, BuildResult, PrepareContext, build_config, quote_ident, table_name

HANDLES_PYTHON = True
ENGINE_VERSION = 1
FUNCS = {"count": "count", "sum": "sum", "mean": "avg", "avg": "avg", "min": "min", "max": "max",
         "std": "stddev", "stddev": "stddev"}
FEATURE_KEYS = ("basic", "window", "ratio", "since", "source_feature", "description")
DAYS = quote_ident("__seekrun_days_between")
DATE_TYPES = ("DATE", "TIMESTAMP")


def rename_instance(rec: dict, old: str, new: str) -> None:
    """A fan-out instance (seekrun/parser/instances.py): a Python node stages into its own table."""
    if rec.get("python") and rec.get("generated_sql"):
        rec["generated_sql"] = rec["generated_sql"].replace(staging_table(old), staging_table(new))


def staging_table(name: str) -> str:
    return f"{quote_ident('second_order_aggregation')}.{quote_ident('__seekrun_staging_' + name)}"


def _aggs(value: Any, default: list | None = None) -> list:
    if value is None:
        return list(default or [])
    return value if isinstance(value, list) else [value]


def _range(value: Any) -> tuple[int, int] | None:
    if (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in value) and value[0] <= value[1]):
        return value[0], value[1]
    return None


def columns(cfg: dict) -> list[tuple[str, str, tuple]]:
    """(output name, SQL expression, key path) per feature column, in Seeknal's order."""
    q = quote_ident
    out = []
    for key, feat in (cfg.get("features") or {}).items():
        f = feat.get("source_feature") or key
        col = q(f)
        for agg in _aggs(feat.get("basic")):
            out.append((f"{f}_{agg.strip().upper()}",
                        f"{FUNCS[agg.strip().lower()]}({col}) FILTER (WHERE {DAYS} >= 0)", ("features", key, "basic")))
        if feat.get("window") is not None:
            lo, hi = _range(feat["window"])
            for agg in _aggs(feat.get("basic")):
                out.append((f"{f}_{agg.strip().upper()}_{lo}_{hi}",
                            f"{FUNCS[agg.strip().lower()]}({col}) FILTER (WHERE {DAYS} BETWEEN {lo} AND {hi})",
                            ("features", key, "window")))
        if feat.get("ratio") is not None:
            ratio = feat["ratio"]
            (l1, u1), (l2, u2) = _range(ratio.get("numerator")), _range(ratio.get("denominator"))
            for agg in _aggs(ratio.get("aggs"), ["sum"]):
                a, fn = agg.strip().upper(), FUNCS[agg.strip().lower()]
                out.append((f"{f}_{a}{l1}_{u1}_{a}{l2}_{u2}",
                            f"CAST({fn}({col}) FILTER (WHERE {DAYS} BETWEEN {l1} AND {u1}) AS DOUBLE)\n"
                            f"        / NULLIF(CAST({fn}({col}) FILTER (WHERE {DAYS} BETWEEN {l2} AND {u2}) AS DOUBLE), 0)",
                            ("features", key, "ratio")))
        if feat.get("since") is not None:
            since = feat["since"]
            for agg in _aggs(since.get("aggs"), ["count"]):
                out.append((f"SINCE_{agg.strip().upper()}_{f}_GEO_D",
                            f"{FUNCS[agg.strip().lower()]}({col}) FILTER (WHERE {DAYS} >= 0 AND ({since['condition'].strip()}))",
                            ("features", key, "since")))
    return out


def generate_sql(node_id: str, cfg: dict, input_table: str) -> str:
    q = quote_ident
    fd, app = q(cfg["feature_date_col"]), cfg.get("application_date_col")
    app_sql = q(app) if app else f"max({fd}) OVER ()"
    idc = q(cfg["id_col"])
    select, seen = [idc], set()
    for name, expr, _ in columns(cfg):
        if name.lower() not in seen:
            seen.add(name.lower())
            select.append(f"{expr} AS {q(name)}")
    lines = [f"-- {node_id}: SQL generated by seekrun from the node's config",
             "WITH seekrun_rows AS (",
             f"    SELECT *, date_diff('day', CAST({fd} AS DATE), CAST({app_sql} AS DATE)) AS {DAYS}",
             f"    FROM {input_table}",
             ")",
             "SELECT", "    " + ",\n    ".join(select), "FROM seekrun_rows",
             f"GROUP BY {idc}", f"ORDER BY {idc}"]
    return "\n".join(lines) + "\n"


# ---- parse time ------------------------------------------------------------------------------
def prepare(rec: dict, built: dict, pc: PrepareContext) -> None:
    ok = True

    def error(path: tuple, message: str) -> None:
        nonlocal ok
        ok = False
        pc.error(path, message)

    if rec.get("python"):
        from seekrun.kinds import python_spec

        python_spec.prepare(rec, built, pc)
    for key in ("id_col", "feature_date_col", "application_date_col"):
        value = built.get(key)
        if (value is not None or key != "application_date_col") and (not isinstance(value, str) or not value.strip()):
            error((key,), f"{key} must be a column name" + ("" if value is not None else f": add '{key}: ...'"))
    source = built.get("source")
    if source is not None and not built.get("inputs") and not rec.get("python"):  # source is the input
        rec["input_lines"] = [pc.line(("source",))] * len(rec["inputs"])
        rec["inputs_line"] = pc.line(("source",))
    if source is not None and (not isinstance(source, str) or source not in rec["inputs"]):
        error(("source",), f"source {source!r} is not among the inputs ({', '.join(rec['inputs']) or 'none'}): "
                           "add it to inputs, or drop inputs (source is then the only input)")
    if not rec.get("python") and not rec["inputs"]:
        error(("source",), "second_order_aggregation needs a table to aggregate: add 'source: kind.name'")
    _check_features(built.get("features"), error)
    if not ok:
        return
    made: dict[str, tuple[str, tuple]] = {}
    id_col = built["id_col"]
    for name, expr, path in columns(built):
        low = name.lower()
        if low == id_col.lower():
            error(path, f"output column '{name}' is also id_col: rename the source feature upstream")
        elif low in made and made[low][0] != expr:
            error(path, f"output column '{name}' is produced twice, differently (also by "
                        f"{'.'.join(map(str, made[low][1]))}): keep one")
        made.setdefault(low, (expr, path))
    if not ok:
        return
    from seekrun.kinds.aggregation_features import check_conditions

    check_conditions(rec, [(("features", k, "since", "condition"), f["since"]["condition"].strip(),
                            f"feature '{k}'.since.condition")
                           for k, f in built["features"].items() if f.get("since") is not None], pc)
    source_table = staging_table(rec["name"]) if rec.get("python") else table_name(source or rec["inputs"][0])
    sql = generate_sql(rec["id"], built, source_table)
    rec["generated_sql"] = sql
    pc.fields["generated_sql"] = sql
    if isinstance(built.get("features"), dict):  # a feature's description is documentation only
        pc.fields["features"] = {k: {kk: vv for kk, vv in v.items() if kk != "description"}
                                 if isinstance(v, dict) else v for k, v in built["features"].items()}


def _check_features(feats: Any, error) -> None:
    if not isinstance(feats, dict) or not feats:
        error(("features",), "features must be a mapping of feature names to their aggregations, e.g. "
                             "'spend_sum: {basic: [sum, mean]}'")
        return
    names = sorted(FUNCS)
    for key, feat in feats.items():
        at = ("features", key)

        def bad_aggs(value: Any, path: tuple, where: str) -> None:
            for agg in _aggs(value):
                if not isinstance(agg, str) or agg.strip().lower() not in FUNCS:
                    error(path, f"unknown aggregation '{agg}' in {where}{suggest(str(agg).lower(), names)}: "
                                f"use one of {', '.join(names)}")

        if not isinstance(feat, dict):
            error(at, f"feature '{key}' must be a mapping, e.g. '{key}: {{basic: [sum]}}'")
            continue
        for k in feat:
            if k not in FEATURE_KEYS:
                error((*at, k), f"unknown key '{k}' in feature '{key}': use {', '.join(FEATURE_KEYS)}")
        sf = feat.get("source_feature")
        if sf is not None and (not isinstance(sf, str) or not sf.strip()):
            error((*at, "source_feature"), f"feature '{key}': source_feature must be a column of the source")
        if not any(feat.get(k) is not None for k in ("basic", "ratio", "since")):
            error(at, f"feature '{key}' has no aggregations: add 'basic: [sum, ...]', 'ratio: ...' or 'since: ...'")
        bad_aggs(feat.get("basic"), (*at, "basic"), f"feature '{key}'.basic")
        if feat.get("window") is not None:
            if _range(feat["window"]) is None:
                error((*at, "window"), f"feature '{key}': window must be [lower, upper], whole numbers of days "
                                       "before the application date (0 = that day), lower <= upper, e.g. [0, 6]")
            if not _aggs(feat.get("basic")):
                error((*at, "window"), f"feature '{key}': window needs the aggregations to apply: add 'basic: [sum]'")
        ratio = feat.get("ratio")
        if ratio is not None:
            if not isinstance(ratio, dict):
                error((*at, "ratio"), f"feature '{key}': ratio must be a mapping, e.g. "
                                      "{numerator: [0, 6], denominator: [7, 30], aggs: [sum]}")
            else:
                for k in ratio:
                    if k not in ("numerator", "denominator", "aggs"):
                        error((*at, "ratio", k), f"unknown key '{k}' in feature '{key}'.ratio: "
                                                 "use numerator, denominator, aggs")
                for side in ("numerator", "denominator"):
                    if _range(ratio.get(side)) is None:
                        error((*at, "ratio", side), f"feature '{key}': ratio.{side} must be [lower, upper], whole "
                                                    "numbers of days before the application date, e.g. [0, 6]")
                bad_aggs(ratio.get("aggs"), (*at, "ratio", "aggs"), f"feature '{key}'.ratio.aggs")
        since = feat.get("since")
        if since is not None:
            cond = since.get("condition") if isinstance(since, dict) else None
            if not isinstance(cond, str) or not cond.strip() or ";" in cond:
                error((*at, "since"), f"feature '{key}': since must be {{condition: \"<one SQL condition>\", "
                                      "aggs: [count]}")
            else:
                bad_aggs(since.get("aggs"), (*at, "since", "aggs"), f"feature '{key}'.since.aggs")


# ---- run time --------------------------------------------------------------------------------
def check(node: dict, ctx: BuildContext) -> str | None:
    if node.get("python"):
        from seekrun.engines import python_node

        python_node.check(node, ctx)
    return node.get("generated_sql")


def build(node: dict, ctx: BuildContext) -> BuildResult:
    cfg = build_config(node)
    if not node.get("python"):
        src = cfg.get("source") if cfg.get("source") in node["inputs"] else node["inputs"][0]
        return BuildResult(_aggregate(node, ctx, cfg, table_name(src), src))
    from seekrun.engines import python_node
    from seekrun.kinds.feature_group import _StagingContext

    staging = staging_table(node["name"])
    sctx = _StagingContext(**{f.name: getattr(ctx, f.name) for f in fields(BuildContext)}, staging=staging)
    try:
        python_node.build(node, sctx)
        return BuildResult(_aggregate(node, ctx, cfg, staging, f"{node['python'].rpartition(':')[2]}()'s result"))
    finally:
        try:
            ctx.cur.execute(f"DROP TABLE IF EXISTS {staging}")
        except Exception:  # e.g. interrupted: the build's own error is the one to report
            pass


def _aggregate(node: dict, ctx: BuildContext, cfg: dict, source: str, what: str) -> int | None:
    found = {r[0].lower(): (r[0], str(r[1])) for r in ctx.execute(f"DESCRIBE {source}").fetchall()}
    need = [(cfg["id_col"], "id_col"), (cfg["feature_date_col"], "feature_date_col")]
    if cfg.get("application_date_col"):
        need.append((cfg["application_date_col"], "application_date_col"))
    need += [(f.get("source_feature") or k, f"feature '{k}'") for k, f in cfg["features"].items()]
    missing = [f"'{col}' ({why})" for col, why in need if col.lower() not in found]
    if missing:
        ctx.fail(f"{node['id']}: {', '.join(dict.fromkeys(missing))} not found in {what} "
                 f"(columns: {', '.join(n for n, _ in found.values())})")
    for col, why in need[1:3]:
        if why.endswith("date_col"):
            name, dtype = found[col.lower()]
            if not dtype.upper().startswith(DATE_TYPES):
                ctx.fail(f"{node['id']}: {why} '{name}' is {dtype}, not a DATE or TIMESTAMP: "
                         f"cast it upstream (e.g. CAST({name} AS DATE))")
    return ctx.materialize(node["generated_sql"])
