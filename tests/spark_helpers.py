"""Shared by the Spark tests: skipped, saying why, only where Spark cannot run here (what is
missing, as seekrun's parse would say it)."""
from __future__ import annotations

import pytest

from seekrun.parser.engines import missing_requirements

WHY_NOT = missing_requirements({})
needs_spark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")
