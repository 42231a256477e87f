"""Keyed hashes of the environment variables each node uses (never the values themselves):
env_var() values, a task's ${NAME} from the environment, the project env (env:, dotenv:), and
a task fan-out's list from the environment (left out of its instances' share of the hash)."""
from __future__ import annotations

import os

from seekrun.errors import Diagnostic
from seekrun.hashing import hash_parts


def env_hashes(project, records: dict[str, dict],
               errors: list[Diagnostic]) -> tuple[dict[str, str], bytes | None]:
    """Keyed hashes of the env vars each node uses (never the values themselves); and the key,
    if this parse had to make one (no target/state/env_key yet)."""
    from seekrun.parser.templating import env_hash

    users = [(nid, rec) for nid, rec in records.items() if rec.get("env") or rec.get("env_plain")
             or (project.env and rec.get("task"))]
    if not users:
        return {}, None
    from seekrun.parser.templating import read_env_key

    key, new_key = read_env_key(project.state_dir), None
    if key is None:  # a first parse; with --state, the other build's key (hashes that compare)
        key = new_key = getattr(project, "borrowed_env_key", None) or os.urandom(32)
    out: dict[str, str] = {}
    # every task runs with the project environment (env:, dotenv:): its values are in each
    # task's hash, keyed (a dotenv file holds secrets)
    whole = env_hash(sorted([n, None] for n in project.env), key, register=False, env=project.env)[0] \
        if project.env else None
    for nid, rec in users:
        digest, missing = env_hash(rec.get("env") or [], key, env=project.env)
        if rec.get("env_plain"):  # a task's ${NAME} from the environment: hashed, not a secret
            plain, _ = env_hash([[n, None] for n in rec["env_plain"]], key, register=False, env=project.env)
            digest = plain if not rec.get("env") else hash_parts(digest, plain)
        if whole and rec.get("task"):
            digest = whole if not (rec.get("env") or rec.get("env_plain")) else hash_parts(digest, whole)
        source = _fanout_env_source(rec)
        if source:  # a fan-out over ${LIST} from the environment: its instances' share leaves LIST out
            rest = [n for n in rec["env_plain"] if n != source]
            base, _ = env_hash(rec.get("env") or [], key, env=project.env)
            if rest:
                plain, _ = env_hash([[n, None] for n in rest], key, register=False, env=project.env)
                base = plain if not rec.get("env") else hash_parts(base, plain)
            if whole:
                base = hash_parts(base, whole)
            records[nid] = {**rec, "fanout": {**rec["fanout"], "env_base": base}}
        for name in missing:
            errors.append(Diagnostic(rec["file"], rec["line"],
                f"{nid}: environment variable {name} is not set: set it, or give a default "
                f"with env_var('{name}', 'default') (Seeknal's form: {{{{ env:{name}|default }}}})"))
        out[nid] = digest
    return out, new_key


def _fanout_env_source(rec: dict) -> str | None:
    """The environment variable a fan-out's item list is (``foreach: ${LIST}``), if it is one."""
    sp = rec.get("fanout") or {}
    text = sp.get("text")
    if not text or not rec.get("env_plain"):
        return None
    from seekrun import values

    names = [n.split(".")[0] for n, _ in values.names(text)]
    return names[0] if len(names) == 1 and names[0] in rec["env_plain"] else None
