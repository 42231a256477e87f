"""``${NAME}`` values, as workflow files write them (Dagu's ``${VAR}``, ``${step.exitCode}``).

- ``${NAME}`` takes its value from a lookup (for a task: its params, then its env, then the
  environment; at run time also ``${inputs.0}``, ``${task.status}``, a captured value);
- ``${NAME.key}`` is a key of a JSON value (``${SALES.path}``), or a dotted name the lookup knows
  as a whole (``${inputs.0}``, ``${extract.exit_code}``);
- ``$${`` is a literal ``${``;
- ``${NAME:-default}``: outside a shell the default is used when NAME resolves nowhere; in a
  shell command it is left as written, for the shell to expand.

Nothing here reads the environment itself: the caller's lookup does.
"""
from __future__ import annotations

import json
import re
from typing import Callable

# $${ (a literal), or ${name}, ${name.key.0}, ${name:-default}
# (a workflow step's name may hold '-': ${extract-data.exitCode}; a bare ${A-b} is the shell's)
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*(?:(?:-[A-Za-z0-9_]+)+(?=\.))?(?:\.[A-Za-z0-9_]+)*)"
                  r"(:-[^}]*)?\}")


class UnknownValue(ValueError):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def names(text: str) -> list[tuple[str, bool]]:
    """The ``${...}`` names in text, in order, each with whether it has a ``:-`` default."""
    return [(m.group(1), m.group(2) is not None) for m in _VAR.finditer(text) if m.group(1)]


def _dig(value: str, keys: list[str]) -> str | None:
    try:
        data = json.loads(value)
    except ValueError:
        return None
    for key in keys:
        if isinstance(data, dict) and key in data:
            data = data[key]
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data if isinstance(data, str) else json.dumps(data)


def resolve(name: str, lookup: Callable[[str], str | None]) -> str | None:
    """The value of a (possibly dotted) name: the whole name first, then the longest known head
    with the rest as keys into its JSON value."""
    value = lookup(name)
    if value is not None:
        return value
    parts = name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = lookup(".".join(parts[:cut]))
        if head is not None:
            return _dig(head, parts[cut:])
    return None


def expand(text: str, lookup: Callable[[str], str | None], *, shell: bool = False) -> str:
    """text with every ``${...}`` filled in; UnknownValue for a name that resolves nowhere."""

    def one(m: re.Match) -> str:
        if m.group(1) is None:
            return "${"
        value = resolve(m.group(1), lookup)
        if value is not None:
            return value
        if m.group(2) is not None:
            return m.group(0) if shell else m.group(2)[2:]
        raise UnknownValue(m.group(1))

    return _VAR.sub(one, text)


def unknown(text: str, known: Callable[[str], bool]) -> list[str]:
    """The names in text that resolve nowhere (parse time: ``known(name)`` says whether a name, or
    its head, will have a value)."""
    out = []
    for name, has_default in names(text):
        if has_default:
            continue  # a default (the shell's, or ours) covers it
        parts = name.split(".")
        if not any(known(".".join(parts[:cut])) for cut in range(len(parts), 0, -1)):
            out.append(name)
    return out


def as_text(value) -> str:
    """A param, env or item value as a program sees it: JSON for lists and mappings (so
    ``${A.key}`` reads into them), true/false, '' for null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def map_strings(value, fn: Callable[[str], str]):
    """value (plain JSON types) with fn applied to every string in it, keys included."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {map_strings(k, fn): map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return value
