"""Concurrency limits: ``max_active_nodes`` and ``pools`` in the project file, ``pool:`` and
``slots:`` on nodes (seekrun/controls.py reads those).

- ``max_active_nodes: 4`` caps the nodes running at once, of every kind (SQL nodes included):
  Dagu's ``maxActiveSteps``.
- ``pools: {api: 2, heavy: 1}`` names capped groups; a node with ``pool: api`` holds one of
  api's slots while it runs (``slots: 2``: two of them). Dagu's queues, Airflow's pools.

They say how to run the nodes, not what they build: none of it is in any node's hash, so
changing a pool's size or a node's pool rebuilds nothing. The runner reads them from the
manifest (metadata ``max_active_nodes`` and ``pools``, node ``pool`` and ``slots``) and
hands them to the scheduler as groups (``limits``) and what each node holds (``needs``).
"""
from __future__ import annotations

from typing import Any, Callable

from seekrun.errors import Diagnostic, suggest

MAX_THREADS = 64  # the default worker count follows max_active_nodes up to this (--threads: any)
ALL = "*"  # the scheduler's group for max_active_nodes: every node holds one slot of it


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def read_limits(project, cfg: dict, line: Callable[[str], int | None], errors: list[Diagnostic]) -> None:
    """``max_active_nodes`` and ``pools`` from the project file into the Project."""
    marker = project.marker
    if cfg.get("max_active_nodes") is not None:
        n = _count(cfg["max_active_nodes"])
        if n is None:
            errors.append(Diagnostic(marker, line("max_active_nodes"),
                f"max_active_nodes '{cfg['max_active_nodes']}' must be a whole number from 1: how many nodes "
                "may run at once"))
        else:
            project.max_active_nodes = n
    pools = cfg.get("pools")
    if pools is None:
        return
    shape = "pools must be a mapping of pool names to sizes, e.g. 'pools: {api: 2, heavy: 1}'"
    if not isinstance(pools, dict):
        errors.append(Diagnostic(marker, line("pools"), shape))
        return
    for name, size in pools.items():
        if not isinstance(name, str) or not name.strip() or name.startswith(ALL):
            errors.append(Diagnostic(marker, line("pools"), f"pool name '{name}' is not a name: {shape}"))
        elif _count(size) is None:
            errors.append(Diagnostic(marker, line("pools"), f"pool '{name}' has size '{size}': a pool's size "
                                     "is a whole number from 1, how many slots its nodes share"))
        else:
            project.pools[name.strip()] = size


def check_pools(records: dict[str, dict], project, errors: list[Diagnostic]) -> None:
    """Every node's pool is one the project file declares, and big enough for its slots."""
    pools = project.pools
    declared = ", ".join(f"{name} ({size})" for name, size in sorted(pools.items()))
    for nid, rec in records.items():
        pool = rec.get("pool")
        if not pool:
            continue
        where = rec.get("pool_line") or rec["line"]
        if pool not in pools:
            if pools:
                fix = f"{suggest(pool, pools)}: the project file declares {declared}; use one of those, or add "\
                      f"'{pool}: N' under pools in {project.marker}"
            else:
                fix = f": the project file declares no pools; add 'pools: {{{pool}: 2}}' to {project.marker}"
            errors.append(Diagnostic(rec["file"], where, f"{nid}: unknown pool '{pool}'{fix}"))
            continue
        slots = rec.get("slots") or 1
        if slots > pools[pool]:
            errors.append(Diagnostic(rec["file"], rec.get("slots_line") or where,
                f"{nid}: slots {slots} is more than pool '{pool}' has ({pools[pool]}): it could never run; "
                f"lower slots, or raise the pool's size in {project.marker}"))


def metadata(project) -> dict:
    """The manifest metadata for the project's limits (only what is set)."""
    out: dict[str, Any] = {}
    if project.max_active_nodes:
        out["max_active_nodes"] = project.max_active_nodes
    if project.pools:
        out["pools"] = dict(sorted(project.pools.items()))
    return out


def scheduler_limits(metadata: dict, nodes: dict[str, dict], run: list[str]
                     ) -> tuple[dict[str, int] | None, dict[str, dict[str, int]] | None]:
    """The scheduler's ``limits`` and ``needs`` for these nodes, or (None, None) without limits
    (the scheduler's fast path: no per-node work)."""
    pools = metadata.get("pools") or {}
    cap = metadata.get("max_active_nodes")
    pooled = [n for n in run if nodes[n].get("pool") in pools] if pools else []
    grouped = [n for n in run if nodes[n].get("fanout_group")]  # a table fan-out's max_concurrent
    if not cap and not pooled and not grouped:
        return None, None
    limits: dict[str, int] = dict(pools)
    needs: dict[str, dict[str, int]] = {}
    if cap:
        limits[ALL] = cap
        needs = {n: {ALL: 1} for n in run}
    for n in pooled:
        needs.setdefault(n, {})[nodes[n]["pool"]] = nodes[n].get("slots") or 1
    for n in grouped:
        group, size = nodes[n]["fanout_group"]
        key = f"{ALL}{group}"  # (a pool's name is never '*...')
        limits[key] = size
        needs.setdefault(n, {})[key] = 1
    return limits, needs


def default_threads(metadata: dict, cores_default: int) -> int:
    """Worker threads when --threads is not given: max_active_nodes (up to MAX_THREADS) when the
    project sets it (nodes held back by a cap are often tasks waiting on a process, not using a
    core), else the cores default."""
    cap = metadata.get("max_active_nodes")
    return min(cap, MAX_THREADS) if cap else cores_default
