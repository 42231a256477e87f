"""Run parameters and the project environment.

- ``params:`` in the project file (or a workflow file) declares the run's parameters with
  their defaults: a mapping ``{DAY: "2026-01-01"}``, a Dagu list of one-key mappings
  (``- DAY: 2026-01-01``) or ``KEY=VALUE`` strings, or the Dagu string
  ``"DAY=2026-01-01 REGION=eu"``. Values are text: numbers as written, true/false, null -> "".
- ``seekrun run --param DAY=2026-01-02`` (repeatable) and ``KEY=VALUE`` words after ``--``
  override them (``parse_words``, ``resolve``); an unknown name is a usage error (exit 2)
  with a suggestion.
- ``env:`` (a mapping or a Dagu list) and ``dotenv:`` (a path or a list of paths) give the
  project environment: env: > dotenv > the process environment. An env: value may use
  ``${NAME}`` of run params, earlier env entries, dotenv values and the process environment.

Tasks read a run param as ``${DAY}``; SQL and any templated string as ``{{ var('DAY') }}``
(filled in after the parse cache, ``apply_vars``). Only the nodes that use a param have its
value among their hashed fields. Nothing here imports duckdb.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from seekrun.errors import Diagnostic, ProjectError, UsageError, first_few, suggest

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
VAR_CALL = re.compile(r"""var\(\s*(['"])(?P<name>[^'"]*)\1\s*(?:,\s*(?:(['"])(?P<default>.*?)\3|"""
                      r"""(?P<number>[+-]?\d+(?:\.\d+)?))\s*)?\)\Z""", re.S)
_EXPR = re.compile(r"\{\{\s*(.*?)\s*\}\}", re.S)

# the project environment of each project parsed in this process (by root), for run time:
# a task's process environment, env_var() in SQL (never written to target/)
_ENVS: dict[str, dict[str, str]] = {}


def text(value, raw: str | None = None) -> str:
    """A YAML value as the text a param holds: numbers as written (``raw``), true/false, null -> ''."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and raw is not None:
        return raw
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value, sort_keys=True)
    return str(value)


def _scalar(node, path: tuple) -> str | None:
    """The source text of the scalar at a key path of a composed YAML node (None if unknown)."""
    if node is None:
        return None
    from seekrun.parser.yaml_load import _descend

    found = _descend(node, path)[0]
    return getattr(found, "value", None) if found is not None and hasattr(found, "style") else None


def _line(node, path: tuple, fallback: int | None) -> int | None:
    if node is None:
        return fallback
    from seekrun.parser.yaml_load import line_of

    return line_of(node, path) or fallback


def pairs(value, key: str, where: str, line: int | None = None, node=None) -> list[tuple[str, str, int | None]]:
    """(name, value as text, line) of a ``params:`` / ``env:`` value: a mapping, a list of one-key
    mappings or KEY=VALUE strings, or (params only) a string of KEY=VALUE words. ProjectError
    (naming ``where`` and the line) for any other shape. ``node``: the composed YAML document
    holding ``key`` at its top (for lines and numbers as written)."""
    what = (f"{key} must be a mapping ({key}: {{DAY: \"2026-01-01\"}}) or a list of one-key mappings "
            f"(- DAY: 2026-01-01)")
    out: list[tuple[str, str, int | None]] = []
    bad: list[Diagnostic] = []
    if value is None:
        return out
    if isinstance(value, str) and key == "params":
        import shlex

        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ProjectError([Diagnostic(where, line, f"{key}: {exc}: {what}")]) from None
        value = words
    if isinstance(value, dict):
        items = [(k, v, (key, k)) for k, v in value.items()]
    elif isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            at = _line(node, (key, i), line)
            if isinstance(item, dict) and len(item) == 1:
                (k, v), = item.items()
                items.append((k, v, (key, i, k)))
            elif isinstance(item, str) and "=" in item:
                k, _, v = item.partition("=")
                items.append((k.strip(), v, None))
            else:
                bad.append(Diagnostic(where, at, f"{key}: item {i + 1} is not one 'NAME: value' (or NAME=value): "
                                                 + what))
    else:
        raise ProjectError([Diagnostic(where, line, what)])
    seen: set[str] = set()
    for name, v, path in items:
        at = _line(node, path, line) if path is not None else line
        if not isinstance(name, str) or not _NAME.match(name):
            bad.append(Diagnostic(where, at, f"{key}: '{name}' is not a name: use letters, digits and _ "
                                             "(not starting with a digit)"))
            continue
        if isinstance(v, (list, dict)):
            bad.append(Diagnostic(where, at, f"{key}.{name} must be a single value (text, a number, true/false)"))
            continue
        if name in seen:
            bad.append(Diagnostic(where, at, f"{key}: {name} is given twice: keep one"))
            continue
        seen.add(name)
        out.append((name, text(v, _scalar(node, path) if path is not None else None), at))
    if bad:
        raise ProjectError(bad)
    return out


