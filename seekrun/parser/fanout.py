"""Fan-out keys at parse time: ``foreach``, ``matrix`` and ``max_concurrent`` (plain functions:
a task and a ``kind: dag`` node run their instances themselves, seekrun/fanout.py; any other
kind is split into instance nodes, seekrun/parser/instances.py).

```yaml
foreach: [us-east, eu-west]             # scalars or mappings; or "${CHUNKS}": a JSON list or words
matrix: {region: [us, eu], tier: [a, b]}  # the cartesian product, in key order (a value may be "${VAR}")
max_concurrent: 2                        # at most 2 instances at once (a run control: not hashed)
```

Each item is an instance ``<node id>[<key>]``: the key of a scalar is its text, of a mapping or a
matrix combination its values joined by "," (a table node's mapping item: in key order,
parser/instances.py).  An instance sees ``${ITEM}`` (JSON for a mapping or a combination, so
``${ITEM.field}`` reads into it), ``${ITEM_INDEX}`` and ``${matrix.<key>}``.

``spec(built)`` -> (spec, problems): the spec is what the manifest keeps in ``node["fanout"]``:
``{"foreach": [...] | None, "matrix": [[key, [...] | "text"], ...] | None, "text": "${VAR}" |
None, "max_concurrent": N | None}``; ``items(spec, lookup)`` expands it (at run time, or at
parse when it is static) into ``[{"key", "item", "index", "matrix"?}]``.  Nothing here imports
duckdb or the engines.
"""
from __future__ import annotations

import itertools
import json
import re

from seekrun import values

KEYS = ("foreach", "matrix", "max_concurrent")
ITEM_NAMES = ("ITEM", "ITEM_INDEX")  # and "matrix" for a matrix node
DEFAULT_CONCURRENCY = 8  # instances at once when max_concurrent is not set
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SCALARS = (str, int, float, bool)

Problem = tuple[tuple, str]


class BadItems(ValueError):
    """Items of the wrong shape (the message says what to write)."""


def declared(built: dict) -> bool:
    return any(built.get(k) is not None for k in ("foreach", "matrix"))


def spec(built: dict) -> tuple[dict | None, list[Problem]]:
    """The fan-out of a node's (built) config, checked: (None, []) when it has none."""
    problems: list[Problem] = []
    raw_max = built.get("max_concurrent")
    if raw_max is not None and (isinstance(raw_max, bool) or not isinstance(raw_max, int) or raw_max < 1):
        problems.append((("max_concurrent",), f"max_concurrent must be a positive integer (it is {raw_max!r}): "
                                              "write e.g. 'max_concurrent: 2'"))
    foreach, matrix = built.get("foreach"), built.get("matrix")
    if foreach is None and matrix is None:
        if raw_max is not None and not problems:
            problems.append((("max_concurrent",), "max_concurrent limits the instances of a fan-out: add "
                                                  "foreach: or matrix:, or remove it"))
        return None, problems
    if foreach is not None and matrix is not None:
        return None, [*problems, (("matrix",), "a node fans out over foreach or matrix, not both: keep one "
                                               "(a matrix of one key is a foreach)")]
    out: dict = {"foreach": None, "matrix": None, "text": None, "max_concurrent": raw_max}
    if foreach is not None:
        if isinstance(foreach, str):
            out["text"] = foreach
            if not values.names(foreach):  # literal words or JSON: known now
                try:
                    out["foreach"] = parse_list(foreach)
                except BadItems as exc:
                    problems.append((("foreach",), f"foreach: {exc}"))
                out["text"] = None
        elif isinstance(foreach, list):
            for i, item in enumerate(foreach):
                why = _bad_item(item)
                if why:
                    problems.append((("foreach", i), f"foreach item {i} {why}"))
            out["foreach"] = foreach
        else:
            problems.append((("foreach",), "foreach must be a list (e.g. [us, eu] or [{id: 1, name: a}]), or a "
                                           "string such as \"${CHUNKS}\" holding a JSON list or words"))
    else:
        if not isinstance(matrix, dict) or not matrix:
            problems.append((("matrix",), "matrix must map names to lists, e.g. {region: [us, eu], tier: [a, b]}"))
        else:
            axes = []
            for key, axis in matrix.items():
                if not isinstance(key, str) or not _NAME.match(key):
                    problems.append((("matrix", key), f"matrix key '{key}' must be a name (letters, digits, _), "
                                                      "read as ${matrix." + str(key) + "}"))
                elif isinstance(axis, str) and values.names(axis):
                    axes.append([key, axis])  # "${REGIONS}": known when it runs
                elif isinstance(axis, list) and all(isinstance(v, _SCALARS) for v in axis):
                    axes.append([key, axis])
                else:
                    problems.append((("matrix", key), f"matrix.{key} must be a list of values (e.g. [us, eu]) or "
                                                      "a \"${VAR}\" holding one; it is "
                                                      f"{'a list holding a list or mapping' if isinstance(axis, list) else type(axis).__name__}"))
            out["matrix"] = axes
    return (None if problems else out), problems


