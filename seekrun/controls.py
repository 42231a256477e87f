"""Run controls, for every kind of node: ``timeout``, ``retry``, ``preconditions``,
``continue_on`` and ``run_always`` (parse time: checked and normalised here; run time:
seekrun/conditions.py evaluates preconditions, seekrun/execute.py applies the rest).

None of these enters a node's build hash: changing a timeout or a retry policy rebuilds
nothing (they say how to run a node, not what it builds).

- ``timeout: 90s`` (``ms``, ``s``, ``m``, ``h``, ``d``, combined as ``1h30m``; or a number of
  seconds) -> ``node["timeout"]`` seconds, ``node["timeout_text"]`` as shown in messages.
- ``retry: {limit, interval, backoff, max_interval, exit_codes}`` (or ``retry: N``) ->
  ``node["retry"]``; unset keys take ``--retry``'s schedule (0.2 s, doubling, at most 30 s).
  ``backoff`` is a factor (the wait after attempt k is ``interval * backoff**(k-1)``) or a name:
  ``exponential`` (2), ``constant`` (1), ``linear`` (``interval * k``).
- ``preconditions: [...]`` -> ``node["preconditions"]``: ``{condition, expected?, negate?}``
  or ``{sql, negate?}`` (the SQL rewritten like node SQL, reading only the node's inputs), or
  ``{expr, negate?}``: an expression over input tasks' exit_code / status / failed
  (seekrun/workflows/expr.py), decided when the node is about to run.
- ``continue_on: {failure, skipped, exit_codes, mark_success}`` -> ``node["continue_on"]``
  (``mark_success``, Dagu's markSuccess: a failure it covers is shown as a success, with a
  warning, and does not fail the run; the node still reruns next time).
- ``run_always: true`` -> ``node["run_always"]``.
- ``pool: api`` (a pool the project file declares under ``pools:``) and ``slots: 2`` (default
  1; only with a pool) -> ``node["pool"]``, ``node["slots"]``: the node holds that many of the
  pool's slots while it runs. Whether the pool exists, and is big enough, is checked for the
  whole project (parser/pools.py): a node file's record cannot know the project file.

Nothing here imports DuckDB or runs anything.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from seekrun.durations import format_duration, parse_duration, shown_duration  # noqa: F401 (callers import them here)

CONTROL_KEYS = ("timeout", "retry", "preconditions", "continue_on", "run_always", "pool", "slots",
                "max_concurrent")
# the record keys (and manifest node keys) parse_controls fills in
RECORD_KEYS = ("timeout", "timeout_text", "retry", "preconditions", "continue_on", "run_always", "pool", "slots")

DEFAULT_INTERVAL = 0.2  # --retry's schedule: 0.2 s, doubling, at most 30 s a wait
DEFAULT_BACKOFF = 2.0
DEFAULT_MAX_INTERVAL = 30.0
MAX_LIMIT = 100
RETRY_KEYS = ("limit", "interval", "backoff", "max_interval", "exit_codes")
CONTINUE_KEYS = ("failure", "skipped", "exit_codes", "mark_success")
BACKOFF_NAMES = {"exponential": 2.0, "constant": 1.0, "linear": "linear"}  # retry.backoff by name
CONDITION_KEYS = ("condition", "expected", "negate", "sql", "expr")

Problem = tuple[tuple, str]  # (key path in the node's YAML, message)

_HOW = 'write a duration such as 90s, 10m, 2h or 1h30m (or a number of seconds)'


def parse_controls(config: dict, inputs: list[str], kinds: frozenset[str]) -> tuple[dict, list[Problem]]:
    """The node's run controls, normalised, and what is wrong with them (all of it)."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    if config.get("timeout") is not None:
        raw = config["timeout"]
        seconds = parse_duration(raw)
        if seconds is None or seconds <= 0:
            problems.append((("timeout",), f"timeout '{raw}' is not a duration above 0: {_HOW}"))
        else:
            out["timeout"], out["timeout_text"] = seconds, shown_duration(raw, seconds)
    if config.get("retry") is not None:
        out["retry"] = _retry(config["retry"], problems)
    if config.get("preconditions") is not None:
        out["preconditions"] = _preconditions(config["preconditions"], inputs, kinds, problems)
    if config.get("continue_on") is not None:
        out["continue_on"] = _continue_on(config["continue_on"], problems)
    if config.get("run_always") is not None:
        if not isinstance(config["run_always"], bool):
            problems.append((("run_always",), "run_always must be true or false"))
        elif config["run_always"]:
            out["run_always"] = True
    _pool(config, out, problems)
    return {k: v for k, v in out.items() if v is not None}, problems


