"""Seeknal's semantic layer, read into plain (JSON-able) specs: no pydantic, no duckdb.

A ``semantic_model`` names one node (``model: "ref('transform.orders')"``) and lists its
entities, dimensions and measures; a ``metric`` is simple, ratio, cumulative or derived
(Seeknal 2.13's file shapes: ``seeknal/semantic_models/*.yml``, ``seeknal/metrics/*.yml``,
and metrics inline in a semantic model's ``metrics:``).  Problems go to ``err(path, message)``,
the path being the key path in the YAML document, so messages point at their line.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from seekrun.errors import suggest

GRAINS = ("day", "week", "month", "quarter", "year")
AGGS = {"sum": "SUM", "count": "COUNT", "count_distinct": "COUNT_DISTINCT", "average": "AVG", "avg": "AVG",
        "min": "MIN", "max": "MAX"}
DIM_TYPES = ("time", "categorical", "string", "number", "boolean")
ENTITY_TYPES = ("primary", "foreign", "unique")
METRIC_TYPES = ("simple", "ratio", "cumulative", "derived")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_REF = re.compile(r"""^\s*ref\(\s*(['"])([^'"]+)\1\s*\)\s*$""")
_OFFSET = re.compile(r"^\s*(\d+)\s*(day|week|month|quarter|year)s?\s*$", re.I)
Err = Callable[[tuple, str], None]


def model_ref(value: Any) -> str | None:
    """``ref('kind.name')`` or a bare ``kind.name``: the node id, or None."""
    if not isinstance(value, str):
        return None
    m = _REF.match(value)
    ref = m.group(2).strip() if m else value.strip()
    kind, dot, name = ref.partition(".")
    return ref if dot and IDENT.match(kind) and IDENT.match(name) else None


def _text(entry: dict, key: str, default: str | None = None) -> str | None:
    value = entry.get(key, default)
    return None if value is None else str(value)


def _named_list(data: dict, key: str, err: Err, what: str) -> list[tuple[int, dict]]:
    """(index, entry) of the list at key, each a mapping with a usable name; duplicates refused."""
    items = data.get(key) or []
    if not isinstance(items, list):
        err((key,), f"'{key}' must be a list of {what}s")
        return []
    out, seen = [], set()
    for i, entry in enumerate(items):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            err((key, i), f"each of '{key}' must be a mapping with a 'name'")
            continue
        name = entry["name"]
        if not IDENT.match(name):
            err((key, i, "name"), f"{what} name '{name}' is not an identifier: use letters, digits and '_'")
            continue
        if name in seen:
            err((key, i, "name"), f"{what} '{name}' is listed twice in '{key}'")
            continue
        seen.add(name)
        out.append((i, entry))
    return out


def semantic_model(data: dict, err: Err) -> dict:
    """The spec of one semantic model (descriptions left out: they never rebuild anything)."""
    ref = model_ref(data.get("model"))
    if ref is None:
        err(("model",), f"'model' must name a node as \"ref('transform.orders')\", not {data.get('model')!r}")
    entities = []
    for i, e in _named_list(data, "entities", err, "entity"):
        etype = str(e.get("type", "primary"))
        if etype not in ENTITY_TYPES:
            err(("entities", i, "type"), f"entity type '{etype}'{suggest(etype, ENTITY_TYPES)}: "
                                         f"use one of {', '.join(ENTITY_TYPES)}")
        entities.append({"name": e["name"], "type": etype, "expr": _text(e, "expr", e["name"])})
    dims: dict[str, dict] = {}
    for i, d in _named_list(data, "dimensions", err, "dimension"):
        dtype = str(d.get("type", "categorical"))
        if dtype not in DIM_TYPES:
            err(("dimensions", i, "type"), f"dimension type '{dtype}'{suggest(dtype, DIM_TYPES)}: "
                                           f"use one of {', '.join(DIM_TYPES)}")
        grain = d.get("time_granularity")
        if grain is not None and grain not in GRAINS:
            err(("dimensions", i, "time_granularity"), f"time_granularity '{grain}'{suggest(str(grain), GRAINS)}: "
                                                       f"use one of {', '.join(GRAINS)}")
        dims[d["name"]] = {"type": "categorical" if dtype == "string" else dtype,
                           "expr": _text(d, "expr", d["name"]), "grain": grain}
    measures: dict[str, dict] = {}
    for i, m in _named_list(data, "measures", err, "measure"):
        agg = str(m.get("agg", "sum")).lower()
        if agg not in AGGS:
            err(("measures", i, "agg"), f"measure '{m['name']}': agg '{agg}'{suggest(agg, AGGS)}: "
                                        f"use one of {', '.join(sorted(set(AGGS) - {'avg'}))}")
        filters = []
        for j, f in enumerate(m.get("filters") or []):
            sql = f.get("sql") if isinstance(f, dict) else f
            if not isinstance(sql, str) or not sql.strip():
                err(("measures", i, "filters", j), "a measure filter is a SQL condition: '- sql: \"status = 'x'\"'")
                continue
            filters.append(sql.strip())
        measures[m["name"]] = {"expr": _text(m, "expr", m["name"]), "agg": AGGS.get(agg, "SUM"),
                               "filters": filters}
    time = None
    default = data.get("default_time_dimension")
    times = [n for n, d in dims.items() if d["type"] == "time"]
    if default is not None:
        if default not in dims:
            err(("default_time_dimension",), f"default_time_dimension '{default}' is not one of its dimensions"
                                             f"{suggest(str(default), dims)}")
        elif dims[default]["type"] != "time":
            err(("default_time_dimension",), f"default_time_dimension '{default}' is a {dims[default]['type']} "
                                             "dimension: give it 'type: time'")
        else:
            time = default
    elif len(times) == 1:
        time = times[0]  # the one time dimension is the default (Seeknal leaves metrics untimed)
    metrics = []
    inline = data.get("metrics") or []
    if not isinstance(inline, list):
        err(("metrics",), "'metrics' must be a list of metrics")
        inline = []
    for i, m in enumerate(inline):
        if not isinstance(m, dict):
            err(("metrics", i), "each inline metric is a mapping with 'name' and 'type'")
            continue
        sub = lambda path, msg, i=i: err(("metrics", i, *path), msg)  # noqa: E731
        spec = metric(m, sub)
        if spec is not None:
            metrics.append((i, m, spec))
    return {"model": ref, "time": time, "entities": entities, "dimensions": dims, "measures": measures,
            "inline": metrics}


def time_of(sm: dict) -> dict | None:
    """The default time dimension: name, expr and grain (its time_granularity, else day)."""
    if not sm.get("time"):
        return None
    d = sm["dimensions"][sm["time"]]
    return {"name": sm["time"], "expr": d["expr"], "grain": d["grain"] or "day"}


def metric(data: dict, err: Err) -> dict | None:
    """The spec of one metric, or None if its shape is unusable."""
    name = data.get("name")
    if not isinstance(name, str) or not IDENT.match(name):
        err(("name",), f"metric name {name!r} cannot be a view name: use letters, digits and '_'")
        return None
    mtype = data.get("type")
    if mtype not in METRIC_TYPES:
        err(("type",), f"metric type {mtype!r}{suggest(str(mtype), METRIC_TYPES)}: "
                       f"use one of {', '.join(METRIC_TYPES)}")
        return None
    spec: dict[str, Any] = {"name": name, "type": mtype, "filter": _text(data, "filter")}
    need = {"simple": ("measure",), "cumulative": ("measure",), "ratio": ("numerator", "denominator"),
            "derived": ("expr",)}[mtype]
    ok = True
    for key in need:
        if not isinstance(data.get(key), str) or not data[key].strip():
            err((key,) if key in data else ("type",), f"a {mtype} metric needs '{key}'"
                + {"measure": ": the name of a measure in a semantic model",
                   "numerator": ": a measure's name", "denominator": ": a measure's name",
                   "expr": ": an expression over its inputs' aliases, e.g. 'revenue - cost'"}[key])
            ok = False
        else:
            spec[key] = data[key].strip()
    if mtype == "cumulative":
        gtd = data.get("grain_to_date")
        if gtd is not None and gtd not in GRAINS:
            err(("grain_to_date",), f"grain_to_date '{gtd}'{suggest(str(gtd), GRAINS)}: use one of "
                                    f"{', '.join(GRAINS)}")
            ok = False
        spec["grain_to_date"] = gtd
    if mtype == "derived":
        inputs = data.get("inputs") or []
        if not isinstance(inputs, list) or not inputs:
            err(("inputs",) if "inputs" in data else ("type",),
                "a derived metric needs 'inputs': '- metric: <name>' (with 'alias:' to name it in expr)")
            return None
        spec["inputs"], aliases = [], set()
        for i, inp in enumerate(inputs):
            if not isinstance(inp, dict) or not isinstance(inp.get("metric"), str):
                err(("inputs", i), "each input is '- metric: <name>' (optional alias:, offset:)")
                ok = False
                continue
            alias = str(inp.get("alias") or inp["metric"])
            if not IDENT.match(alias) or alias in aliases:
                err(("inputs", i), f"alias '{alias}' must be a unique identifier")
                ok = False
            aliases.add(alias)
            offset = inp.get("offset")
            if offset is not None and not _OFFSET.match(str(offset)):
                err(("inputs", i, "offset"), f"offset {offset!r}: write e.g. '1 month' or '7 days'")
                ok = False
            spec["inputs"].append({"metric": inp["metric"], "alias": alias,
                                   "offset": _norm_offset(offset) if offset is not None else None})
    return spec if ok else None


def _norm_offset(offset) -> str | None:
    m = _OFFSET.match(str(offset))
    return f"{int(m.group(1))} {m.group(2).lower()}" if m else None
