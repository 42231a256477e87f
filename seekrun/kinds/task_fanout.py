"""A task's fan-out at parse time (``foreach`` / ``matrix``: seekrun/parser/fanout.py has the
shapes; seekrun/fanout.py runs the instances).

- ``${VAR}`` lists are late names of the task like any other (a value an input task captures, a
  param, an environment variable): parser/tasks.py resolves them for the whole project.
- Outputs that name the item (``data/out_${ITEM}.csv``) are each instance's; every output of a
  fan-out task must (one file written by every instance could not be tracked).  A ``dir`` that
  names the item is each instance's too.  When the items are known at parse, every instance's
  outputs are the node's ``output_files`` (checked like any task's).
- Preconditions that name the item are checked for each instance (one that does not hold skips
  that instance); the others once, for the node.
"""
from __future__ import annotations

from seekrun import values
from seekrun.hashing import hash_obj
from seekrun.parser import fanout


def prepare(rec: dict, built: dict, task: dict, spread: dict, late: dict, pc) -> bool:
    params = built.get("params") or {}
    texts = [t for t in [task.get("text") or "", *(task.get("argv") or [])]]
    texts += list(task["env"].values())
    heads_elsewhere = {n.split(".")[0] for t in texts for n, _ in values.names(t)}
    source = None
    for name, has_default in fanout.names(spread):
        head = name.split(".")[0]
        source = source or head
        if head in task["params"] or head in task["env"]:
            continue
        key = "foreach" if spread.get("text") else "matrix"
        entry = late.setdefault(name, {"path": [key], "default": True})
        entry["default"] = entry["default"] and has_default
    sp = dict(spread)
    # what an instance is built from: not the list (each has its item), nor the param it comes from
    sp["params_hash"] = hash_obj({k: v for k, v in params.items() if k != source}) if source in params else None
    sp["source"] = source
    sp["source_only"] = source is not None and source not in heads_elsewhere  # read only as the list
    sp["uses_index"] = "ITEM_INDEX" in str(built)  # then an item's place is part of what it builds
    pres = rec.get("preconditions") or []
    mine = [p for p in pres if "condition" in p and (fanout.uses_item(sp, p["condition"])
                                                     or fanout.uses_item(sp, str(p.get("expected", ""))))]
    if mine:
        sp["preconditions"] = mine
        rest = [p for p in pres if p not in mine]
        if rest:
            rec["preconditions"] = rest
        else:
            rec.pop("preconditions", None)
    rec["fanout"] = sp
    return True


def split_paths(task: dict, spread: dict, pc) -> bool:
    """Outputs and dir that name the item move to ``task["instance"]``."""
    ok = True
    inst: dict = {"outputs": [], "dir": None, "static": None}
    for i, out in enumerate(task["outputs_raw"]):
        if fanout.uses_item(spread, out):
            inst["outputs"].append(out)
        else:
            pc.error(("outputs", i), f"output '{out}' would be written by every instance: name each instance's "
                                     "file with ${ITEM} (or ${ITEM_INDEX}, ${matrix.<key>}), e.g. out/${ITEM}.csv")
            ok = False
    if task["dir_raw"] is not None and fanout.uses_item(spread, task["dir_raw"]):
        inst["dir"], task["dir_raw"] = task["dir_raw"], None
    task["outputs_raw"] = []
    if fanout.is_static(spread):
        try:
            inst["static"] = [fanout.instance_params(i) for i in fanout.items(spread)]
        except fanout.BadItems as exc:
            pc.error(("foreach",) if spread.get("foreach") is not None else ("matrix",), f"foreach: {exc}")
            ok = False
    task["instance"] = inst
    return ok


def instance_task(task: dict, extra: dict[str, str]) -> dict:
    """The task as one instance runs it: the item in its params, its own paths."""
    inst = task.get("instance") or {}
    sub = {**task, "params": {**task["params"], **extra}, "instance": None,
           "outputs_raw": list(inst.get("outputs") or [])}
    if inst.get("dir") is not None:
        sub["dir_raw"] = inst["dir"]
    return sub


def static_outputs(task: dict, root, problems: list) -> list[str]:
    """Every instance's outputs (items known at parse); two instances writing one file: a problem."""
    from seekrun.kinds.task import resolve_paths

    out: dict[str, str] = {}
    for extra in task["instance"]["static"]:
        sub = instance_task(task, extra)
        sub["dir_raw"] = None
        _, files, probs = resolve_paths(sub, root)
        for p in probs:
            if p not in problems:
                problems.append(p)
        for f in files:
            if f in out and out[f] != extra["ITEM"]:
                problem = (("outputs",), f"instances [{out[f]}] and [{extra['ITEM']}] both write {f}: name each "
                                         "instance's file with its item")
                if problem not in problems:
                    problems.append(problem)
            out.setdefault(f, extra["ITEM"])
    return list(out)
