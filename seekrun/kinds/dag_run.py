"""A dag node's build (seekrun/kinds/dag.py): its child run, called through the task runner
(seekrun/kinds/task_run.py), so a timeout, Ctrl-C or retry stops or repeats it as any task.

The value it gives (``output: NAME``) is the JSON the seed documents show:
``{"name", "params", "status", "outputs"}``; ``status`` is ``succeeded``, ``failed`` or
``cancelled``.  A failed child fails the node, and its value still says so (a dependent that
continue_on lets run reads ``${RESULT.status}`` = failed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from seekrun import values
from seekrun.kinds.task_run import TaskFailure


@dataclass
class ChildCall:
    child: dict
    params: dict[str, str]
    target: Path
    digest: str = ""  # the child's status and outputs: the node's output hash
    detail: str = ""  # "child: 2 ran, 3 cached"
    result: dict = field(default_factory=dict)


def call_child(node: dict, ctx, lookup, env: dict, cwd: Path, target: Path) -> tuple[list[str], ChildCall]:
    from seekrun.workflows import child as children

    nid, task, root = node["id"], node["task"], Path(ctx.root)
    try:
        run = values.expand(task["run"], lookup)
        raw = {k: values.expand(v, lookup) for k, v in task["child_params"].items()}
    except values.UnknownValue as exc:
        raise TaskFailure(f"{nid}: '${{{exc.name}}}' has no value now") from None
    where, problem = children.locate(root, run)
    if problem is not None:
        raise TaskFailure(f"{nid}: {problem}")
    run_params = (ctx.nodes.get(nid) or node).get("run_params") or {}
    try:
        params = children.evaluate(raw, {**env, **run_params}, cwd)
    except ValueError as exc:
        raise TaskFailure(f"{nid}: {exc}") from None
    if any(ctx.redact(v) != v for v in params.values()):
        raise TaskFailure(f"{nid}: a param for the child holds a secret (an env_var() or dotenv value): seekrun "
                          "never passes one on a command line or stores it; let the child read it itself")
    state = children.state_dir(target, where, params)
    (state / children.RESULT_FILE).unlink(missing_ok=True)  # a child that dies early leaves none: failed
    from seekrun.kinds.task import DAG_VARS

    for name in DAG_VARS:  # the child's steps get their own
        env.pop(name, None)
    env.update(children.environment(env))
    return children.command(root, where, params, state), ChildCall(where, params, state)


def judge_child(node: dict, fin, call: ChildCall, timeout, log: Path, root: Path) -> str:
    from seekrun.kinds.task_run import _judge
    from seekrun.hashing import hash_obj
    from seekrun.workflows.child import read_result

    nid = node["id"]
    got = read_result(call.target) or {}
    status = got.get("status") or "failed"
    if fin.exit_code != 0 and status == "succeeded":
        status = "failed"
    if fin.timed_out or fin.interrupted:
        status = "cancelled"
    data = {"name": got.get("name") or Path(call.child["path"]).stem, "params": call.params, "status": status,
            "outputs": got.get("outputs") or {}}
    value = json.dumps(data, sort_keys=True)
    # what the child built (its nodes' output hashes), not only what it said: files it rewrote count
    call.digest = hash_obj([status, data["outputs"], data["params"], got.get("digest")])
    counts = got.get("counts") or {}
    call.detail = "child: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n) if counts else ""
    if fin.exit_code != 0 or fin.error is not None or fin.timed_out or fin.interrupted:
        try:
            _judge(node, fin, timeout, log, root)
        except TaskFailure as exc:
            why = got.get("error")
            message = f"{nid}: child DAG {call.child['path']} {status}" + (f": {why}" if why else "") \
                if not (fin.timed_out or fin.interrupted) else str(exc)
            if not (fin.timed_out or fin.interrupted) and not why:  # e.g. the child's errors (exit 2)
                message += f" (log: {Path(log).relative_to(root) if Path(log).is_relative_to(root) else log})"
                message += "".join(f"\n  | {line}" for line in fin.tail)
            failure = TaskFailure(message, exc.exit_code, exc.timed_out)
            failure.value = value
            raise failure from None
    return value
