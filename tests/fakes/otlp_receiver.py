"""An OTLP/HTTP trace receiver on loopback: decodes each `ExportTraceServiceRequest` (protobuf,
as opentelemetry-proto defines it) and keeps its spans, with their resource's attributes."""

from __future__ import annotations

import dataclasses
import gzip
import time
from typing import Any

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from .threaded import ThreadedServer


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    return getattr(value, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclasses.dataclass
class ReceivedSpan:
    name: str
    kind: int  # the protobuf enum: 2 SERVER, 3 CLIENT
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status_code: int  # 0 unset, 1 ok, 2 error
    resource: dict[str, Any]


class OTLPReceiver(ThreadedServer):
    def __init__(self) -> None:
        super().__init__()
        self.spans: list[ReceivedSpan] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/traces", self.traces)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.headers.append(dict(request.headers))
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = attributes_of(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(ReceivedSpan(
                        span.name, span.kind, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                        attributes_of(span.attributes), span.status.code, resource))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedSpan]:
        """At least `count` spans, once they arrived (the exporter sends in batches)."""
        deadline = time.time() + timeout
        while len(self.spans) < count and time.time() < deadline:
            time.sleep(0.05)
        assert len(self.spans) >= count, f"{len(self.spans)} spans arrived, not {count}"
        return list(self.spans)
