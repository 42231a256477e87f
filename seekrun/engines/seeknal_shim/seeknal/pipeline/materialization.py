from seekrun.pipeline import IcebergTable, Materialization, OfflineConfig, OnlineConfig  # noqa: F401
