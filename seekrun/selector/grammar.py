"""The selector grammar: text -> a small AST (data), evaluated with set algebra elsewhere.

    selector := group ( SPACE group )*         union
    group    := term ( "," term )*             intersection (binds tighter than the space)
    term     := [ "@" ] [ [N] "+" ] atom [ "+" [N] ]
    atom     := METHOD ":" VALUE | NODE-ID | NODE-NAME

``+x`` adds x's ancestors, ``x+`` its descendants, ``2+x`` / ``x+1`` only that many
generations; ``@x`` is x, its descendants and all of their ancestors (what a rebuild of x's
downstream reads).  Several ``-s`` values are a union too.  Every term keeps its column in the
text it came from, so an error can point at it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

METHODS = ("id", "kind", "tag", "path", "source_path", "state", "result", "config")

_TERM = re.compile(r"^(?P<at>@)?(?:(?P<up_n>\d*)(?P<up>\+))?(?P<atom>.*?)(?:(?P<down>\+)(?P<down_n>\d*))?$")


class SelectorError(ValueError):
    """A bad selector: ``message`` says what is wrong with the term at ``column`` (1-based)."""

    def __init__(self, flag: str, text: str, column: int | None, term: str | None, message: str,
                 sugar: bool = False):
        self.flag, self.text, self.column, self.term, self.message = flag, text, column, term, message
        self.sugar = sugar  # an old flag (--types...): its message as it always was, "--types: ..."
        super().__init__(self.line())

    def line(self) -> str:
        if self.sugar:
            return f"{self.flag}: {self.message}"
        where = f"'{self.text}'"
        if self.column is not None:
            where += f", column {self.column}" + (f" ('{self.term}')" if self.term else "")
        return f"{self.flag} {where}: {self.message}"


class SelectorErrors(Exception):
    """Several bad terms, reported together."""

    def __init__(self, errors: list[SelectorError]):
        self.errors = errors
        super().__init__("; ".join(e.line() for e in errors))


@dataclass(frozen=True)
class Term:
    method: str  # one of METHODS ("id": a node id or a name)
    value: str  # for config: "owner=team-a" is kept as key "owner", value "team-a" (see key)
    text: str  # the term as written, operators included
    column: int  # 1-based, in the selector text
    up: int | None = None  # generations of ancestors to add: None none, -1 all
    down: int | None = None  # generations of descendants to add
    at: bool = False  # @term
    key: str | None = None  # config.KEY:value -> KEY (dotted for nested keys)

    @property
    def dynamic(self) -> bool:
        """Matches what changed or what happened (may rightly match nothing), not what the project holds."""
        return self.method in ("state", "result")


@dataclass(frozen=True)
class Group:
    terms: tuple[Term, ...]  # intersected


@dataclass(frozen=True)
class Selector:
    groups: tuple[Group, ...]  # united
    text: str
    flag: str
    sugar: bool = False  # made from an old flag (--types, --nodes, --tags, --exclude-tags)

    @property
    def terms(self) -> list[Term]:
        return [t for g in self.groups for t in g.terms]


def parse(text: str, flag: str = "--select") -> Selector:
    """Parse one selector value; raise SelectorError at the first bad term."""
    groups: list[Group] = []
    for word in _split(text, " \t\n", 0):
        terms = []
        for column, part in _split_cols(word, ","):
            if not part:
                raise SelectorError(flag, text, column, None,
                                    "an empty term (two commas, or a comma at an end): a comma joins two terms")
            terms.append(parse_term(part, column, text, flag))
        groups.append(Group(tuple(terms)))
    if not groups:
        raise SelectorError(flag, text, None, None, "an empty selector: give a node, or a term such as tag:daily")
    return Selector(tuple(groups), text, flag)


def _scan(text: str, seps: str):
    """(start, end) of each piece of text between separators outside [...] (a fan-out instance's
    key, e.g. task.load[us, eu], may hold spaces, commas and colons)."""
    depth, start = 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]" and depth:
            depth -= 1
        elif ch in seps and not depth:
            yield start, i
            start = i + 1
    yield start, len(text)


def _split(text: str, seps: str, base: int):
    """The words of text (1-based columns kept by _split_cols through the Word type)."""
    for a, b in _scan(text, seps):
        if a < b:
            yield _Word(text[a:b], base + a + 1)


class _Word(str):
    def __new__(cls, value: str, column: int):
        self = super().__new__(cls, value)
        self.column = column
        return self


def _split_cols(word: "_Word", seps: str):
    for a, b in _scan(word, seps):
        yield word.column + a, word[a:b]


def _outside_brackets(text: str) -> str:
    """text with every [...] part blanked out (for finding operators and ':')."""
    out, depth = [], 0
    for ch in text:
        if ch == "[":
            depth += 1
        out.append(ch if not depth else " ")
        if ch == "]" and depth:
            depth -= 1
    return "".join(out)


def parse_term(part: str, column: int, text: str, flag: str) -> Term:
    def bad(message: str) -> SelectorError:
        return SelectorError(flag, text, column, part, message)

    m = _TERM.match(part)
    atom = m.group("atom") if m else ""
    if not m or not atom:
        raise bad("no node or method in the term: write e.g. model_name, +name, name+, tag:daily")
    at = bool(m.group("at"))
    up = _depth(m.group("up"), m.group("up_n"))
    down = _depth(m.group("down"), m.group("down_n"))
    if at and (up is not None or down is not None):
        raise bad("'@' already takes descendants and their ancestors: it does not combine with '+'")
    if up == 0 or down == 0:
        raise bad("a depth of 0: leave the '+' out instead")
    bare = _outside_brackets(atom)
    if "+" in bare or "@" in bare:
        raise bad("'+' and '@' go only at a term's ends (graph operators); terms are joined by spaces or commas")
    colon = bare.find(":")
    key = None
    if colon < 0:
        return Term("id", atom, part, column, up, down, at)
    method, value = atom[:colon], atom[colon + 1:]
    if method.startswith("config."):
        key = method[len("config."):]
        if not key:
            raise bad("config needs a key: config.owner:team-a")
        method = "config"
    if method not in METHODS:
        from seekrun.errors import suggest

        raise bad(f"unknown method '{method}'{suggest(method, [m for m in METHODS if m != 'config'] + ['config.KEY'])}"
                  f" (methods: {', '.join(m for m in METHODS if m != 'config')}, config.KEY)")
    if method == "config" and key is None:
        raise bad("config needs a key: config.owner:team-a")
    if not value:
        raise bad(f"{method}: needs a value, e.g. {_EXAMPLE.get(method, method + ':x')}")
    return Term(method, value, part, column, up, down, at, key)


_EXAMPLE = {"id": "id:transform.orders", "kind": "kind:transform", "tag": "tag:daily", "path": "path:nodes/finance",
            "source_path": "source_path:data/*.csv", "state": "state:modified", "result": "result:failed",
            "config": "config.owner:team-a"}


def _depth(plus: str | None, digits: str | None) -> int | None:
    if not plus:
        return None
    return int(digits) if digits else -1
