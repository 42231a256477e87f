"""Diagnostics: every problem is one line, `path:line: message`, collected and reported together."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int | None
    message: str
    severity: str = "error"  # "error" or "warning"
    detail: tuple[str, ...] = ()  # extra lines shown under the message (e.g. a SQL line and a caret)
    # the node a failed YAML document meant to define ('kind.name', or its name): a ref to it
    # elsewhere says where it is, instead of "does not exist"
    node: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}" if where else self.message

    def lines(self) -> list[str]:
        """The message, then its detail lines (indented)."""
        return [str(self), *(f"    {d}" for d in self.detail)]


def first_few(names, n: int = 5) -> str:
    """'a, b, c' or, past n names, 'a, b, c, d, e and 7 more': names in a one-line message."""
    names = list(names)
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def suggest(word, choices) -> str:
    """' (did you mean 'x'?)' for the closest of choices, or ''."""
    import difflib

    match = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class ProjectError(Exception):
    """The project (or the command line) cannot be used as it is. Exit code 2."""

    def __init__(self, diagnostics: list[Diagnostic] | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic("", None, diagnostics)]
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.path, d.line or 0, d.message))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class UsageError(ProjectError):
    """A bad flag value, such as an unknown node in --nodes. Exit code 2."""


class RunFailure(Exception):
    """The run could not finish for a reason outside the project (a full disk, a file system
    gone read-only): shown as one line, exit code 1. What finished is kept."""


def describe_os_error(exc: OSError) -> tuple[str, int]:
    """(one line for a person, exit code) for an OSError seekrun itself hit."""
    import errno
    import os

    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{reason}{where}: free some space and run again; every node that finished is kept, "
                "and nothing half-written was left behind", 1)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where}: {reason}: make target/ writable and run again", 2
    return f"{reason}{where}: {os.strerror(exc.errno) if exc.errno else 'I/O error'}; run again", 1
