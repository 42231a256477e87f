"""metric: a view ``metric.<name>`` giving the metric per period of its semantic model's default
time grain: columns ``<time dimension>__<grain>`` (a DATE) and ``<name>`` (the value), one row
per period with data, ordered by period.  A metric whose semantic model has no time dimension
is one row with the value only.  The SQL is compiled at parse time (seekrun/semantic/), so
its hash holds everything the view reads; `seekrun query` compiles the same SQL for other
grains and dimensions.
"""
from __future__ import annotations

from seekrun.kinds.base import BuildContext, BuildResult

HAS_TABLE = False  # a view: not stamped like a table; dropped as a view (parser.kinds.VIEW_KINDS)
ENGINE_VERSION = 1
_LINE_KEYS = ("measure", "numerator", "denominator", "expr", "inputs", "filter", "type", "grain_to_date")


def prepare(rec: dict, built: dict, pc) -> None:
    from seekrun.semantic.spec import metric

    spec = metric(built, pc.error)
    if spec is None:
        return
    rec["semantic_metric"] = spec
    rec["semantic_lines"] = {**{k: pc.line((k,)) for k in _LINE_KEYS if k in built},
                             "input_lines": {str(j): pc.line(("inputs", j))
                                             for j in range(len(built.get("inputs") or []))}}
    # the nodes read and the SQL are set once every file is read (seekrun/semantic/link.py)
    pc.fields.update(inputs=[], aliases=None)


def build(node: dict, ctx: BuildContext) -> BuildResult:
    sql = node.get("generated_sql")
    if not sql:
        ctx.fail(f"{node['id']}: no SQL was compiled for this metric (parse the project again)")
    ctx.execute(f"CREATE OR REPLACE VIEW {ctx.table} AS\n{sql}")
    rows = ctx.execute(f"SELECT count(*) FROM {ctx.table}").fetchone()
    return BuildResult(int(rows[0]) if rows else None)
