"""Workflow files (Dagu's ``steps:``, Script Runner's ``tasks:``) and, for Script Runner users,
``WorkflowParser`` / ``WorkflowEngine`` (seekrun/workflows/api.py, imported on first use)."""
from __future__ import annotations

__all__ = ["WorkflowEngine", "WorkflowParser", "Workflow", "WorkflowResult", "TaskResult"]


def __getattr__(name: str):
    if name in __all__:
        from seekrun.workflows import api

        return getattr(api, name)
    raise AttributeError(f"module 'seekrun.workflows' has no attribute '{name}'")
