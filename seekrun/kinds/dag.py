"""dag: a node that runs another DAG, a workflow file or a seekrun project folder.

```yaml
kind: dag
name: extract_sales
run: etl/extract.yaml          # a workflow file, a folder holding a seekrun project, or ${VAR}
params: {SOURCE: sales_db, TABLE: transactions}   # or "SOURCE=sales_db TABLE=transactions"
output: SALES_DATA             # {name, params, status, outputs}, as JSON, for what reads it
```

A dag node is a task whose program is a child run (``seekrun run CHILD``, in its own process,
with its own state under ``target/dags/<child>-<hash of child and params>/``): everything a
task has (``${NAME}`` values, preconditions, retry, timeout, continue_on, ``output:``) it has
too.  It runs on every run, and the child rebuilds only what changed in it; its output hash
is the hash of the child's status and outputs, so an unchanged child result leaves the
parent's downstream cached (early cutoff).

``run:`` is relative to the project folder (in a workflow file: to that file).  A name with
``#`` picks one document of a multi-document workflow file (``all.yaml#data-processor``).
"""
from __future__ import annotations

from seekrun.kinds import task as _task

ENGINE_VERSION = 1
HAS_TABLE = False
HANDLES_PYTHON = True
ALWAYS = "runs its child DAG, which rebuilds only what changed in it"


def prepare(rec: dict, built: dict, pc) -> None:
    from seekrun.workflows.params_text import ParamsError, parse

    run = built.get("run")
    if not isinstance(run, str) or not run.strip():
        pc.error(("run",) if "run" in built else (), "a dag node names the DAG it runs: add 'run: path/to/"
                 "workflow.yaml' (or a folder holding a seekrun project)")
        return
    try:
        child = parse(built.get("params"))
    except ParamsError as exc:
        pc.error(("params",), str(exc))
        return
    if built.get("python") is not None or any(built.get(k) for k in ("command", "script")):
        pc.error(("run",), "a dag node runs its child DAG: command, script and python are for tasks")
        return
    as_task = {k: v for k, v in built.items() if k not in ("run", "params")}
    # the child's params and the run path are texts whose ${NAME}s must have values, as a command's do
    as_task["command"] = ["seekrun-dag", run, *(f"{k}={v}" for k, v in child.items())]
    _task.prepare(rec, as_task, pc)
    if "task" not in rec:
        return
    task = rec["task"]
    task.update(mode="dag", argv=None, text=None, run=run.strip(), child_params=child)
    import re

    for v in child.values():  # names in $(( )) arithmetic (OFFSET=$((OFFSET + BATCH_SIZE))) are read too
        for expr in re.findall(r"\$\(\((.*?)\)\)", v):
            for name in re.findall(r"(?<![\w$])([A-Za-z_]\w*)", expr):
                task["late"].setdefault(name, {"path": ["params"], "default": True})
    for entry in task["late"].values():  # say where a name is: the run path or the params
        if entry["path"][:1] == ["command"]:
            entry["path"] = ["run"] if entry["path"][1:] == [1] else ["params"]
    rec["task_lines"].update(run=pc.line(("run",)), params=pc.line(("params",)))
    rec["always"] = ALWAYS
    pc.fields.update(run=run.strip(), params=child)


def child_problem(root, run: str) -> str | None:
    """Why a (static) child cannot be run, or None: checked on every parse (a cached record
    does not see a child file deleted since)."""
    from seekrun.workflows.child import locate

    if "${" in run:
        return None  # resolved when the node runs
    return locate(root, run)[1]


def build(node: dict, ctx):
    from seekrun.kinds.task import build as run  # a fan-out (foreach, Dagu's parallel) too

    return run(node, ctx)


def check(node: dict, ctx) -> None:
    return None
