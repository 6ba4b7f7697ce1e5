"""Metrics: the instruments activities record, and the Prometheus endpoint each worker serves.

Activity-side instruments are OpenTelemetry API instruments on the global meter (proxies until a
worker installs its MeterProvider, so a process without one records into nothing). Workflow-side
counts (runs, stages, gates, budget stops) go through ``workflow.metric_meter()``, which is
replay-safe, into the Temporal SDK runtime's metric buffer; ``temporal_runtime()`` builds that
runtime and ``serve_metrics()`` drains it into the same MeterProvider, so one ``/metrics`` page
carries deepsci_*, gen_ai_* and the SDK's own temporal_* metrics. Names follow the GenAI semantic
conventions where they name a metric (``gen_ai.client.*``), else they start with ``deepsci_``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from opentelemetry import metrics

from deepsci.settings import Settings

if TYPE_CHECKING:
    from temporalio.runtime import MetricBuffer, Runtime

__all__ = ["METER", "TOKENS", "OPERATION_DURATION", "LLM_COST", "FETCHES", "FETCH_DURATION", "PARSES",
           "PARSE_DURATION", "SEARCHES", "RETRIEVAL_DURATION", "RETRIEVAL_HITS", "CITATIONS",
           "EMBEDDED_TEXTS", "SLACK_POSTS", "start_endpoint", "temporal_runtime", "serve_metrics"]

log = logging.getLogger(__name__)
METER = metrics.get_meter("deepsci")

# GenAI client metrics (semantic conventions: gen_ai.client.token.usage / operation.duration).
TOKENS = METER.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                description="Tokens per model call, by gen_ai.token.type (input/output)")
OPERATION_DURATION = METER.create_histogram("gen_ai.client.operation.duration", unit="s",
                                            description="Model call latency")
LLM_COST = METER.create_counter("deepsci_llm_cost_usd", description="Model spend in USD, by model and step")
FETCHES = METER.create_counter("deepsci_fetches", description="Sources read, by kind and outcome")
FETCH_DURATION = METER.create_histogram("deepsci_fetch_duration", unit="s", description="Reading one source")
PARSES = METER.create_counter("deepsci_parses", description="Documents parsed, by kind and outcome")
PARSE_DURATION = METER.create_histogram("deepsci_parse_duration", unit="s", description="Parsing one document")
SEARCHES = METER.create_counter("deepsci_searches", description="Searches, by provider chain and outcome")
RETRIEVAL_DURATION = METER.create_histogram("deepsci_retrieval_duration", unit="s",
                                            description="Evidence retrieval latency")
RETRIEVAL_HITS = METER.create_histogram("deepsci_retrieval_hits", description="Evidence chunks per retrieval")
CITATIONS = METER.create_counter("deepsci_citations",
                                 description="Drafted citations, by outcome (kept/dropped/unsupported)")
EMBEDDED_TEXTS = METER.create_counter("deepsci_embedded_texts", description="Texts embedded, by model")
SLACK_POSTS = METER.create_counter("deepsci_slack_posts", description="Slack posts, by kind and outcome")

_runtime: Runtime | None = None
_buffer: MetricBuffer | None = None
_served = False


def temporal_runtime(settings: Settings) -> Runtime | None:
    """The Temporal runtime of a worker process whose metrics go to /metrics (None: no endpoint, so
    nothing would drain its buffer). One per process: the SDK's runtime metrics and
    workflow.metric_meter() counts land in its buffer. Call ``start_endpoint`` first."""
    global _runtime, _buffer
    if not settings.metrics_port or not _served:
        return None
    if _runtime is None:
        from temporalio.runtime import MetricBuffer, MetricBufferDurationFormat, Runtime, TelemetryConfig

        # Seconds, as Prometheus and the OTel conventions want durations.
        _buffer = MetricBuffer(100_000, duration_format=MetricBufferDurationFormat.SECONDS)
        _runtime = Runtime(telemetry=TelemetryConfig(metrics=_buffer))
    return _runtime


def start_endpoint(settings: Settings) -> bool:
    """Install the MeterProvider with a Prometheus reader and serve it; False if the port is taken."""
    global _served
    if _served:
        return True
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except OSError as err:
        # A second worker on the same host: it still works, only this page is the first one's.
        log.warning("metrics: cannot serve http://%s:%d/metrics (%s); this worker goes on without it",
                    settings.metrics_host, settings.metrics_port, err)
        return False
    metrics.set_meter_provider(MeterProvider(resource=Resource.create({"service.name": "deepsci-worker"}),
                                             metric_readers=[PrometheusMetricReader()]))
    _served = True
    log.info("metrics at http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    return True


@contextlib.asynccontextmanager
async def serve_metrics(settings: Settings) -> AsyncIterator[bool]:
    """Serve /metrics for the duration of the block, draining the Temporal runtime's buffer into
    it; yields whether the endpoint is up. Call ``start_endpoint`` and ``temporal_runtime`` before
    connecting the worker's client, so the client runs on that runtime."""
    if not settings.metrics_port or not start_endpoint(settings):
        yield False
        return
    if _buffer is None:
        yield True
        return
    from temporalio.contrib.opentelemetry import MetricsExporter

    async with MetricsExporter(_buffer, metrics.get_meter_provider()):
        yield True
