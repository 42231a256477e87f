"""Selectors: which nodes a command works on (``-s/--select``, ``--exclude``, and the older
``--types``, ``--nodes``, ``--tags``, ``--exclude-tags``, which are sugar for terms).

Text is parsed into data (grammar.py), then evaluated with set algebra over the manifest
(evaluate.py).  Every flag given narrows the selection: several ``-s`` values are a union,
``-s`` and ``--types`` and ``--tags`` intersect, the excludes are taken away.  Every bad term
of every flag is reported together.  Selecting is not planning: a node left out that needs to
run still needs to (the rebuilder keeps its reason).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from seekrun.errors import Diagnostic, UsageError
from seekrun.selector.evaluate import Context, evaluate
from seekrun.selector.grammar import Group, Selector, SelectorError, SelectorErrors, Term, parse

__all__ = ["Context", "Selection", "context", "note_differences", "resolve", "parse", "evaluate", "SelectorError"]


@dataclass
class Selection:
    ids: set[str]
    given: bool = False  # a filter was given
    note: str | None = None  # nothing selected: said so (never a silent no-op)
    dynamic: bool = False  # a state: or result: term took part
    texts: list[str] = field(default_factory=list)  # the flags as given, for messages


def _values(values) -> list[str]:
    if values is None:
        return []
    return [values] if isinstance(values, str) else [v for v in values if v is not None]


def _sugar(flag: str, method: str, values, down: int | None = None) -> list[Selector]:
    """--types a,b (and repeated flags): one term per value, as a union (the old flags' meaning)."""
    terms: list[Term] = []
    for value in _values(values):
        column = 1
        for part in value.split(","):
            if part.strip():
                terms.append(Term(method, part.strip(), part.strip(), column, down=down))
            column += len(part) + 1
    if not terms:
        return []
    return [Selector(tuple(Group((t,)) for t in terms), ",".join(_values(values)), flag, sugar=True)]


def resolve(manifest, ctx: Context | None = None, *, select=None, exclude=None, node_types=None, nodes=None,
            tags=None, exclude_tags=None) -> Selection:
    ctx = ctx or Context(manifest)
    errors: list[Diagnostic] = []

    def parsed(flag: str, values) -> list[Selector]:
        out = []
        for value in _values(values):
            try:
                out.append(parse(value, flag))
            except SelectorError as exc:
                errors.append(Diagnostic("", None, exc.line()))
        return out

    narrowing = [parsed("--select", select), _sugar("--types", "kind", node_types),
                 _sugar("--nodes", "id", nodes, down=-1), _sugar("--tags", "tag", tags)]
    removing = [*parsed("--exclude", exclude), *_sugar("--exclude-tags", "tag", exclude_tags)]

    def value_of(selectors: list[Selector]) -> set[str]:
        out: set[str] = set()
        for sel in selectors:
            try:
                out |= evaluate(sel, ctx)
            except SelectorErrors as exc:
                errors.extend(Diagnostic("", None, e.line()) for e in exc.errors)
        return out

    ids = set(manifest.nodes)
    for selectors in narrowing:
        if selectors:
            ids &= value_of(selectors)
    if removing:
        ids -= value_of(removing)
    if errors:
        raise UsageError(errors)
    used = [s for group in narrowing for s in group] + removing
    texts = [f"{s.flag} '{s.text}'" for s in used]
    dynamic = any(t.dynamic for s in used for t in s.terms)
    note = None
    if used and not ids:
        why = f" (nothing differs from {ctx.baseline}, or nothing matched in its last run)" if dynamic else ""
        note = f"Nothing selected: {' '.join(texts)} select{'s' if len(texts) == 1 else ''} no node{why}"
    return Selection(ids, bool(used), note, dynamic, texts)



def context(manifest, records: dict, target_dir, state=None) -> Context:
    """What a run's selector is evaluated against: with ``state`` (another build, --state DIR),
    its manifest and its last run; without, this project's own last build and last run."""
    from pathlib import Path

    from seekrun.otherbuild import read_results
    from seekrun.selector.compare import compare, from_records

    if state is not None:
        return Context(manifest, lambda: compare(manifest.nodes, state.nodes), state.results, state.given)
    return Context(manifest, lambda: compare(manifest.nodes, from_records(manifest.nodes, records)),
                   lambda: read_results(Path(target_dir) / "run_results.json"), "the last build")


def note_differences(results: dict, ctx: Context, ids) -> None:
    """Add to each node's reason how it differs from the other build (``--state``), for the
    nodes given: "new; differs from prod/: transform SQL"."""
    changes = ctx.changes()
    for nid in ids:
        c = changes.get(nid)
        if c is None or not c.modified or results.get(nid) is None:
            continue
        what = f"not in {ctx.baseline}" if c.new else f"differs from {ctx.baseline}: {', '.join(c.labels())}"
        results[nid].reason = f"{results[nid].reason}; {what}"
