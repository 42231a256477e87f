"""Shared by the Spark tests: skipped, saying why, only where Spark cannot run here."""
from __future__ import annotations

import importlib.util
import os
import shutil

import pytest


def _why_not() -> str | None:
    for module in ("pyspark", "sqlglot"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install '.[spark]')"
    home = os.environ.get("JAVA_HOME")
    if not (home and os.access(os.path.join(home, "bin", "java"), os.X_OK)) and shutil.which("java") is None:
        return "no Java (apt-get install -y openjdk-17-jre-headless)"
    return None


WHY_NOT = _why_not()
needs_spark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
