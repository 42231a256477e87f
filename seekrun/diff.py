"""ManifestDiff: what changed between two manifests, and whether it affects the build."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from seekrun.controls import CONTROL_KEYS
from seekrun.manifest import Manifest
from seekrun.parser.kinds import METADATA_KEYS, RUNTIME_FIELDS, field_label, value_change



@dataclass(frozen=True)
class FieldChange:
    field: str  # config key, "inputs", "source data" or "file"
    label: str  # human name, e.g. "transform SQL"
    build: bool  # True if it changes what the node builds

    def to_dict(self) -> dict:
        return {"field": self.field, "label": self.label, "build_affecting": self.build}


@dataclass
class ManifestDiff:
    old: Manifest | None
    new: Manifest
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    modified: dict[str, list[FieldChange]] = field(default_factory=dict)
    added_edges: list[tuple[str, str]] = field(default_factory=list)
    removed_edges: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        old_nodes = self.old.nodes if self.old is not None else {}
        new_nodes = self.new.nodes
        self.added = sorted(n for n in new_nodes if n not in old_nodes)
        self.removed = sorted(n for n in old_nodes if n not in new_nodes)
        for nid in sorted(set(old_nodes) & set(new_nodes)):
            changes = node_changes(old_nodes[nid], new_nodes[nid])
            if changes:
                self.modified[nid] = changes
        old_edges = {(e["from"], e["to"]) for e in (self.old.edges if self.old else [])}
        new_edges = {(e["from"], e["to"]) for e in self.new.edges}
        self.added_edges = sorted(new_edges - old_edges)
        self.removed_edges = sorted(old_edges - new_edges)

    @property
    def build_affected(self) -> list[str]:
        """Modified nodes with at least one build-affecting change."""
        return [nid for nid, ch in self.modified.items() if any(c.build for c in ch)]

    @property
    def metadata_only(self) -> list[str]:
        return [nid for nid, ch in self.modified.items() if not any(c.build for c in ch)]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.modified)

    def downstream(self, ids: Iterable[str] | None = None) -> set[str]:
        """Nodes of the new manifest downstream of ids (default: added and build-affected)."""
        if ids is None:
            ids = [*self.added, *self.build_affected]
        return self.new.downstream([i for i in ids if i in self.new.nodes])

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "removed": self.removed,
            "modified": {nid: [c.to_dict() for c in ch] for nid, ch in self.modified.items()},
            "added_edges": [{"from": a, "to": b} for a, b in self.added_edges],
            "removed_edges": [{"from": a, "to": b} for a, b in self.removed_edges],
        }

    def lines(self) -> list[str]:
        """One line per change: '+ source.x', '- rule.y', '~ transform.z (transform SQL)'."""
        out = [f"+ {nid}" for nid in self.added]
        out += [f"- {nid}" for nid in self.removed]
        for nid, changes in self.modified.items():
            labels = ", ".join(c.label + ("" if c.build else " [metadata]") for c in changes)
            out.append(f"~ {nid} ({labels})")
        return out


def node_changes(old: dict, new: dict) -> list[FieldChange]:
    kind = new["kind"]
    changes: list[FieldChange] = []
    old_cfg, new_cfg = old.get("config", {}), new.get("config", {})
    old_fields = old.get("hashes", {}).get("fields", {})
    new_fields = new.get("hashes", {}).get("fields", {})
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if key in ("inputs", "depends_on") or old_cfg.get(key) == new_cfg.get(key):
            continue
        if key in ("foreach", "matrix") and new.get("gather") is not None:
            continue  # a fan-out's node: its "gather" field says which instances changed
        if key in METADATA_KEYS:
            changes.append(FieldChange(key, key, False))
        elif key in new_fields or key in old_fields:
            build = old_fields.get(key) != new_fields.get(key)
            label = field_label(kind, key)
            changes.append(FieldChange(key, label if build else f"{label}, formatting only", build))
        elif key in CONTROL_KEYS:  # timeout, retry, pool...: how it runs, not what it builds
            changes.append(FieldChange(key, f"{key}, a run control", False))
        else:
            changes.append(FieldChange(key, f"{key}, not used by seekrun", False))
    reported = {c.field for c in changes}
    for key in sorted(set(old_fields) | set(new_fields)):
        # build inputs that the raw config does not show: Python code, env var values, config
        # rendered from seeknal/common, generated SQL
        if key in reported or key in ("inputs", "seekrun_engine") or old_fields.get(key) == new_fields.get(key):
            continue
        label = field_label(kind, key)
        if key in RUNTIME_FIELDS:  # {{ today }} etc.: "today changed (2026-11-30 -> 2026-12-01)"
            label = value_change(key, old_fields.get(key), new_fields.get(key))
        elif key in old_cfg or key in new_cfg:
            label += " (via seeknal/common)"
        changes.append(FieldChange(key, label, True))
    if old.get("inputs") != new.get("inputs"):
        changes.append(FieldChange("inputs", "inputs", True))
    if old.get("hashes", {}).get("data") != new.get("hashes", {}).get("data"):
        changes.append(FieldChange("data", "source data", True))
    if old_fields.get("seekrun_engine") != new_fields.get("seekrun_engine"):
        changes.append(FieldChange("seekrun_engine", field_label(kind, "seekrun_engine"), True))
    if old.get("file") != new.get("file"):
        changes.append(FieldChange("file", "moved to " + str(new.get("file")), False))
    return changes
