"""Workflow files: a YAML document with a top-level ``steps:`` list (Dagu's format), or a
``tasks:`` mapping (Python Script Runner's: seekrun/workflows/script_runner.py).

- ``find_workflow(path)``: the workflow as a seekrun Project (its folder is the root: paths in
  it are relative to the file, and steps run there; its state is ``target/<file name>/`` beside
  it, or the ``--target-dir`` a parent dag node gives).
- ``read_records(raw, rel, root, dag)``: its steps as node records (seekrun/workflows/steps.py
  translates each, seekrun/parser/records.py makes the same records as for YAML nodes).

Several documents in one file, separated by ``---``, are local DAGs: the first is the one that
runs, the others are called by name (``command: data-processor``, or ``run: file.yaml#name``).

Workflow fields: ``name``, ``description``, ``params``, ``env``, ``dotenv``, ``handlerOn``
(``success``, ``failure``, ``cancel``, ``exit``), ``maxActiveSteps``, ``timeoutSec``,
``type: chain`` (each step depends on the one before), and ``schedule``, ``queue``,
``maxActiveRuns``, accepted (seekrun does not schedule: cron or CI runs ``seekrun run FILE``).
"""
from __future__ import annotations

from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError, suggest

WORKFLOW_KEYS = ("name", "description", "params", "env", "dotenv", "handlerOn", "maxActiveSteps", "timeoutSec",
                 "max_active_nodes", "pools", "timeout",
                 "type", "schedule", "queue", "maxActiveRuns", "steps", "tags", "group", "logDir", "histRetentionDays",
                 "skipIfSuccessful", "mailOn", "delaySec", "restartWaitSec", "maxCleanUpTimeSec", "precondition",
                 "preconditions")
HANDLERS = ("success", "failure", "cancel", "exit")
IGNORED = ("queue", "maxActiveRuns", "group", "logDir", "histRetentionDays", "mailOn", "delaySec", "restartWaitSec",
           "maxCleanUpTimeSec", "tags")


def is_workflow(data) -> bool:
    """A Dagu workflow (``steps:``) or a Script Runner one (``tasks:``, seekrun/workflows/script_runner.py)."""
    from seekrun.workflows.script_runner import tasks_of

    return isinstance(data, dict) and isinstance(data.get("steps"), list) or tasks_of(data) is not None


def documents(raw: bytes, rel: str):
    from seekrun.parser.yaml_load import decode, load_documents

    text = decode(raw, rel)
    return text, [d for d in load_documents(text, rel) if d.data is not None]


def pick(docs, rel: str, dag: str | None):
    """The document that runs: the first, or the one named ``dag``."""
    flows = [d for d in docs if is_workflow(d.data)]
    if not flows:
        raise ProjectError([Diagnostic(rel, 1, "not a workflow: a workflow file has a top-level 'steps:' list "
                                               "(Dagu) or 'tasks:' mapping (Script Runner) "
                                               "(for a seekrun project, pass its folder)")])
    if not dag:
        return flows[0], flows
    named = [d for d in flows if str(d.data.get("name")) == dag]
    if not named:
        names = [str(d.data.get("name")) for d in flows if d.data.get("name")]
        raise ProjectError([Diagnostic(rel, 1, f"no DAG named '{dag}' in this file{suggest(dag, names)}: "
                                               f"it holds {', '.join(names) or 'unnamed DAGs'}")])
    return named[0], flows


def find_workflow(path: Path | str, *, target: Path | str | None = None, dag: str | None = None):
    from seekrun.parser.yaml_load import line_of
    from seekrun.project import Project, regular_file_problem

    path = Path(path).resolve()
    root = path.parent
    why = regular_file_problem(path, root) if path.exists() else "does not exist"
    if why is not None:
        raise ProjectError([Diagnostic(str(path), None, f"workflow file {why}")])
    rel = path.name
    _, docs = documents(path.read_bytes(), rel)
    doc, flows = pick(docs, rel, dag)
    from seekrun.workflows.script_runner import tasks_of, unwrap

    script_runner = tasks_of(doc.data) is not None
    cfg, node = unwrap(doc.data, doc.node) if script_runner else (doc.data, doc.node)
    errors: list[Diagnostic] = []

    def line(key):
        return line_of(node, (key,))
    line.node = node
    name = str(cfg.get("name") or (dag or path.stem))
    # target/<file name>/: never one of a project's own folders there (target/state...), nor another file's
    target_dir = Path(target).resolve() if target else root / "target" / path.name
    project = Project(root, name, "workflow", rel, [], database=str(target_dir / "seekrun.duckdb"),
                      allow_external_database=True)
    project.target = target_dir
    project.workflow = dag or ""
    project.workflow_config = {k: cfg.get(k) for k in ("params", "env", "dotenv", "maxActiveSteps") if k in cfg}
    project.workflow_lines = {k: line(k) for k in cfg}
    project.notes = []
    if script_runner:
        from seekrun.workflows.script_runner import configure

        configure(project, cfg, rel, line, errors)
    else:
        _dagu(project, cfg, rel, line, errors)
    from seekrun.parser.pools import read_limits

    read_limits(project, cfg, line, errors)  # seekrun's own max_active_nodes and pools: work here too
    n = cfg.get("maxActiveSteps")
    if n is not None and project.max_active_nodes is None and not errors:
        project.max_active_nodes = n  # Dagu's name for it
    from seekrun.project import _read_params

    _read_params(project, cfg, line, errors)  # params:, env:, dotenv: as a project file has them
    bad = [e for e in errors if e.severity != "warning"]
    if bad:
        raise ProjectError(bad)
    project.warnings = [e for e in errors if e.severity == "warning"]
    return project


