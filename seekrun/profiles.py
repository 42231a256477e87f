"""Connection profiles in Seeknal's layout (profiles.yml), read at run time only.

Which file (the first that exists):

1. ``SEEKRUN_PROFILE=<path>`` (Seeknal's ``--profile``), relative to the project;
2. with ``SEEKRUN_ENV=<env>`` (Seeknal's ``--env``): ``profiles-<env>.yml`` in the project,
   then in Seeknal's config folder;
3. ``profiles.yml`` in the project, then in Seeknal's config folder.

Seeknal's config folder is ``$SEEKNAL_BASE_CONFIG_PATH``, else ``~/.seeknal``.  The file holds
``connections: {<name>: {type: postgresql, host: ..., password: ...}}`` and
``source_defaults: {postgresql: {connection: <name>}}``.  Values may use Seeknal's
``${VAR}`` / ``${VAR:default}`` / ``$VAR`` or seekrun's ``{{ env_var('VAR') }}``.

Nothing from a profile enters the manifest or the hashes: a database source is re-read on
every run anyway.  Registered as secrets (seekrun/secrets.py), so no message or file shows
them: every value filled in from the environment (``${VAR}``, ``$VAR``, ``env_var()``), whatever
its key; the value of every password-like key (password, token, secret, api_key...); and the
password inside any URL-style DSN (``postgresql://user:password@host/db``) or ``password=...``
in a key=value connection string, whatever its key (url, uri, dsn, connection_string...).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_SEEKNAL_ENV = re.compile(r"\$\{(\w+)(?::([^}]*))?\}|\$(\w+)")
SECRET_KEYS = frozenset({"password", "token", "secret", "bearer_token"})
# any key naming a secret: password, db_password, passwd, pwd, api_key, access_token, client_secret...
_SECRET_KEY = re.compile(r"pass|pwd|secret|token|credential|private|api_?key|access_?key|auth_?key", re.I)
# the password of a URL (scheme://user:password@host) and of a key=value DSN (password=... / ?password=...)
_URL_PASSWORD = re.compile(r"[A-Za-z][\w+.-]*://[^/?#@\s:]*:([^@\s/?#]*)@")
_KV_PASSWORD = re.compile(r"(?:^|[\s?&;])(?:password|passwd|pwd)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s&;]+))", re.I)
ALIASES = {"postgres": "postgresql"}


class ProfileError(Exception):
    """A profile problem, said in one line naming the file (shown as is)."""


def config_folder() -> Path:
    return Path(os.environ.get("SEEKNAL_BASE_CONFIG_PATH") or Path.home() / ".seeknal")


def candidates(root: Path) -> list[Path]:
    """The files looked at, in order."""
    explicit = os.environ.get("SEEKRUN_PROFILE")
    if explicit:
        path = Path(explicit)
        return [path if path.is_absolute() else root / path]
    out: list[Path] = []
    env = os.environ.get("SEEKRUN_ENV")
    if env:
        out += [root / f"profiles-{env}.yml", config_folder() / f"profiles-{env}.yml"]
    return out + [root / "profiles.yml", config_folder() / "profiles.yml"]


def find(root: Path) -> Path | None:
    for path in candidates(root):
        if path.is_file():
            return path
    if os.environ.get("SEEKRUN_PROFILE"):
        raise ProfileError(f"SEEKRUN_PROFILE names {candidates(root)[0]}, which is not a file: fix the path or unset it")
    return None


def _show(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def load(root: Path) -> tuple[dict, str | None]:
    """(the profile's content, its name for messages); ({}, None) when there is none."""
    path = find(root)
    if path is None:
        return {}, None
    import yaml

    shown = _show(path, root)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{shown}: cannot be read ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {where + 1})" if where is not None else ""
        raise ProfileError(f"{shown}: not valid YAML{at}: fix the file") from None
    if data is None:
        return {}, shown
    if not isinstance(data, dict):
        raise ProfileError(f"{shown}: must be a mapping with 'connections:' (and 'source_defaults:')")
    return data, shown


