"""Evaluate a parsed selector over a manifest: each term is a set of node ids, a group their
intersection, the selector their union; graph operators widen a term's set along the edges.

A term that matches nothing is an error pointing at it, with a suggestion (a typo is never an
empty selection), except ``state:`` and ``result:`` terms: "nothing changed" and "nothing
failed" are answers, not mistakes.
"""
from __future__ import annotations

import re
from collections import deque
from functools import lru_cache

from seekrun.errors import suggest
from seekrun.selector.compare import STATE_VALUES
from seekrun.selector.grammar import Selector, SelectorError, SelectorErrors, Term

RESULT_VALUES = ("success", "failed", "error", "skipped", "cached", "cancelled")


class Context:
    """What terms are evaluated against.  ``changes()``: node id -> NodeChange against the
    baseline (computed once, on first use); ``results()``: the last run's results by node id,
    or None when there is no last run; ``baseline``: how messages name it."""

    def __init__(self, manifest, changes=None, results=None, baseline: str = "the last build"):
        self.manifest = manifest
        self._changes, self._results = changes, results
        self.baseline = baseline
        self._index: dict | None = None
        self._memo: dict = {}

    def changes(self):
        if "changes" not in self._memo:
            self._memo["changes"] = self._changes() if self._changes else {}
        return self._memo["changes"]

    def results(self):
        if "results" not in self._memo:
            self._memo["results"] = self._results() if self._results else None
        return self._memo["results"]

    @property
    def index(self) -> dict:
        if self._index is None:
            by_name: dict[str, list[str]] = {}
            by_tag: dict[str, set[str]] = {}
            by_kind: dict[str, set[str]] = {}
            for nid, n in self.manifest.nodes.items():
                by_name.setdefault(n["name"], []).append(nid)
                by_kind.setdefault(n["kind"], set()).add(nid)
                for t in n.get("tags") or []:
                    by_tag.setdefault(str(t), set()).add(nid)
            self._index = {"name": by_name, "tag": by_tag, "kind": by_kind}
        return self._index


def evaluate(selector: Selector, ctx: Context) -> set[str]:
    """The node ids the selector picks; every bad term is reported (SelectorErrors), not just the first."""
    out: set[str] = set()
    errors: list[SelectorError] = []
    for group in selector.groups:
        sets = []
        for term in group.terms:
            try:
                sets.append(expand(term, match(term, ctx, selector), ctx.manifest))
            except SelectorError as exc:
                errors.append(exc)
                sets.append(set())
        out |= set.intersection(*sets)
    if errors:
        raise SelectorErrors(errors)
    return out


def expand(term: Term, ids: set[str], manifest) -> set[str]:
    if term.at:
        return manifest.upstream(manifest.downstream(ids))
    out = set(ids)
    if term.up is not None:
        out |= _walk(ids, manifest.parents, term.up)
    if term.down is not None:
        out |= _walk(ids, manifest.children.__getitem__, term.down)
    return out


def _walk(ids: set[str], step, depth: int) -> set[str]:
    """Nodes reachable from ids in at most depth steps (-1: any number)."""
    seen = set(ids)
    queue = deque((i, 0) for i in ids)
    while queue:
        nid, d = queue.popleft()
        if depth >= 0 and d >= depth:
            continue
        for nxt in step(nid):
            if nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, d + 1))
    return seen