def _pool(config: dict, out: dict, problems: list[Problem]) -> None:
    """``pool:`` (a name) and ``slots:`` (a whole number from 1, only with a pool)."""
    pool, slots = config.get("pool"), config.get("slots")
    if pool is not None:
        if not isinstance(pool, str) or not pool.strip():
            problems.append((("pool",), "pool must be the name of a pool the project file declares under "
                                        "'pools:', e.g. 'pool: api'"))
        else:
            out["pool"], out["slots"] = pool.strip(), 1
    if slots is not None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            problems.append((("slots",), f"slots '{slots}' must be a whole number from 1: how many of its "
                                         "pool's slots the node holds while it runs"))
        elif pool is None:
            problems.append((("slots",), "slots needs a pool: add 'pool: NAME' (a pool the project file "
                                         "declares under 'pools:'), or remove slots"))
        elif "pool" in out:
            out["slots"] = slots


def _exit_codes(value: Any, path: tuple, problems: list[Problem]) -> list[int] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if (not isinstance(value, list) or not value
            or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= 255 for c in value)):
        problems.append((path, f"{'.'.join(path)} must be a list of exit codes (whole numbers 0-255), e.g. [1, 75]"))
        return None
    return sorted(set(value))


def _retry(value: Any, problems: list[Problem]) -> dict | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"limit": value}
    if not isinstance(value, dict):
        problems.append((("retry",), "retry must be a mapping, e.g. {limit: 3, interval: 2s, backoff: 2, "
                                     "max_interval: 1m, exit_codes: [1, 75]}, or a number of retries"))
        return None
    before = len(problems)
    for key in value:
        if key not in RETRY_KEYS:
            problems.append((("retry", key), f"retry has no key '{key}': use {', '.join(RETRY_KEYS)}"))
    limit = value.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        problems.append((("retry", "limit") if "limit" in value else ("retry",),
                         f"retry.limit must be a whole number of retries from 0 to {MAX_LIMIT}"
                         + ("" if "limit" in value else ": add e.g. 'limit: 3'")))
    out: dict[str, Any] = {"limit": limit, "interval": DEFAULT_INTERVAL, "backoff": DEFAULT_BACKOFF,
                           "max_interval": DEFAULT_MAX_INTERVAL, "exit_codes": None}
    for key in ("interval", "max_interval"):
        if value.get(key) is None:
            continue
        seconds = parse_duration(value[key])
        if seconds is None or seconds < 0:
            problems.append((("retry", key), f"retry.{key} '{value[key]}' is not a duration: {_HOW}"))
        else:
            out[key] = seconds
    if value.get("backoff") is not None:
        b = BACKOFF_NAMES.get(value["backoff"], value["backoff"]) if isinstance(value["backoff"], str) \
            else value["backoff"]
        if b == "linear":
            out["backoff"] = b
        elif isinstance(b, bool) or not isinstance(b, (int, float)) or not 1 <= b <= 100:
            problems.append((("retry", "backoff"), f"retry.backoff '{b}' must be a number from 1 (a constant "
                                                   "interval) to 100, e.g. 2 (each wait twice the last), or "
                                                   "exponential (2), linear or constant (1)"))
        else:
            out["backoff"] = float(b)
    if value.get("exit_codes") is not None:
        out["exit_codes"] = _exit_codes(value["exit_codes"], ("retry", "exit_codes"), problems)
    return out if len(problems) == before else None


def retry_wait(policy: dict, attempt: int) -> float:
    """The wait before attempt ``attempt + 1`` (after ``attempt`` failed attempts, from 1)."""
    backoff = policy["backoff"]
    wait = policy["interval"] * (attempt if backoff == "linear" else backoff ** (attempt - 1))
    cap = policy.get("max_interval")
    return min(wait, cap) if cap is not None else wait


