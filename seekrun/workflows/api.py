"""The Script Runner shape of the Python API, over the path ``seekrun run FILE`` takes:

```python
from seekrun.workflows import WorkflowEngine, WorkflowParser
workflow = WorkflowParser().parse_yaml("workflow.yaml")   # ProjectError on bad input, with file and line
result = WorkflowEngine().run(workflow)
result.status            # success, failed, partial (or cancelled)
result.duration_seconds, result.completed_count, result.total_count
result.tasks             # TaskResult(name, status, duration, attempts, exit_code, error)
```

A run takes the workflow's lock and keeps its state beside the file (``target/<file name>/``),
as the command does; it prints nothing but warnings (on stderr).  ``completed_count`` counts
the tasks that succeeded or were cached; a task skipped by its condition is not completed, and
not a failure.  A matrix task is one task (its instances are in ``run_results.json``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Workflow:
    path: Path
    name: str
    version: str | None
    task_names: list[str]
    project: object = field(repr=False, default=None)  # seekrun.project.Project


@dataclass
class TaskResult:
    name: str
    status: str  # success, cached, failed, skipped
    duration: float
    attempts: int
    exit_code: int | None
    error: str | None = None
    skip: str | None = None  # why it was skipped (precondition: its condition; after_failure...)
    node_id: str = ""


@dataclass
class WorkflowResult:
    status: str
    duration_seconds: float
    completed_count: int
    total_count: int
    tasks: list[TaskResult]
    exit_code: int
    summary: object = field(repr=False, default=None)  # the run's seekrun.results.ExecutionSummary

    def task(self, name: str) -> TaskResult:
        return next(t for t in self.tasks if t.name == name)


class WorkflowParser:
    def parse_yaml(self, path) -> Workflow:
        """The workflow in a YAML file, checked as ``seekrun parse FILE`` checks it."""
        from seekrun.parser.parse import parse_project
        from seekrun.project import find_project

        project = find_project(path)
        result = parse_project(project)
        nodes = result.manifest.nodes
        data = _raw(project)
        names = [str(t) for t in data["tasks"]] if isinstance(data.get("tasks"), dict) else \
            [nid.partition(".")[2] for nid in nodes]
        return Workflow(project.root / project.marker, project.name,
                        None if data.get("version") is None else str(data["version"]), names, project)


def _raw(project) -> dict:
    from seekrun.workflows.load import documents, pick
    from seekrun.workflows.script_runner import tasks_of

    _, docs = documents((project.root / project.marker).read_bytes(), project.marker)
    doc, _ = pick(docs, project.marker, project.workflow or None)
    return tasks_of(doc.data) or doc.data


class WorkflowEngine:
    def __init__(self, *, full: bool = False, continue_on_error: bool = False, retry: int = 0,
                 threads: int | None = None):
        self.full, self.continue_on_error, self.retry, self.threads = full, continue_on_error, retry, threads

    def run(self, workflow: Workflow | str | Path, params: dict | None = None, on_event=None,
            on_runner=None) -> WorkflowResult:
        """Run it as ``seekrun run FILE`` does (what changed, under the workflow's lock)."""
        from seekrun import target
        from seekrun.cli_run import _run
        from seekrun.lock import ProjectLock
        from seekrun.project import find_project
        from seekrun.state import StateStore

        self.last = workflow  # stream_events() with no argument streams it again
        path = workflow.path if isinstance(workflow, Workflow) else Path(workflow)
        project = find_project(path)  # read again: the file may have changed since it was parsed
        target.check(project.root, project.database_path, writes=True)
        with ProjectLock(project.target_dir, wait=None):
            summary = _run(project, dry_run=False, full=self.full, types=None, nodes=None, tags=None,
                           exclude_tags=None, continue_on_error=self.continue_on_error, retry=self.retry,
                           threads=self.threads, strict=False, as_json=True, project_dir=project.root,
                           allow_removals=False, params=params or {}, on_event=on_event, on_runner=on_runner)
        state = StateStore(project.state_dir).load(repair=False)
        tasks = []
        for r in summary.results:
            ran = r.status.value in ("success", "failed")
            code = (state.get(r.node_id) or {}).get("exit_code") if ran else None
            tasks.append(TaskResult(r.node_id.partition(".")[2], r.status.value, r.duration, r.attempts, code,
                                    r.error, r.skip, r.node_id))
        done = sum(t.status in ("success", "cached") for t in tasks)
        return WorkflowResult(summary.status, round(summary.total_duration, 6), done, len(tasks), tasks,
                              summary.exit_code, summary)

    def stream_events(self, workflow: Workflow | str | Path | None = None, params: dict | None = None):
        """Run it (by default the workflow last run) in a thread and yield TaskEvents as its tasks
        start and end (``task_started``, ``task_completed``, ``task_failed``, ``task_skipped``);
        the result is ``self.result`` afterwards.  Leaving the loop early cancels the run, as
        Ctrl-C does."""
        if workflow is None:
            workflow = getattr(self, "last", None)
            if workflow is None:
                raise ValueError("stream_events() streams a run: give the workflow "
                                 "(engine.stream_events(workflow)), or run one first")
        from seekrun.events import NodeFinished, NodeSkipped, NodeStarted, in_thread

        runners: list = []

        def work(put):
            def hear(event) -> None:
                nid = getattr(event, "node_id", "")
                if nid.startswith("handler."):
                    return  # (a Dagu file's handlerOn: not a task)
                name = nid.partition(".")[2]
                if isinstance(event, NodeStarted):
                    put(TaskEvent("task_started", name, None, None, event.node_id))
                elif isinstance(event, NodeFinished) and event.status in ("success", "cached", "failed"):
                    put(TaskEvent("task_failed" if event.status == "failed" else "task_completed", name,
                                  event.duration, event.error, event.node_id, event.status))
                elif isinstance(event, NodeSkipped):
                    put(TaskEvent("task_skipped", name, None, event.reason, event.node_id, "skipped"))
            return self.run(workflow, params, on_event=hear, on_runner=runners.append)

        def cancel() -> None:
            if runners:
                runners[0].cancel()  # left early: the run stops as after Ctrl-C
        self.result = yield from in_thread(work, cancel, "seekrun-workflow-stream")


@dataclass
class TaskEvent:
    """One of a workflow run's events, in Script Runner's shape."""
    type: str  # task_started, task_completed, task_failed, task_skipped
    task_name: str
    duration: float | None
    error: str | None
    node_id: str = ""
    status: str | None = None  # success, cached, failed, skipped (None: it started)
