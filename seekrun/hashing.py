"""Hashing with xxhash: canonical JSON for config, content hashes for data files.

File content hashes are cached by (size, mtime_ns, inode, ctime_ns), so a file whose stat
has not changed is never re-read, and a touched file with the same bytes keeps its hash.
ctime is in the signature because it cannot be set by hand: an in-place edit that keeps the
size and puts the old mtime back (touch -d, rsync -t) still changes it.
Checks run cheapest first: stat, then content.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import xxhash

CACHE_VERSION = 2
RACY_SECONDS = 2.0  # a file modified this recently may change again within the same mtime tick


def stat_sig(st: os.stat_result) -> list:
    """What says a file is unchanged without reading it: size, mtime (ns), inode and ctime (ns)."""
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def file_sig(path) -> list | None:
    """stat_sig of a path, or None if it does not exist."""
    try:
        return stat_sig(os.stat(path))
    except FileNotFoundError:
        return None


def hash_bytes(data: bytes) -> str:
    return xxhash.xxh3_64_hexdigest(data)


def hash_obj(obj) -> str:
    """Hash of the canonical JSON of obj (sorted keys, no whitespace)."""
    if type(obj) is str:  # fast path; the same digest as the JSON route would give
        if '"' not in obj and "\\" not in obj and obj.isprintable():
            return xxhash.xxh3_64_hexdigest(('"' + obj + '"').encode("utf-8"))
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8"))


def hash_parts(*parts: str | None) -> str:
    h = xxhash.xxh3_64()
    for part in parts:
        h.update(b"\x00" if part is None else part.encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()


def hash_file_content(path: Path) -> str:
    h = xxhash.xxh3_64()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


SIG_LEN = 4  # stat_sig's length


def _valid_entry(entry) -> bool:
    return (isinstance(entry, list) and len(entry) == SIG_LEN + 2
            and all(type(v) is int for v in entry[:SIG_LEN])
            and isinstance(entry[SIG_LEN], str) and isinstance(entry[SIG_LEN + 1], bool))


class FileHashCache:
    """Content hashes of files keyed by stat, persisted in target/state/file_hashes.json.
    An entry is [*stat_sig, digest, racy]; a racy entry (hashed within RACY_SECONDS of the
    file's mtime, so the file could still change within the same mtime tick) is never trusted."""

    def __init__(self, path: Path | None):
        self.path = path
        self.entries: dict[str, list] = {}
        self.dirty = False
        self.reads = 0  # how many files were actually read (for tests and -d explain)
        if path is not None:
            from seekrun.fsutil import read_checked

            data = read_checked(path)  # a damaged or foreign file only costs a re-hash
            if isinstance(data, dict) and data.get("version") == CACHE_VERSION and isinstance(data.get("files"), dict):
                self.entries = {k: v for k, v in data["files"].items() if _valid_entry(v)}

    def known(self, path: Path, st: os.stat_result) -> str | None:
        """The cached digest if the file's stat is the one it was hashed at (and not racy)."""
        entry = self.entries.get(os.path.normpath(str(path)))
        if entry is not None and entry[:SIG_LEN] == stat_sig(st) and not entry[SIG_LEN + 1]:
            return entry[SIG_LEN]
        return None

    def hash(self, path: Path, st: os.stat_result | None = None) -> str:
        st = st or os.stat(path)
        digest = self.known(path, st)
        if digest is not None:
            return digest
        key = os.path.normpath(str(path))
        sig = stat_sig(st)
        digest = hash_file_content(path)
        self.reads += 1
        racy = (time.time_ns() - st.st_mtime_ns) < RACY_SECONDS * 1e9
        new = [*sig, digest, racy]
        if self.entries.get(key) != new:
            self.entries[key] = new
            self.dirty = True
        return digest

    def save(self, keep: set[str] | None = None) -> None:
        if keep is not None:
            stale = [k for k in self.entries if k not in keep]
            for k in stale:
                del self.entries[k]
            self.dirty = self.dirty or bool(stale)
        if self.path is not None and self.dirty:
            from seekrun.fsutil import write_checked

            write_checked(self.path, {"version": CACHE_VERSION, "files": self.entries})
            self.dirty = False


def data_sigs(node: dict, root) -> dict | None:
    """The stat signatures of the files a node reads (to see one changed while it was read)."""
    files = [*(node.get("data_files") or []), *(node.get("live_files") or [])]
    if not files:
        return None
    out = {}
    for rel in files:
        try:
            out[rel] = stat_sig(os.stat(root / rel))
        except OSError:
            out[rel] = None
    return out