def declared(cfg, where: str = "seekrun_project.yml", line=None, node=None) -> dict[str, str]:
    """The params a project file or workflow document declares, in order, with their defaults.
    ``cfg``: the file's mapping (its ``params:`` is read); ``line``: key -> line (or a line);
    ``node``: the composed YAML document (for item lines and numbers as written)."""
    value = cfg.get("params") if isinstance(cfg, dict) else None
    at = line("params") if callable(line) else line
    return {name: v for name, v, _ in pairs(value, "params", where, at, node)}


def parse_words(words) -> dict[str, str]:
    """KEY=VALUE words (--param, or after --) as a mapping; UsageError for a word without '='."""
    out: dict[str, str] = {}
    for word in words or ():
        name, eq, value = str(word).partition("=")
        if not eq or not _NAME.match(name.strip()):
            raise UsageError([Diagnostic("", None, f"'{word}' is not a param: write NAME=VALUE, e.g. "
                                                   "--param DAY=2026-01-02 (or DAY=2026-01-02 after --)")])
        out[name.strip()] = value
    return out


def resolve(declared: dict[str, str], given: dict[str, str] | None) -> dict[str, str]:
    """The run's params: the declared defaults, with the given values over them (UsageError for
    a name the project does not declare, with a suggestion)."""
    given = given or {}
    problems = []
    for name in given:
        if name in declared:
            continue
        if not declared:
            problems.append(Diagnostic("", None, f"unknown param '{name}': the project declares no params "
                                                 "(add 'params:' with a default to the project file)"))
            continue
        close = suggest(name, declared)
        hint = f": did you mean {close.split(chr(39))[1]}?" if close else ""
        problems.append(Diagnostic("", None, f"unknown param '{name}'{hint} (the project declares "
                                             f"{first_few(declared, 8)})"))
    if problems:
        raise UsageError(problems)
    return {**declared, **{k: given[k] for k in declared if k in given}}


# -- the project environment ------------------------------------------------------------------

