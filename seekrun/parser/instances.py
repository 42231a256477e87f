"""Fan-out of the kinds that build tables or files (source, transform, feature_group, rule,
exposure...): ``foreach`` / ``matrix`` split the node into instance nodes at parse.

```yaml
kind: transform
name: sales_by_region
foreach: [us, eu]                    # or "${REGIONS}": a param or an environment variable
max_concurrent: 2                    # at most 2 instances at once
inputs: [{ref: source.sales}]
transform: SELECT * FROM ref('source.sales') WHERE region = '{{ var('ITEM') }}'
```

- **Instances.** Each item is its own node, ``transform.sales_by_region[us]``, with its own table
  (``"transform"."sales_by_region[us]"``) and state.  Its strings read the item as
  ``{{ var('ITEM') }}``, ``{{ var('ITEM.field') }}`` (a mapping item), ``{{ var('ITEM_INDEX') }}``
  and ``{{ var('matrix.region') }}``, filled in like run params (seekrun/params.py): each value
  used is a hashed field of the instance, and the item list is not.  So adding an item builds
  only that instance, and removing one drops its table and state (as a removed node's).
- **The gather.** The node's own id is the union of its instances' tables, in item order
  (``UNION ALL BY NAME``), so ``ref('transform.sales_by_region')`` reads every item's rows.  Its
  hash is the list of its instances: an added or removed item rebuilds it, and an unchanged
  instance result leaves it (early cutoff) and its dependents cached.  A kind without a table (an
  exposure) gathers nothing: its node succeeds once every instance has.  Zero items: the table is
  empty (with the columns the node's SQL gives, when that SQL runs with NULL for the item).
- **Items known at parse.** A table node is built by the rebuilder, not by a process, so its items
  are known when the project is parsed: a list, a matrix, or ``${NAME}`` of a run param or an
  environment variable.  A list a task prints is known only when that task runs: fan a task out
  over it (seekrun/fanout.py does that at run time).

Nothing here imports duckdb.
"""
from __future__ import annotations

import json
import os
import re

from seekrun import values
from seekrun.errors import Diagnostic
from seekrun.parser import fanout

GATHER_VERSION = 1  # bumped when the gather builds differently
NO_FANOUT = ("semantic_model", "metric")  # definitions, not builds: nothing to split
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a param's name


def read_spread(kind: str, built: dict) -> tuple[dict | None, list[fanout.Problem]]:
    """The fan-out of a table node's config, checked (record time: before the parse cache)."""
    if kind in NO_FANOUT:
        key = next(k for k in fanout.KEYS if built.get(k) is not None)
        return None, [((key,), f"a {kind} is a definition, not a build: it cannot fan out; remove '{key}' "
                               "(fan out the node it reads)")]
    foreach = built.get("foreach")
    if isinstance(foreach, str) and "{{" in foreach:  # "{{ var('REGIONS') }}": the param, as ${REGIONS}
        from seekrun.params import fill, var_refs_in

        names = {name: "${" + name + "}" for name, default in var_refs_in({"foreach": foreach})
                 if default is None and _NAME.fullmatch(name)}
        built = {**built, "foreach": fill(foreach, names)}
    return fanout.spec(built)


def is_item_name(name: str) -> bool:
    head = name.split(".")[0]
    return head in fanout.ITEM_NAMES or head == "matrix"


def expand(records: dict[str, dict], run_params: dict[str, str], env: dict[str, str],
           errors: list[Diagnostic], dotenv: dict[str, str] | None = None) -> None:
    """Replace every table node that fans out by its instances and its gather (after the parse
    cache: the items may come from this run's params or environment).  ``dotenv``: what the
    dotenv files hold (secrets: never an item, whose text names a node and its table)."""
    spread = [nid for nid, rec in records.items() if rec.get("spread")]
    if not spread:
        return
    folded = {nid.lower() for nid in records}
    from seekrun.secrets import redact

    def secret(name: str) -> bool:  # a dotenv value, or an env: entry made from one (registered)
        value = None if name in run_params else lookup(name)
        return value is not None and (name in (dotenv or {}) and env.get(name) == dotenv[name]
                                      or redact(value) != value)

    def lookup(name: str) -> str | None:
        for where in (run_params, env, os.environ):
            if name in where:
                return where[name]
        return None

    for nid in spread:
        rec = records.pop(nid)
        sp = rec["spread"]
        hidden = [n for n, _ in fanout.names(sp) if secret(n.split(".")[0])]
        if hidden:
            errors.append(Diagnostic(rec["file"], rec["line"],
                f"{nid}: the items ${{{hidden[0]}}} hold a secret (a dotenv value), and an item names its node and "
                "table: give the list as a param, or under env: without dotenv values"))
            records[nid] = {**rec, "spread": None, "item_values": {}}
            continue
        try:
            listed = fanout.items(sp, lookup)
        except values.UnknownValue as exc:
            listed = None
            errors.append(_unknown(rec, exc.name))
        except fanout.BadItems as exc:
            listed = None
            errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: {'matrix' if sp.get('matrix') else 'foreach'}"
                                                               f": {exc}"))
        else:
            missing = [n for n, has_default in fanout.names(sp) if not has_default and lookup(n.split(".")[0]) is None]
            if missing:
                listed = None
                errors.append(_unknown(rec, missing[0]))
        if listed is None:
            records[nid] = {**rec, "spread": None, "item_values": {}}  # (the graph checks still see the node)
            continue
        ids = []
        for inst in listed:
            inst = _canonical(inst)
            bad = _bad_key(inst["key"])
            if bad:
                errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: item {inst['index']} {bad}: its key names "
                                                                   "a node and a table; give it a name"))
                continue
            one = _instance(rec, inst, sp)
            if one["id"].lower() in folded:
                errors.append(Diagnostic(rec["file"], rec["line"],
                    f"{nid}: instance {one['id']} is another node's id (or differs from one only in case: table "
                    "names ignore case): give the items distinct keys"))
                continue
            folded.add(one["id"].lower())
            records[one["id"]] = one
            ids.append(one["id"])
        records[nid] = _gather(rec, ids, sp)


