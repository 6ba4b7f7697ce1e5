"""A loopback OTLP/HTTP trace receiver: takes ``POST /v1/traces`` (protobuf, as the SDK's exporter
sends it) and keeps the spans, for tests of a process's tracing that need no trace backend."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.fakes.web import FakeServer

__all__ = ["OtlpSink", "ReceivedSpan"]


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    trace_id: str  # 32 hex
    service: str  # the resource's service.name
    attributes: dict[str, object]


class OtlpSink(FakeServer):
    def __init__(self):
        super().__init__()
        self.spans: list[ReceivedSpan] = []

    def handle(self, h, method, url, body) -> None:
        if method != "POST" or url.path != "/v1/traces":
            h.send(404, b"not found", "text/plain")
            return
        if h.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            res = {a.key: a.value.string_value for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    attrs = {a.key: getattr(a.value, a.value.WhichOneof("value") or "string_value")
                             for a in sp.attributes}
                    self.spans.append(ReceivedSpan(sp.name, sp.trace_id.hex(), res.get("service.name", ""), attrs))
        h.send(200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")
