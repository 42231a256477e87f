"""A task's build: its inputs exported, its values filled in, its program run, its outputs checked.

- Each table input (``inputs:``) is written to ``target/tasks/<node>/input_<i>.parquet``, only
  now (the task runs), and its path is in ``SEEKRUN_INPUT_<i>`` and ``${inputs.<i>}``.
- ``${NAME}``: params, env, the run params it uses (``--param``), the project env (env:,
  dotenv:), a value an input task captured, an input path, an upstream task's ``status`` /
  ``exit_code``, then the environment (seekrun/values.py).
- The environment: the caller's, the project env, the run params it uses, the node's ``env``,
  then SEEKRUN_PROJECT_DIR,
  SEEKRUN_TARGET_DIR, SEEKRUN_NODE, SEEKRUN_RUN_ID and the input paths.
- Outputs there before are copied aside first and put back if the run fails or is stopped:
  the last good output is kept.  A declared output that was not written fails the task.
- The output hash is the content of the outputs and of the captured value: byte-identical
  outputs leave dependents cached.
"""
from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

from seekrun import values
from seekrun.kinds.base import BuildResult, NodeFailure, table_name


# ${step.<key>}: what of an upstream step's record it reads (Dagu's spellings too)
STEP_KEYS = {"status": "status", "exit_code": "exit_code", "exitCode": "exit_code", "stdout": "log",
             "output": "value"}
MAX_VALUE = 1 << 20  # bytes of a captured value (it lives in the state, and in every consumer's command)


