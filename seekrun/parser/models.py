"""Pydantic models: one base for every node, one per kind with its own keys.

Unknown keys are allowed (Seeknal projects carry extra keys); the parser reports
them as warnings, or errors under --strict.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from seekrun.parser.kinds import KINDS

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    ref: str


class ColumnDoc(_Model):
    description: Optional[str] = None
    dtype: Optional[str] = None


class NodeBase(_Model):
    kind: str
    name: str = Field(pattern=NAME_PATTERN)
    description: Optional[str] = None
    owner: Optional[str] = None
    tags: list[str] = Field(default_factory=list)
    columns: Optional[dict[str, Union[str, ColumnDoc, None]]] = None
    inputs: list[InputRef] = Field(default_factory=list)
    depends_on: list[InputRef] = Field(default_factory=list)
    python: Optional[str] = None  # "path/to/file.py:function" (Python nodes)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("inputs", "depends_on", mode="before")
    @classmethod
    def _refs(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [{"ref": v} if isinstance(v, str) else v for v in value]
        return value


class SourceNode(NodeBase):
    source: Literal["csv", "parquet", "json", "jsonl", "excel", "sqlite", "postgresql", "iceberg"]
    table: str


class TransformNode(NodeBase):
    transform: Optional[str] = None


class Entity(_Model):
    name: Optional[str] = None
    join_keys: list[str]


class Offline(_Model):
    enabled: bool = False
    format: str = "parquet"


class Materialization(_Model):
    event_time_col: Optional[str] = None
    offline: Optional[Union[bool, Offline]] = None  # Seeknal also writes `offline: true`
    online: Optional[Union[bool, dict[str, Any]]] = None


class FeatureGroupNode(NodeBase):
    entity: Union[str, Entity]  # Seeknal's `entity: customer` means join key customer_id
    materialization: Optional[Materialization] = None
    features: Optional[Union[list[str], dict[str, Optional[dict[str, Any]]]]] = None
    transform: Optional[str] = None


class RollingSpec(_Model):
    window: Union[list[int], int]  # days; each number is its own window
    aggs: list[str]


class AggFeature(_Model):
    name: str
    column: Optional[str] = None  # defaults to name, as in Seeknal
    basic: list[str] = Field(default_factory=list)
    rolling: list[RollingSpec] = Field(default_factory=list)


class AggregationNode(NodeBase):
    id_col: str
    feature_date_col: str
    application_date_col: Optional[str] = None
    group_by: list[str] = Field(default_factory=list)
    features: list[AggFeature]


class RuleCheck(_Model):
    """The shape of one check (documentation).  Checks are validated by the rule executor's
    prepare() (seekrun/engine/kinds/rule.py), which names the line and suggests fixes."""
    type: Optional[str] = None  # `type: null` unquoted is YAML's null: the null check
    column: Optional[str] = None
    columns: Optional[list[str]] = None
    params: dict[str, Any] = Field(default_factory=dict)
    sql: Optional[str] = None
    checks: Optional[list[dict[str, Any]]] = None


class RuleNode(NodeBase):
    rule: Any  # one check (mapping) or a list of them: see RuleCheck


class ProfileSpec(_Model):
    columns: Optional[list[str]] = None
    params: dict[str, Any] = Field(default_factory=dict)


class ProfileNode(NodeBase):
    profile: Optional[ProfileSpec] = Field(default_factory=ProfileSpec)


class ExposureNode(NodeBase):
    type: Literal["file", "api", "database", "notification", "starrocks_materialized_view", "report"]
    path: Optional[str] = None
    format: Optional[str] = None


class ModelNode(NodeBase):
    training: Optional[dict[str, Any]] = None
    output_columns: Optional[list[Any]] = None


KIND_MODELS: dict[str, type[NodeBase]] = {
    "source": SourceNode,
    "transform": TransformNode,
    "feature_group": FeatureGroupNode,
    "aggregation": AggregationNode,
    "rule": RuleNode,
    "profile": ProfileNode,
    "exposure": ExposureNode,
    "model": ModelNode,
}
assert KINDS == frozenset(KIND_MODELS)
