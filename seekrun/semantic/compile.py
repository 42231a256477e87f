"""Metric SQL: one SELECT giving a metric per time grain (and per --by dimensions).

Every metric is a formula over aggregated measures.  Measures aggregated the same way (same
semantic model, same filter, plain or cumulative, same offset) are computed in one grouped
subquery; the subqueries are joined on the grain (and dimension) columns, so a ratio or a
derived metric over measures of different semantic models never fans rows out.

- simple: ``AGG(expr)`` (a measure's ``filters`` inside it, as ``CASE WHEN``; the metric's
  ``filter`` in ``WHERE``, as Seeknal does);
- ratio: ``numerator / NULLIF(denominator, 0)``;
- cumulative: the measure over every row up to the end of each period (from the start of
  its ``grain_to_date`` period when given): correct for any aggregation, not only sums;
- derived: ``expr`` with each input's alias replaced by that input's formula; an input's
  ``offset`` ('1 month') takes its value from that long before.

The grain column is ``<time dimension>__<grain>``, a DATE (every grain is a day or longer);
rows exist for the periods that have data (no date spine).  Pure string work: no duckdb.
"""
from __future__ import annotations

import re

from seekrun.kinds.base import quote_ident as q, table_name
from seekrun.semantic.spec import GRAINS


class CompileError(Exception):
    def __init__(self, message: str, metric: str | None = None, key: str | None = None):
        super().__init__(message)
        self.metric, self.key = metric, key  # the metric and key the problem is in, when known


def catalog(models: dict[str, dict], metrics: dict[str, dict]) -> dict:
    """models: semantic model name -> spec (spec.semantic_model); metrics: name -> spec."""
    homes: dict[str, list[str]] = {}
    for sm_name in sorted(models):
        for measure in models[sm_name]["measures"]:
            homes.setdefault(measure, []).append(sm_name)
    return {"models": models, "metrics": metrics, "homes": homes}


def resolve_metric(cat: dict, name: str) -> dict | None:
    """A declared metric, or a measure's name (Seeknal makes each measure a simple metric)."""
    if name in cat["metrics"]:
        return cat["metrics"][name]
    if name in cat["homes"]:
        return {"name": name, "type": "simple", "measure": name, "filter": None}
    return None


class _Plan:
    def __init__(self, cat: dict):
        self.cat = cat
        self.groups: dict[tuple, list[str]] = {}  # (model, filter, cumulative, offset) -> measures
        self.cumulative: dict[str, str] = {}  # grain_to_date -> the (first) cumulative metric with it

    def leaf(self, measure: str, filt: str | None, cum, offset: str | None) -> str:
        model = self.cat["homes"][measure][0]
        key = (model, filt, cum, offset)
        cols = self.groups.setdefault(key, [])
        if measure not in cols:
            cols.append(measure)
        return f"\x00{list(self.groups).index(key)}:{cols.index(measure)}\x00"

    def formula(self, name: str, filt: str | None = None, offset: str | None = None,
                stack: tuple = ()) -> str:
        if name in stack:
            raise CompileError(f"metric cycle: {' -> '.join([*stack, name])}")
        m = resolve_metric(self.cat, name)
        if m is None:
            raise CompileError(f"unknown metric '{name}'")
        f = _and(filt, m.get("filter"))
        if m["type"] == "simple":
            return self.leaf(m["measure"], f, None, offset)
        if m["type"] == "cumulative":
            self.cumulative.setdefault(m.get("grain_to_date") or "all", name)
            return self.leaf(m["measure"], f, m.get("grain_to_date") or "all", offset)
        if m["type"] == "ratio":
            return f"{self.leaf(m['numerator'], f, None, offset)} / NULLIF({self.leaf(m['denominator'], f, None, offset)}, 0)"
        parts = {}
        for inp in m["inputs"]:
            if offset and inp.get("offset"):
                raise CompileError("an input with an offset cannot itself have inputs with an offset")
            parts[inp["alias"]] = "(" + self.formula(inp["metric"], f, inp.get("offset") or offset,
                                                     (*stack, name)) + ")"
        return substitute(m["expr"], parts)


def _and(a: str | None, b: str | None) -> str | None:
    return f"({a}) AND ({b})" if a and b else (a or b)


_TOKEN = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|[A-Za-z_][A-Za-z0-9_]*|.", re.S)


def substitute(expr: str, parts: dict[str, str]) -> str:
    """expr with each alias (a whole identifier, outside quotes) replaced by its SQL."""
    return "".join(parts.get(t, t) for t in _TOKEN.findall(expr))


def identifiers(expr: str) -> set[str]:
    return {t for t in _TOKEN.findall(expr) if re.match(r"[A-Za-z_]", t)}


