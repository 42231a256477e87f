"""The cross-file step for semantic models and metrics (after every file is read).

A metric names measures (found in whichever semantic model defines them) or other metrics,
so what it reads is known only once every file is read.  This step adds the metric nodes
defined inline in semantic models, checks every name a metric uses (errors naming the file
and line), compiles each metric's view SQL, and makes the nodes that SQL reads the metric's
inputs.  The SQL (measures, filters, time dimension and grain included) is a hashed field:
a metric is rebuilt when it or anything it reads changes, and only then.

Records are replaced, never changed in place: the parse cache holds the originals.
"""
from __future__ import annotations

from seekrun.errors import Diagnostic, suggest
from seekrun.hashing import hash_obj


def link(records: dict[str, dict], errors: list[Diagnostic], broken: bool = False) -> None:
    sms = {r["name"]: r for r in records.values() if r["kind"] == "semantic_model" and r.get("semantic")}
    metrics = [r for r in records.values() if r["kind"] == "metric" and r.get("semantic_metric")]
    if not sms and not metrics:
        return
    for rec in metrics:  # the refs the parser saw ("metric.x" for derived inputs) are set below
        records[rec["id"]] = {**rec, "inputs": [], "input_lines": []}
    for sm in sms.values():
        for entry in sm.get("inline_metrics") or []:
            rec = _inline_record(sm, entry)
            other = records.get(rec["id"])
            if other is not None:
                errors.append(Diagnostic(rec["file"], rec["line"],
                    f"duplicate node id '{rec['id']}': also defined in {other['file']}:{other['line']}; rename one"))
                continue
            records[rec["id"]] = rec
            metrics.append(rec)
    from seekrun.semantic.compile import CompileError, catalog, compile_metric

    cat = catalog({n: r["semantic"] for n, r in sms.items()},
                  {r["name"]: r["semantic_metric"] for r in metrics})
    maybe = " (or it is in a file that failed to parse above)" if broken else ""
    ok: dict[str, bool] = {}
    for rec in metrics:
        ok[rec["name"]] = _check_names(rec, cat, errors, maybe)
    for rec in metrics:
        if not _closure_ok(rec["name"], cat, ok, set()):
            continue
        try:
            built = compile_metric(cat, rec["name"])
        except CompileError as exc:
            own = exc.metric in (None, rec["name"]) and exc.key
            line = (rec.get("semantic_lines") or {}).get(exc.key) if own else None
            errors.append(Diagnostic(rec["file"], line or rec["line"], f"{rec['id']}: {exc}"))
            continue
        line = rec["line"]
        inputs = [n for n in built["nodes"] if n in records]
        new = {**rec, "inputs": inputs, "input_lines": [line] * len(inputs), "inputs_line": line,
               "generated_sql": built["sql"], "metric_columns": built["columns"]}
        new["field_hashes"] = {**rec["field_hashes"], "inputs": hash_obj(inputs),
                               "generated_sql": hash_obj(built["sql"])}
        records[rec["id"]] = new


def _check_names(rec: dict, cat: dict, errors: list[Diagnostic], maybe: str) -> bool:
    spec, lines = rec["semantic_metric"], rec.get("semantic_lines") or {}
    line = lambda key: lines.get(key) or rec["line"]  # noqa: E731
    good = True
    measures = cat["homes"]
    for key in ("measure", "numerator", "denominator"):
        name = spec.get(key)
        if name is None:
            continue
        homes = measures.get(name)
        if not homes:
            errors.append(Diagnostic(rec["file"], line(key),
                f"{rec['id']}: measure '{name}' is not defined in any semantic model{maybe or suggest(name, measures)}"))
            good = False
        elif len(homes) > 1:
            errors.append(Diagnostic(rec["file"], line(key),
                f"{rec['id']}: measure '{name}' is defined in several semantic models "
                f"({', '.join(homes)}): rename it in all but one"))
            good = False
    if spec["type"] == "derived":
        from seekrun.semantic.compile import identifiers

        known = {*cat["metrics"], *measures}
        for i, inp in enumerate(spec["inputs"]):
            if inp["metric"] not in known:
                errors.append(Diagnostic(rec["file"], (lines.get("input_lines") or {}).get(str(i)) or line("inputs"),
                    f"{rec['id']}: input metric '{inp['metric']}' is not defined{maybe or suggest(inp['metric'], known)}"))
                good = False
        unused = [inp["alias"] for inp in spec["inputs"] if inp["alias"] not in identifiers(spec["expr"])]
        if unused:
            errors.append(Diagnostic(rec["file"], line("expr"),
                f"{rec['id']}: expr does not use input {', '.join(repr(a) for a in unused)}: "
                "use each input's alias (or its metric name) in expr"))
            good = False
    return good


def _closure_ok(name: str, cat: dict, ok: dict[str, bool], seen: set) -> bool:
    """The metric and every metric it uses have no naming errors (a cycle is reported by compile)."""
    if name in seen:
        return True
    seen.add(name)
    if not ok.get(name, True):
        return False
    spec = cat["metrics"].get(name)
    return spec is None or all(_closure_ok(i["metric"], cat, ok, seen) for i in spec.get("inputs") or [])


def _inline_record(sm: dict, entry: dict) -> dict:
    spec = entry["spec"]
    from seekrun.kinds import engine_version

    fields = {k: v for k, v in spec.items() if k != "name"}
    fields["seekrun_engine"] = engine_version("metric")
    return {
        "id": f"metric.{spec['name']}", "kind": "metric", "name": spec["name"], "file": sm["file"],
        "line": entry["line"], "config": entry["config"], "description": entry.get("description"),
        "owner": sm["owner"], "tags": list(sm["tags"]), "inputs": [], "input_lines": [],
        "inputs_line": entry["line"], "python": None, "unknown_keys": [], "env": [],
        "semantic_metric": spec, "semantic_lines": entry["lines"], "defined_in": sm["id"],
        "field_hashes": {k: hash_obj(v) for k, v in fields.items()},
    }
