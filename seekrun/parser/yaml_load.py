"""Safe YAML loading with line numbers, duplicate-key and alias-bomb detection.

Documents are composed to nodes (which carry marks) and then constructed with a
safe constructor, so errors can name the line of the offending key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seekrun.errors import Diagnostic, ProjectError

_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MAX_EXPANDED_NODES = 200_000  # refuse alias bombs (billion laughs) long before they expand
MAX_DEPTH = 64  # deeper config is refused at parse (deep recursion would crash hashing and SQL building)


class DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first_line: int):
        self.key, self.line, self.first_line = key, line, first_line


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode) and len(node.value) > 1:
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise DuplicateKey(key_node.value, key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


# Dates and timestamps stay as the text the user wrote: config is plain JSON types, and
# hashing or writing it needs no conversion.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


@dataclass
class Document:
    data: Any
    node: yaml.Node  # composed node, for line numbers
    line: int  # 1-based line where the document starts
    text: str = ""  # the whole file's text (marks index into it), for source_map


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # guards recursive aliases
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo) for v in node.value)
    else:
        size = 1
    memo[key] = size
    return size


def decode(raw: bytes, rel: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProjectError([Diagnostic(rel, line, f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}): "
                                                  "save it as UTF-8")]) from None


def load_documents(text: str, rel: str) -> list[Document]:
    """All YAML documents in a file. Raises ProjectError with one diagnostic on failure."""
    loader = _Loader(text)
    docs: list[Document] = []
    has_alias = "&" in text and "*" in text
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if has_alias and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise ProjectError([Diagnostic(rel, node.start_mark.line + 1,
                    "YAML anchors/aliases expand to too many values (alias bomb?): remove the aliases")])
            data = loader.construct_document(node)
            docs.append(Document(data, node, node.start_mark.line + 1, text))
    except DuplicateKey as exc:
        raise ProjectError([Diagnostic(rel, exc.line,
            f"duplicate key '{exc.key}' (first defined on line {exc.first_line}): keep only one")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        hint = "fix the YAML syntax"
        if mark is not None and _tab_near(text, mark.line):
            hint = "indent with spaces, not tabs"
            problem = "tab character in indentation"
        raise ProjectError([Diagnostic(rel, line, f"YAML syntax error: {problem}: {hint}")]) from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (a NUL byte, a control character)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        pos = text.find(char)  # the reader stops at the first one (its own position may count bytes)
        line = text.count("\n", 0, pos) + 1 if pos >= 0 else None
        what = "a NUL byte" if char == "\0" else f"the control character {ord(char):#04x}"
        raise ProjectError([Diagnostic(rel, line, f"file holds {what}, which YAML does not allow: "
                                                  "remove it (YAML files are text)")]) from None
    except yaml.YAMLError as exc:
        raise ProjectError([Diagnostic(rel, None, f"YAML error: {' '.join(str(exc).split())}")]) from None
    except RecursionError:
        raise ProjectError([Diagnostic(rel, None, "YAML nests too deeply: flatten the file")]) from None
    finally:
        loader.dispose()
    return docs


def _tab_near(text: str, line: int) -> bool:
    lines = text.splitlines()
    for ln in lines[max(0, line - 1): line + 1]:
        if "\t" in ln[: len(ln) - len(ln.lstrip())]:
            return True
    return False


def _descend(node: yaml.Node, path: tuple[Any, ...]) -> tuple[yaml.Node | None, int]:
    """(the node at a key path, or None if the path leaves the document; the line of the
    deepest key found on the way)."""
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if getattr(key_node, "value", None) == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return None, line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None, line
    return node, line


def line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """Best line for a key path inside a composed document (the deepest key found)."""
    return None if node is None else _descend(node, path)[1]


def text_start(node: yaml.Node | None, path: tuple[Any, ...]) -> int | None:
    """The file line where line 1 of the text value at a key path is: the line after the key
    for a literal block (``|``), the value's own line otherwise (folded and multi-line flow
    scalars join lines, so later lines are approximate there)."""
    found = None if node is None else _descend(node, path)[0]
    if not isinstance(found, yaml.ScalarNode):
        return None
    return found.start_mark.line + (2 if found.style in ("|", ">") else 1)


_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
            "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85", "_": "\xa0",
            "L": "\u2028", "P": "\u2029"}
_HEX = {"x": 2, "u": 4, "U": 8}


def _escape(text: str, p: int) -> tuple[str | None, int]:
    """(the character a double-quoted escape at text[p] == '\\' stands for, or None for a line
    continuation; its length in the source)."""
    nxt = text[p + 1: p + 2]
    if nxt in ("\n", "\r"):
        return None, 2
    if nxt in _HEX:
        n = _HEX[nxt]
        try:
            return chr(int(text[p + 2: p + 2 + n], 16)), 2 + n
        except ValueError:
            return None, 2
    return _ESCAPES.get(nxt), 2


def source_map(doc: Document, path: tuple[Any, ...]) -> dict | None:
    """Where each character of a multi-line folded, plain or quoted scalar (at a key path) is in
    the file, for messages that point into it: folding joins lines, so the value's own lines are
    not the file's. {"segs": [[value index, file line, column]...] (a run of characters on one
    line), "lines": {file line: [column the shown text starts at, shown text]}}. None for a
    literal block (``|``: its lines are the file's), a one-line value, or if the value cannot be
    matched to the source (then messages fall back to line-based positions)."""
    found = None if doc.node is None else _descend(doc.node, path)[0]
    text = doc.text
    if (not isinstance(found, yaml.ScalarNode) or not text or found.style == "|"
            or found.start_mark.line == found.end_mark.line):
        return None
    value, style = found.value, found.style
    start, end = found.start_mark.index, found.end_mark.index
    if style in ("'", '"'):
        start, end = start + 1, end - 1
    elif style == ">":
        start = text.find("\n", start, end) + 1  # after the header line (> or >- and a comment)
        if start == 0:
            return None
    positions: list[int] = []
    p = start
    for ch in value:
        while p < end:
            s = text[p]
            if style == '"' and s == "\\":
                made, size = _escape(text, p)
                p += size
                if made == ch:
                    positions.append(p - size)
                    break
                continue
            p += 1
            if s == ch or (ch == " " and s in "\r\n"):  # a line break folded into a space
                positions.append(p - 1)
                break
        else:
            return None  # not matched: the value is not what the source says (should not happen)
    import bisect

    starts = [0]
    for i, c in enumerate(text):
        if c == "\n":
            starts.append(i + 1)
    segs: list[list[int]] = []
    lines: dict[int, list] = {}
    for vi, pos in enumerate(positions):
        li = bisect.bisect_right(starts, pos) - 1
        col = pos - starts[li]
        if not (segs and segs[-1][1] == li + 1 and col - segs[-1][2] == vi - segs[-1][0]):
            segs.append([vi, li + 1, col])
        if li + 1 not in lines:
            line_end = text.find("\n", starts[li])
            line_text = text[starts[li]: line_end if line_end >= 0 else len(text)].rstrip("\r")
            first = len(line_text) - len(line_text.lstrip())  # the text after the indentation...
            if starts[li] <= start:
                first = max(first, start - starts[li])  # ...and, on the first line, after the key
            last = end - starts[li] if end <= starts[li] + len(line_text) else len(line_text)
            lines[li + 1] = [first, line_text[first:last]]
    return {"segs": segs, "lines": {str(k): v for k, v in lines.items()}}


def load_marker(path: Path, rel: str) -> tuple[dict, Any]:
    """The project file's mapping and a line finder: line(key) -> its line number."""
    raw = path.read_bytes()
    docs = load_documents(decode(raw, rel), rel)
    if not docs or docs[0].data is None:
        return {}, lambda key: None
    if not isinstance(docs[0].data, dict):
        raise ProjectError([Diagnostic(rel, 1, "the project file must be a mapping such as 'name: my_project'")])
    node = docs[0].node

    def line(key):
        return line_of(node, (key,))
    line.node = node  # the composed document, for lines inside a value (params:, env:)
    return docs[0].data, line
