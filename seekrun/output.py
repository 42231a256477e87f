"""What a person reads: progress, one line per finished node, the plan and the summary.

On a terminal a live line shows N/M, the node and elapsed time; otherwise output is
plain lines with no ANSI codes and no spinner.
"""
from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from seekrun.results import ExecutionSummary, NodeResult

_LABEL = {"success": "OK", "failed": "FAIL", "skipped": "SKIP", "cached": "CACHED", "pending": "RUN",
          "cancelled": "CANCEL"}
_STYLE = {"success": "green", "failed": "bold red", "skipped": "yellow", "cached": "dim", "pending": "cyan",
          "cancelled": "yellow"}


class PlainConsole:
    """Plain lines for pipes and files: no ANSI codes, no spinner (and no rich import)."""

    is_terminal = False

    def __init__(self, stream):
        self.stream = stream

    def print(self, text: str = "", style=None, markup=None) -> None:
        print(text, file=self.stream)


def make_console(stderr: bool = False):
    stream = sys.stderr if stderr else sys.stdout
    if not stream.isatty():
        return PlainConsole(stream)
    from rich.console import Console

    return Console(file=stream, highlight=False, soft_wrap=True)


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 row', '2 rows', '0 rows' (``many`` for irregular plurals)."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def _fmt_result(r: "NodeResult") -> str:
    """One node's line: status, id, duration, rows, attempts, then why it ran (or was skipped)
    and, for a failure, the error's first line."""
    status = r.status.value
    parts = [f"{_LABEL.get(status, status.upper()):<6} {r.node_id}"]
    if status in ("success", "failed"):
        parts.append(f"{r.duration:.3f}s")
    if r.row_count is not None:
        parts.append(plural(r.row_count, "row"))
    if r.attempts > 1:
        parts.append(f"{r.attempts} attempts")
    if status in ("success", "failed") and r.reason:
        parts.append(f"({r.reason})")
    line = "  ".join(parts)
    if r.error:
        line += f"  {'error: ' + r.error.splitlines()[0] if status == 'failed' else '(' + r.error + ')'}"
    return line


def nothing_to_do(total: int, cannot: int = 0) -> str:
    """The one wording for a run (or plan) with nothing to do (``cannot``: nodes seekrun cannot
    execute, listed above it)."""
    if cannot:
        return (f"Nothing to do: all {total - cannot} nodes seekrun can build are up to date "
                f"({plural(cannot, 'node')} not executable by seekrun, see above).")
    return f"Nothing to do: {'the only node is' if total == 1 else f'all {total} nodes are'} up to date."


def _skip_counts(summary: "ExecutionSummary") -> str:
    from seekrun.results import SKIP_LABELS

    counts = summary.skipped_by()
    if not counts:
        return "0"
    detail = ", ".join(f"{n} {SKIP_LABELS.get(code, code)}" for code, n in counts.items())
    return f"{summary.skipped_nodes} ({detail})"


def full_note(summary: "ExecutionSummary") -> str | None:
    """With --full and a filter: say that --full rebuilds the selected nodes only."""
    selected = summary.selected
    if not summary.full or selected is None or selected >= summary.total_nodes:
        return None
    others = summary.total_nodes - selected
    return (f"--full rebuilds only the {plural(selected, 'selected node')}: the other {others} "
            f"{'is' if others == 1 else 'are'} not marked to rebuild (any that need to run anyway are "
            "listed as left out by the filter)")