def interpolate(value: str, where: str, env_var: bool = True) -> str:
    """Seeknal's ${VAR} / ${VAR:default} / $VAR and seekrun's {{ env_var('VAR') }}, filled in.
    Every value taken from the environment is registered as a secret (env_var() ones by
    substitute_env, as everywhere): whatever its key, it may be one (a user, a DSN...)."""
    from seekrun.parser.templating import TemplateError, substitute_env

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        got = os.environ.get(name)
        if got is None:
            if m.group(1) and m.group(2) is not None:
                got = m.group(2)
            else:
                raise ProfileError(f"{where}: environment variable {name} is not set: set it (or give "
                                   "${" + name + ":default})")
        else:
            register_value(got)
        return got

    out = _SEEKNAL_ENV.sub(one, value) if "$" in value else value
    if not env_var:
        return out
    try:
        out, _ = substitute_env(out)  # registers what it fills in
    except TemplateError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    return out


def is_secret_key(key) -> bool:
    return str(key).lower() in SECRET_KEYS or bool(_SECRET_KEY.search(str(key)))


def dsn_passwords(text: str) -> list[str]:
    """The passwords written inside a connection string: a URL's ``user:password@`` (as written
    and percent-decoded) and ``password=...`` (plain or quoted)."""
    from urllib.parse import unquote

    found = [m.group(1) for m in _URL_PASSWORD.finditer(text)]
    found += [m.group(1) if m.group(1) is not None else m.group(2) for m in _KV_PASSWORD.finditer(text)]
    out = []
    for value in found:
        if value:
            out += [value, unquote(value), value.replace("\\'", "'").replace("\\\\", "\\")]
    return out


def register_value(value: str) -> None:
    """A secret, and the passwords inside it if it is a connection string."""
    from seekrun import secrets

    secrets.register(value, *dsn_passwords(value))


def resolve(values: dict, where: str, fill=None) -> dict:
    """A copy with every string interpolated (``fill``: how env_var() is filled in, after ${VAR};
    by default as in a profile); the values of secret keys, the values from the environment and
    the passwords inside connection strings registered as secrets."""
    from seekrun import secrets

    out = {}
    for key, value in values.items():
        if isinstance(value, str):
            value = interpolate(value, f"{where}.{key}", env_var=fill is None)
            value = fill(value) if fill is not None else value
            secrets.register(*dsn_passwords(value))
        if is_secret_key(key) and value not in (None, ""):
            if isinstance(value, (dict, list)):
                secrets.register(*_strings(value))
            else:
                register_value(str(value))
        elif isinstance(value, (dict, list)):
            _register_nested(value)
        out[key] = value
    return out


def _strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [] if value is None or isinstance(value, bool) else [str(value)]


def _register_nested(value) -> None:
    """Secret keys and connection strings inside a nested mapping (options: {password: ...})."""
    from seekrun import secrets

    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, v in items:
        if isinstance(key, str) and is_secret_key(key) and v not in (None, ""):
            secrets.register(*_strings(v))
        elif isinstance(v, str):
            secrets.register(*dsn_passwords(v))
        elif isinstance(v, (dict, list)):
            _register_nested(v)


def connection(root: Path, name: str) -> dict:
    """The named connection from the profile's ``connections:``, interpolated."""
    data, shown = load(root)
    if shown is None:
        looked = ", ".join(_show(p, root) for p in candidates(root))
        raise ProfileError(f"connection '{name}' needs a profiles.yml with 'connections: {{{name}: ...}}' "
                           f"(looked for {looked})")
    section = data.get("connections")
    if not isinstance(section, dict) or not section:
        raise ProfileError(f"{shown}: has no 'connections:' section: add 'connections: {{{name}: ...}}'")
    entry = section.get(name)
    if not isinstance(entry, dict):
        from seekrun.errors import suggest

        known = ", ".join(sorted(map(str, section))) or "none"
        raise ProfileError(f"{shown}: no connection named '{name}'{suggest(name, list(map(str, section)))} "
                           f"(it has: {known})")
    return resolve(entry, f"{shown}: connections.{name}")


def source_defaults(root: Path, source_type: str) -> dict:
    """Default params for a source type (``source_defaults:``), interpolated; {} if none."""
    data, shown = load(root)
    section = data.get("source_defaults") if data else None
    if not isinstance(section, dict):
        return {}
    canonical = ALIASES.get(source_type, source_type)
    for key in (canonical, source_type, *[a for a, c in ALIASES.items() if c == canonical]):
        entry = section.get(key)
        if isinstance(entry, dict) and entry:
            return resolve(entry, f"{shown}: source_defaults.{key}")
    return {}
