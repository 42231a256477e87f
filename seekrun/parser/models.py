"""Pydantic models: one base for every node, one per kind with its own keys.

Unknown keys are allowed (Seeknal projects carry extra keys); the parser reports
them as warnings, or errors under --strict.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from seekrun.parser.kinds import KINDS

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# a task or a dag node has no table: its name may hold '-' too, as workflow step names do
STEP_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*$"


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
    # run controls: checked by seekrun/controls.py (clear messages), never hashed
    timeout: Any = None
    retry: Any = None
    preconditions: Any = None
    continue_on: Any = None
    run_always: Any = None
    pool: Any = None
    slots: Any = None
    max_concurrent: Any = None  # a fan-out's limit (seekrun/parser/fanout.py)
    # fan-out: a task or dag node runs its instances itself (seekrun/fanout.py); any other kind
    # is split into instance nodes at parse (seekrun/parser/instances.py)
    foreach: Any = None
    matrix: Any = None
    engine: Optional[str] = None  # duckdb | spark (seekrun/parser/engines.py: hashed only as spark)
    dialect: Optional[str] = None  # the SQL's: duckdb (default) | spark (already Spark SQL, engine: spark)

    @field_validator("inputs", "depends_on", mode="before")
    @classmethod
    def _refs(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [{"ref": v} if isinstance(v, str) else v for v in value]
        return value


class SourceNode(NodeBase):
    # files, then the database kinds Seeknal lists (seekrun/engines/db_sources.py)
    source: Literal["csv", "parquet", "json", "jsonl", "excel", "sqlite", "postgresql", "postgres", "iceberg",
                    "hive", "starrocks", "bigquery", "snowflake", "redshift"]
    table: Optional[str] = None  # a file (or glob), or a database table; a database source may give params.query
    connection: Optional[Union[str, dict[str, Any]]] = None  # a profiles.yml connection name, or its keys


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


class AggFeature(_Model):
    """One aggregation feature (documentation: its keys are checked, with lines and hints, by
    seekrun/kinds/aggregation_features.py)."""
    name: str
    column: Optional[str] = None  # defaults to name, as in Seeknal
    basic: Any = None  # [sum, count, ...]
    rolling: Any = None  # [{window: 7d, functions: [sum]}] or [{window: [1, 7], aggs: [sum]}]
    ratio: Any = None  # [{numerator: [7], denominator: [30], aggs: [sum]}]
    since: Any = None  # [{condition: "...", aggs: [count, sum]}]


class AggregationNode(NodeBase):
    id_col: str
    feature_date_col: str
    application_date_col: Optional[str] = None  # equal to feature_date_col: one row per entity and day
    group_by: list[str] = Field(default_factory=list)
    features: list[AggFeature]


class SecondOrderAggregationNode(NodeBase):
    """Aggregates of an aggregated table (seekrun/kinds/second_order_aggregation.py)."""
    id_col: str
    feature_date_col: str
    application_date_col: Optional[str] = None
    source: Optional[str] = None  # the node aggregated; the first input when not given
    features: dict[str, Any]

    @model_validator(mode="before")
    @classmethod
    def _source_is_an_input(cls, data: Any) -> Any:
        """Seeknal names the aggregated node in `source:`; it is an input (the first, unless listed)."""
        if isinstance(data, dict) and isinstance(data.get("source"), str) and not data.get("inputs"):
            data = {**data, "inputs": [{"ref": data["source"]}]}
        return data


class RuleCheck(_Model):
    """The shape of one check (documentation).  Checks are validated by the rule executor's
    prepare() (seekrun/kinds/rule.py), which names the line and suggests fixes."""
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


class SemanticModelNode(NodeBase):
    """Seeknal's semantic model: entities, dimensions and measures over one node.  The lists
    are checked entry by entry by seekrun/kinds/semantic_model.py (lines, suggestions)."""
    model: str  # "ref('transform.orders')" (or a bare kind.name)
    default_time_dimension: Optional[str] = None
    entities: list[Any] = Field(default_factory=list)
    dimensions: list[Any] = Field(default_factory=list)
    measures: list[Any] = Field(default_factory=list)
    joins: list[Any] = Field(default_factory=list)
    metrics: list[Any] = Field(default_factory=list)  # inline metrics: each one a metric node


class MetricInput(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    metric: str
    alias: Optional[str] = None
    offset: Optional[str] = None

    @property
    def ref(self) -> str:  # the parser's input list: replaced by the resolved nodes (seekrun/semantic/link.py)
        return f"metric.{self.metric}"


class MetricNode(NodeBase):
    """Seeknal's metric (simple, ratio, cumulative, derived); checked by seekrun/kinds/metric.py."""
    type: Any = None  # simple, ratio, cumulative or derived: checked with a suggestion by prepare()
    measure: Optional[str] = None
    numerator: Optional[str] = None
    denominator: Optional[str] = None
    grain_to_date: Optional[str] = None
    expr: Optional[str] = None
    filter: Optional[str] = None
    inputs: list[MetricInput] = Field(default_factory=list)  # type: ignore[assignment]
    aliases: list[str] = Field(default_factory=list)


class TaskNode(NodeBase):
    """A program run as a node (seekrun/kinds/task.py checks the values and paths)."""
    name: str = Field(pattern=STEP_NAME_PATTERN)
    command: Optional[Union[str, list[Union[str, int, float]]]] = None
    script: Optional[str] = None
    shell: Optional[str] = None
    dir: Optional[str] = None
    files: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    env: dict[str, Union[str, int, float, bool]] = Field(default_factory=dict)
    output: Optional[str] = None
    always: bool = False


class DagNode(NodeBase):
    """A node that runs another DAG: a workflow file or a seekrun project (seekrun/kinds/dag.py)."""
    name: str = Field(pattern=STEP_NAME_PATTERN)
    run: Optional[str] = None
    params: Any = None  # the child's params: a mapping, a Dagu "K=V K2=V2" string, or a list
    dir: Optional[str] = None
    files: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    env: dict[str, Union[str, int, float, bool]] = Field(default_factory=dict)
    output: Optional[str] = None


KIND_MODELS: dict[str, type[NodeBase]] = {
    "source": SourceNode,
    "transform": TransformNode,
    "feature_group": FeatureGroupNode,
    "aggregation": AggregationNode,
    "second_order_aggregation": SecondOrderAggregationNode,
    "rule": RuleNode,
    "profile": ProfileNode,
    "exposure": ExposureNode,
    "model": ModelNode,
    "semantic_model": SemanticModelNode,
    "metric": MetricNode,
    "task": TaskNode,
    "dag": DagNode,
}
assert KINDS == frozenset(KIND_MODELS)