def default_retry(limit: int) -> dict:
    """``--retry N`` as a policy (the default for nodes without ``retry:``)."""
    return {"limit": limit, "interval": DEFAULT_INTERVAL, "backoff": DEFAULT_BACKOFF,
            "max_interval": DEFAULT_MAX_INTERVAL, "exit_codes": None}


def _continue_on(value: Any, problems: list[Problem]) -> dict | None:
    if not isinstance(value, dict):
        problems.append((("continue_on",), "continue_on must be a mapping, e.g. {failure: true, skipped: true, "
                                           "exit_codes: [3]}"))
        return None
    before = len(problems)
    for key in value:
        if key not in CONTINUE_KEYS:
            problems.append((("continue_on", key),
                             f"continue_on has no key '{key}': the keys are {', '.join(CONTINUE_KEYS)}"))
    out: dict[str, Any] = {"failure": False, "skipped": False, "exit_codes": None}
    for key in ("failure", "skipped", "mark_success"):
        if key in value and not isinstance(value[key], bool):
            problems.append((("continue_on", key), f"continue_on.{key} must be true or false"))
        elif key in value:
            out[key] = value[key]
    if value.get("exit_codes") is not None:
        out["exit_codes"] = _exit_codes(value["exit_codes"], ("continue_on", "exit_codes"), problems)
    return out if len(problems) == before else None


def _preconditions(value: Any, inputs: list[str], kinds, problems: list[Problem]) -> list[dict] | None:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        problems.append((("preconditions",), "preconditions must be a list, e.g. [{condition: \"${ENV}\", "
                                             "expected: production}, {sql: \"SELECT count(*) > 0 FROM source.x\"}]"))
        return None
    out, before = [], len(problems)
    for i, item in enumerate(value):
        one = _precondition(item, ("preconditions", i), inputs, kinds, problems)
        if one is not None:
            out.append(one)
    return out if len(problems) == before and out else None


_SHAPES = ('{condition: "${NAME}", expected: "value"} (a value, or expected: "re:<regex>"), '
           '{condition: "test -f file"} (a command that must exit 0), or {sql: "SELECT ..."} '
           '(a query on the inputs that must return true); any of them with negate: true')


def _precondition(item: Any, path: tuple, inputs: list[str], kinds, problems: list[Problem]) -> dict | None:
    where = f"preconditions[{path[-1]}]"
    if not isinstance(item, dict):
        problems.append((path, f"{where} is not a condition: write one of {_SHAPES}"))
        return None
    unknown = [k for k in item if k not in CONDITION_KEYS]
    if "expr" in item and not unknown:
        from seekrun.workflows.expr import precondition

        return precondition(item, path, where, inputs, problems)
    has_cond, has_sql = "condition" in item, "sql" in item
    if unknown or has_cond == has_sql or (has_sql and "expected" in item):
        if unknown:
            what = f"has no key '{unknown[0]}'"
        elif has_cond and has_sql:
            what = "gives both 'condition' and 'sql'"
        elif has_sql:
            what = "has 'expected' with 'sql' (a query must return true)"
        else:
            what = "needs 'condition' or 'sql'"
        problems.append(((*path, unknown[0]) if unknown else path, f"{where} {what}: write one of {_SHAPES}"))
        return None
    negate = item.get("negate", False)
    if not isinstance(negate, bool):
        problems.append(((*path, "negate"), f"{where}.negate must be true or false"))
        return None
    if has_sql:
        sql = item["sql"]
        if not isinstance(sql, str) or not sql.strip():
            problems.append(((*path, "sql"), f"{where}.sql must be a SELECT returning true or false"))
            return None
        from seekrun.parser.sql import analyse

        result = analyse(sql, inputs, kinds)
        bad = result.problems[:1] or [f"{r.node_id} is not an input of this node: add it to inputs (or depends_on)"
                                      for r in result.refs if r.node_id not in inputs][:1]
        bad += [f"{b} is out of range: the node declares {len(inputs)} input(s)" for b in result.bad_inputs[:1]]
        if bad:
            problems.append(((*path, "sql"), f"{where}.sql: {bad[0]}"))
            return None
        return {"sql": sql.strip(), "run": result.executable, "negate": negate}
    cond = item["condition"]
    if isinstance(cond, (int, float)) and not isinstance(cond, bool):
        cond = str(cond)
    if not isinstance(cond, str) or not cond.strip():
        problems.append(((*path, "condition"), f"{where}.condition must be text: a value such as \"${{ENV}}\" "
                                               "or a command"))
        return None
    out = {"condition": cond, "negate": negate}
    if "expected" in item:
        expected = item["expected"]
        if isinstance(expected, bool):
            expected = "true" if expected else "false"
        if expected is None or isinstance(expected, (dict, list)):
            problems.append(((*path, "expected"), f"{where}.expected must be a value, or \"re:<regex>\""))
            return None
        expected = str(expected)
        if expected.startswith("re:"):
            try:
                re.compile(expected[3:])
            except re.error as exc:
                problems.append(((*path, "expected"), f"{where}.expected: bad regular expression ({exc})"))
                return None
        out["expected"] = expected
    return out


