"""semantic_model: entities, dimensions and measures over one node (Seeknal's semantic layer).

It builds nothing of its own (as in Seeknal, it is a definition): its run checks that every
entity, dimension and measure expression works on its model's table, and names the one that
does not.  Its metrics (in metric files, or inline under ``metrics:``) are views built by
seekrun/kinds/metric.py.
"""
from __future__ import annotations

from seekrun.kinds.base import BuildContext, BuildResult, build_config, quote_ident, table_name

HAS_TABLE = False
ENGINE_VERSION = 1
_LINE_KEYS = ("measure", "numerator", "denominator", "expr", "inputs", "filter", "type", "grain_to_date")


def prepare(rec: dict, built: dict, pc) -> None:
    from seekrun.semantic.spec import semantic_model

    spec = semantic_model(built, pc.error)
    inline = spec.pop("inline")
    ref = spec["model"]
    if ref is None:
        return
    rec["semantic"] = spec
    rec["inputs"], rec["input_lines"] = [ref], [pc.line(("model",))]
    rec["inputs_line"] = pc.line(("model",))
    rec["inline_metrics"] = [{
        "spec": mspec, "line": pc.line(("metrics", i)), "config": {"kind": "metric", **entry},
        "description": entry.get("description"),
        "lines": {**{k: pc.line(("metrics", i, k)) for k in _LINE_KEYS if k in entry},
                  "input_lines": {str(j): pc.line(("metrics", i, "inputs", j))
                                  for j in range(len(entry.get("inputs") or []))}},
    } for i, entry, mspec in inline]
    rec["generated_sql"] = check_sql(spec)
    # what the check reads; descriptions and inline metrics (their own nodes) are left out
    pc.fields.update(model=ref, inputs=[ref], entities=spec["entities"], dimensions=spec["dimensions"],
                     measures=spec["measures"], default_time_dimension=spec["time"], metrics=None, joins=None)


def _exprs(spec: dict) -> list[tuple[str, str]]:
    out = [(f"dimension {n}", d["expr"]) for n, d in spec["dimensions"].items()]
    for n, m in spec["measures"].items():
        out.append((f"measure {n}", m["expr"]))
        out += [(f"measure {n} filter {i + 1}", f) for i, f in enumerate(m["filters"])]
    return out


def check_sql(spec: dict, only: list[tuple[str, str]] | None = None) -> str:
    items = _exprs(spec) if only is None else only
    cols = ",\n  ".join(f"{expr} AS {quote_ident(what)}" for what, expr in items) or "1"
    return f"SELECT\n  {cols}\nFROM {table_name(spec['model'])}\nLIMIT 0"


def build(node: dict, ctx: BuildContext) -> BuildResult:
    """Check every expression on the model's table.  One that does not work is a warning, not a
    failure (Seeknal reads them only when queried): a metric over it fails on its own."""
    from seekrun.semantic.spec import semantic_model

    spec = semantic_model(build_config(node), lambda path, msg: None)
    spec.pop("inline")
    cur = ctx.cur.cursor()  # its own connection: a failed check must not abort the build's transaction
    try:
        if _fails(ctx, cur, check_sql(spec)) is None:
            return BuildResult(None)
        for what, expr in _exprs(spec):  # name each expression that fails
            problem = _fails(ctx, cur, check_sql(spec, [(what, expr)]))
            if problem is not None:
                ctx.warn(f"{node['id']}: {what} ({expr}) does not work on {spec['model']}: {problem}")
    finally:
        cur.close()
    return BuildResult(None)


def _fails(ctx: BuildContext, cur, sql: str) -> str | None:
    try:
        cur.execute(ctx.sql(sql))
    except ctx.duckdb.Error as exc:
        return ctx.redact(str(exc).strip().splitlines()[0])
    return None
