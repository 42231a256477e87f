"""Seeknal's run-time template values: ``{{ today }}``, ``{{ run_date }}``, ``{{ start_date }}``,
``{{ end_date }}`` (and Seeknal's date functions built on today).

They are values of the run, not of the files, so a file's cached records keep them as
placeholders (parser/templating.py records which ones a node uses, in ``rec["runtime"]``).
After the parse cache, ``apply()`` puts this run's values into the nodes that use them, and
adds each base value to that node's hashed fields: a node reruns when a value it uses
changes ("today changed (2026-11-30 -> 2026-12-01)"), and only such a node.

Values (as Seeknal 2.13 gives them, see its ``workflow/parameters``):

- ``today``: the run date, YYYY-MM-DD: ``--run-date``, else today in the local time zone (TZ).
  ``today(-1)``, ``yesterday``, ``month_start``, ``month_start(-1)``, ``year_start``,
  ``year_start(1)`` count from it; ``date`` is the run date too.
- ``run_date``: the ``--run-date`` value, else the run's start time (local, YYYY-MM-DDTHH:MM:SS),
  so a node using it reruns on every run unless ``--run-date`` pins it.
- ``start_date`` / ``end_date``: ``--start-date`` / ``--end-date``. ``end_date`` defaults to
  the run date and ``start_date`` to ``end_date`` (one day); the range is meant inclusive
  (``BETWEEN '{{ start_date }}' AND '{{ end_date }}'``). Seeknal leaves them as literal text
  when not given.
- A node's own ``params:`` may give any of these a default (``start_date: "{{ today(-7) }}"``),
  as in Seeknal: the command line's value, when given, wins.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

BASES = ("today", "run_date", "start_date", "end_date")  # the hashed fields, one per base value
_FUNC = re.compile(r"(?P<fn>today|yesterday|month_start|year_start|date|run_date|start_date|end_date)"
                   r"(?P<call>\s*\(\s*(?P<arg>[+-]?\s*\d+)?\s*\))?\Z")
_NO_ARGS = ("yesterday",)  # a call without an argument only
_VALUES = ("date", "run_date", "start_date", "end_date")  # values, not calls
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)


def base_of(expr: str) -> str | None:
    """The base value (one of BASES) a template expression uses, or None if it is not one of
    these (``today``, ``today(-1)``, ``month_start``, ``run_date``...)."""
    m = _FUNC.match(expr)
    if m is None or (m.group("arg") and m.group("fn") in _NO_ARGS) or (m.group("call") and m.group("fn") in _VALUES):
        return None
    fn = m.group("fn")
    return fn if fn in BASES else "today"


@dataclass(frozen=True)
class RunValues:
    today: date
    run_date: str
    start_date: date
    end_date: date
    given: frozenset = frozenset()  # the ones the command line set (they beat a node's params)

    def base(self, name: str) -> str:
        value = getattr(self, name)
        return value if isinstance(value, str) else value.isoformat()

    def value(self, expr: str) -> str:
        m = _FUNC.match(expr)
        fn, arg = m.group("fn"), int((m.group("arg") or "0").replace(" ", ""))
        if fn in ("run_date", "start_date", "end_date"):
            return self.base(fn)
        day = self.today
        if fn in ("today", "date"):
            return (day + timedelta(days=arg)).isoformat()
        if fn == "yesterday":
            return (day - timedelta(days=1)).isoformat()
        if fn == "year_start":
            return date(day.year + arg, 1, 1).isoformat()
        months = day.year * 12 + day.month - 1 + arg
        return date(months // 12, months % 12 + 1, 1).isoformat()


def parse_date(text: str, flag: str) -> date:
    from seekrun.errors import Diagnostic, UsageError

    try:
        if not _DATE.match(text.strip()):
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError:
        raise UsageError([Diagnostic("", None, f"{flag} '{text}' is not a date: write YYYY-MM-DD, "
                                               "e.g. 2026-12-01")]) from None


def from_options(run_date: str | None = None, start_date: str | None = None, end_date: str | None = None,
                 now: datetime | None = None) -> RunValues:
    """This run's values from the command line (UsageError, exit 2, for a bad one)."""
    now = now or datetime.now()
    day = parse_date(run_date, "--run-date") if run_date is not None else now.date()
    end = parse_date(end_date, "--end-date") if end_date is not None else day
    start = parse_date(start_date, "--start-date") if start_date is not None else end
    if start > end:
        from seekrun.errors import Diagnostic, UsageError

        given = "--end-date" if end_date is not None else "the run date (--end-date's default)"
        raise UsageError([Diagnostic("", None, f"--start-date {start} is after {given} {end}: "
                                               "the range is start_date..end_date, both included")])
    stamp = day.isoformat() if run_date is not None else now.isoformat(timespec="seconds")
    given = frozenset(k for k, v in (("run_date", run_date), ("start_date", start_date), ("end_date", end_date))
                      if v is not None)
    return RunValues(day, stamp, start, end, given)


