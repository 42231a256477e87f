"""Shared by the Spark tests: skipped, saying why, only where Spark cannot run here (what is
missing, as seekrun's parse would say it)."""
from __future__ import annotations

import pytest

from seekrun.parser.engines import missing_requirements

WHY_NOT = missing_requirements({})
needs_spark = pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")


@pytest.fixture(scope="module")
def spark_session(tmp_path_factory):
    """One local Spark session for a test module (seekrun's own start-up, its JVM stopped after)."""
    from seekrun.engines.spark import SparkEngine

    where = tmp_path_factory.mktemp("spark-session")
    engine = SparkEngine(where, where, {})
    yield engine.session()
    engine.close()


def build_in_process(root, session=None, continue_on_error: bool = False):
    """Parse and run as `seekrun run` does, in this process (Spark nodes on ``session``):
    (node id -> (status, error, warnings), node id -> engine)."""
    from seekrun.compiled import Compiled
    from seekrun.runner import DAGRunner

    compiled = Compiled(root, strict=False, diff=False)
    runner = DAGRunner(compiled.manifest, compiled.old, compiled.project.state_dir, project_dir=compiled.project.root,
                       file_cache=compiled.result.file_cache, spark_session=session)
    summary = runner.run(on_commit=compiled.save, continue_on_error=continue_on_error)
    engines = {nid: n.get("engine", "duckdb") for nid, n in compiled.manifest.nodes.items()}
    return {r.node_id: (r.status.value, r.error, tuple(r.warnings or ())) for r in summary.results}, engines