class TaskFailure(NodeFailure):
    def __init__(self, message: str, exit_code: int | None = None, timed_out: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.timed_out = timed_out


def command_line(node: dict, lookup, fill=lambda text: text, root: Path | None = None) -> list[str]:
    """The argv that runs: a string under /bin/sh -c, a list as it is, a script under its shell."""
    task = node["task"]
    if task["mode"] == "python":
        script = task.get("script") or task["text"]
        return [sys.executable, str(Path(root) / script) if root is not None else script]
    if task["argv"] is not None:
        return [values.expand(fill(a), lookup) for a in task["argv"]]
    text = values.expand(fill(task["text"]), lookup, shell=True)
    if task["mode"] == "command":
        return ["/bin/sh", "-c", text]
    return [*shlex.split(task["shell"]), "-c", text]


def forget_compiled(root: Path, rels) -> None:
    """Remove the cached compiles (__pycache__) of the project modules a Python script task
    imports, before it runs: Python trusts one whose source has the same size and mtime
    second, so a same-size edit within a second would run the old module under the new hash."""
    from importlib.util import cache_from_source

    for rel in rels:
        if rel.endswith(".py"):
            try:
                os.unlink(cache_from_source(str(Path(root) / rel)))
            except (OSError, NotImplementedError, ValueError):
                pass


def shown(argv: list[str]) -> str:
    """The command as a person would type it."""
    if len(argv) == 3 and argv[:2] == ["/bin/sh", "-c"]:
        return argv[2]
    return shlex.join(argv)


def lookup_for(node: dict, upstream: dict[str, dict], env: dict[str, str], inputs: dict[int, str],
               environ=os.environ, params: dict[str, str] | None = None, project_env: dict | None = None):
    """name -> value, in the documented order (``params``: the node's, env_var() values in)."""
    task = dict(node["task"])
    run_params = node.get("run_params") or {}
    project_env = project_env or {}
    if params is not None:
        task["params"] = params
    consumes = node.get("consumes") or {}
    names = {}
    for nid in upstream:
        names[nid.partition(".")[2]] = nid

    def lookup(name: str) -> str | None:
        if name in task["params"]:
            return task["params"][name]
        if name in env:
            return env[name]
        if name in run_params:
            return run_params[name]
        if name in project_env:
            return project_env[name]
        if name in consumes:
            return str((upstream.get(consumes[name]) or {}).get("value") or "")
        head, _, key = name.partition(".")
        if head == "inputs" and key.isdigit():
            return inputs.get(int(key))
        if key in STEP_KEYS and head in names:
            rec = upstream.get(names[head]) or {}
            value = rec.get(STEP_KEYS[key])
            return "" if value is None else str(value)
        return environ.get(name)
    return lookup


def preview(node: dict, root: Path, records: dict[str, dict]) -> str:
    """The command as it would run now (for --dry-run and show): values filled in from the state
    (an upstream task's last value), env_var() values in and then redacted."""
    from seekrun import secrets
    from seekrun.parser.templating import TemplateError, substitute_env

    found: list[str] = []

    def fill(text: str) -> str:
        try:
            text, got = substitute_env(text, sql=False)
        except TemplateError:
            return text
        found.extend(got)
        return text
    task, nid = node["task"], node["id"]
    inputs = {i: str(Path(root) / "target" / "tasks" / nid / f"input_{i}.parquet")
              for i, ref in enumerate(task.get("passed") or []) if not (records.get(ref) or {}).get("process_outputs")
              and not ref.startswith("task.")}
    upstream = {}
    for p in node["inputs"]:
        rec = records.get(p) or {}
        upstream[p] = {"status": rec.get("status") or "pending", "exit_code": rec.get("exit_code"),
                       "value": rec.get("value") or ""}
    env = {k: fill(v) for k, v in task["env"].items()}
    params = {k: fill(v) for k, v in task["params"].items()}
    from seekrun.params import env_of

    project_env = env_of(root)

    def per_item(lookup):  # a fan-out: ${ITEM} and the like are each instance's, shown as written
        if not node.get("fanout"):
            return lookup
        from seekrun.parser.fanout import known

        return lambda name: "${" + name + "}" if known(node["fanout"], name) else lookup(name)
    try:
        lookup = per_item(lookup_for(node, upstream, {}, inputs, params=params, project_env=project_env))
        env = {k: values.expand(v, lookup) for k, v in env.items()}
        lookup = per_item(lookup_for(node, upstream, env, inputs, params=params, project_env=project_env))
        if task["mode"] == "dag":  # its child run, with its params
            def now(text: str) -> str:
                try:
                    return values.expand(text, lookup)
                except values.UnknownValue:
                    return text
            text = shlex.join(["seekrun", "run", now(task["run"]),
                               *(f"{k}={now(v)}" for k, v in task["child_params"].items())])
            if "${" in task["run"]:
                text += f"  (the DAG {task['run']} names is resolved when the node runs)"
        else:
            text = shown(command_line(node, lookup, fill, root))
    except values.UnknownValue as exc:
        text = f"(cannot be worked out now: '${{{exc.name}}}' has no value)"
    return secrets.redact(text, found)


def build(node: dict, ctx) -> BuildResult:
    import time

    started = time.monotonic()
    task, nid, root = node["task"], node["id"], Path(ctx.root)
    target = Path(getattr(ctx, "target_dir", None) or root / "target")
    work = target / "tasks" / nid
    inputs = _export_inputs(node, ctx, work)
    env_values = {k: ctx.value(v) for k, v in task["env"].items()}  # env_var() values: secrets
    params = {k: ctx.value(v) for k, v in task["params"].items()}
    upstream = getattr(ctx, "upstream", None) or {}
    from seekrun.params import env_of

    project_env = env_of(root)
    run_id = str(getattr(ctx, "run_id", "") or "")
    from seekrun.history import log_path

    log = log_path(target, run_id, nid)  # target/runs/<run_id>/logs/<nid>.log
    outputs_file = work / "dag_run_output"
    # what Dagu gives a step (DAG_RUN_OUTPUT_FILE: key=value lines become the DAG's outputs): this
    # run's, in ${DAG_NAME} too (never a parent DAG's, inherited through the environment)
    context = dict(DAG_NAME=str(getattr(ctx, "dag_name", "") or ""), DAG_RUN_ID=run_id,
                   DAG_RUN_STEP_NAME=node["name"], DAG_RUN_LOG_FILE=str(log), DAG_RUN_OUTPUT_FILE=str(outputs_file),
                   SEEKRUN_PROJECT_DIR=str(root), SEEKRUN_TARGET_DIR=str(target), SEEKRUN_NODE=nid,
                   SEEKRUN_RUN_ID=run_id)
    lookup = lookup_for(node, upstream, context, inputs, params=params, project_env=project_env)
    try:
        env_values = {k: values.expand(v, lookup) for k, v in env_values.items()}
        lookup = lookup_for(node, upstream, {**context, **env_values}, inputs, params=params,
                            project_env=project_env)
        if task["mode"] != "dag":
            argv = command_line(node, lookup, ctx.value, root)
        if task["mode"] == "python":
            forget_compiled(root, (node.get("live_files") or [])[1:])
    except values.UnknownValue as exc:
        raise NodeFailure(f"{nid}: '${{{exc.name}}}' has no value now (it was set when the project was parsed)")
    env = dict(os.environ)
    env.update(project_env)  # env: over dotenv: over the process environment
    env.update(node.get("run_params") or {})  # the run params it uses are exported too (as Dagu does)
    env.update(env_values)
    env.update(context)
    for i, path in inputs.items():
        env[f"SEEKRUN_INPUT_{i}"] = path
    cwd = root / task["dir"] if task.get("dir") else root
    if not cwd.is_dir():
        raise TaskFailure(f"{nid}: dir '{task['dir']}' does not exist: create it (or let a task it depends on)")
    call = None
    if task["mode"] == "dag":
        from seekrun.kinds.dag_run import call_child

        argv, call = call_child(node, ctx, lookup, env, cwd, target)
    backups = _set_aside(node, root, work)
    work.mkdir(parents=True, exist_ok=True)
    outputs_file.unlink(missing_ok=True)
    runner = getattr(ctx, "processes", None)
    if runner is None:  # a build outside a run (tests, the API): a runner of its own
        from seekrun.engines.process import ProcessRunner

        runner = ProcessRunner()
    timeout = getattr(ctx, "timeout", None) or node.get("timeout")
    left = None if timeout is None else max(0.01, timeout - (time.monotonic() - started))  # export included
    done = False
    try:
        fin = runner.run(argv, cwd=cwd, env=env, log=log, timeout=left,
                         capture=bool(task.get("output")) and call is None, redact=ctx.redact)
        if call is not None:
            from seekrun.kinds.dag_run import judge_child

            value = judge_child(node, fin, call, timeout, log, root)
        else:
            _judge(node, fin, timeout, log, root)
            value = fin.stdout.strip() if task.get("output") else None
        written = read_outputs(outputs_file)
        outputs_file.unlink(missing_ok=True)  # what it wrote is in the result now (never left in target/)
        if any(ctx.redact(f"{k}={v}") != f"{k}={v}" for k, v in written.items()):
            raise TaskFailure(f"{nid}: what it wrote to $DAG_RUN_OUTPUT_FILE holds a secret (an env_var() or "
                              "dotenv value), which seekrun never stores: write a reference to it instead",
                              fin.exit_code)
        if value is not None and len(value.encode()) > MAX_VALUE:
            raise TaskFailure(f"{nid}: its output value ({task['output']}) is {len(value.encode()):,} bytes; a value is "
                              f"kept in the state, at most {MAX_VALUE:,} bytes: write it to a file (outputs:) and "
                              "print its path", fin.exit_code)
        if value is not None and ctx.redact(value) != value:
            raise TaskFailure(f"{nid}: its output value ({task['output']}) holds a secret (an env_var() value), "
                              "which seekrun never stores: print a reference to it instead (a path, a name)",
                              fin.exit_code)
        from seekrun.hashing import hash_parts
        from seekrun.outputs import content_digest

        parts = [p for rel in node.get("output_files") or [] for p in (rel, content_digest(root / rel))]
        content = hash_parts("task", *parts, "value", call.digest if call is not None else value,
                             *(f"{k}={v}" for k, v in sorted(written.items())))
        result = BuildResult(rows=None, data_hash=content)
        result.value = value
        result.exit_code = fin.exit_code
        result.outputs = written
        result.log = str(log)
        if call is not None:
            result.detail = call.detail
        done = True
        return result
    finally:
        outputs_file.unlink(missing_ok=True)
        _restore(backups, root, keep=done)
        if done:
            shutil.rmtree(work, ignore_errors=True)


def read_outputs(path: Path) -> dict[str, str]:
    """The key=value lines a step wrote to $DAG_RUN_OUTPUT_FILE (blank lines and # comments
    skipped; `export ` and quotes around a value allowed)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key.strip():
            out[key.strip()] = value
    return out


def _judge(node: dict, fin, timeout, log: Path, root: Path) -> None:
    nid = node["id"]
    rel_log = os.path.relpath(log, root)
    tail = "".join(f"\n  | {line}" for line in fin.tail)
    if fin.error is not None:
        raise TaskFailure(f"{nid}: {fin.error}")
    if fin.timed_out:
        from seekrun.engines.process import describe

        raise TaskFailure(f"timed out after {describe(timeout)} (log: {rel_log}){tail}", fin.exit_code, True)
    if fin.interrupted:
        raise TaskFailure(f"{nid}: stopped (log: {rel_log})", fin.exit_code)
    if fin.exit_code != 0:
        how = f"killed by signal {-fin.exit_code}" if fin.exit_code < 0 else f"exited {fin.exit_code}"
        if fin.exit_code == 127:
            how += " (command not found)"
        elif fin.exit_code == 126:
            how += " (not executable)"
        raise TaskFailure(f"{nid} {how} (log: {rel_log}){tail}", fin.exit_code)
    for rel in node.get("output_files") or []:
        if not os.path.lexists(root / rel):
            raise TaskFailure(f"{nid} exited 0 but did not write {rel}", 0)


def _export_inputs(node: dict, ctx, work: Path) -> dict[int, str]:
    out: dict[int, str] = {}
    passed = node["task"].get("passed") or []
    from seekrun.outputs import has_table

    for i, ref in enumerate(passed):
        if not has_table(ref.partition(".")[0]):
            continue
        work.mkdir(parents=True, exist_ok=True)
        path = work / f"input_{i}.parquet"
        tmp = work / f".input_{i}.parquet.tmp"
        literal = "'" + str(tmp).replace("'", "''") + "'"
        ctx.execute(f"COPY (SELECT * FROM {table_name(ref)}) TO {literal} (FORMAT parquet)")
        os.replace(tmp, path)
        out[i] = str(path)
    return out


def _set_aside(node: dict, root: Path, work: Path) -> dict[str, Path]:
    """Copies of the outputs there now (the last good ones), to put back if this run fails. A
    copy already there was left by a run killed while the task ran: it is the last good output
    (what is in place is what the killed run half wrote), so it goes back first."""
    saved: dict[str, Path] = {}
    from urllib.parse import quote

    for rel in node.get("output_files") or []:
        src = root / rel
        dst = work / "kept" / quote(rel, safe="")  # by path: the list of outputs may have changed
        if dst.is_file():
            os.replace(dst, src)
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            saved[rel] = dst
    return saved


def _restore(saved: dict[str, Path], root: Path, keep: bool) -> None:
    for rel, copy in saved.items():
        if keep:
            copy.unlink(missing_ok=True)
        else:
            os.replace(copy, root / rel)
