"""The manifest: compiled nodes, edges and hashes; graph queries (Kahn order, closures)."""
from __future__ import annotations

import heapq
import json
import os
from collections import deque
from pathlib import Path
from typing import Iterable

from seekrun.errors import Diagnostic, ProjectError
from seekrun.fsutil import atomic_write_bytes, dump_json

MANIFEST_VERSION = 1
NEWER_HINT = "upgrade seekrun, or delete target/ to start afresh"


SEEKNAL_COPY = "manifest.seeknal.json"  # where a manifest Seeknal wrote into target/ is kept
OWN_COPY = "state/manifest.json"  # seekrun's own last manifest (Seeknal overwrites target/manifest.json)


def newer_version(exc: ProjectError) -> bool:
    return any(NEWER_HINT in d.message for d in exc.diagnostics)


class SeeknalManifest(ProjectError):
    """target/manifest.json was written by Seeknal (both tools write that file)."""


def is_seeknal(data) -> bool:
    """Seeknal's manifest: metadata with seeknal_version (and project), never manifest_version."""
    meta = data.get("metadata") if isinstance(data, dict) else None
    return isinstance(meta, dict) and "seeknal_version" in meta and "manifest_version" not in meta


class Manifest:
    def __init__(self, metadata: dict, nodes: dict[str, dict], edges: list[dict] | None = None):
        self.metadata = metadata
        self.nodes = nodes
        self.edges = edges if edges is not None else [
            {"from": src, "to": nid} for nid in sorted(nodes) for src in dict.fromkeys(nodes[nid]["inputs"])
        ]
        self._children: dict[str, list[str]] | None = None
        self.path: Path | None = None

    # ---- persistence -------------------------------------------------------------
    @classmethod
    def load(cls, path: Path | str) -> "Manifest":
        path = Path(path)
        try:
            data = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as exc:
            raise ProjectError([Diagnostic(str(path), None,
                f"cannot read manifest ({exc.__class__.__name__}): run 'seekrun parse' to rebuild it")]) from None
        if is_seeknal(data):
            raise SeeknalManifest([Diagnostic(str(path), None, "written by Seeknal, not seekrun")])
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), dict):
            raise ProjectError([Diagnostic(str(path), None, "not a seekrun manifest: run 'seekrun parse'")])
        meta = data.get("metadata")
        version = meta.get("manifest_version") if isinstance(meta, dict) else None
        if not isinstance(version, int):
            raise ProjectError([Diagnostic(str(path), None, "manifest has no manifest_version: run 'seekrun parse'")])
        if version > MANIFEST_VERSION:
            raise ProjectError([Diagnostic(str(path), None,
                f"manifest_version {version} is newer than this seekrun understands ({MANIFEST_VERSION}): "
                f"{NEWER_HINT}")])
        nodes = data["nodes"]
        bad = sorted(str(k) for k, v in nodes.items()
                     if not _valid_node(k, v) or any(i not in nodes for i in v["inputs"]))
        edges = data.get("edges")
        if bad or not (edges is None or (isinstance(edges, list) and all(
                isinstance(e, dict) and isinstance(e.get("from"), str) and isinstance(e.get("to"), str)
                for e in edges))):
            what = f"node(s) {', '.join(bad[:3])}" if bad else "its edges"
            raise ProjectError([Diagnostic(str(path), None,
                f"manifest is damaged ({what} not as seekrun writes them): run 'seekrun parse' to rebuild it")])
        manifest = cls(data["metadata"], data["nodes"], edges)
        manifest.path = path.resolve()  # target/manifest.json: tells a runner where the project is
        return manifest

    def to_dict(self) -> dict:
        return {"metadata": self.metadata, "nodes": self.nodes, "edges": self.edges}

    def content_bytes(self) -> bytes:
        """The manifest as written, without generated_at (for change detection)."""
        meta = {k: v for k, v in self.metadata.items() if k != "generated_at"}
        return dump_json({"metadata": meta, "nodes": self.nodes, "edges": self.edges})

    def save(self, path: Path | str) -> None:
        """Write atomically, keeping the previous file as <path>.old (hard link, no copy), and a
        copy in target/state/ (Seeknal writes target/manifest.json in place: the copy is what
        seekrun last wrote, for the next parse's diff, whatever Seeknal did meanwhile)."""
        path = Path(path)
        if path.exists():
            old_tmp = path.with_name(path.name + ".old.tmp")
            old_tmp.unlink(missing_ok=True)
            os.link(path, old_tmp)
            os.replace(old_tmp, path.with_name(path.name + ".old"))
        if getattr(self, "new_env_key", None) is not None:  # the key its env hashes were made with
            from seekrun.parser.templating import save_env_key

            save_env_key(self, path.parent / "state")
        data = dump_json(self.to_dict())
        if path.parent.name == "target":
            atomic_write_bytes(path.parent / OWN_COPY, data)
        atomic_write_bytes(path, data)

    # ---- graph -------------------------------------------------------------------
    @property
    def children(self) -> dict[str, list[str]]:
        if self._children is None:
            ch: dict[str, list[str]] = {nid: [] for nid in self.nodes}
            for e in self.edges:
                if e["to"] in ch and e["from"] in ch:
                    ch[e["from"]].append(e["to"])
            self._children = ch
        return self._children

    def parents(self, node_id: str) -> list[str]:
        return list(dict.fromkeys(self.nodes[node_id]["inputs"]))

    def topological_order(self, subset: Iterable[str] | None = None) -> list[str]:
        """Kahn's algorithm; ties broken by node id, so the order is deterministic."""
        members = set(self.nodes) if subset is None else set(subset)
        indeg = {nid: 0 for nid in members}
        for nid in members:
            for p in self.parents(nid):
                if p in members:
                    indeg[nid] += 1
        heap = [nid for nid, d in indeg.items() if d == 0]
        heapq.heapify(heap)
        order: list[str] = []
        children = self.children
        while heap:
            nid = heapq.heappop(heap)
            order.append(nid)
            for c in children[nid]:
                if c in indeg:
                    indeg[c] -= 1
                    if indeg[c] == 0:
                        heapq.heappush(heap, c)
        if len(order) != len(members):
            raise ProjectError("dependency cycle in manifest: run 'seekrun parse' to see it")
        return order

    def downstream(self, ids: Iterable[str], include_self: bool = True) -> set[str]:
        return _closure(ids, self.children.__getitem__, include_self)

    def upstream(self, ids: Iterable[str], include_self: bool = True) -> set[str]:
        return _closure(ids, self.parents, include_self)


def _closure(ids: Iterable[str], step, include_self: bool) -> set[str]:
    start = list(ids)
    seen: set[str] = set(start) if include_self else set()
    queue = deque(start)
    while queue:
        for nxt in step(queue.popleft()):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


def _valid_node(node_id, node) -> bool:
    """Whether a manifest entry has the shape the runner relies on."""
    if not isinstance(node, dict) or node.get("id") != node_id or not isinstance(node.get("kind"), str):
        return False
    if not isinstance(node.get("name"), str) or not isinstance(node.get("file"), str):
        return False
    inputs, hashes = node.get("inputs"), node.get("hashes")
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        return False
    if not isinstance(hashes, dict) or not isinstance(hashes.get("config"), str) \
            or not isinstance(hashes.get("fields"), dict):
        return False
    if not isinstance(node.get("config"), dict) or not isinstance(node.get("tags", []), list):
        return False
    return all(isinstance(node.get(k, []), list) for k in ("data_files", "output_files", "live_files"))
