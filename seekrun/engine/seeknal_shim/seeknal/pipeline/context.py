from seekrun.engine.python_node import PythonContext as PipelineContext  # noqa: F401
