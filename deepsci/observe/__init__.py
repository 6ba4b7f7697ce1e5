"""Observability: traces (OpenTelemetry, one per run), metrics (Prometheus text per worker) and
structured logs that carry the run, activity, attempt and trace id (docs/observability.md)."""

from deepsci.observe.tracing import (
    SEMCONV_VERSION,
    current_trace_id,
    flush_tracing,
    setup_tracing,
    span,
    trace_url,
)

__all__ = ["SEMCONV_VERSION", "current_trace_id", "flush_tracing", "setup_tracing", "span", "trace_url"]
