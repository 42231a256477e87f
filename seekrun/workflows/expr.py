"""Condition expressions over upstream tasks: ``{{ extract.exit_code != 0 }}``.

A Script Runner task's ``condition`` / ``skip_if``, and a precondition ``{expr: ...}`` on any
task node.  A tiny parser of its own (never ``eval``):

- names: ``<task>.exit_code`` (a number, or none), ``<task>.status`` (``success``, ``failed``,
  ``skipped``, ...; a cached task is ``success``), ``<task>.failed``, ``<task>.succeeded``,
  ``<task>.skipped`` (true or false), and ``env.NAME`` (the environment, text; none if unset);
- literals: numbers, ``'text'`` or ``"text"``, ``true``, ``false``, ``none`` / ``null``;
- operators: ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``not``, ``and``, ``or``, and
  parentheses.  ``{{ ... }}`` around the whole or parts of it is optional.

``parse(text)`` gives a tree (or raises BadExpression, with what to write), ``tasks(tree)`` the
tasks it reads, ``evaluate(tree, upstream, environ)`` its value.  A number compares with text
holding a number (``exit_code == '0'``); any other mixed comparison is simply unequal.
"""
from __future__ import annotations

import re

FIELDS = ("exit_code", "status", "failed", "succeeded", "skipped")
_TOKEN = re.compile(r"""\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*'|"[^"]*")|(?P<op>==|!=|<=|>=|<|>|\(|\))|"""
                    r"""(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*))""")
MAX_DEPTH = 50  # parentheses in one expression
_WORDS = {"true": True, "false": False, "none": None, "null": None}
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)


class BadExpression(ValueError):
    pass


def _tokens(text: str) -> list[tuple[str, object]]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise BadExpression(f"cannot read {text[pos:].strip()[:20]!r}: use task.exit_code, task.status, "
                                "task.failed, literals, ==, !=, <, >, and, or, not and parentheses")
        pos = m.end()
        if m.group("num") is not None:
            n = m.group("num")
            out.append(("lit", float(n) if "." in n else int(n)))
        elif m.group("str") is not None:
            out.append(("lit", m.group("str")[1:-1]))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            word = m.group("name")
            low = word.lower()
            if low in ("and", "or", "not"):
                out.append(("op", low))
            elif low in _WORDS:
                out.append(("lit", _WORDS[low]))
            else:
                out.append(("name", word))
    return out


def plain(text: str) -> str:
    """The expression without its ``{{ }}`` (which a node's config would take for a template)."""
    whole = _TEMPLATE.fullmatch(text.strip())
    if whole is not None:
        return whole.group(1).strip()
    return _TEMPLATE.sub(lambda m: f"({m.group(1).strip()})", text).strip()  # (spaces in literals kept)


def parse(text) -> tuple:
    """The tree of an expression: ("lit", v) | ("ref", task, field) | ("env", NAME) |
    ("not", t) | ("and"|"or", a, b) | ("cmp", op, a, b)."""
    if isinstance(text, bool):
        return ("lit", text)
    if not isinstance(text, str) or not text.strip():
        raise BadExpression("an expression is text, e.g. '{{ extract.exit_code == 0 }}'")
    if "{{" in text:
        text = _TEMPLATE.sub(lambda m: f" ({m.group(1)}) ", text)
        if "{{" in text or "}}" in text:
            raise BadExpression("unbalanced {{ }}")
    tokens = _tokens(text)
    if not tokens:
        raise BadExpression("the expression is empty")
    if sum(1 for kind, value in tokens if kind == "op" and value == "(") > MAX_DEPTH:
        raise BadExpression(f"more than {MAX_DEPTH} parentheses: write a simpler expression")
    parser = _Parser(tokens)
    try:
        tree = parser.expr()
    except RecursionError:
        raise BadExpression("the expression nests too deeply: write a simpler one") from None
    if parser.pos != len(tokens):
        raise BadExpression(f"unexpected {_show(tokens[parser.pos])} after a complete expression")
    return tree


def _show(token) -> str:
    kind, value = token
    return repr(value) if kind == "lit" else str(value)


