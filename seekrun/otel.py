"""Optional OpenTelemetry export of a run: one span for the run, one per node, made from the
run's events (seekrun/events.py), so nothing else in seekrun knows about tracing.

- On only with ``SEEKRUN_OTEL=1`` and ``opentelemetry-sdk`` installed (``pip install
  'seekrun[otel]'``): never a hard dependency, and never imported otherwise.
- Spans go to the tracer provider the program set (a service embedding seekrun, a test's
  in-memory exporter).  When none is set, seekrun sets up the SDK's provider with an OTLP
  exporter if ``opentelemetry-exporter-otlp`` is installed (configured by the standard
  ``OTEL_EXPORTER_OTLP_*`` variables); without one it says so once and exports nothing.
- The run span is ``seekrun run <project>`` (attributes ``seekrun.run_id``, ``seekrun.status``,
  counts); each node's span is its id, a child of the run's, from its start to its end
  (``seekrun.status``, ``seekrun.reason``, rows, attempts; a failure sets the span's status to
  ERROR with its first error line).  A cached or skipped node gets an instant span.  Texts are
  the events' own, so secrets are already redacted.
"""
from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Callable


def tracing() -> tuple[Callable | None, str | None]:
    """The events callback that makes the spans (None, and why, when it cannot; (None, None)
    without SEEKRUN_OTEL=1)."""
    if os.environ.get("SEEKRUN_OTEL") != "1":
        return None, None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        return None, "SEEKRUN_OTEL=1, but opentelemetry-sdk is not installed: pip install 'seekrun[otel]'"
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # nothing set up by the program: OTLP, if installed
        exporter = _otlp()
        if exporter is None:
            return None, ("SEEKRUN_OTEL=1, but no tracer provider is set and opentelemetry-exporter-otlp is not "
                          "installed: spans are not exported")
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    return _Spans(provider).hear, None


def _otlp():
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        except ImportError:
            return None
    return OTLPSpanExporter()


def _ns(ts: str) -> int:
    return int(datetime.fromisoformat(ts).timestamp() * 1_000_000_000)


class _Spans:
    def __init__(self, provider):
        self.provider = provider
        self.tracer = provider.get_tracer("seekrun")
        self.run = None
        self.context = None
        self.open: dict[str, object] = {}
        self.lock = threading.Lock()

    def hear(self, event) -> None:
        from opentelemetry import trace

        kind, data = event.event, event.to_dict()
        with self.lock:
            if kind == "run_started":
                self.run = self.tracer.start_span(f"seekrun run {data['project']}", start_time=_ns(data["ts"]),
                                                  attributes={"seekrun.run_id": data["run_id"],
                                                              "seekrun.nodes": data["nodes"],
                                                              "seekrun.to_run": data["to_run"],
                                                              "seekrun.dry_run": data["dry_run"]})
                self.context = trace.set_span_in_context(self.run)
            elif self.run is None:
                return
            elif kind == "node_started":
                self.open[data["node_id"]] = self.tracer.start_span(
                    data["node_id"], context=self.context, start_time=_ns(data["ts"]),
                    attributes={"seekrun.node_id": data["node_id"], "seekrun.run_id": data["run_id"]})
            elif kind == "node_retrying":
                span = self.open.get(data["node_id"])
                if span is not None:
                    span.add_event("retrying", {"seekrun.attempt": data["attempt"], "seekrun.wait": data["wait"],
                                                "seekrun.error": str(data.get("error") or "")})
            elif kind in ("node_finished", "node_skipped"):
                self._end_node(data)
            elif kind == "run_finished":
                self._end_run(data)

    def _end_node(self, data: dict) -> None:
        from opentelemetry.trace import Status, StatusCode

        nid, end = data["node_id"], _ns(data["ts"])
        span = self.open.pop(nid, None)
        if span is None:  # cached, skipped: it never started
            span = self.tracer.start_span(nid, context=self.context, start_time=end,
                                          attributes={"seekrun.node_id": nid, "seekrun.run_id": data["run_id"]})
        status = data.get("status") or "skipped"
        attrs = {"seekrun.status": status, "seekrun.reason": str(data.get("reason") or ""),
                 **({"seekrun.skip": str(data["skip"])} if data.get("skip") else {}),
                 **({"seekrun.rows": data["rows"]} if data.get("rows") is not None else {}),
                 **({"seekrun.attempts": data["attempts"]} if data.get("attempts") else {})}
        span.set_attributes(attrs)
        if status == "failed":
            span.set_status(Status(StatusCode.ERROR, str(data.get("error") or "failed").splitlines()[0][:500]))
        span.end(end_time=end)

    def _end_run(self, data: dict) -> None:
        from opentelemetry.trace import Status, StatusCode

        end = _ns(data["ts"])
        for nid in list(self.open):  # started, never finished (the run stopped)
            self._end_node({"node_id": nid, "ts": data["ts"], "run_id": data["run_id"], "status": "interrupted"})
        self.run.set_attributes({"seekrun.status": data["status"], "seekrun.exit_code": data["exit_code"],
                                 **{f"seekrun.{k}": v for k, v in (data.get("counts") or {}).items()}})
        if data["status"] in ("failed", "cancelled"):
            self.run.set_status(Status(StatusCode.ERROR, data["status"]))
        self.run.end(end_time=end)
        self.run = None
        flush = getattr(self.provider, "force_flush", None)
        if flush is not None:
            flush()