def match(term: Term, ctx: Context, selector: Selector) -> set[str]:
    def bad(message: str, choices=None) -> SelectorError:
        if selector.sugar and choices is not None:  # the old flags' words
            message = f"unknown value '{value}'{suggest(value, choices)}"
        return SelectorError(selector.flag, selector.text, term.column, term.text, message, selector.sugar)

    nodes = ctx.manifest.nodes
    m, value = term.method, term.value
    if m == "id":
        return _node(value, ctx, bad)
    if m in ("kind", "tag"):
        sets = ctx.index[m]
        if value not in sets:
            from seekrun.parser.kinds import KINDS

            what = ("no node of kind '%s' in this project" % value if m == "kind" and value in KINDS
                    else f"unknown {m} '{value}'")
            raise bad(what + suggest(value, sets) + _some(sets), sets)
        return set(sets[value])
    if m == "path":
        found = {nid for nid, n in nodes.items() if _path_matches(n.get("file") or "", value)}
        if not found:
            raise bad(f"no node is defined in {value}" + suggest(_norm(value), {n.get("file") for n in nodes.values()}))
        return found
    if m == "source_path":
        found = {nid for nid, n in nodes.items()
                 if any(_path_matches(f, value) for f in (n.get("data_files") or []))}
        if not found:
            files = {f for n in nodes.values() for f in n.get("data_files") or []}
            raise bad(f"no node reads {value}" + suggest(_norm(value), files) + _some(files))
        return found
    if m == "config":
        return _config(term, nodes, bad)
    if m == "state":
        if value not in STATE_VALUES:
            raise bad(f"unknown state '{value}'{suggest(value, STATE_VALUES)} (one of {', '.join(STATE_VALUES)})")
        changes = ctx.changes()
        part = value.partition(".")[2]
        return {nid for nid, c in changes.items() if nid in nodes and (
            (value == "new" and c.new) or (value == "modified" and c.modified) or
            (part == "body" and bool(c.body)) or (part == "data" and c.data) or
            (part == "metadata" and bool(c.metadata) and not c.body and not c.data))}
    if m == "result":
        if value not in RESULT_VALUES:
            raise bad(f"unknown result '{value}'{suggest(value, RESULT_VALUES)} (one of {', '.join(RESULT_VALUES)})")
        results = ctx.results()
        if results is None:
            raise bad(f"there is no last run to read results from ({ctx.baseline} has no run_results.json): "
                      "run first, or leave the term out")
        want = "failed" if value == "error" else value
        return {nid for nid, r in results.items() if r.get("status") == want and nid in nodes}
    raise bad(f"unknown method '{m}'")  # (the grammar refuses it first)


def _node(value: str, ctx: Context, bad) -> set[str]:
    nodes = ctx.manifest.nodes
    if value in nodes:
        found = value
    else:
        named = ctx.index["name"].get(value, [])
        if len(named) > 1:
            raise bad(f"'{value}' is ambiguous: use one of {', '.join(sorted(named))}")
        if not named:
            raise bad(f"unknown node '{value}'" + suggest(value, [*nodes, *ctx.index["name"]]), nodes)
        found = named[0]
    # a fan-out's node: its instances too (what it is made of)
    return {found, *(nodes[found].get("gather") or [])}


def _config(term: Term, nodes: dict, bad) -> set[str]:
    keys: set[str] = set()
    values: set[str] = set()
    found: set[str] = set()
    for nid, n in nodes.items():
        have, got = _lookup(n.get("config") or {}, term.key)
        if not have:
            continue
        keys.add(term.key)
        listed = got if isinstance(got, list) else [got]
        texts = {_text(v) for v in listed}
        values |= texts
        if term.value in texts:
            found.add(nid)
    if not keys:
        every = {k for n in nodes.values() for k in (n.get("config") or {})}
        raise bad(f"no node has config key '{term.key}'" + suggest(term.key, every))
    if not found:
        raise bad(f"no node has {term.key} '{term.value}'" + suggest(term.value, values) + _some(values))
    return found


def _lookup(config: dict, dotted: str):
    cur = config
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _norm(path: str) -> str:
    p = path.strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return p.rstrip("/")


def _path_matches(file: str, pattern: str) -> bool:
    """A file, a folder holding it, or a glob matching either, relative to the project: ``*``
    and ``?`` stay within one folder, ``**`` spans any number of them."""
    file, pat = _norm(file), _norm(pattern)
    if not pat or pat == ".":
        return True
    if file == pat or file.startswith(pat + "/"):
        return True
    if any(ch in pat for ch in "*?["):
        rx = _glob(pat)
        parts = file.split("/")
        return any(rx.fullmatch("/".join(parts[:i])) for i in range(1, len(parts) + 1))
    return False


@lru_cache(maxsize=256)
def _glob(pattern: str) -> "re.Pattern":
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end].replace("\\", "\\\\")
            body = "^" + body[1:] if body.startswith("!") else "\\" + body if body.startswith("^") else body
            out.append(f"(?!/)[{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def _some(choices) -> str:
    names = sorted(str(c) for c in choices)
    if not names:
        return ""
    more = f", ... ({len(names)} in all)" if len(names) > 6 else ""
    return f"; there are: {', '.join(names[:6])}{more}"
