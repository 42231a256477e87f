"""Dagu's params text: ``"SOURCE=sales_db TABLE=transactions"``, one ``K=V`` per line, or a
list / mapping, into an ordered mapping of raw values (``${...}`` still in them).

Words are split on blanks outside quotes and outside ``$(...)``, ``${...}`` and backticks, so
``OFFSET=$((OFFSET + BATCH_SIZE))`` and ``REGIONS='${REGIONS}'`` are one word each.  Quotes
around a value are removed.  A word without ``=`` is a positional param: ``1``, ``2``...
"""
from __future__ import annotations

from seekrun import values


class ParamsError(ValueError):
    pass


def words(text: str) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    quote = None
    depth = 0  # inside $( ), ${ }
    tick = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"" and depth == 0 and not tick:
            quote = ch
            cur.append(ch)
        elif ch == "`":
            tick = not tick
            cur.append(ch)
        elif ch == "$" and text[i + 1:i + 2] in ("(", "{"):
            depth += 1
            cur.append(ch + text[i + 1])
            i += 1
        elif ch in "({" and depth:
            depth += 1
            cur.append(ch)
        elif ch in ")}" and depth:
            depth -= 1
            cur.append(ch)
        elif ch.isspace() and depth == 0 and not tick:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
        i += 1
    if quote or depth or tick:
        raise ParamsError("an unclosed quote, $( or ${ in params")
    if cur:
        out.append("".join(cur))
    return out


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value




def parse(value) -> dict[str, str]:
    """The params of a dag node or step as an ordered {name: raw value}."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return {str(k): values.as_text(v) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, str] = {}
        for i, item in enumerate(value):
            if isinstance(item, dict) and len(item) == 1:
                (k, v), = item.items()
                out[str(k)] = values.as_text(v)
            elif isinstance(item, str):
                out.update(parse(item) if "=" in item else {str(len(out) + 1): item})
            else:
                raise ParamsError("params as a list holds one-key mappings (- NAME: value) or NAME=value words")
        return out
    if not isinstance(value, str):
        raise ParamsError("params must be a mapping, a list, or text such as \"A=1 B=2\"")
    out = {}
    positional = 0
    for word in words(value):
        name, eq, rest = word.partition("=")
        if eq and name and (name[0].isalpha() or name[0] == "_") and name.replace("_", "").isalnum():
            out[name] = _unquote(rest)
        else:
            positional += 1
            out[str(positional)] = _unquote(word)
    return out