class ConsoleReporter:
    """Progress for `seekrun run`. Uses a rich live line on a terminal only."""

    def __init__(self, console=None, quiet: bool = False):
        self.console = console or make_console()
        self.quiet = quiet
        self.live = None
        self.done = 0
        self.total = 0
        self.running: dict[str, float] = {}
        self.t0 = time.perf_counter()

    def plan(self, to_run: list[str], total: int, maybe: int = 0, maybe_why: str = "re-read data changed") -> None:
        """``maybe``: nodes that run only if what a re-read (database) source reads, or what a task
        writes, has changed (``maybe_why`` says which)."""
        self.total = len(to_run)
        if self.quiet or not to_run:
            return
        more = f" (and up to {maybe} more if {maybe_why})" if maybe else ""
        self.console.print(f"Running {len(to_run)} of {plural(total, 'node')}{more}")
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=True,
                             get_renderable=self._render)
            self.live.start()

    def _render(self):
        from rich.text import Text

        now = time.perf_counter()
        names = ", ".join(f"{n} {now - t:.1f}s" for n, t in list(self.running.items())[:3])
        return Text(f"[{self.done}/{self.total}] {names}  elapsed {now - self.t0:.1f}s", style="cyan")

    def removed(self, node_id: str, why: str = "removed from the project") -> None:
        if not self.quiet:
            self.console.print(f"DROP   {node_id}  ({why})", markup=False)

    def start(self, node_id: str) -> None:
        self.running[node_id] = time.perf_counter()

    def result(self, r: "NodeResult") -> None:
        self.running.pop(r.node_id, None)
        self.done += 1
        if self.quiet:
            return
        style = _STYLE.get(r.status.value)
        line = _fmt_result(r)
        if self.console.is_terminal:
            self.console.print(line, style=style, markup=False)
        else:
            self.console.print(line, markup=False)
        if r.instances is not None:  # a fan-out: what its instances did
            from seekrun.parser.fanout import summary_text

            self.console.print(f"       {summary_text(r.instances)}", markup=False)
        for w in r.warnings:
            self.console.print(f"       warning: {w}", style="yellow" if self.console.is_terminal else None,
                               markup=False)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def print_plan(summary: "ExecutionSummary", console=None, verbose: bool = False) -> None:
    console = console or make_console()
    to_run = [r for r in summary.results if r.status.value == "pending"]
    for r in to_run:
        console.print(f"RUN    {r.node_id}  ({r.reason}{'; ' + r.condition if r.condition else ''})", markup=False)
        if r.command is not None:
            console.print(f"       $ {r.command}", markup=False)
        if r.declared:
            console.print(f"       {r.declared}", markup=False)
    maybe = [r for r in summary.results if r.status.value == "cached" and r.after_reread]
    for r in maybe:  # decided only once the re-read sources have run
        console.print(f"MAYBE  {r.node_id}  ({r.reason})", markup=False)
    for r in summary.results:
        if r.status.value == "skipped":
            console.print(_skip_line(r), markup=False)
        elif verbose and r.status.value == "cached" and not r.after_reread:
            console.print(f"CACHED {r.node_id}", markup=False)
    for nid in summary.removed_nodes:
        console.print(f"DROP   {nid}  (removed from the project)", markup=False)
    for nid in summary.dropped_nodes:
        console.print(f"DROP   {nid}  ({NOT_EXECUTABLE})", markup=False)
    note = full_note(summary)
    if note:
        console.print(note, markup=False)
    pending = [r for r in summary.results if r.status.value == "skipped" and not unbuildable(r)]
    if not to_run and not summary.removed_nodes and not summary.dropped_nodes and not pending:
        cannot = summary.total_nodes - sum(1 for r in summary.results if not unbuildable(r))
        console.print(nothing_to_do(summary.total_nodes, cannot))
    elif not to_run and not summary.removed_nodes and not summary.dropped_nodes:
        console.print(f"Nothing selected needs to run; {plural(len(pending), 'node')} left out by the filter "
                      "still need to run (run without filters to build them).")
    else:
        waits = sum(1 for r in maybe if (r.reason or "").startswith("waits on"))
        check = "".join([f"{len(maybe) - waits} to check after re-reading, " if len(maybe) > waits else "",
                         f"{waits} to decide once the tasks they wait on have run, " if waits else ""])
        console.print(f"Plan: {len(to_run)} to run, {check}{summary.cached_nodes - len(maybe)} cached, "
                      f"{_skip_counts(summary)} skipped (dry run: nothing was written)")


NOT_EXECUTABLE = "not executable by seekrun"


def unbuildable(r: "NodeResult") -> bool:
    """A node skipped because seekrun cannot execute it, or because it reads one that way."""
    from seekrun.results import SKIP_NOT_EXECUTABLE

    return r.status.value == "skipped" and r.skip == SKIP_NOT_EXECUTABLE


