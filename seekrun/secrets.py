"""Values of env_var() never leave the process: every message is redacted before it is shown
or stored.

Every value seekrun puts into SQL, reader params or a Python node's config is registered
here (``register``), and every sink (the console, run_results.json, the state, internal
errors) passes its text through ``redact`` first, on the raw text, before any reformatting.

DuckDB does not echo a value whole: it cuts long lines with "...", breaks the SQL at newlines
and doubles quotes inside literals; Python's repr escapes tabs and newlines.  So besides every
spelling of a value (as is, with whitespace collapsed, SQL-quoted, escaped), every fragment of
8 or more characters of a value of 8 or more characters is redacted: a message never holds a
run of 8 characters that appears in a secret.  A shorter value is redacted where it stands as
a word of its own (not inside a longer word or number): so the value ``3`` does not turn
"pid 27321" into "pid 27***21", and ``hunter2`` is still masked in "password=hunter2;".
A value of one or two characters (a flag such as ``1``, ``on``, a region code) is not a
secret anyone could keep, and masking it would garble every count and word it matches: it is
not redacted (MIN_LENGTH).
"""
from __future__ import annotations

import json
import re
import threading

MASK = "***"
FRAGMENT = 8  # fragments this long (and longer) of a secret are never shown
MIN_LENGTH = 3  # shorter values are not redacted (see above)

_lock = threading.Lock()
_values: set[str] = set()
_grams: set[str] = set()  # every FRAGMENT-long substring of every spelling of a long value
_spellings: list[str] = []  # every spelling, longest first
_short: list[re.Pattern] = []  # spellings shorter than FRAGMENT, as whole words


def _variants(value: str) -> set[str]:
    collapsed = " ".join(value.split())
    out = {value, collapsed, value.replace("'", "''"), value.replace('"', '""'),
           json.dumps(value, ensure_ascii=False)[1:-1], value.encode("unicode_escape").decode("ascii", "replace")}
    out |= {v.replace("'", "''") for v in list(out)}
    return {v for v in out if v}


def register(*values: str) -> None:
    new = [v for v in values if isinstance(v, str) and len(v) >= MIN_LENGTH and v.strip() and v not in _values]
    if not new:
        return
    with _lock:
        for value in new:
            if value in _values:
                continue
            _values.add(value)
            for spelling in _variants(value):
                if len(spelling) >= FRAGMENT:
                    _spellings.append(spelling)
                    _grams.update(spelling[i:i + FRAGMENT] for i in range(len(spelling) - FRAGMENT + 1))
                else:
                    _short.append(re.compile(r"(?<![A-Za-z0-9_])" + re.escape(spelling) + r"(?![A-Za-z0-9_])"))
        _spellings.sort(key=len, reverse=True)


def known() -> bool:
    return bool(_values)


def redact(text, extra=()):
    """text with every registered value (and the extra ones) masked; non-text is returned as is."""
    if not isinstance(text, str) or not text:
        return text
    if extra:
        register(*extra)
    if not _values:
        return text
    with _lock:
        spellings, grams, short = list(_spellings), _grams, list(_short)
    for spelling in spellings:
        if spelling in text:
            text = text.replace(spelling, MASK)
    if grams and len(text) >= FRAGMENT:
        text = _mask_fragments(text, grams)
    for pattern in short:
        text = pattern.sub(MASK, text)
    return text


def _mask_fragments(text: str, grams: set[str]) -> str:
    covered = bytearray(len(text))
    hit = False
    for i in range(len(text) - FRAGMENT + 1):
        if text[i:i + FRAGMENT] in grams:
            covered[i:i + FRAGMENT] = b"\x01" * FRAGMENT
            hit = True
    if not hit:
        return text
    out, i = [], 0
    while i < len(text):
        if covered[i]:
            while i < len(text) and covered[i]:
                i += 1
            out.append(MASK)
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def redact_obj(obj):
    """A JSON-like tree with every string redacted (for records written to target/)."""
    if not _values:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    return obj


def reset() -> None:
    """Forget every value (a long-lived process starting on another project; tests)."""
    with _lock:
        _values.clear()
        _grams.clear()
        _spellings.clear()
        _short.clear()
