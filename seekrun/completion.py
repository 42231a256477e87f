"""Shell completion (`seekrun --install-completion`): node ids and selector terms, read from
target/manifest.json (completing never parses the project, and costs a JSON read)."""
from __future__ import annotations

import json
import re
from pathlib import Path

_METHODS = ("kind:", "tag:", "path:", "source_path:", "state:", "result:", "config.")


def _manifest_nodes(ctx) -> dict:
    folder = Path((ctx.params.get("project_dir") if ctx is not None else None) or ".")
    try:
        nodes = json.loads((folder / "target" / "manifest.json").read_text(encoding="utf-8")).get("nodes")
    except (OSError, ValueError, AttributeError):
        return {}
    return nodes if isinstance(nodes, dict) else {}


def complete_node(ctx, incomplete: str) -> list[str]:
    """Node ids (and unique names) starting with what is typed."""
    nodes = _manifest_nodes(ctx)
    from collections import Counter

    names = Counter(v.get("name") for v in nodes.values() if isinstance(v, dict))
    unique = {n for n, k in names.items() if isinstance(n, str) and k == 1}
    return sorted(c for c in [*nodes, *unique] if c.startswith(incomplete))


def complete_selector(ctx, incomplete: str) -> list[str]:
    """The last term of a selector: graph operators kept, then a node, a name or a method's value."""
    head, _, word = incomplete.rpartition(" ")
    head = f"{head} " if head else ""
    ops = re.match(r"^(@|\d*\+)?", word).group(0)
    term = word[len(ops):]
    nodes = _manifest_nodes(ctx)
    pool: set[str] = set(_METHODS)
    if term.startswith("kind:"):
        pool = {f"kind:{v.get('kind')}" for v in nodes.values() if isinstance(v, dict)}
    elif term.startswith("tag:"):
        pool = {f"tag:{t}" for v in nodes.values() if isinstance(v, dict) for t in v.get("tags") or []}
    elif term.startswith("state:"):
        pool = {f"state:{s}" for s in ("new", "modified", "modified.body", "modified.data", "modified.metadata")}
    elif term.startswith("result:"):
        pool = {f"result:{s}" for s in ("success", "failed", "skipped", "cancelled")}
    else:
        pool |= set(complete_node(ctx, term))
    return sorted(f"{head}{ops}{c}" for c in pool if c.startswith(term))
