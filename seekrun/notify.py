"""Notifications: a webhook POST or a command at the end of a run, chosen by how it ended.

```yaml
notify:
  - when: [failure, partial]
    webhook: "{{ env_var('SLACK_WEBHOOK') }}"
  - when: [always]
    command: ./bin/report.sh
```

- ``when``: ``success``, ``failure`` (or ``failed``), ``partial``, ``cancelled``, ``always``:
  the run's status must be one of them (``partial`` is its own: a run whose failure a
  continue_on covered matches neither ``success`` nor ``failure``).  The key is ``when``, not
  ``on``: YAML 1.1 reads a bare ``on`` as true.
- A webhook gets one POST of the summary as JSON (``payload``): project, run id, status, counts,
  duration, the failed nodes (and handlers) with the first line of their error (redacted),
  the path of run_results.json, and ``text``, one
  line for chat tools.  Each try waits at most 10 s (SEEKRUN_NOTIFY_TIMEOUT may lower it); a
  connection error, a timeout, a 408, 429 or 5xx is tried again twice (0.25 s, then 0.5 s
  later); another 4xx is not.  The URL, usually an env_var(), is filled in only to send: it is
  never stored or shown (a warning names the entry by its line).
- A command runs under /bin/sh with the handlers' environment (seekrun/handlers.py) plus
  SEEKRUN_NOTIFY_JSON, the same JSON text; at most 60 s (or SEEKRUN_NOTIFY_TIMEOUT), no
  retries; its log is target/runs/<run_id>/logs/notify.<n>.log.
- They run after the handlers, never on a dry run.  A notification that fails is a warning on
  stderr: never a failed run.
"""
from __future__ import annotations

import json
import os
import time

from seekrun.errors import Diagnostic, suggest

WHEN = ("success", "failure", "failed", "partial", "cancelled", "always")
KEYS = ("when", "webhook", "command")
MATCHES = {"success": {"success"}, "failed": {"failure", "failed"}, "partial": {"partial"},
           "cancelled": {"cancelled"}}
TIMEOUT, COMMAND_TIMEOUT = 10.0, 60.0
RETRIES, BACKOFF = 2, 0.25
RETRY_STATUS = (408, 429)


def read(project, cfg: dict, line, errors: list[Diagnostic]) -> None:
    """``notify:`` in a project file, into project.notify (entries {when, webhook, command, line})."""
    from seekrun.parser.yaml_load import line_of

    value = cfg.get("notify")
    if value is None:
        return
    rel, node = project.marker, getattr(line, "node", None)
    if not isinstance(value, list):
        errors.append(Diagnostic(rel, line("notify"), "notify must be a list, e.g. [{when: [failure], webhook: "
                                                      "\"{{ env_var('SLACK_WEBHOOK') }}\"}]"))
        return
    for i, entry in enumerate(value):
        at = line_of(node, ("notify", i)) if node is not None else line("notify")

        def err(message: str, key=None) -> None:
            where = line_of(node, ("notify", i, key)) if node is not None and key is not None else None
            errors.append(Diagnostic(rel, where or at, f"notify {i + 1}: {message}"))
        if not isinstance(entry, dict):
            err("must be a mapping with when: and a webhook: or a command:")
            continue
        bad = False
        for key in entry:
            if key is True:
                err("'on' reads as true in YAML: write 'when:' (e.g. when: [failure])")
                bad = True
            elif key not in KEYS:
                err(f"has no '{key}'{suggest(str(key), KEYS)}: use when, and webhook or command")
                bad = True
        when = entry.get("when")
        when = [when] if isinstance(when, str) else when
        if when is None and True not in entry:
            err("needs when: (success, failure, partial, cancelled or always)")
            bad = True
        elif when is not None and (not isinstance(when, list) or not when or
                                   any(not isinstance(w, str) or w not in WHEN for w in when)):
            wrong = next((w for w in when if w not in WHEN), None) if isinstance(when, list) and when else None
            err((f"when has no '{wrong}'{suggest(str(wrong), WHEN)}: " if wrong is not None else "when: ")
                + "use a list of success, failure, partial, cancelled, always", "when")
            bad = True
        how = [k for k in ("webhook", "command") if entry.get(k) is not None]
        if len(how) != 1:
            err("needs one of webhook: (a URL, e.g. \"{{ env_var('SLACK_WEBHOOK') }}\") or command:"
                + (": it has both" if len(how) > 1 else ""))
            bad = True
        elif not isinstance(entry[how[0]], str) or not entry[how[0]].strip():
            err(f"{how[0]} must be a string", how[0])
            bad = True
        elif how == ["webhook"] and "{{" not in entry["webhook"] and not _is_url(entry["webhook"]):
            err("webhook must be an http:// or https:// URL (or {{ env_var('NAME') }} holding one)", "webhook")
            bad = True
        if not bad:
            project.notify.append({"when": list(when), "webhook": entry.get("webhook"),
                                   "command": entry.get("command"), "line": at})


def _is_url(text: str) -> bool:
    return text.strip().lower().startswith(("http://", "https://"))


