"""The one Temporal client factory (data converter, namespace, tracing) used by workers, the CLI and tests."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from deepsci.settings import Settings

__all__ = ["connect", "DATA_CONVERTER", "web_ui_link", "tracing_interceptors", "has_tracing"]

DATA_CONVERTER = pydantic_data_converter


def tracing_interceptors() -> list[TracingInterceptor]:
    """Temporal's OpenTelemetry interceptor: it carries the trace context in headers from the client
    through the workflow, its children and every activity attempt, and emits workflow-side spans
    only when not replaying. A worker built on a client that has it inherits it."""
    return [TracingInterceptor()]


def has_tracing(client: Client) -> bool:
    return any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"])


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """The client; ``runtime`` is a worker's (its SDK metrics go to /metrics, deepsci.observe.metrics)."""
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=DATA_CONVERTER,
        interceptors=tracing_interceptors(), runtime=runtime,
    )


def web_ui_link(settings: Settings, workflow_id: str) -> str:
    from urllib.parse import quote

    return (f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
            f"/workflows/{quote(workflow_id, safe='')}")


async def ensure_search_attributes(client: Client, namespace: str, names: dict[str, str]) -> list[str]:
    """Register the custom search attributes a run sets, if the server lacks them.

    Runs upsert them at every stage; on a server that does not know them every workflow task
    would fail, so workers call this at start-up (dev server, compose cluster, test server).
    Returns the names that were added.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import (
        AddSearchAttributesRequest,
        ListSearchAttributesRequest,
    )
    from temporalio.service import RPCError, RPCStatusCode

    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing = {n: t for n, t in names.items() if n not in listed.custom_attributes}
    except RPCError as err:  # the time-skipping test server can add but not list
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        missing = dict(names)
    if missing:
        kinds = {"Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
                 "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
                 "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
                 "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE}
        await client.operator_service.add_search_attributes(AddSearchAttributesRequest(
            namespace=namespace, search_attributes={n: kinds[t] for n, t in missing.items()}))
    return sorted(missing)