def _bad_item(item) -> str | None:
    if item is None:
        return "is empty (null): give a value"
    if isinstance(item, list):
        return "is a list: items are values or mappings (a nested list is not an item; flatten it)"
    if isinstance(item, dict) and not item:
        return "is an empty mapping: give it fields"
    if isinstance(item, dict) and not all(isinstance(k, str) for k in item):
        return "has a field name that is not text: quote it (e.g. '1': a)"
    return None


def is_static(sp: dict) -> bool:
    if sp.get("foreach") is not None:
        return True
    return sp.get("matrix") is not None and all(isinstance(axis, list) for _, axis in sp["matrix"])


def names(sp: dict) -> list[tuple[str, bool]]:
    """The ``${NAME}``s the fan-out itself reads (its ``${VAR}`` lists)."""
    texts = [sp["text"]] if sp.get("text") else []
    texts += [axis for _, axis in sp.get("matrix") or [] if isinstance(axis, str)]
    return [n for t in texts for n in values.names(t)]


def known(sp: dict | None, name: str) -> bool:
    """Whether a ``${name}`` is one of the names an instance has (ITEM, ITEM.field, ITEM_INDEX,
    matrix.key)."""
    if sp is None:
        return False
    head = name.split(".")[0]
    return head in ITEM_NAMES or (head == "matrix" and sp.get("matrix") is not None)


def uses_item(sp: dict | None, text: str) -> bool:
    return any(known(sp, n) for n, _ in values.names(text))


def parse_list(text: str) -> list:
    """A ``${VAR}``'s value as items: a JSON list, else words separated by white space."""
    stripped = text.strip()
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except ValueError:
            raise BadItems(f"'{_short(stripped)}' is not a JSON list: print a JSON list (e.g. [\"a\", \"b\"]) or "
                           "words separated by spaces") from None
        if not isinstance(data, list):
            raise BadItems(f"'{_short(stripped)}' is a JSON {type(data).__name__}, not a list of items: print a "
                           "JSON list (e.g. [\"a\", \"b\"]) or words separated by spaces")
        for i, item in enumerate(data):
            why = _bad_item(item)
            if why:
                raise BadItems(f"item {i} {why}")
        return data
    return stripped.split()


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


def instance_id(nid: str, key: str) -> str:
    """``task.process[us-east]`` (a key with a / in it is quoted: the id names log files)."""
    from urllib.parse import quote

    return f"{nid}[{quote(key, safe=' ,-_.=:@+()') if '/' in key or key.startswith('.') else key}]"


def key_of(item) -> str:
    if isinstance(item, dict):
        return ",".join(values.as_text(v) for v in item.values())
    return values.as_text(item)


