"""How the CLI reports project and usage errors: one line each on stderr (with detail lines
under it, such as a SQL line and a caret), and with --json also as JSON on stdout:
``{"errors": [{"path", "line", "message"}]}``. Exit code 2, no traceback."""
from __future__ import annotations

import json
import sys


def error_dicts(diagnostics) -> list[dict]:
    """The errors as JSON-able dicts (secrets redacted): path (None for a command-line problem),
    line (None when not known), message, and detail lines when there are any."""
    from seekrun.secrets import redact

    out = []
    for d in diagnostics:
        item = {"path": d.path or None, "line": d.line, "message": redact(d.message)}
        if d.detail:
            item["detail"] = [redact(x) for x in d.detail]
        out.append(item)
    return out


def fail(exc, as_json: bool = False) -> None:
    """Report a ProjectError (every diagnostic it holds) and exit 2."""
    import typer

    from seekrun.secrets import redact

    for d in exc.diagnostics:
        for line in d.lines():
            print(redact(line), file=sys.stderr)
    n = len(exc.diagnostics)
    print(f"seekrun: {n} error{'s' if n != 1 else ''}; nothing was changed in target/", file=sys.stderr)
    if as_json:
        print(json.dumps({"errors": error_dicts(exc.diagnostics)}, indent=1, sort_keys=True))
    raise typer.Exit(2)