def _unknown(rec: dict, name: str) -> Diagnostic:
    return Diagnostic(rec["file"], rec["line"],
        f"{rec['id']}: the items ${{{name}}} are not known when the project is parsed: a {rec['kind']} fans out "
        f"over a list, a run param or an environment variable; declare {name.split('.')[0]} under params: (or set "
        "it in the environment), or, for a list a task prints, fan out a task over it")


def _canonical(inst: dict) -> dict:
    """A mapping item in key order, so its key and its ${ITEM} text do not depend on whether the
    record came from YAML or from the parse cache (JSON, sorted)."""
    item = inst["item"]
    if not isinstance(item, dict) or inst.get("matrix") is not None:
        return inst
    item = {k: item[k] for k in sorted(item)}
    return {**inst, "item": item, "key": fanout.key_of(item)}


def _bad_key(key: str) -> str | None:
    if not key.strip():
        return "is empty"
    if any(ord(c) < 32 for c in key):
        return "holds a line break or another control character"
    return None


_FANOUT_KEYS = ("foreach", "matrix", "max_concurrent")


def _instance(rec: dict, inst: dict, sp: dict) -> dict:
    iid = fanout.instance_id(rec["id"], inst["key"])
    new = {k: v for k, v in rec.items() if k != "spread"}
    new.update(id=iid, name=iid.partition(".")[2], instance_of=rec["id"], item_values=fanout.instance_params(inst),
               field_hashes={k: v for k, v in rec["field_hashes"].items() if k not in _FANOUT_KEYS},
               config={k: v for k, v in rec["config"].items() if k not in _FANOUT_KEYS})  # (its own: no list)
    if rec.get("built_config") is not None:
        new["built_config"] = {k: v for k, v in rec["built_config"].items() if k not in _FANOUT_KEYS}
    if sp.get("max_concurrent"):
        new["fanout_group"] = [rec["id"], sp["max_concurrent"]]
    from seekrun.kinds import executor

    rename = getattr(executor(rec["kind"]), "rename_instance", None)  # name-derived facts (a feature store file)
    if rename is not None:
        rename(new, rec["name"], new["name"])
    return new


def _gather(rec: dict, ids: list[str], sp: dict) -> dict:
    from seekrun.hashing import hash_obj

    out = {k: rec[k] for k in ("kind", "name", "file", "line", "config", "description", "owner", "tags",
                               "unknown_keys")}
    limit = f", at most {sp['max_concurrent']} at once" if sp.get("max_concurrent") else ""
    out.update(id=rec["id"], inputs=list(ids), input_lines=[rec["line"]] * len(ids), inputs_line=rec["line"],
               python=None, env=[], built_config=None, gather=list(ids),
               gather_text=f"gathers {len(ids)} instance{'' if len(ids) == 1 else 's'}{limit}",
               field_hashes={"gather": hash_obj(ids), "seekrun_engine": hash_obj(GATHER_VERSION)})
    if rec["kind"] == "rule":  # a failing check still writes its results: the union shows them
        out["run_always"] = True
    if not ids and rec.get("compiled_sql") and "{{" not in str(rec["inputs"]):  # its SQL gives the columns
        out.update(inputs=list(rec["inputs"]), input_lines=rec["input_lines"], empty_sql=rec["compiled_sql"])
        out["item_values"] = {}
        out["vars"] = rec.get("vars") or []
        out["env"] = rec.get("env") or []
        out["field_hashes"].update(sql=hash_obj(rec["compiled_sql"]), inputs=hash_obj(rec["inputs"]))
    return out


def item_value(rec: dict, name: str) -> str | None:
    """A ``{{ var('ITEM...') }}`` of an instance record (None: not one).  A gather with no items
    reads NULL for each (valid SQL both bare and in quotes: its SQL gives the columns)."""
    item = rec.get("item_values")
    if item is None or not is_item_name(name):
        return None
    if not item:
        return "NULL"
    return values.resolve(name, item.get)


def digest_parts(records: dict[str, dict]) -> list[str]:
    """For the manifest digest: which instances each gather has (items from the environment)."""
    return sorted(f"{nid}<{json.dumps(rec['gather'])}" for nid, rec in records.items() if rec.get("gather") is not None)
