"""Traces: one OpenTelemetry TracerProvider per process, its exporter chosen once, and ``span()``.

Where spans go, in order: the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_ENDPOINT`` (OTLP/HTTP; the exporter reads the other OTEL_* variables itself),
else the embedded backend that `deepsci up` starts when it listens on ``trace_port``, else nowhere.
With nowhere to send them no SDK provider is installed: the API's no-op tracer makes every span a
shared non-recording object, so tracing costs nothing and can never fail a run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace

from deepsci.settings import Settings

__all__ = ["SEMCONV_VERSION", "TRACER", "current_trace_id", "exporter_endpoint", "flush_tracing",
           "setup_tracing", "span", "trace_url"]

# The OpenTelemetry semantic conventions the span and metric names follow (GenAI: gen_ai.*).
SEMCONV_VERSION = "1.37.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"
# A proxy until a provider is installed, then it resolves to that provider's tracer.
TRACER = trace.get_tracer("deepsci", schema_url=SCHEMA_URL)
log = logging.getLogger(__name__)

_lock = threading.Lock()
_endpoint: str | None = None
_configured = False


def _env_endpoint() -> str | None:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    return (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def exporter_endpoint(settings: Settings) -> str | None:
    """Where this process would send spans (None: tracing off)."""
    if not settings.tracing or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    env = _env_endpoint()
    if env:
        return env
    from deepsci.observe.backend import started_by_up

    # Listening, or started by `deepsci up` and still starting (spans wait in the batch queue).
    if _listening(settings.trace_port) or started_by_up(settings):
        return f"http://127.0.0.1:{settings.trace_port}/v1/traces"
    return None


def setup_tracing(settings: Settings, service: str) -> str | None:
    """Install the process's tracer provider (once; later calls return the first answer).

    Returns the endpoint spans go to, or None when tracing is off. ``service`` names the process
    in the trace backend (``deepsci-worker``, ``deepsci-cli``, ``deepsci-slack``)."""
    global _configured, _endpoint
    with _lock:
        if _configured:
            return _endpoint
        _configured = True
        endpoint = exporter_endpoint(settings)
        if endpoint is None:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        # With the env variables set the exporter reads them (headers, paths, timeouts) itself.
        exporter = OTLPSpanExporter() if _env_endpoint() else OTLPSpanExporter(endpoint=endpoint, timeout=5)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _endpoint = endpoint
        log.info("tracing to %s", endpoint)
        return endpoint


def flush_tracing(timeout_s: float = 5.0) -> None:
    """Send what is buffered (a short-lived CLI process exits right after starting a run)."""
    provider = trace.get_tracer_provider()
    flush = getattr(provider, "force_flush", None)
    if flush is not None:
        flush(int(timeout_s * 1000))


def _attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """OTel attribute values: None dropped, the rest as they are (str, bool, int, float, lists)."""
    return {k: v for k, v in attrs.items() if v is not None}


@contextmanager
def span(name: str, /, **attrs: Any) -> Iterator[trace.Span]:
    """A span around a block, child of the current one (the activity attempt's span). An exception
    is recorded with ``error.type`` (the ApplicationError type when there is one) and re-raised.
    Attribute names with dots are passed as ``**{"gen_ai.request.model": m}``."""
    with TRACER.start_as_current_span(name, attributes=_attrs(attrs)) as sp:
        try:
            yield sp
        except BaseException as exc:
            sp.set_attribute("error.type", getattr(exc, "type", None) or type(exc).__name__)
            raise


def current_trace_id() -> str | None:
    """The 32-hex id of the current trace, or None outside a recorded trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None


def trace_url(settings: Settings, trace_id: str | None) -> str | None:
    """The trace's page in the trace UI (settings.trace_url_template), or None without a trace."""
    if not trace_id:
        return None
    return settings.trace_url_template.format(ui=settings.trace_ui_url.rstrip("/"), trace_id=trace_id)
