"""Running a fan-out: one node of the DAG, many tracked instances (``foreach`` / ``matrix``).

The scheduler and the rebuilder see one node (``task.process``).  When it runs, its build
expands the items (seekrun/parser/fanout.py) and runs each instance ``task.process[us-east]``
with the kind's own build, on threads inside the build, at most ``max_concurrent`` at once
(default: all of them, up to 8), every process through the run's ProcessRunner (Ctrl-C and
timeouts stop every instance).

- **Tracked instances.** ``<target>/state/instances/<node id>.json`` keeps, by instance key,
  ``{hash, status, value, exit_code, output_hash, files}``.  An instance's hash is its node's
  build hash without the item list (``fanout.base``), its inputs' output hashes (not that of an
  input read only as the list: the item stands for it) and its item (and its index, when the
  node reads ``${ITEM_INDEX}``).  An instance whose hash matches a successful trace, and whose
  files are still what it wrote, is not run again: adding one item runs only that item;
  removing one drops its trace and its place in the collected outputs (its files are left where
  they are, as a removed task's are).  A failed instance fails the node; the others still finish
  and are recorded, so the next run (or a retry) redoes only the failed ones.
- **What dependents see.** The node's value is ``{"summary": {total, succeeded, failed,
  skipped}, "results": [{key, item, status, output}], "outputs": [output, ...]}``
  (``${MAP_RESULTS.outputs}``: the JSON list of the instances' outputs).  Its output hash is
  the hash of the instances' outputs in order: an unchanged result leaves dependents cached.
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seekrun.hashing import hash_parts
from seekrun.kinds.base import BuildResult, NodeFailure
from seekrun.parser.fanout import DEFAULT_CONCURRENCY, instance_id, instance_params  # noqa: F401 (instance_id: re-exported)

TRACE_VERSION = 1


class FanoutFailure(NodeFailure):
    """Some instances failed (``instances``: key -> status, for the run results)."""

    def __init__(self, message: str, exit_code: int | None, instances: dict[str, str], timed_out: bool = False):
        super().__init__(message, exit_code=exit_code, timed_out=timed_out)
        self.instances = instances


def trace_path(ctx, nid: str) -> Path:
    target = getattr(ctx, "target_dir", None) or Path(ctx.root) / "target"
    return Path(target) / "state" / "instances" / f"{nid}.json"


def load_traces(path: Path) -> dict[str, dict]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != TRACE_VERSION or not isinstance(data.get("instances"), dict):
        return {}
    return {k: v for k, v in data["instances"].items() if isinstance(v, dict)}


def default_node(node: dict, inst: dict, ctx=None) -> dict:
    """The instance as a node: its id, and ``instance`` = {key, item, index, params} (the params
    an instance adds: ITEM, ITEM_INDEX, matrix)."""
    return {**node, "id": instance_id(node["id"], inst["key"]), "fanout": None,
            "instance": {**inst, "params": instance_params(inst)}}


def _base(node: dict, ctx) -> str:
    sp = node["fanout"]
    upstream = getattr(ctx, "upstream", None) or {}
    skip = None
    if sp.get("source_only"):  # the list came from this input's value: each instance's item stands for it
        producer = (node.get("consumes") or {}).get(sp.get("source"))
        nodes = getattr(ctx, "nodes", None) or {}
        if producer and not (nodes.get(producer) or {}).get("output_files"):
            skip = producer
    parts = [f"{p}={(rec or {}).get('output_hash')}" for p, rec in sorted(upstream.items()) if p != skip]
    return hash_parts("instance", sp.get("base"), *parts)


def _files_now(root: Path, files) -> dict[str, str | None]:
    from seekrun.outputs import content_digest

    out: dict[str, str | None] = {}
    for rel in files or []:
        try:
            out[rel] = content_digest(root / rel)
        except OSError:
            out[rel] = None
    return out


class _InstanceContext:
    """The node's build context as one instance sees it: SQL serialised (one cursor for all of
    them), the node's timeout counted from the node's start."""

    def __init__(self, ctx, lock: threading.Lock, deadline: float | None):
        self._ctx, self._lock, self._deadline = ctx, lock, deadline

    def __getattr__(self, name):
        return getattr(self._ctx, name)

    @property
    def timeout(self):
        if self._deadline is None:
            return None
        return max(0.01, self._deadline - time.monotonic())

    def execute(self, sql: str, params: list | None = None):
        with self._lock:
            return self._ctx.execute(sql, params)


def run_instances(node: dict, ctx, instances: list[dict], build_one, *, make_node=default_node,
                  check=None) -> BuildResult:
    """Run the instances of a fan-out node; ``build_one(instance_node, ctx) -> BuildResult`` is
    the kind's own build, ``make_node(node, inst, ctx)`` the instance as a node (NodeFailure: that
    instance fails), ``check(instance_node, ctx)`` -> None or why it is skipped (its own
    preconditions)."""
    nid, sp = node["id"], node["fanout"]
    listed = json.dumps([[i["key"], i["item"]] for i in instances])
    if ctx.redact(listed) != listed:  # an item made of an env_var() value: never stored, never run
        raise NodeFailure(f"{nid}: its items hold a secret (an env_var() value), which seekrun never stores: "
                          "fan out over references to it instead (names, paths)")
    root = Path(ctx.root)
    path = trace_path(ctx, nid)
    old = load_traces(path)
    reuse = not node.get("always") and not getattr(ctx, "full", False)
    base = _base(node, ctx)
    started = time.monotonic()
    timeout = getattr(ctx, "timeout", None)
    deadline = None if timeout is None else started + timeout
    sub_ctx = _InstanceContext(ctx, threading.Lock(), deadline)
    plan: list[tuple[dict, str, dict | None]] = []  # (instance, hash, its trace if unchanged)
    for inst in instances:
        h = hash_parts(base, inst["key"], json.dumps(inst["item"], sort_keys=True),
                       str(inst["index"]) if sp.get("uses_index") else None)
        prev = old.get(inst["key"])
        keep = (prev if reuse and prev and prev.get("status") == "success" and prev.get("hash") == h
                and _files_now(root, prev.get("files")) == prev.get("files") else None)
        plan.append((inst, h, keep))
    done: dict[str, dict] = {}
    errors: dict[str, tuple[str, int | None, bool]] = {}

    def one(inst: dict, h: str) -> None:
        key = inst["key"]
        try:
            inode = make_node(node, inst, ctx)
            why = check(inode, sub_ctx) if check is not None else None
            if why is not None:
                done[key] = {"hash": h, "status": "skipped", "value": None, "exit_code": None,
                             "output_hash": None, "files": {}, "error": why}
                return
            result = build_one(inode, sub_ctx)
        except NodeFailure as exc:
            code = getattr(exc, "exit_code", None)
            errors[key] = (str(exc), code, bool(getattr(exc, "timed_out", False)))
            done[key] = {"hash": h, "status": "failed", "value": None, "exit_code": code, "output_hash": None,
                         "files": {}, "error": ctx.redact(str(exc))}
            return
        done[key] = {"hash": h, "status": "success", "value": result.value, "exit_code": result.exit_code,
                     "output_hash": result.data_hash, "files": _files_now(root, inode.get("output_files"))}

    to_run = [(inst, h) for inst, h, keep in plan if keep is None]
    limit = min(sp.get("max_concurrent") or DEFAULT_CONCURRENCY, max(1, len(to_run)))
    try:
        if to_run:
            with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"fanout-{nid}") as pool:
                for fut in [pool.submit(one, inst, h) for inst, h in to_run]:
                    fut.result()
    finally:
        traces = {}
        for inst, h, keep in plan:  # removed items are not carried over
            rec = keep if keep is not None else done.get(inst["key"])
            if rec is not None:
                traces[inst["key"]] = rec
        from seekrun.fsutil import atomic_write_json

        atomic_write_json(path, {"version": TRACE_VERSION, "node": nid, "instances": traces}, indent=1)
    statuses = {inst["key"]: ("cached" if keep is not None else done[inst["key"]]["status"])
                for inst, h, keep in plan}
    if errors:
        first = next(k for k in statuses if k in errors)
        message, code, timed_out = errors[first]
        failed = [k for k in statuses if k in errors]
        raise FanoutFailure(f"{len(failed)} of {len(plan)} instances failed ({', '.join(failed[:5])}"
                            f"{', ...' if len(failed) > 5 else ''}): {message}", code, statuses, timed_out)
    results, outputs, parts = [], [], []
    child = (node.get("task") or {}).get("mode") == "dag"  # a child DAG per item: its result is an object
    for inst, h, keep in plan:
        rec = keep if keep is not None else done[inst["key"]]
        got = _child_result(rec.get("value")) if child else rec.get("value")
        # as a clean build would give it: an unchanged instance is a success it had before
        results.append({"key": inst["key"], "item": inst["item"], "status": rec["status"], "output": got})
        if rec["status"] == "success":
            outputs.append(got.get("outputs") if child and isinstance(got, dict) else got)  # Dagu's parallel outputs
        parts += [inst["key"], json.dumps(inst["item"], sort_keys=True), rec["status"], rec.get("output_hash")]
    counts = list(statuses.values())
    value = json.dumps({"summary": {"total": len(plan), "succeeded": counts.count("success") + counts.count("cached"),
                                    "failed": counts.count("failed"), "skipped": counts.count("skipped")},
                        "results": results, "outputs": outputs})
    out = BuildResult(rows=None, data_hash=hash_parts("fanout", *parts))
    out.value = value
    out.exit_code = 0
    out.instances = statuses
    return out


# ---- tasks ---------------------------------------------------------------------------------
def build_task(node: dict, ctx) -> BuildResult:
    """A fan-out task's build: its items from its list (``${VAR}``: a param, a value an input
    task captured, the environment), each instance run by the task build."""
    from seekrun import values
    from seekrun.kinds import task_run
    from seekrun.parser import fanout

    nid, task = node["id"], node["task"]
    params = {k: ctx.value(v) for k, v in task["params"].items()}
    env = {k: ctx.value(v) for k, v in task["env"].items()}
    lookup = task_run.lookup_for(node, getattr(ctx, "upstream", None) or {}, env, {}, params=params)
    try:
        instances = fanout.items(node["fanout"], lookup)
    except fanout.BadItems as exc:
        raise NodeFailure(ctx.redact(f"{nid}: its items: {exc}")) from None
    except values.UnknownValue as exc:
        raise NodeFailure(f"{nid}: '${{{exc.name}}}' (its list of items) has no value now") from None
    pres = node["fanout"].get("preconditions")
    return run_instances(node, ctx, instances, task_run.build, make_node=task_instance,
                         check=_instance_check if pres else None)


def task_instance(node: dict, inst: dict, ctx) -> dict:
    """One instance of a fan-out task: the item in its params, its own dir and outputs."""
    from seekrun.kinds.task import resolve_paths
    from seekrun.kinds.task_fanout import instance_task

    out = default_node(node, inst)
    sub = instance_task(node["task"], out["instance"]["params"])
    sub["dir"], files, problems = resolve_paths(sub, Path(ctx.root))
    if problems:
        raise NodeFailure(f"{out['id']}: {problems[0][1]}")
    out.update(task=sub, output_files=files, preconditions=node["fanout"].get("preconditions"))
    return out


def _instance_check(inode: dict, ctx) -> str | None:
    from seekrun.conditions import Commands, unmet

    which = unmet(inode, Path(ctx.root), None, Commands(), getattr(ctx, "upstream", None))
    return None if which is None else f"precondition not met: {which}"


def _child_result(value):
    """A child DAG's result ({name, params, status, outputs}) as an object, not JSON text."""
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return value
