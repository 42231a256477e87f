"""Rule failures that name what failed: the rule, the check, the parameter (never a raw DuckDB
error on SQL the user did not write), and which of them are worth retrying (none: a check on
the data gives the same verdict again; only errors of the machine are retried)."""
from __future__ import annotations

from seekrun.kinds.base import NodeFailure

NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
           "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "VARINT", "BIGNUM")
TEMPORAL = ("DATE", "TIMESTAMP", "TIME")


class Verdict(NodeFailure):
    """A rule that failed on the data (its checks' verdicts, or a check that cannot apply to
    the columns it reads): not transient, so --retry does not run it again."""
    retryable = False


def _is(ctype: str, family: tuple) -> bool:
    t = ctype.upper()
    return any(t == f or t.startswith(f + "(") or t.startswith(f + " ") or t.startswith(f + "_") for f in family)


def _bound(value) -> str:
    return f"the number {value}" if isinstance(value, (int, float)) else f"the date/time {value!r}"


def check_range_types(spec: dict, columns: dict[str, str]) -> None:
    """A range bound must be of the column's type: a number for a numeric column, a date or
    timestamp for a DATE/TIMESTAMP column."""
    types = {c.lower(): t for c, t in columns.items()}
    for col in spec["columns"]:
        ctype = types.get(col.lower(), "")
        for key, value in (("min_val", spec["params"]["min"]), ("max_val", spec["params"]["max"])):
            if value is None:
                continue
            number = isinstance(value, (int, float))
            if (number and _is(ctype, NUMERIC)) or (not number and _is(ctype, TEMPORAL)):
                continue
            if not number and ctype.upper() == "VARCHAR":
                continue  # ISO dates in text compare as text, in order
            want = "a number" if _is(ctype, NUMERIC) else "a date or timestamp" if _is(ctype, TEMPORAL) else None
            hint = f"give {want}" if want else "a range check compares numbers or dates; use a sql_assertion check"
            raise Verdict(f"check '{spec['label']}'{'' if spec['label'] == 'range' else ' (range)'}: params.{key} is {_bound(value)}, but column "
                          f"'{col}' is {ctype}: {hint}")


# DuckDB errors that say the query does not fit the data or its types: the same every time
_DETERMINISTIC = ("Conversion Error", "Binder Error", "Invalid Input Error", "Out of Range Error",
                  "Type Mismatch Error", "Parser Error", "Catalog Error", "Mismatch Type Error")


def _params_text(spec: dict) -> str:
    raw = spec.get("raw_params") or {}
    if not raw:
        return ""
    return " with " + ", ".join(f"params.{k} = {v!r}" for k, v in raw.items())


def explain_error(node: dict, spec: dict, columns: dict, exc: BaseException) -> BaseException:
    """What a check's failure is said as: our own messages (they name the check) as verdicts;
    a DuckDB error in the check's query in the check's terms (a verdict when it is about the
    data or the types, else a retryable failure); anything else (an interrupt) as it is."""
    import duckdb

    text = str(exc).strip()
    if isinstance(exc, Verdict):
        return exc
    if isinstance(exc, NodeFailure) and text.startswith("check '"):
        return Verdict(text)  # e.g. a column that is not there: the data will not change by retrying
    if isinstance(exc, duckdb.InterruptException) or "INTERRUPT" in text[:20].upper():
        return exc
    if not isinstance(exc, (NodeFailure, duckdb.Error)):
        return exc
    first = " ".join(text.splitlines()[0].split()) if text else exc.__class__.__name__
    cols = f" on column{'s' if len(spec['columns']) > 1 else ''} " + ", ".join(
        f"'{c}' ({columns.get(c, '?')})" for c in spec["columns"]) if spec.get("columns") else ""
    what = "its SQL" if spec.get("sql") else "its column or parameters"
    name = f"check '{spec['label']}'" + (f" ({spec['type']})" if spec["label"] != spec["type"] else "")
    # the user's own SQL: keep DuckDB's LINE and caret under it (generated SQL: the check says it)
    rest = "\n" + "\n".join(text.splitlines()[1:]) if spec.get("sql") and "\n" in text else ""
    if not any(first.startswith(k) for k in _DETERMINISTIC):
        return NodeFailure(f"{name}{cols}: {first}{rest}")
    return Verdict(f"{name}{cols}{_params_text(spec)} cannot run: {first}: fix {what} to fit the data{rest}")