def _skip_line(r: "NodeResult") -> str:
    if r.deferred_from is not None:  # --defer: read from another build
        return f"DEFER  {r.node_id}  (read from {r.deferred_from} instead of built here: {r.reason})"
    return f"SKIP   {r.node_id}  ({r.reason}{'; ' + r.error if r.error else ''})"


def print_summary(summary: "ExecutionSummary", console=None, warnings: bool = True) -> None:
    """The summary of a run (its warnings first, unless warnings=False: the CLI prints them on stderr)."""
    console = console or make_console()
    for w in summary.warnings if warnings else ():
        console.print(f"warning: {w}", markup=False)
    if summary.dry_run:
        print_plan(summary, console)
        return
    ran = summary.successful_nodes + summary.failed_nodes
    cannot = [r for r in summary.results if unbuildable(r)]
    for r in cannot:  # every run says so: these nodes are never built
        console.print(_skip_line(r), markup=False)
    if ran == 0 and not summary.removed_nodes and not summary.dropped_nodes and not summary.failed_nodes \
            and not summary.interrupted \
            and summary.skipped_nodes == len(cannot):
        console.print(nothing_to_do(summary.total_nodes, len(cannot)))
        _handler_lines(summary, console)
        return
    note = full_note(summary)
    if note:
        console.print(note, markup=False)
    console.print("")
    console.print("Execution summary", style="bold" if console.is_terminal else None)
    console.print(f"  total nodes : {summary.total_nodes}")
    console.print(f"  ran         : {ran} ({summary.successful_nodes} succeeded, {summary.failed_nodes} failed)")
    console.print(f"  cached      : {summary.cached_nodes}")
    console.print(f"  skipped     : {_skip_counts(summary)}")
    if summary.cancelled_nodes:
        console.print(f"  cancelled   : {summary.cancelled_nodes} (stopped while running; their last builds stand)")
    if summary.removed_nodes:
        console.print(f"  removed     : {len(summary.removed_nodes)} ({', '.join(summary.removed_nodes)})",
                      markup=False)
    if summary.dropped_nodes:
        console.print(f"  dropped     : {len(summary.dropped_nodes)} ({', '.join(summary.dropped_nodes)}: "
                      f"{NOT_EXECUTABLE})", markup=False)
    console.print(f"  duration    : {summary.total_duration:.2f}s")
    if summary.handlers:
        console.print("  handlers    : " + ", ".join(f"{h.reason or h.node_id} {h.status.value}" for h in summary.handlers),
                      markup=False)
    for line in summary.notes:
        console.print(line, markup=False)
    left_out = [r.node_id for r in summary.results if r.skip == "filtered"]
    if left_out:
        console.print(f"Left out by the filter, still to run: {_first(left_out)}", markup=False)
    if summary.interrupted:
        undone = [r.node_id for r in summary.results if r.skip == "interrupted"]
        what = f"Run timed out after {summary.timed_out}" if summary.timed_out else "Interrupted"
        console.print(f"{what}: {plural(len(undone), 'node')} left undone: {', '.join(undone) or '-'}; "
                      "run 'seekrun run' again to finish.", markup=False)
    elif summary.failed_nodes:
        failed = [r for r in summary.results if r.status.value == "failed"]
        for r in failed:
            note = "  (continue_on: its dependents ran; not counted as a failure of the run)" if r.continued else ""
            console.print(f"FAILED {r.node_id}: {r.error}{note}", markup=False)
        undone = [r.node_id for r in summary.results if r.skip == "after_failure"]
        if undone:
            console.print(f"Not run because of the failure: {', '.join(undone)}", markup=False)
    _handler_lines(summary, console)


def _handler_lines(summary, console) -> None:
    """A handler that failed: one line (and its log's tail), after what the run itself did."""
    for h in summary.handlers:
        if h.status.value == "failed":
            console.print(f"HANDLER FAILED {h.reason or h.node_id} (the run itself: {summary.status}): {h.error}",
                          markup=False)


def _first(ids: list[str], limit: int = 10) -> str:
    return ", ".join(ids[:limit]) + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
