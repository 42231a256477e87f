"""Names a node's table takes where an engine restricts them: a Spark catalog takes letters,
digits and _ only, and Spark's and DuckDB's file readers read [...] in a path as a glob (a
fan-out instance is ``by_region[us]``). A plain name stays as it is."""
from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z0-9_.-]+\Z")
_WORD = re.compile(r"[A-Za-z0-9_]+\Z")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def is_plain(name: str) -> bool:
    """Whether the name is its own folder's name."""
    return _PLAIN.match(name) is not None


def catalog_name(name: str) -> str:
    """A node's table name in a Spark catalog, which takes letters, digits and _ only: its name,
    or (a fan-out instance's ``by_region[us]``) the name with others replaced, and a hash of it."""
    if _WORD.match(name):
        return name
    from seekrun.hashing import hash_bytes

    return f"{re.sub(r'[^A-Za-z0-9_]', '_', name)}_{hash_bytes(name.encode())[:8]}"


def folder_name(name: str) -> str:
    """A node's folder: its name, or (a fan-out instance's ``by_region[us]``: Spark's and DuckDB's
    file readers take [...] as a glob) the name with such characters replaced, and a hash of it."""
    if is_plain(name):
        return name
    from seekrun.hashing import hash_bytes

    return f"{_UNSAFE.sub('_', name)}-{hash_bytes(name.encode())[:8]}"
