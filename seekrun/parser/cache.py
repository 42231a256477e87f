"""The parse cache: node-file records keyed by stat (size, mtime_ns, inode, ctime_ns), in
target/state/parse_cache/.

Unchanged files are never re-read.  Entries are spread over shards (by file path), so a
change rewrites one small shard, not the whole cache.  An entry cached within
RACY_SECONDS of its file's mtime is "racy" (the file could change again within the same
mtime tick) and is re-read next time; once re-read safely, its shard is rewritten.
Every file carries a checksum line (fsutil.write_checked): a damaged shard is ignored (its
files are read again), never half-trusted.
"""
from __future__ import annotations

import time
from pathlib import Path

import xxhash

from seekrun import __version__
from seekrun.fsutil import read_checked, write_checked
from seekrun.hashing import RACY_SECONDS

# 9: feature groups record feature_order; 10: SQL lexer: -- ends at \r, $ in names, any $tag$;
# 12 (issue 11): run-time values; .py files written for Seeknal are node files; new kinds; not_executable, kind-less notes
VERSION = 15
SHARDS = 32
_KEYS = ("records", "warnings", "notes", "digest")


def _well_formed(entry: dict) -> bool:
    """Whether an entry has the shape this module writes (anything else is re-read, never used)."""
    records, warnings, notes = entry["records"], entry["warnings"], entry["notes"]
    return (isinstance(records, list) and all(isinstance(r, dict) and isinstance(r.get("id"), str) for r in records)
            and isinstance(warnings, list) and all(isinstance(w, list) and len(w) == 2 and isinstance(w[1], str)
                                                   for w in warnings)
            and isinstance(notes, list) and all(isinstance(n, str) for n in notes)
            and isinstance(entry["digest"], str))


def shard_of(rel: str) -> int:
    return xxhash.xxh32_intdigest(rel.encode("utf-8")) % SHARDS


class ParseCache:
    def __init__(self, folder: Path | None):
        self.folder = folder
        self.files: dict[str, dict] = {}
        self.meta: dict = {}
        self.loaded_meta: dict = {}
        self.dirty_shards: set[int] = set()
        self.meta_dirty = False
        self.reads = 0
        self.seen: set[str] = set()  # files present in this parse
        if folder is None or not folder.is_dir():
            return
        meta = read_checked(folder / "meta.json")
        if (not isinstance(meta, dict) or meta.get("version") != VERSION or meta.get("seekrun") != __version__
                or not isinstance(meta.get("meta") or {}, dict)):
            return
        self.meta, self.loaded_meta = dict(meta.get("meta") or {}), dict(meta.get("meta") or {})
        for i in range(SHARDS):
            part = read_checked(folder / f"{i:02d}.json")
            if isinstance(part, dict):
                self.files.update(part)
            else:
                self.dirty_shards.add(i)  # a lost or broken shard only costs re-reading its files

    def clear(self) -> None:
        """Forget every entry (e.g. seeknal/common changed, so templates may render differently)."""
        if self.files:
            self.files = {}
            self.dirty_shards = set(range(SHARDS))

    def get(self, rel: str, sig: list) -> dict | None:
        entry = self.files.get(rel)
        if (isinstance(entry, dict) and entry.get("sig") == sig and not entry.get("racy")
                and all(k in entry for k in _KEYS) and _well_formed(entry)):
            return entry
        return None

    def put(self, rel: str, sig: list, entry: dict, mtime_ns: int) -> None:
        entry["sig"] = sig
        entry["racy"] = (time.time_ns() - mtime_ns) < RACY_SECONDS * 1e9
        self.files[rel] = entry
        self.dirty_shards.add(shard_of(rel))

    def lend(self, rel: str, root: Path, common: str) -> dict | None:
        """This (another build's) cache's entry for a YAML node file whose bytes are the ones
        it was read from, or None.  Records are a function of a YAML file's bytes and
        seeknal/common (``common``: this parse's digest of it), so a fresh checkout (--state
        DIR) takes them instead of parsing 1,000 files again.  Python files are never lent
        (their records follow the modules they import)."""
        entry = self.files.get(rel)
        if (not rel.endswith((".yml", ".yaml")) or not isinstance(entry, dict) or self.meta.get("common") != common
                or not all(k in entry for k in _KEYS) or not _well_formed(entry)):
            return None
        from seekrun.hashing import hash_bytes, hash_parts

        try:
            raw = (root / rel).read_bytes()
        except OSError:
            return None
        if hash_parts(rel, hash_bytes(raw)) != entry["digest"]:
            return None
        return {k: entry[k] for k in _KEYS}

    def touch(self, rel: str) -> None:
        """An entry's records were updated in place (e.g. a Python node's import closure)."""
        if rel in self.files:
            self.dirty_shards.add(shard_of(rel))

    @property
    def dirty(self) -> bool:
        return bool(self.dirty_shards) or self.meta_dirty or self.meta != self.loaded_meta

    def save(self, keep: set[str]) -> None:
        for rel in [r for r in self.files if r not in keep]:
            del self.files[rel]
            self.dirty_shards.add(shard_of(rel))
        if self.folder is None or not self.dirty:
            return
        if self.dirty_shards:
            shards: dict[int, dict] = {i: {} for i in self.dirty_shards}
            for rel, entry in self.files.items():
                part = shards.get(shard_of(rel))
                if part is not None:
                    part[rel] = entry
            for i, part in sorted(shards.items()):
                write_checked(self.folder / f"{i:02d}.json", part)
        write_checked(self.folder / "meta.json", {"version": VERSION, "seekrun": __version__, "meta": self.meta})
        self.dirty_shards.clear()
        self.meta_dirty = False
        self.loaded_meta = dict(self.meta)
