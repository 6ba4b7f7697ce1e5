"""Replay-safe telemetry from workflow code: metrics through ``workflow.metric_meter()`` (the SDK
drops them while history replays) and spans through Temporal's tracing interceptor (emitted only
when not replaying). Worker processes export both (deepsci/observe/metrics.py)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from temporalio.contrib.opentelemetry import workflow as otel_workflow

__all__ = ["count", "seconds", "completed_span"]

Attrs = Mapping[str, str | int | float | bool]


def count(name: str, description: str, attrs: Attrs | None = None, value: int = 1) -> None:
    workflow.metric_meter().create_counter(name, description).add(value, dict(attrs or {}))


def seconds(name: str, description: str, value: float, attrs: Attrs | None = None) -> None:
    workflow.metric_meter().create_histogram_float(name, description, unit="s").record(max(value, 0.0),
                                                                                        dict(attrs or {}))


def completed_span(name: str, attrs: Attrs) -> None:
    """A finished span under the workflow's span (the tracing interceptor's), never on replay."""
    if workflow.unsafe.is_replaying():
        return
    with warnings.catch_warnings():  # it warns when the newer OpenTelemetryPlugin is not in use
        warnings.simplefilter("ignore", DeprecationWarning)
        otel_workflow.completed_span(name, attributes=dict(attrs))