def describe(pre: dict) -> str:
    """A precondition as written (for "runs if ..." and "precondition not met: ...")."""
    if "sql" in pre or "expr" in pre:
        text = " ".join((pre.get("expr") or pre["sql"]).split())
    elif "expected" in pre:
        exp = pre["expected"]
        text = (f"{pre['condition']} matches {exp[3:]}" if exp.startswith("re:") else
                f"{pre['condition']} is {exp}")
    else:
        text = pre["condition"]
    return f"not ({text})" if pre.get("negate") else text


def describe_all(pres: list[dict]) -> str:
    return " and ".join(describe(p) for p in pres)


def covers(policy: dict | None, skipped: bool, exit_code: int | None) -> bool:
    """Whether a node's continue_on covers this failure (or skip)."""
    if not policy:
        return False
    if skipped:
        return bool(policy.get("skipped"))
    if policy.get("failure"):
        return True
    codes = policy.get("exit_codes")
    return bool(codes) and exit_code is not None and exit_code in codes


def summary(node: dict) -> list[tuple[str, str]]:
    """(label, text) lines for `seekrun show`: the node's run controls."""
    out: list[tuple[str, str]] = []
    if node.get("timeout") is not None:
        out.append(("timeout", node.get("timeout_text") or format_duration(node["timeout"])))
    r = node.get("retry")
    if r:
        text = f"up to {r['limit']} retries, waits {format_duration(r['interval'])}"
        if r["backoff"] != 1:
            text += f" x{r['backoff']:g} each time"
        if r.get("max_interval") is not None and r["backoff"] != 1:
            text += f" (at most {format_duration(r['max_interval'])})"
        if r.get("exit_codes"):
            text += f", only on exit codes {', '.join(map(str, r['exit_codes']))}"
        out.append(("retry", text))
    if node.get("preconditions"):
        out.append(("runs if", describe_all(node["preconditions"])))
    c = node.get("continue_on")
    if c:
        what = [w for w in ("failure", "skipped") if c.get(w)]
        if c.get("exit_codes"):
            what.append(f"exit codes {', '.join(map(str, c['exit_codes']))}")
        out.append(("continue on", ", ".join(what) or "-"))
    if node.get("run_always"):
        out.append(("run always", "yes (runs even after an upstream failure or skip)"))
    if node.get("pool"):
        slots = node.get("slots") or 1
        out.append(("pool", f"{node['pool']} ({slots} slot{'s' if slots > 1 else ''})"))
    return out


def lookup_for(node: dict, environ: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """``${NAME}``: the node's params, then its env mapping (if it has one), the run params it
    uses, then the environment."""
    config = node.get("build_config") or node.get("config") or {}
    params = config.get("params") if isinstance(config.get("params"), dict) else {}
    env = config.get("env") if isinstance(config.get("env"), dict) else {}

    def text(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (dict, list)):
            import json

            return json.dumps(v)
        return str(v)

    run_params = node.get("run_params") or {}  # the run params it uses (seekrun/params.py)

    def lookup(name: str) -> str | None:
        for scope in (params, env, run_params):
            if name in scope and scope[name] is not None:
                return text(scope[name])
        return environ(name)

    return lookup
