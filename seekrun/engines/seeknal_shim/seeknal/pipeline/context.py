from seekrun.engines.python_context import PythonContext as PipelineContext  # noqa: F401