class _Parser:
    def __init__(self, tokens):
        self.tokens, self.pos = tokens, 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self, value) -> bool:
        if self.peek() == ("op", value):
            self.pos += 1
            return True
        return False

    def expr(self):
        left = self.conj()
        while self.take("or"):
            left = ("or", left, self.conj())
        return left

    def conj(self):
        left = self.neg()
        while self.take("and"):
            left = ("and", left, self.neg())
        return left

    def neg(self):
        if self.take("not"):
            return ("not", self.neg())
        return self.cmp()

    def cmp(self):
        left = self.atom()
        kind, value = self.peek()
        if kind == "op" and value in ("==", "!=", "<", "<=", ">", ">="):
            self.pos += 1
            return ("cmp", value, left, self.atom())
        return left

    def atom(self):
        kind, value = self.peek()
        if kind is None:
            raise BadExpression("the expression ends too soon: a value or a name is missing")
        self.pos += 1
        if kind == "lit":
            return ("lit", value)
        if kind == "name":
            head, _, field = value.partition(".")
            if head == "env" and field and "." not in field:
                return ("env", field)
            if field not in FIELDS:
                raise BadExpression(f"'{value}' is not a task's field: write <task>.exit_code, .status, "
                                    ".failed, .succeeded or .skipped (or env.NAME)")
            return ("ref", head, field)
        if value == "(":
            inner = self.expr()
            if not self.take(")"):
                raise BadExpression("a '(' is not closed")
            return inner
        raise BadExpression(f"unexpected '{value}': a value or a name goes here")


def tasks(tree) -> list[str]:
    """The task names the expression reads, in order, once each."""
    out: list[str] = []

    def walk(t):
        if t[0] == "ref" and t[1] not in out:
            out.append(t[1])
        for part in t[1:]:
            if isinstance(part, tuple):
                walk(part)
    walk(tree)
    return out


def evaluate(tree, upstream: dict[str, dict], environ) -> object:
    """The value of ``tree``; ``upstream``: task name -> {"status", "exit_code"} of this run."""
    op = tree[0]
    if op == "lit":
        return tree[1]
    if op == "env":
        return environ.get(tree[1])
    if op == "ref":
        rec = upstream.get(tree[1]) or {}
        status = rec.get("status") or "not run"
        field = tree[2]
        if field == "status":
            return status
        if field == "exit_code":
            return None if status == "skipped" else rec.get("exit_code")
        return status == {"failed": "failed", "succeeded": "success", "skipped": "skipped"}[field]
    if op == "not":
        return not evaluate(tree[1], upstream, environ)
    if op == "and":
        return bool(evaluate(tree[1], upstream, environ)) and bool(evaluate(tree[2], upstream, environ))
    if op == "or":
        return bool(evaluate(tree[1], upstream, environ)) or bool(evaluate(tree[2], upstream, environ))
    return _compare(tree[1], evaluate(tree[2], upstream, environ), evaluate(tree[3], upstream, environ))


def _number(v):
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return v
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _compare(op: str, a, b) -> bool:
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None and not (isinstance(a, str) and isinstance(b, str)):
        a, b = na, nb
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    try:
        return _order(op, a, b)
    except TypeError:
        return False


def _order(op: str, a, b) -> bool:
    if op == "<":
        return a < b
    if op == "<=":
        return a <= b
    if op == ">":
        return a > b
    return a >= b


def precondition(item: dict, path: tuple, where: str, inputs: list[str], problems: list) -> dict | None:
    """A precondition ``{expr: "...", negate?}``, checked (seekrun/controls.py calls this): its tasks must be
    inputs of the node."""
    if len(set(item) & {"condition", "sql", "expected"}):
        problems.append((path, f"{where} gives 'expr' with 'condition', 'sql' or 'expected': keep one"))
        return None
    negate = item.get("negate", False)
    if not isinstance(negate, bool):
        problems.append(((*path, "negate"), f"{where}.negate must be true or false"))
        return None
    try:
        tree = parse(item["expr"])
    except BadExpression as exc:
        problems.append(((*path, "expr"), f"{where}.expr: bad expression: {exc}"))
        return None
    names = {i.partition(".")[2]: i for i in inputs}
    missing = [t for t in tasks(tree) if t not in names]
    if missing:
        problems.append(((*path, "expr"), f"{where}.expr reads '{missing[0]}', which is not an input of this "
                                          "node: add it to depends_on"))
        return None
    text = item["expr"] if isinstance(item["expr"], str) else str(item["expr"]).lower()
    return {"expr": text, "tasks": {t: names[t] for t in tasks(tree)}, "negate": negate}
