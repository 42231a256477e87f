"""Seeknal's ``seeknal.pipeline`` names, provided by seekrun (see seekrun/engines/seeknal_shim)."""
from seeknal.pipeline.context import PipelineContext  # noqa: F401
from seeknal.pipeline.decorators import *  # noqa: F401,F403
from seeknal.pipeline.decorators import clear_registry, get_registered_nodes, materialize  # noqa: F401
from seeknal.pipeline.materialization import IcebergTable, Materialization, OfflineConfig, OnlineConfig  # noqa: F401
from seeknal.pipeline.materialization_config import MaterializationConfig  # noqa: F401


def __getattr__(name):  # FeatureFrame needs pandas: imported when asked for
    if name == "FeatureFrame":
        from seeknal.pipeline.feature_frame import FeatureFrame

        return FeatureFrame
    raise AttributeError(name)