def _dagu(project, cfg: dict, rel: str, line, errors: list) -> None:
    """A Dagu workflow's own top-level keys."""
    for key in cfg:
        if key not in WORKFLOW_KEYS:
            errors.append(Diagnostic(rel, line(key), f"unknown workflow key '{key}'{suggest(str(key), WORKFLOW_KEYS)}"
                                     ": remove it", "warning"))
    if cfg.get("schedule") is not None:
        project.notes.append(f"{rel}: schedule '{cfg['schedule']}' is not run by seekrun: run `seekrun run {rel}` "
                             "from cron or CI on that schedule")
    if cfg.get("type") not in (None, "chain", "graph"):
        errors.append(Diagnostic(rel, line("type"), f"type '{cfg['type']}': use chain (each step after the one "
                                                    "before) or graph (steps wait only for their depends)"))
    project.chain = cfg.get("type") == "chain"
    if cfg.get("timeoutSec") is not None:
        t = cfg["timeoutSec"]
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            errors.append(Diagnostic(rel, line("timeoutSec"), "timeoutSec must be a number of seconds above 0"))
        else:
            from seekrun.controls import format_duration

            project.timeout, project.timeout_text = float(t), format_duration(float(t))
    n = cfg.get("maxActiveSteps")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        errors.append(Diagnostic(rel, line("maxActiveSteps"), "maxActiveSteps must be a positive integer"))
    from seekrun.handlers import child_node

    project.handlers = _handlers(cfg.get("handlerOn"), rel, line("handlerOn"),
                                 child_node(getattr(line, "node", None), "handlerOn"), errors)


def _handlers(value, rel: str, line, node, errors: list) -> dict:
    from seekrun.handlers import child_node, read

    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append(Diagnostic(rel, line, "handlerOn must be a mapping: success, failure, cancel, exit"))
        return {}
    out = {}
    for key, step in value.items():
        if key not in HANDLERS:
            errors.append(Diagnostic(rel, line, f"handlerOn has no '{key}'{suggest(str(key), HANDLERS)}: use "
                                                "success, failure, cancel or exit"))
            continue
        sub = child_node(node, key)
        spec = read(step, f"handlerOn.{key}", rel, sub.start_mark.line + 1 if sub is not None else line, sub,
                    errors, dagu=True)
        if spec is not None:
            out[key] = spec
    return out


def read_records(raw: bytes, rel: str, root: Path, dag: str | None):
    """(records, errors, warnings, notes) for the steps of the workflow that runs."""
    from seekrun.parser.records import _record
    from seekrun.parser.yaml_load import Document, line_of
    from seekrun.workflows.steps import kind_of, translate

    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = []
    try:
        text, docs = documents(raw, rel)
        doc, flows = pick(docs, rel, dag)
    except ProjectError as exc:
        return [], list(exc.diagnostics), [], []
    from seekrun.workflows.script_runner import tasks_of, unwrap

    if tasks_of(doc.data) is not None:
        from seekrun.workflows import script_runner

        return script_runner.read_records(*unwrap(doc.data, doc.node), text, rel, root)
    local = {str(d.data.get("name")) for d in flows if d is not doc and d.data.get("name")}
    steps = doc.data["steps"]
    steps_node = next((v for k, v in doc.node.value if getattr(k, "value", None) == "steps"), None)
    chain = doc.data.get("type") == "chain"
    ids: dict[str, str] = {}
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        node = steps_node.value[i] if steps_node is not None and i < len(steps_node.value) else doc.node
        where = node.start_mark.line + 1
        if not isinstance(step, dict) or not isinstance(step.get("name"), str) or not step["name"].strip():
            errors.append(Diagnostic(rel, where, f"step {i + 1} needs a name: add 'name: <step name>'"))
            continue
        if step["name"] in seen:
            errors.append(Diagnostic(rel, where, f"duplicate step name '{step['name']}' (also at line "
                                                 f"{seen[step['name']]}): step names are unique in a workflow"))
            continue
        seen[step["name"]] = where
        ids[step["name"]] = f"{kind_of(step)}.{step['name']}"
    records: list[dict] = []
    previous = None
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or ids.get(step.get("name")) is None or seen.get(step["name"]) is None:
            continue
        node = steps_node.value[i] if steps_node is not None else doc.node
        if node.start_mark.line + 1 != seen[step["name"]]:
            continue  # the duplicate
        problems: list = []
        data = translate(step, ids, local,
                         previous if chain else None, problems)
        previous = step["name"]
        if data.get("kind") == "dag" and data.get("run", "").startswith("#"):
            data["run"] = rel + data["run"]
        for path, message in problems:
            errors.append(Diagnostic(rel, line_of(node, path) or node.start_mark.line + 1,
                                     f"step {step['name']}: {message}"))
        if problems:
            continue
        sub = Document(data, node, node.start_mark.line + 1, text)
        doc_errors: list[Diagnostic] = []
        rec = _record(data["kind"], data, sub, rel, doc_errors, warnings, None, root, "{{" in text)
        errors.extend(doc_errors)
        if rec is not None:
            if rec["kind"] == "task" and not (step.get("files") or step.get("outputs")) and not rec.get("always"):
                from seekrun.kinds.task import ALWAYS_UNDECLARED

                rec["always"] = ALWAYS_UNDECLARED  # a Dagu step says nothing of what it reads: it runs every run
            records.append(rec)
    return records, errors, warnings, []
