"""OpenTelemetry export (SEEKRUN_OTEL=1): a run's spans, caught by the SDK's in-memory exporter."""
from __future__ import annotations

import pytest

from conftest import cli, write_project

pytest.importorskip("opentelemetry.sdk")

NODES = {
    "data/s.csv": "id\n1\n2\n",
    "nodes/all.yml": """\
    kind: source
    name: s
    source: csv
    table: data/s.csv
    ---
    kind: transform
    name: ok
    inputs: [{ref: source.s}]
    transform: SELECT id FROM ref('source.s')
    ---
    kind: transform
    name: bad
    inputs: [{ref: source.s}]
    transform: SELECT CAST('x' || id AS INT) AS id FROM ref('source.s')
    continue_on: {failure: true}
    """,
}


@pytest.fixture(scope="module")
def spans():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # (once per process: the API refuses a second one)
    return exporter


def test_one_span_per_run_and_per_node_with_status(tmp_path, monkeypatch, spans):
    p = write_project(tmp_path / "p", NODES)
    monkeypatch.setenv("SEEKRUN_OTEL", "1")
    spans.clear()
    assert cli("run", cwd=p).exit_code == 0
    got = {s.name: s for s in spans.get_finished_spans()}
    assert set(got) == {"seekrun run testproj", "source.s", "transform.ok", "transform.bad"}
    run = got["seekrun run testproj"]
    assert run.attributes["seekrun.status"] == "partial" and run.parent is None
    for nid in ("source.s", "transform.ok", "transform.bad"):
        assert got[nid].parent.span_id == run.context.span_id
        assert got[nid].context.trace_id == run.context.trace_id
        assert run.start_time <= got[nid].start_time <= got[nid].end_time <= run.end_time
    assert got["transform.ok"].attributes["seekrun.status"] == "success"
    assert got["transform.ok"].attributes["seekrun.rows"] == 2
    assert got["transform.bad"].attributes["seekrun.status"] == "failed"
    assert got["transform.bad"].status.status_code.name == "ERROR"
    spans.clear()
    assert cli("run", cwd=p).exit_code == 0  # ok cached, bad reruns (it failed)
    got = {s.name: s for s in spans.get_finished_spans()}
    assert got["transform.ok"].attributes["seekrun.status"] == "cached"
    assert got["transform.ok"].start_time == got["transform.ok"].end_time


def test_without_the_variable_no_span_is_made(tmp_path, monkeypatch, spans):
    p = write_project(tmp_path / "p", NODES)
    monkeypatch.delenv("SEEKRUN_OTEL", raising=False)
    spans.clear()
    assert cli("run", cwd=p).exit_code == 0
    assert spans.get_finished_spans() == ()
