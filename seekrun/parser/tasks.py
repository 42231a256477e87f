"""Tasks in the whole project, on every parse (after the cached per-file records):

- **Files as outputs feed nodes.** A file source whose ``table:`` (or a task whose ``files:``)
  matches a task's ``outputs`` gets that task as an input: ``task -> source -> transform``
  needs no wiring.  A task whose ``files:`` match a file another node writes (an exposure's
  export it uploads) gets that node as an input too.  Those files (``fed_files``) are not hashed at parse (the task writes them
  during the run: its output hash is their content), and are not checked before the run.
- **Late values.** ``${NAME}`` a task's params and env do not give is an input's path
  (``${inputs.0}``), an upstream task's ``${name.status}`` / ``${name.exit_code}``, a value an
  input task captures (``output: NAME``), or an environment variable (whose value is hashed,
  keyed, so changing it reruns the task).  Anything else is an error naming the node and field.

Records are copied before they change: the parse cache holds the originals.
"""
from __future__ import annotations

import os
from fnmatch import fnmatchcase

from seekrun.errors import Diagnostic
from seekrun.hashing import hash_obj
from seekrun.parser.kinds import TABLELESS_KINDS

# ${step.status}, ${step.exit_code}; Dagu's ${step.exitCode}, ${step.stdout} (its log file) and
# ${step.output} (its captured value)
STATUS_KEYS = ("status", "exit_code", "exitCode", "stdout", "output")
from seekrun.kinds.task import CONTEXT_VARS, DAG_VARS  # noqa: E402 (light: no engine)


def link(records: dict[str, dict], errors: list[Diagnostic], root, run_params: dict | None = None,
         project_env: dict | None = None) -> None:
    """``run_params``: this run's params (``${DAY}``); ``project_env``: env: and dotenv: values."""
    run_params, project_env = run_params or {}, project_env or {}
    tasks = {nid: rec for nid, rec in records.items() if rec.get("task")}
    users = [nid for nid, rec in records.items() if rec.get("uses_outputs")]
    if users:
        _sql_values(records, tasks, users, errors)
    if not tasks:
        return
    _paths(records, tasks, errors, root, run_params, project_env)
    _feed(records, tasks, root)
    _late_values(records, tasks, errors, run_params, project_env)
    from seekrun.kinds.task import ALWAYS_UNDECLARED

    for nid, rec in tasks.items():
        rec = records[nid]
        if not (rec["task"]["declares"] or rec.get("consumes") or rec.get("reads_status") or rec.get("fed_files")
                or rec.get("always")):  # a run param it reads is no declared input (a Dagu step's ${DAY})
            records[nid] = {**rec, "always": ALWAYS_UNDECLARED}


def _paths(records: dict[str, dict], tasks: dict[str, dict], errors, root, run_params, project_env) -> None:
    """dir and outputs that take a value from the environment: worked out again on this parse
    (the cached record has the value of the parse that read the file), the value hashed."""
    from seekrun.kinds.task import resolve_paths

    for nid, rec in tasks.items():
        if not rec["task"].get("path_env"):
            continue
        task = dict(rec["task"])
        task["dir"], outputs, problems = resolve_paths(task, root, (run_params, project_env))
        for path, message in problems:
            errors.append(Diagnostic(rec["file"], rec.get("task_lines", {}).get(path[0]) or rec["line"],
                                     f"{nid}: {message}"))
        plain = [n for n in task["path_env"] if n not in run_params and n not in project_env]
        new = {**rec, "task": task, "output_files": outputs,
               "env_plain": sorted({*rec.get("env_plain", ()), *plain})}
        new["output_lines"] = {f: (rec.get("output_lines") or {}).get(f) for f in outputs}
        records[nid] = tasks[nid] = new


def matches(pattern: str, rel: str) -> bool:
    """Whether a project-relative path matches a glob as glob.glob would: ``*`` and ``?`` stay
    within one folder, ``**`` spans any number of them."""
    if "**" in pattern:
        return fnmatchcase(rel, pattern.replace("**/", "*").replace("**", "*"))
    parts, names = pattern.split("/"), rel.split("/")
    return len(parts) == len(names) and all(fnmatchcase(n, p) for p, n in zip(parts, names))