def read_dotenv(path: Path, rel: str) -> tuple[dict[str, str], list[Diagnostic]]:
    """KEY=VALUE lines (# comments, blank lines, an optional ``export `` prefix, optional quotes)."""
    out: dict[str, str] = {}
    problems: list[Diagnostic] = []
    try:
        content = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return out, [Diagnostic(rel, None, f"cannot read this dotenv file ({getattr(exc, 'strerror', None) or exc}): "
                                           "fix it or remove it from dotenv:")]
    for n, raw in enumerate(content.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, eq, value = line.partition("=")
        name = name.strip()
        if not eq or not _NAME.match(name):
            problems.append(Diagnostic(rel, n, "not a NAME=value line: write NAME=value (# starts a comment)"))
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
            if raw.strip().partition("=")[2].strip()[0] == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[name] = value
    return out, problems


def _dotenv_paths(cfg: dict, marker: str, line) -> list[str]:
    value = cfg.get("dotenv")
    if value is None:
        return []
    paths = [value] if isinstance(value, str) else value
    if not isinstance(paths, list) or any(not isinstance(p, str) or not p.strip() for p in paths):
        raise ProjectError([Diagnostic(marker, line("dotenv"), "dotenv must be a file path (dotenv: .env) or a list "
                                                              "of them")])
    return list(paths)


def read_env_config(root: Path, cfg: dict, marker: str, line, node) -> tuple[list, dict[str, str], list[Diagnostic]]:
    """(env: entries as (name, raw text, line), the dotenv values, problems)."""
    problems: list[Diagnostic] = []
    entries: list = []
    dotenv: dict[str, str] = {}
    try:
        entries = pairs(cfg.get("env"), "env", marker, line("env"), node)
    except ProjectError as exc:
        problems.extend(exc.diagnostics)
    try:
        paths = _dotenv_paths(cfg, marker, line)
    except ProjectError as exc:
        problems.extend(exc.diagnostics)
        paths = []
    from seekrun.project import inside

    for p in paths:
        full = root / p
        if not inside(root, full):
            problems.append(Diagnostic(marker, line("dotenv"), f"dotenv file '{p}' is outside the project: keep it "
                                                               "inside"))
        elif not full.is_file():
            problems.append(Diagnostic(marker, line("dotenv"), f"dotenv file '{p}' not found: create it, or remove it "
                                                               "from dotenv: (paths are relative to the project)"))
        else:
            got, bad = read_dotenv(full, p)
            dotenv.update(got)
            problems.extend(bad)
    return entries, dotenv, problems


def project_env(entries: list, dotenv: dict[str, str], run_params: dict[str, str], where: str,
                environ=os.environ) -> dict[str, str]:
    """The project environment: dotenv values, then env: entries over them (each may use
    ${NAME} of run params, earlier entries, dotenv values and the environment)."""
    from seekrun import values

    env = dict(dotenv)
    problems = []
    for name, raw, at in entries:
        def lookup(key: str) -> str | None:
            for scope in (env, run_params, environ):
                if key in scope:
                    return scope[key]
            return None
        try:
            env[name] = values.expand(raw, lookup)
        except values.UnknownValue as exc:
            problems.append(Diagnostic(where, at, f"env.{name}: '${{{exc.name}}}' has no value: declare it in "
                                                  "params or an earlier env entry, or set the environment variable "
                                                  f"(or write ${{{exc.name}:-default}})"))
    if problems:
        raise ProjectError(problems)
    secret = set(dotenv)
    from seekrun import secrets

    # a dotenv file usually holds secrets: its values (and what is made from them) are redacted
    secrets.register(*[v for k, v in env.items() if k in secret or any(f"${{{d}" in r for d in secret
                                                                        for n, r, _ in entries if n == k)])
    return env


def apply_to_project(project, given: dict[str, str] | None) -> dict[str, str]:
    """Resolve this run's params against the project's, work out its environment with them, and
    remember it for run time. Returns the resolved params."""
    resolved = resolve(project.params, given)
    project.run_params = resolved
    project.env = project_env(project.env_entries, project.dotenv_values, resolved, project.marker)
    _ENVS[str(project.root)] = project.env
    return resolved


def env_of(root) -> dict[str, str]:
    """The project environment of the project at root, as its last parse in this process worked it out."""
    return _ENVS.get(str(root)) or _ENVS.get(os.path.realpath(str(root))) or {}


# -- {{ var('NAME') }} --------------------------------------------------------------------------

def var_refs_in(value) -> list[list]:
    """[name, default or None] of every {{ var(...) }} in the strings of a config tree, outside
    metadata (a description never reruns a node), in order, once each."""
    from seekrun.parser.kinds import METADATA_KEYS
    from seekrun.parser.templating import iter_strings

    found = []
    for path, s in iter_strings(value):
        if "{{" not in s or (path and path[0] in METADATA_KEYS):
            continue
        for m in _EXPR.finditer(s):
            v = VAR_CALL.match(m.group(1))
            if v:
                default = v.group("default") if v.group("default") is not None else v.group("number")
                if [v.group("name"), default] not in found:
                    found.append([v.group("name"), default])
    return found


def fill(s: str, values: dict[str, str]) -> str:
    """s with each {{ var('NAME') }} whose NAME is in values replaced by its value."""
    if "{{" not in s or "var" not in s:
        return s

    def one(m):
        v = VAR_CALL.match(m.group(1))
        if v is None or v.group("name") not in values:
            return m.group(0)
        return values[v.group("name")]
    return _EXPR.sub(one, s)


def _deep(value, values):
    from seekrun.values import map_strings

    return map_strings(value, lambda text: fill(text, values))


_KEEP = ("config", "field_hashes", "description", "owner", "tags", "file", "id", "name", "kind", "vars", "item_values",
         "gather", "instance_of")


def apply_vars(records: dict[str, dict], run_params: dict[str, str], errors: list, where: str) -> None:
    """Put this run's param values into the records that use {{ var() }} (copies: the cached
    records keep their placeholders); each value used is one hashed field, ``var:NAME``.  A
    fan-out instance's ``var('ITEM')`` (``ITEM.field``, ``ITEM_INDEX``, ``matrix.key``) is its item."""
    from seekrun.parser.instances import is_item_name, item_value

    for nid, rec in list(records.items()):
        used = rec.get("vars")
        if not used:
            continue
        mine: dict[str, str] = {}
        for name, default in used:
            item = item_value(rec, name)  # a fan-out instance's {{ var('ITEM') }} (parser/instances.py)
            if item is not None:
                mine[name] = item
            elif name in run_params:
                mine[name] = run_params[name]
            elif default is not None:
                mine[name] = default
            elif rec.get("item_values") is not None and is_item_name(name):
                errors.append(Diagnostic(rec["file"], rec.get("sql_line") or rec["line"],
                                         f"{nid}: var('{name}'): the item has no field '{name.partition('.')[2]}'"
                                         "; use one it has, or give a default"))
            elif is_item_name(name):
                errors.append(Diagnostic(rec["file"], rec.get("sql_line") or rec["line"],
                                         f"{nid}: var('{name}') reads a fan-out item, and the node has none: add "
                                         "'foreach: [...]' (or 'matrix:') to it, or use a param"))
            else:
                close = suggest(name, run_params)
                hint = f": did you mean {close.split(chr(39))[1]}?" if close else ""
                declares = f"(the project declares {first_few(run_params, 8)})" if run_params else \
                    f"(the project declares no params: add 'params:' to {where})"
                errors.append(Diagnostic(rec["file"], rec.get("sql_line") or rec["line"],
                                         f"{nid}: var('{name}') is not a param{hint} {declares}; declare it, or "
                                         f"give a default: var('{name}', '...')"))
        if len(mine) != len(used):
            continue
        new = {k: (v if k in _KEEP else _deep(v, mine)) for k, v in rec.items()}
        if rec.get("built_config") is None:
            new["built_config"] = _deep(rec["config"], mine)
        new["field_hashes"] = {**rec["field_hashes"], **{f"var:{k}": v for k, v in mine.items()}}
        records[nid] = new


def digest_parts(records: dict[str, dict]) -> list[str]:
    """For the manifest digest: the param values each node uses."""
    return sorted(f"{nid}%{k}={v}" for nid, rec in records.items() for k, v in rec["field_hashes"].items()
                  if k.startswith("var:") or k == "run_params")


def is_param_field(key: str) -> bool:
    """Whether a hashed field holds run param values (``var:DAY``, a task's ``run_params``)."""
    return key.startswith("var:") or key == "run_params"


def param_changes(key: str, old, new) -> list[str]:
    """How a param field changed, for the reason a node runs: ``DAY changed (a -> b)``."""
    if key.startswith("var:"):
        return [f"{key[4:]} changed ({old!r} -> {new!r})"]
    old, new = old if isinstance(old, dict) else {}, new if isinstance(new, dict) else {}
    return [f"{k} changed ({old.get(k)!r} -> {new.get(k)!r})" for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
