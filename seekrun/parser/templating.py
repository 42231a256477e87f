"""{{ ... }} templates in SQL, rule expressions and params.

- ``{{ env_var('NAME') }}`` / ``{{ env_var('NAME', 'default') }}``: a secret-safe value.
  At parse time only a hash of the value enters the manifest (so a change reruns the
  node); the text stays a placeholder, and the engine substitutes the value at run
  time.  The plain value never appears in manifest.json, run_results.json or messages.
  Seeknal's ``{{ env:NAME }}`` / ``{{ env:NAME|default }}`` is the same thing.
- ``{{ id.param }}`` / ``{{ id }}``: a value from Seeknal's shared config
  (seeknal/common/*.yml), rendered at parse time, so the rendered text is what is hashed.
- ``{{ today }}``, ``{{ run_date }}``, ``{{ start_date }}``, ``{{ end_date }}`` (and Seeknal's date
  functions): run-time values, kept as placeholders here and filled in after the parse cache
  (parser/runvars.py).
- ``{{ ref('kind.name') }}``: the same as ``ref('kind.name')``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from dataclasses import dataclass, field

from seekrun.parser import runvars
from seekrun.parser.kinds import METADATA_KEYS


_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)
_ENV = re.compile(r"""env_var\(\s*(['"])(?P<name>[^'"]+)\1\s*(?:,\s*(['"])(?P<default>.*?)\3\s*)?\)\Z""", re.S)
_DOTTED = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*\Z")
_ENV_COLON = re.compile(r"env:\s*(?P<name>[A-Za-z_]\w*)\s*(?:\|(?P<default>.*))?\Z", re.S)  # Seeknal's
_REF = re.compile(r"""ref\(\s*(['"])(?P<target>[^'"]+)\1\s*\)\Z""")
_OUTPUT = re.compile(r"""output\(\s*(['"])(?P<name>[A-Za-z_]\w*)\1\s*\)\Z""")
from seekrun.params import VAR_CALL as _VAR_CALL  # noqa: E402

# {{ output('NAME') }} (a value a task captured) becomes this marker at parse, and the value at run time
OUTPUT_MARKER = re.compile(r"__seekrun_output_([A-Za-z_]\w*?)__")


def env_ref(expr: str) -> tuple[str, str | None] | None:
    """(NAME, default or None) of ``env_var('NAME'[, 'default'])`` or ``env:NAME[|default]``
    (the text inside {{ }}), else None."""
    m = _ENV.match(expr)
    if m is None:
        m = _ENV_COLON.match(expr)
        if m is None:
            return None
        default = m.group("default")
        return m.group("name"), None if default is None else default.strip()
    return m.group("name"), m.group("default")


class TemplateError(Exception):
    pass


@dataclass
class Rendered:
    text: str
    env: list[tuple[str, str | None]] = field(default_factory=list)  # (NAME, default) used
    common: list[str] = field(default_factory=list)  # common ids used
    runtime: list[str] = field(default_factory=list)  # run-time values used (parser/runvars.py BASES)


def env_value(name: str, default: str | None, env: dict | None = None) -> str | None:
    """A variable's value: the project environment (env:, dotenv:) first, then the process's."""
    value = env.get(name) if env else None
    if value is None:
        value = os.environ.get(name)
    return default if value is None else value


def env_hash(refs: list, key: bytes, register: bool = True, env: dict | None = None) -> tuple[str, list[str]]:
    """Keyed hash of the current values of env vars (name, default); and the names that are unset.

    Keyed BLAKE2b (stdlib), not xxhash: the hash lands in manifest.json, which gets shared and
    uploaded, and an unkeyed fast hash of a short secret can be reversed by trying values.
    The key is the project's own (target/state/env_key), so the hash is useless without it."""
    import hashlib

    from seekrun import secrets as registry

    h = hashlib.blake2b(digest_size=16, key=key)
    missing = []
    for name, default in refs:
        value = env_value(name, default, env)
        if value is None:
            missing.append(name)
        elif register:
            registry.register(value)
        for part in (name, value):
            data = b"" if part is None else part.encode("utf-8")
            h.update(b"N" if part is None else b"%d:" % len(data))
            h.update(data)
    return h.hexdigest(), missing


def map_strings(value, fn, path: tuple = ()):
    """A copy of a config tree (dicts, lists, scalars) with fn(key path, text) applied to
    every string."""
    if isinstance(value, str):
        return fn(path, value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn, (*path, i)) for i, v in enumerate(value)]
    return value


def iter_strings(value, path: tuple = ()):
    """(key path, text) for every string in a config tree."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from iter_strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_strings(v, (*path, i))


def env_refs_in(value) -> list[tuple[str, str | None]]:
    """Every env_var('NAME'[, 'default']) in the strings of a config tree, in order, once each.
    Other {{ ... }} text is left alone (for decorator arguments, which get no shared config)."""
    found = [env for _, text in iter_strings(value) if "{{" in text
             for m in _EXPR.finditer(text) if (env := env_ref(m.group(1)))]
    return list(dict.fromkeys(found))


def runtime_refs_in(value) -> list[str]:
    """The run-time values ({{ today }}...) the strings of a config tree use, outside metadata
    (for decorator arguments, which get no shared config)."""
    found = [base for path, text in iter_strings(value) if "{{" in text and not (path and path[0] in METADATA_KEYS)
             for m in _EXPR.finditer(text) if (base := runvars.base_of(m.group(1)))]
    return list(dict.fromkeys(found))


def render_config(config, common: dict | None):
    """Render every string in a config tree.
    Returns (rendered, env refs, run-time values used, [(key path, problem)])."""
    env: list = []
    runtime: list = []
    params = node_params(config)
    problems: list = []

    def one(path, value):
        if "{{" not in value:
            return value
        try:
            r = render(value, common, params=params)
        except TemplateError as exc:
            problems.append((path, str(exc)))
            return value
        env.extend(r.env)
        if not (path and path[0] in METADATA_KEYS):  # a {{ today }} in a description never reruns a node
            runtime.extend(r.runtime)
        return r.text

    rendered = map_strings(config, one)
    return rendered, list(dict.fromkeys(env)), list(dict.fromkeys(runtime)), problems


def node_params(config) -> dict | None:
    """A node's own ``params:`` (scalars), which Seeknal offers as ``{{ key }}`` in its SQL.
    Keys named like a run-time value (start_date...) are that value's default instead
    (parser/runvars.py), so the command line can still set it."""
    params = config.get("params") if isinstance(config, dict) else None
    if not isinstance(params, dict):
        return None
    return {k: v for k, v in params.items() if isinstance(k, str) and k not in runvars.BASES
            and isinstance(v, (str, int, float, bool))} or None


def render(text: str, common: dict[str, dict] | None = None, _depth: int = 0, params: dict | None = None) -> Rendered:
    """Render the node's own params and common-config references (recursively: a value may
    use others); keep env_var() and run-time placeholders."""
    out = Rendered(text)
    if "{{" not in text:
        return out
    problems: list[str] = []

    def sub(m: re.Match) -> str:
        expr = m.group(1)
        env = env_ref(expr)
        if env:
            out.env.append(env)
            return m.group(0)
        if params and expr in params:  # Seeknal: a node's params come before everything else
            if _depth >= 10:
                problems.append(f"'{{{{ {expr} }}}}' expands into itself (a cycle in params)")
                return m.group(0)
            inner = render(str(params[expr]), common, _depth + 1, params)
            out.env.extend(inner.env)
            out.runtime.extend(inner.runtime)
            out.common.extend(inner.common)
            return inner.text
        base = runvars.base_of(expr)
        if base:
            out.runtime.append(base)
            return m.group(0)
        if _VAR_CALL.match(expr):  # {{ var('DAY') }}: a run param, filled in after the parse cache
            return m.group(0)
        value_of = _OUTPUT.match(expr)
        if value_of:
            return f"__seekrun_output_{value_of.group('name')}__"
        ref = _REF.match(expr)
        if ref:
            return "ref('{}')".format(ref.group("target").strip().replace("'", "''"))
        if _DOTTED.match(expr) and common is not None:
            value = lookup(common, expr)
            if value is None:
                problems.append(f"'{{{{ {expr} }}}}' is not defined in seeknal/common")
                return m.group(0)
            out.common.append(expr.split(".")[0])
            value = str(value)
            if "{{" in value:
                if _depth >= 10:
                    problems.append(f"'{{{{ {expr} }}}}' expands into itself (a cycle in seeknal/common)")
                    return m.group(0)
                inner = render(value, common, _depth + 1, params)
                out.env.extend(inner.env)
                out.runtime.extend(inner.runtime)
                value = inner.text
            return value
        problems.append(f"cannot render '{{{{ {expr} }}}}': use env_var('NAME'), a key of the node's params, "
                        "a seeknal/common id, ref('kind.name'), output('NAME'), var('PARAM') or today, run_date, start_date, end_date")
        return m.group(0)

    out.text = _EXPR.sub(sub, text)
    if problems:
        raise TemplateError("; ".join(dict.fromkeys(problems)))
    return out


def lookup(common: dict[str, dict], expr: str):
    """`id` or `id.key[.key]` in the shared config. A bare id renders its `value` (or `sql`,
    `expression`, `table`, in that order); keys are looked up in the entry, then its params."""
    parts = expr.split(".")
    if len(parts) >= 2 and parts[0] in ("rules", "transforms", "transformations", "sources") \
            and parts[0] not in common:
        parts = parts[1:]  # Seeknal's own spelling: {{ rules.<id> }}, {{ transforms.<id> }}
    entry = common.get(parts[0])
    if entry is None:
        return None
    if len(parts) == 1:
        for key in ("value", "sql", "expression", "table"):
            if key in entry:
                return entry[key]
            for nested in ("rule", "params"):
                if isinstance(entry.get(nested), dict) and key in entry[nested]:
                    return entry[nested][key]
        return None
    node = entry
    for i, key in enumerate(parts[1:]):
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif i == 0 and isinstance(entry.get("params"), dict) and key in entry["params"]:
            node = entry["params"][key]
        elif i == 0 and isinstance(entry.get("rule"), dict) and key in entry["rule"]:
            node = entry["rule"][key]
        else:
            return None
    return node


def substitute_env(text: str, sql: bool = False, env: dict | None = None) -> tuple[str, list[str]]:
    """Run time: put env_var values in; returns (text, the values put in).

    With ``sql``, a value inside a quoted SQL literal ('...') has its quotes doubled, and one
    inside a quoted identifier ("...") its double quotes: the value is always data, never
    SQL.  Outside quotes it is put in as written.  Every value is registered for redaction."""
    secrets: list[str] = []
    if "{{" not in text:
        return text, secrets
    matches = [m for m in _EXPR.finditer(text) if env_ref(m.group(1))]
    if not matches:
        return text, secrets
    contexts = _quote_contexts(text, matches) if sql else [None] * len(matches)
    out, last = [], 0
    for m, quote in zip(matches, contexts):
        name, default = env_ref(m.group(1))
        if quote in UNSAFE:
            raise TemplateError(f"env_var('{name}') inside an E'...' or $$...$$ string cannot be quoted "
                                "safely: put it in a plain '...' literal")
        if quote == "--":
            continue  # in a comment: left as it is (the value never reaches DuckDB)
        value = env_value(name, default, env)
        if value is None:
            raise TemplateError(f"environment variable {name} is not set")
        if value:
            secrets.append(value)
        if quote is not None:
            value = value.replace(quote, quote + quote)
        out += [text[last:m.start()], value]
        last = m.end()
    out.append(text[last:])
    from seekrun import secrets as registry

    registry.register(*secrets)
    return "".join(out), secrets


_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")  # $$, $tag$: a tag is an identifier (any letters) without $
_IDENT_CHAR = re.compile(r"[\w$]")  # what may precede a quote or a $ inside an identifier (a$q$, type'x')
UNSAFE = ("E'", "$")  # quotes a value cannot be put into safely: refused


def _quote_contexts(text: str, matches: list) -> list[str | None]:
    """For each placeholder, where it sits in the SQL: None (outside quotes), "'" (a literal),
    '"' (a quoted identifier), "E'" (an escape string, where \\ escapes), "$" (a dollar-quoted
    string), or "--" (a comment). Placeholders are opaque: their own quotes do not count."""
    out: list[str | None] = []
    state: str | None = None
    tag, depth = "", 0  # the dollar string's tag; how deep /* */ comments nest (DuckDB nests them)
    spans = [(m.start(), m.end()) for m in matches]
    i, k = 0, 0
    while k < len(spans):
        start, end = spans[k]
        if i >= start:  # at (or, inside a comment or string, past) the next placeholder
            out.append("--" if state in ("--", "/*") else "$" if state == "$" else state)
            i, k = max(i, end), k + 1
            continue
        ch = text[i]
        if state is None:
            if text.startswith("--", i):
                state = "--"
            elif text.startswith("/*", i):
                state, depth, i = "/*", 1, i + 1
            elif ch in "eE" and text.startswith("'", i + 1) and (i == 0 or not _IDENT_CHAR.match(text[i - 1])):
                state, i = "E'", i + 1
            elif ch in "'\"":
                state = ch
            elif ch == "$" and (i == 0 or not _IDENT_CHAR.match(text[i - 1])) and (m := _DOLLAR_TAG.match(text, i)):
                state, tag, i = "$", m.group(0), m.end() - 1
        elif state == "--":
            if ch in "\r\n":
                state = None
        elif state == "/*":
            if text.startswith("/*", i):
                depth, i = depth + 1, i + 1
            elif text.startswith("*/", i):
                depth, i = depth - 1, i + 1
                if depth == 0:
                    state = None
        elif state == "$":
            if text.startswith(tag, i):
                state, i = None, i + len(tag) - 1
        elif state == "E'":
            if ch == "\\" or text.startswith("''", i):
                i += 1
            elif ch == "'":
                state = None
        elif ch == state:  # ' or ": a doubled one closes and reopens, the same net state
            state = None
        i += 1
    return out


def redact(message: str, secrets: list[str]) -> str:
    from seekrun import secrets as registry

    return registry.redact(message, secrets)


ENV_KEY_FILE = "env_key"


def read_env_key(state_dir: Path) -> bytes | None:
    """The project's key for env var hashes (32 random bytes, hex), or None if there is none yet."""
    try:
        key = bytes.fromhex((state_dir / ENV_KEY_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return key if len(key) == 32 else None


def save_env_key(manifest, *state_dirs: Path) -> None:
    """Save the key a parse had to make (before anything that records hashes made with it) in
    each of these state folders: readable by the owner only, atomic like every other write to
    target/."""
    key = getattr(manifest, "new_env_key", None)
    if key is None:
        return
    from seekrun.fsutil import atomic_write_bytes

    for state_dir in dict.fromkeys(Path(d) for d in state_dirs):
        atomic_write_bytes(state_dir / ENV_KEY_FILE, key.hex().encode() + b"\n", mode=0o600)
    manifest.new_env_key = None