def normalise(pattern: str, root) -> str:
    """A pattern as outputs are written: project-relative, normalised."""
    if os.path.isabs(pattern):
        try:
            pattern = os.path.relpath(pattern, str(root))
        except ValueError:
            return pattern
    return os.path.normpath(pattern).replace(os.sep, "/")


def _patterns(rec: dict) -> list[str]:
    from seekrun.kinds.source import READERS  # the file formats seekrun reads

    if rec["kind"] == "source" and not rec.get("python") and rec.get("source_format") in READERS \
            and isinstance(rec.get("table"), str):
        return [rec["table"]]
    if rec.get("task"):
        return list(rec["task"]["files"])
    return []


def _feed(records: dict[str, dict], tasks: dict[str, dict], root) -> None:
    # a task's outputs feed sources and tasks; a task is also fed by the files other nodes
    # write (an exposure's export it uploads)
    by_tasks = {f: nid for nid, rec in tasks.items() for f in rec.get("output_files") or []}
    by_any = {f: nid for nid, rec in records.items() for f in rec.get("output_files") or []}
    if not by_any:
        return
    for nid in sorted(records):
        rec = records[nid]
        writers = by_any if rec.get("task") else by_tasks
        fed: list[str] = []
        for pattern in _patterns(rec):
            rel = normalise(pattern, root)
            if any(ch in rel for ch in "*?["):
                fed += [f for f in writers if matches(rel, f)]
            elif rel in writers:
                fed.append(rel)
        producers = sorted({writers[f] for f in fed} - {nid})  # its own outputs: never what it reads
        if not producers:
            continue
        new = dict(rec)
        added = [p for p in producers if p not in rec["inputs"]]
        new["inputs"] = [*rec["inputs"], *added]
        new["input_lines"] = [*rec["input_lines"], *[rec.get("table_line") or rec["line"]] * len(added)]
        new["fed_files"] = sorted(dict.fromkeys(f for f in fed if writers[f] != nid))
        new["field_hashes"] = {**rec["field_hashes"], "fed_by": hash_obj(producers)}
        records[nid] = new
        if nid in tasks:
            tasks[nid] = new