def compile_metric(cat: dict, name: str, grain: str | None = None, by: tuple[str, ...] = ()) -> dict:
    """{'sql', 'nodes' (the tables read), 'columns', 'time'}; CompileError for what cannot be built."""
    plan = _Plan(cat)
    formula = plan.formula(name)
    models = cat["models"]
    keys = list(plan.groups)
    home = models[keys[0][0]]
    time = _time(home)
    grain = grain or (time["grain"] if time else None)
    if grain is not None and time is None:
        raise CompileError("it has no time dimension (its semantic model has no default_time_dimension): "
                           "drop --grain")
    for key in keys:
        if (_time(models[key[0]]) is None) != (time is None):
            raise CompileError("it combines semantic models with and without a time dimension: give each a "
                               "default_time_dimension")
        if key[2] not in (None, "all") and GRAINS.index(key[2]) < GRAINS.index(grain):
            raise CompileError(f"grain_to_date '{key[2]}' is finer than the grain '{grain}': use a grain_to_date "
                               f"of {grain} or longer, or a finer grain", plan.cumulative[key[2]], "grain_to_date")
    out_keys = ([f"{time['name']}__{grain}"] if time else []) + list(by)
    for d in by:
        for key in keys:
            if d not in _dims(models[key[0]]):
                raise CompileError(f"dimension '{d}' is not in semantic model '{key[0]}'")
    ctes = []
    for i, key in enumerate(keys):
        ctes.append(f"_g{i} AS (\n{_group(models[key[0]], key, plan.groups[key], grain, by, out_keys)}\n)")
    base = [i for i, k in enumerate(keys) if k[3] is None] or list(range(len(keys)))
    shifted = [i for i in range(len(keys)) if i not in base]
    using = f" USING ({', '.join(q(k) for k in out_keys)})" if out_keys else ""
    joins = [f"_g{base[0]}"]
    for i in base[1:]:
        joins.append(f"{'FULL JOIN' if out_keys else 'CROSS JOIN'} _g{i}{using}")
    for i in shifted:
        joins.append(f"{'LEFT JOIN' if out_keys else 'CROSS JOIN'} _g{i}{using}")
    value = re.sub(r"\x00(\d+):(\d+)\x00", lambda m: f"_g{m.group(1)}.{q('_m' + m.group(2))}", formula)
    select = [q(k) for k in out_keys] + [f"{value} AS {q(name)}"]
    sql = ("WITH " + ",\n".join(ctes) + "\nSELECT " + ", ".join(select) + "\nFROM " + "\n".join(joins)
           + (f"\nORDER BY {', '.join(q(k) for k in out_keys)}" if out_keys else ""))
    nodes = sorted({models[k[0]]["model"] for k in keys})
    return {"sql": sql, "nodes": nodes, "columns": [*out_keys, name], "time": out_keys[0] if time else None}


def _time(sm: dict) -> dict | None:
    from seekrun.semantic.spec import time_of

    return time_of(sm)


def _dims(sm: dict) -> dict[str, str]:
    """What --by may name: dimensions (by expr) and entities."""
    out = {e["name"]: e["expr"] for e in sm["entities"]}
    out.update({n: d["expr"] for n, d in sm["dimensions"].items()})
    return out


def _agg(m: dict) -> str:
    expr = m["expr"]
    if m["filters"]:
        expr = f"CASE WHEN {' AND '.join('(' + f + ')' for f in m['filters'])} THEN {expr} END"
    return f"COUNT(DISTINCT {expr})" if m["agg"] == "COUNT_DISTINCT" else f"{m['agg']}({expr})"


def _trunc(grain: str, expr: str, offset: str | None = None) -> str:
    t = f"date_trunc('{grain}', {expr})"
    if offset:
        t = f"date_trunc('{grain}', {t} + INTERVAL '{offset}')"
    return f"CAST({t} AS DATE)"


def _group(sm: dict, key: tuple, measures: list[str], grain, by, out_keys) -> str:
    _, filt, cum, offset = key
    table = table_name(sm["model"])
    time, dims = _time(sm), _dims(sm)
    aggs = [f"{_agg(sm['measures'][m])} AS {q('_m' + str(j))}" for j, m in enumerate(measures)]
    where = f"\n  WHERE {filt}" if filt else ""
    if cum is None or time is None:
        sel = ([f"{_trunc(grain, time['expr'], offset)} AS {q(out_keys[0])}"] if time else []) \
            + [f"{dims[d]} AS {q(d)}" for d in by] + aggs
        return f"  SELECT {', '.join(sel)}\n  FROM {table}{where}" + ("\n  GROUP BY ALL" if out_keys else "")
    # cumulative: each period (and dimension values) gets every row up to its end
    pk = [f"{_trunc(grain, time['expr'])} AS _sr_k"] + [f"{dims[d]} AS _sr_d{i}" for i, d in enumerate(by)]
    rk = [f"{_trunc(grain, time['expr'])} AS _sr_t"] + [f"{dims[d]} AS _sr_e{i}" for i, d in enumerate(by)]
    on = ["_sr_r._sr_t <= _sr_p._sr_k"] + [f"_sr_r._sr_e{i} IS NOT DISTINCT FROM _sr_p._sr_d{i}"
                                          for i in range(len(by))]
    if cum != "all":
        on.append(f"date_trunc('{cum}', _sr_r._sr_t) = date_trunc('{cum}', _sr_p._sr_k)")
    period = "_sr_p._sr_k" if not offset else f"CAST(date_trunc('{grain}', _sr_p._sr_k + INTERVAL '{offset}') AS DATE)"
    sel = [f"{period} AS {q(out_keys[0])}"] + [f"_sr_p._sr_d{i} AS {q(d)}" for i, d in enumerate(by)] + aggs
    return (f"  SELECT {', '.join(sel)}\n"
            f"  FROM (SELECT DISTINCT {', '.join(pk)} FROM {table}{where}) AS _sr_p\n"
            f"  JOIN (SELECT *, {', '.join(rk)} FROM {table}{where}) AS _sr_r\n"
            f"    ON {' AND '.join(on)}\n  GROUP BY ALL")
