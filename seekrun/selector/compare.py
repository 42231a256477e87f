"""What differs between this project's nodes and a baseline build: the terms state:new and
state:modified(.body|.data|.metadata), and `seekrun diff`.

The baseline is another build's manifest (``--state DIR``), or, without one, what this
project last built (its traces in target/state/).  A node's change is named field by field,
with the labels the rebuilder uses (seekrun/diff.py: node_changes):

- ``body``: what it builds from its config: SQL, code, params, inputs, engine;
- ``data``: the content hash of the files it reads (a source's CSV);
- ``metadata``: description, owner, tags, formatting: nothing it builds.

``state:modified`` is new, body or data (a new node is a modified one, as in CI a new model
must be built); metadata-only changes are listed by ``diff`` but select nothing to run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

STATE_VALUES = ("new", "modified", "modified.body", "modified.data", "modified.metadata")


@dataclass
class NodeChange:
    new: bool = False
    body: list[str] = field(default_factory=list)  # labels
    data: bool = False
    metadata: list[str] = field(default_factory=list)
    changes: list = field(default_factory=list)  # the FieldChange list (diff's)

    @property
    def modified(self) -> bool:
        return self.new or bool(self.body) or self.data

    def labels(self) -> list[str]:
        return [*self.body, *(["source data"] if self.data else [])]


def compare(nodes: dict[str, dict], base: dict[str, dict]) -> dict[str, NodeChange]:
    """node id -> how it differs from the baseline's entry (unchanged nodes left out).
    ``base``: manifest-shaped entries (kind, config, inputs, file, hashes)."""
    from seekrun.diff import node_changes

    out: dict[str, NodeChange] = {}
    for nid, node in nodes.items():
        old = base.get(nid)
        if old is None:
            out[nid] = NodeChange(new=True)
            continue
        changes = node_changes(old, node)
        if not changes:
            continue
        change = NodeChange(changes=changes)
        for c in changes:
            if c.field == "data":
                change.data = True
            elif c.build:
                change.body.append(c.label)
            else:
                change.metadata.append(c.label)
        out[nid] = change
    return out


def from_records(nodes: dict[str, dict], records: dict[str, dict]) -> dict[str, dict]:
    """This project's last builds as manifest-shaped entries (a trace has no raw config, so
    only what changes a build can be told apart: enough for state:modified)."""
    base: dict[str, dict] = {}
    for nid, rec in records.items():
        node = nodes.get(nid)
        if node is None or rec.get("status") != "success" or not isinstance(rec.get("fields"), dict):
            continue
        recorded = list((rec.get("inputs") or {}).keys())
        base[nid] = {"kind": node["kind"], "config": node.get("config") or {}, "file": node.get("file"),
                     "inputs": node["inputs"] if set(recorded) == set(node["inputs"]) else recorded,
                     "hashes": {"config": rec.get("config_hash"), "fields": dict(rec["fields"]),
                                "data": rec.get("data_hash")}}
    return base