def _producers(tasks: dict[str, dict]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for nid, rec in tasks.items():
        if rec["task"].get("output"):
            out.setdefault(rec["task"]["output"], []).append(nid)
    return out


def _sql_values(records: dict[str, dict], tasks: dict[str, dict], users: list[str], errors) -> None:
    """{{ output('NAME') }} in a SQL node: the value of an input task that captures NAME."""
    producers = _producers(tasks)
    for nid in sorted(users):
        rec = records[nid]
        consumes = {}
        for name in rec["uses_outputs"]:
            mine = [p for p in producers.get(name, ()) if p in rec["inputs"]]
            line = rec.get("sql_line") or rec["line"]
            if len(mine) == 1:
                consumes[name] = mine[0]
            elif mine:
                errors.append(Diagnostic(rec["file"], line, f"{nid}: {' and '.join(mine)} both capture {name}: "
                                                            "rename one output"))
            elif producers.get(name):
                errors.append(Diagnostic(rec["file"], line, f"{nid}: output('{name}') is the output of "
                    f"{producers[name][0]}, which is not an input of {nid}: add it to inputs or depends_on"))
            else:
                errors.append(Diagnostic(rec["file"], line, f"{nid}: output('{name}'): no task captures {name} "
                                                            "(a task's 'output: NAME')"))
        records[nid] = {**rec, "consumes": consumes,
                        "field_hashes": {**rec["field_hashes"], "consumes": hash_obj(consumes)}}


def _late_values(records: dict[str, dict], tasks: dict[str, dict], errors: list[Diagnostic], run_params: dict,
                 project_env: dict) -> None:
    by_name = {rec["name"]: nid for nid, rec in tasks.items()}
    producers = _producers(tasks)
    for nid in sorted(tasks):
        rec = tasks[nid]
        late = rec["task"].get("late") or {}
        if not late:
            continue
        params_used: dict[str, str] = {}  # run params it reads (${DAY}), and where: hashed unless
        hashed: dict[str, str] = {}  # only a precondition reads one (run controls are never hashed)
        parents = set(rec["inputs"])
        seen_above: set[str] | None = None  # its ancestors, worked out only if a name needs them
        added: list[str] = []  # ancestors whose value or status it reads: made inputs (a change reruns it)

        def above(other: str) -> bool:
            """Whether other is upstream of this node (Dagu steps read any earlier step's value)."""
            nonlocal seen_above
            if seen_above is None:
                seen_above, stack = set(), list(rec["inputs"])
                while stack:
                    p = stack.pop()
                    if p not in seen_above:
                        seen_above.add(p)
                        stack.extend((records.get(p) or {}).get("inputs") or ())
            if other in seen_above:
                parents.add(other)
                added.append(other)
                return True
            return False
        consumes: dict[str, str] = {}
        plain: list[str] = []
        status = False
        for name, entry in late.items():
            parts = name.split(".")
            head = parts[0]
            field = str(entry["path"][0])
            problem = None
            if head in run_params:  # after its own params and env: a run param, then the project env
                params_used[head] = run_params[head]
                if field != "preconditions":
                    hashed[head] = run_params[head]
            elif head in project_env:
                pass  # every task's hash has the project env's values
            elif head == "inputs":
                passed = rec["task"].get("passed", rec["inputs"])
                if len(parts) < 2 or not parts[1].isdigit() or int(parts[1]) >= len(passed):
                    problem = (f"'${{{name}}}' in {field}: the task has {len(passed)} input(s) "
                               f"(${{inputs.0}}..): check the index")
                elif records.get(passed[int(parts[1])], {}).get("kind") in TABLELESS_KINDS:
                    other = records[passed[int(parts[1])]]
                    problem = (f"'${{{name}}}' in {field}: input {other['id']} is {'an' if other['kind'][0] in 'aeiou' else 'a'} "
                               f"{other['kind']}, which has no table to pass: use the files it writes "
                               f"(files: [...]){', or its output value' if other.get('task') else ''}")
            elif len(parts) == 2 and parts[1] in STATUS_KEYS and head in by_name:
                status = True
                if by_name[head] not in parents and not above(by_name[head]):
                    problem = (f"'${{{name}}}' in {field}: {by_name[head]} is not an input of {nid}: "
                               f"add it to depends_on")
            elif head in producers:
                mine = [p for p in producers[head] if p in parents] or [p for p in producers[head] if above(p)]
                if len(mine) == 1:
                    consumes[head] = mine[0]
                elif mine:
                    problem = (f"'${{{name}}}' in {field}: {' and '.join(mine)} both capture {head}: "
                               "rename one output")
                else:
                    problem = (f"'${{{name}}}' in {field} is the output of {producers[head][0]}, which is not "
                               f"an input of {nid}: add it to inputs or depends_on")
            elif head in DAG_VARS or head in CONTEXT_VARS:
                pass  # the run's own values (${DAG_RUN_ID}...), filled in when the step runs
            elif head in os.environ or entry["default"]:
                plain.append(head)  # its value (or that it is unset: the default) is hashed
            else:
                problem = (f"'${{{name}}}' in {field} has no value: add it to params or env, or set the "
                           f"environment variable (write $${{{name}}} for a literal)")
            if problem:
                errors.append(Diagnostic(rec["file"], rec.get("task_lines", {}).get(field) or rec["line"],
                                         f"{nid}: {problem}"))
        if added:
            more = [a for a in dict.fromkeys(added) if a not in rec["inputs"]]
            rec = tasks[nid] = records[nid] = {
                **rec, "inputs": [*rec["inputs"], *more],
                "input_lines": [*rec["input_lines"], *[rec["line"]] * len(more)]}
        if params_used:
            rec = tasks[nid] = records[nid] = {
                **rec, "run_params": dict(sorted(params_used.items())),
                "field_hashes": {**rec["field_hashes"], **({"run_params": dict(sorted(hashed.items()))}
                                                           if hashed else {})}}
        if consumes or plain or status:
            new = dict(rec)
            new["consumes"] = consumes
            new["env_plain"] = sorted({*rec.get("env_plain", ()), *plain})
            new["reads_status"] = status
            # which task gives which value is part of what it is built from
            new["field_hashes"] = {**rec["field_hashes"], "consumes": hash_obj(consumes)}
            records[nid] = new
