from seekrun.pipeline import MaterializationConfig  # noqa: F401
