"""Selectors are data: each filter is parsed into a set of node ids, then combined.

--types and --tags select; --nodes selects the named nodes plus everything downstream (and a
fan-out's instances with its node);
--exclude-tags removes.  An unknown value is an error with a suggestion, never an
empty selection.
"""
from __future__ import annotations

from typing import Iterable

from seekrun.errors import Diagnostic, UsageError
from seekrun.manifest import Manifest


def split_values(values: Iterable[str] | str | None) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _unknown(flag: str, value: str, choices) -> Diagnostic:
    from seekrun.errors import suggest

    return Diagnostic("", None, f"{flag}: unknown value '{value}'{suggest(value, choices)}")


def select(manifest: Manifest, *, node_types=None, nodes=None, tags=None, exclude_tags=None) -> set[str]:
    all_ids = set(manifest.nodes)
    selected = set(all_ids)
    errors: list[Diagnostic] = []
    kinds = {n["kind"] for n in manifest.nodes.values()}
    by_tag: dict[str, set[str]] = {}
    for nid, n in manifest.nodes.items():
        for t in n.get("tags") or []:
            by_tag.setdefault(t, set()).add(nid)
    by_name: dict[str, list[str]] = {}
    for nid, n in manifest.nodes.items():
        by_name.setdefault(n["name"], []).append(nid)

    types = split_values(node_types)
    if types:
        for t in types:
            if t not in kinds:
                errors.append(_unknown("--types", t, kinds))
        selected &= {nid for nid, n in manifest.nodes.items() if n["kind"] in types}
    names = split_values(nodes)
    if names:
        roots: set[str] = set()
        for name in names:
            if name in all_ids:
                roots.add(name)
            elif len(by_name.get(name, [])) == 1:
                roots.add(by_name[name][0])
            elif name in by_name:
                errors.append(Diagnostic("", None, f"--nodes: '{name}' is ambiguous: use one of "
                                                   f"{', '.join(sorted(by_name[name]))}"))
            else:
                errors.append(_unknown("--nodes", name, all_ids))
        for root in list(roots):  # a fan-out's node: its instances too (what it is made of)
            roots.update(manifest.nodes[root].get("gather") or [])
        selected &= manifest.downstream(roots)
    wanted = split_values(tags)
    if wanted:
        for t in wanted:
            if t not in by_tag:
                errors.append(_unknown("--tags", t, by_tag))
        selected &= set().union(*(by_tag.get(t, set()) for t in wanted))
    for t in split_values(exclude_tags):
        if t not in by_tag:
            errors.append(_unknown("--exclude-tags", t, by_tag))
        selected -= by_tag.get(t, set())
    if errors:
        raise UsageError(errors)
    return selected
