from seekrun.engine.python_context import PythonContext as PipelineContext  # noqa: F401
