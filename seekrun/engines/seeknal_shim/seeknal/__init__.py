"""seekrun's stand-in for Seeknal's package, for Python nodes only: it provides
``seeknal.pipeline`` (decorators, Materialization objects).  Install Seeknal itself for the
rest of its API (seeknal.tasks, ...)."""
__version__ = "seekrun-shim"