def for_node(values: RunValues, defaults: dict) -> RunValues:
    """The values for a node whose params give defaults (ValueError: a default is not a date)."""
    from dataclasses import replace

    given = values.given
    if "run_date" not in given:
        if "today" in defaults:
            values = replace(values, today=_param_date(defaults["today"], "today", values))
        if "run_date" in defaults:
            values = replace(values, run_date=_fill(str(defaults["run_date"]), values))
    if "end_date" not in given:
        if "end_date" in defaults:
            values = replace(values, end_date=_param_date(defaults["end_date"], "end_date", values))
        elif "today" in defaults:
            values = replace(values, end_date=values.today)
    if "start_date" not in given:
        start = _param_date(defaults["start_date"], "start_date", values) if "start_date" in defaults \
            else values.end_date
        values = replace(values, start_date=start)
    if values.start_date > values.end_date:
        raise ValueError(f"start_date {values.start_date} is after end_date {values.end_date}")
    return values


def _param_date(value, key: str, values: RunValues) -> date:
    text = _fill(str(value), values)
    if not _DATE.match(text):
        raise ValueError(f"params.{key} '{value}' is not a date: write YYYY-MM-DD (or e.g. {{{{ today(-7) }}}})")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"params.{key} '{value}' is not a date: write YYYY-MM-DD") from None


def _fill(text: str, values: RunValues) -> str:
    if "{{" not in text:
        return text
    return _EXPR.sub(lambda m: _value(m.group(1), values) if base_of(m.group(1)) else m.group(0), text)


def _value(expr: str, values: RunValues) -> str:
    try:
        return values.value(expr)
    except (OverflowError, ValueError):  # e.g. today(-1000000): before year 1
        raise ValueError(f"'{{{{ {expr} }}}}' is out of range for the run date {values.today}: "
                         "pick a smaller offset") from None


def _deep(value, values):
    from seekrun.values import map_strings

    return map_strings(value, lambda text: _fill(text, values))


_KEEP = ("config", "field_hashes", "description", "owner", "tags", "file", "id", "name", "kind")


def apply(records: dict[str, dict], values: RunValues | None, errors: list) -> None:
    """Put this run's values into the records that use them (copies: the cached records keep
    their placeholders), and add each base value used to the node's hashed fields."""
    users = [nid for nid, rec in records.items() if rec.get("runtime")]
    if not users:
        return
    values = values or from_options()
    for nid in users:
        rec = records[nid]
        params = (rec.get("built_config") or rec["config"]).get("params")
        defaults = {k: v for k, v in params.items() if k in BASES} if isinstance(params, dict) else {}
        try:
            mine = for_node(values, defaults) if defaults else values
            new = {k: (v if k in _KEEP else _deep(v, mine)) for k, v in rec.items()}
            if rec.get("built_config") is None:
                new["built_config"] = _deep(rec["config"], mine)
        except ValueError as exc:
            from seekrun.errors import Diagnostic

            errors.append(Diagnostic(rec["file"], rec["line"], f"{nid}: {exc}"))
            continue
        new["field_hashes"] = {**rec["field_hashes"], **{b: mine.base(b) for b in rec["runtime"]}}
        records[nid] = new


def digest_parts(records: dict[str, dict]) -> list[str]:
    """For the manifest digest: the values each node uses."""
    return sorted(f"{nid}@{b}={rec['field_hashes'][b]}" for nid, rec in records.items()
                  for b in rec.get("runtime") or ())