def register_urls(project) -> None:
    """Before a run: each webhook's env_var() value becomes a secret (redacted in every log, event
    and result from the start, not only once it is sent); an unset one is warned of when sent."""
    from seekrun.parser.templating import TemplateError, substitute_env

    for entry in project.notify:
        hook = entry.get("webhook")
        if hook and "{{" in hook:
            try:
                substitute_env(hook, env=project.env)  # (registers the value)
            except TemplateError:
                pass


def due(entry: dict, status: str) -> bool:
    return "always" in entry["when"] or bool(MATCHES.get(status, set()) & set(entry["when"]))


def payload(project, summary, run_id: str) -> dict:
    """The JSON a notification gets: what the run did, with every error redacted."""
    from seekrun.secrets import redact

    def first_lines(results) -> list[dict]:
        return [{"node_id": r.node_id, "error": redact((r.error or "").strip().splitlines()[0][:500])
                 if (r.error or "").strip() else None} for r in results if r.status.value == "failed"]
    failed = first_lines(summary.results)
    counts = {"total": summary.total_nodes, "succeeded": summary.successful_nodes, "failed": summary.failed_nodes,
              "cached": summary.cached_nodes, "skipped": summary.skipped_nodes, "cancelled": summary.cancelled_nodes}
    text = (f"seekrun {project.name}: {summary.status} ({counts['succeeded']} succeeded, {counts['failed']} failed, "
            f"{counts['cached']} cached, {counts['skipped']} skipped) in {summary.total_duration:.1f}s"
            + (f"; failed: {', '.join(f['node_id'] for f in failed[:10])}" if failed else ""))
    return {"project": project.name, "run_id": run_id, "status": summary.status, "exit_code": summary.exit_code,
            "counts": counts, "duration": round(summary.total_duration, 3), "failed_nodes": failed,
            "failed_handlers": first_lines(summary.handlers),
            "results": str(project.target_dir / "run_results.json"), "text": redact(text)}


def send_all(project, summary, run_id: str, params: dict) -> None:
    """Send the notifications the run's status calls for; a failure is a warning in summary.warnings
    printed at once (the run's outcome never changes)."""
    entries = [(n, e) for n, e in enumerate(project.notify or [], 1) if due(e, summary.status)]
    if not entries:
        return
    import sys

    from seekrun.secrets import redact

    body = json.dumps(payload(project, summary, run_id), sort_keys=True)
    for n, entry in entries:
        where = f"notify ({project.marker}" + (f", line {entry['line']})" if entry.get("line") else ")")
        try:
            problem = (_post(project, entry["webhook"], body) if entry.get("webhook") is not None
                       else _command(project, entry["command"], body, summary.status, run_id, params, n))
        except Exception as exc:  # never a failed run: whatever went wrong is said, redacted
            problem = f"{exc.__class__.__name__}: {exc}"
        if problem:
            print(redact(f"warning: {where}: {problem}"), file=sys.stderr)


def _limit(default: float) -> float:
    try:
        given = float(os.environ.get("SEEKRUN_NOTIFY_TIMEOUT") or default)
    except ValueError:
        given = default
    return max(0.1, min(given, default))


def _post(project, webhook: str, body: str) -> str | None:
    """None when delivered, else why not (never naming the URL)."""
    import urllib.error
    import urllib.request

    from seekrun.parser.templating import TemplateError, substitute_env

    try:
        url, _ = substitute_env(webhook, env=project.env)  # registers the value: redacted everywhere
    except TemplateError as exc:
        return f"webhook not sent: {exc}"
    url = url.strip()
    if not _is_url(url):
        return "webhook not sent: its URL is not http:// or https://"
    timeout, why = _limit(TIMEOUT), ""
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        request = urllib.request.Request(url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "seekrun-notify"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(1 << 16)
            return None
        except urllib.error.HTTPError as exc:
            why = f"HTTP {exc.code} {exc.reason}"
            if exc.code < 500 and exc.code not in RETRY_STATUS:
                return f"webhook refused the notification ({why}): not retried"
        except (urllib.error.URLError, OSError) as exc:  # refused, unknown host, timed out
            reason = getattr(exc, "reason", exc)
            why = "timed out" if isinstance(reason, TimeoutError) or "timed out" in str(reason) else str(reason)
    return f"webhook not delivered after {RETRIES + 1} tries (last: {why})"


def _command(project, command: str, body: str, status: str, run_id: str, params: dict, n: int) -> str | None:
    from seekrun.engines.process import ProcessRunner
    from seekrun.handlers import context_env
    from seekrun.secrets import redact

    env = {**context_env(project, status, run_id, params), "SEEKRUN_NOTIFY_JSON": body}
    from seekrun.history import log_path

    log = log_path(project.target_dir, run_id, f"notify.{n}")
    runner = ProcessRunner()
    try:
        fin = runner.run(["/bin/sh", "-c", command], cwd=project.root, env=env, log=log,
                         timeout=_limit(COMMAND_TIMEOUT), capture=False, redact=redact)
    finally:
        runner.close()
    if fin.exit_code == 0 and not fin.error and not fin.timed_out:
        return None
    why = fin.error or ("timed out" if fin.timed_out else f"exited {fin.exit_code}")
    tail = "".join(f"\n  | {line}" for line in fin.tail[-5:])
    return f"command {why} (log: {os.path.relpath(log, project.root)}){tail}"