def items(sp: dict, lookup=None) -> list[dict]:
    """The instances, in order: ``[{"key", "item", "index", "matrix"?}]``.  ``lookup(name)``
    gives ``${VAR}`` values (run time); BadItems for items of the wrong shape, or two with the
    same key; values.UnknownValue for a ``${VAR}`` without a value."""
    if sp.get("matrix") is not None:
        axes = []
        for key, axis in sp["matrix"]:
            if isinstance(axis, str):
                try:
                    axis = parse_list(values.expand(axis, lookup or (lambda n: None)))
                except BadItems as exc:
                    raise BadItems(f"matrix.{key}: {exc}") from None
                bad = [v for v in axis if not isinstance(v, _SCALARS)]
                if bad:
                    raise BadItems(f"matrix.{key}: {json.dumps(bad[0])} is not a value: give a list of values")
            axes.append((key, axis))
        combos = [dict(zip([k for k, _ in axes], combo)) for combo in itertools.product(*[a for _, a in axes])]
        out = [{"key": ",".join(values.as_text(v) for v in c.values()), "item": c, "index": i, "matrix": c}
               for i, c in enumerate(combos)]  # (in the matrix's own key order)
    else:
        listed = sp.get("foreach")
        if listed is None:
            listed = parse_list(values.expand(sp["text"], lookup or (lambda n: None)))
        out = [{"key": key_of(item), "item": item, "index": i} for i, item in enumerate(listed)]
    seen: dict[str, int] = {}
    for inst in out:
        if inst["key"] in seen:
            raise BadItems(f"items {seen[inst['key']]} and {inst['index']} are both '{inst['key']}': each instance "
                           "needs its own key (remove the duplicate)")
        seen[inst["key"]] = inst["index"]
    return out


def instance_params(inst: dict) -> dict[str, str]:
    """What an instance adds to its node's params."""
    item = inst["item"]
    out = {"ITEM": json.dumps(item, sort_keys=False) if isinstance(item, dict) else values.as_text(item),
           "ITEM_INDEX": str(inst["index"])}
    if inst.get("matrix") is not None:
        out["matrix"] = json.dumps(inst["matrix"])
    return out


def described(sp: dict) -> str:
    """For a dry run and show: how it fans out."""
    limit = f", at most {sp['max_concurrent']} at once" if sp.get("max_concurrent") else ""
    if is_static(sp):
        n = len(items(sp))
        return f"fans out over {n} item{'' if n == 1 else 's'}{limit}"
    text = sp.get("text") or ", ".join(a for _, a in sp["matrix"] if isinstance(a, str))
    return f"fans out over {text} (known when it runs){limit}"


def base_hash(fields: dict, sp: dict) -> str:
    """An instance's share of its node's build hash: every hashed field but the item list (an
    added item must not change the others' hash), and but the task param the list comes from.
    ``fields``: the node's field hashes (the manifest's ``hashes.fields``); ``sp["params_hash"]``
    replaces ``params`` when the kind set it."""
    from seekrun.hashing import hash_obj

    kept = {k: v for k, v in fields.items() if k not in ("foreach", "matrix")}
    if sp.get("params_hash") is not None:
        kept["params"] = sp["params_hash"]
    return hash_obj(kept)


def summary_text(instances: dict[str, str]) -> str:
    """"4 instances: 1 ran, 3 unchanged" (and failed, skipped)."""
    counts = list(instances.values())
    n = len(counts)
    ran = counts.count("success")
    what = [f"{ran} ran"] if ran or not counts.count("failed") else []
    if counts.count("cached"):
        what.append(f"{counts.count('cached')} unchanged")
    if counts.count("failed"):
        what.append(f"{counts.count('failed')} failed")
    if counts.count("skipped"):
        what.append(f"{counts.count('skipped')} skipped")
    return f"{n} instance{'' if n == 1 else 's'}" + (f": {', '.join(what)}" if n else "")
