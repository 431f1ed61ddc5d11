"""Traces in process: the SDK's in-memory exporter behind the real `Tracing`, the real HTTP layer
and serving core over scripted providers. One SERVER span per request, a CLIENT span per upstream
attempt, GenAI attributes, the client's trace continued and each attempt's context sent upstream;
tracing off, only a client's valid traceparent goes upstream, unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from parrotrouter.accounting.usage import UsageRecord
from parrotrouter.api.app import create_app
from parrotrouter.errors import FailureKind, UpstreamFailure
from parrotrouter.observe import Observers
from parrotrouter.observe.tracing import Tracing
from parrotrouter.providers.base import ChatCall
from parrotrouter.serving.embeddings import EmbeddingRequest
from parrotrouter.state import AppState
from parrotrouter.upstream.trace_context import OUTGOING, TraceContext
from tests.serving.world import Scripted, world

MARKER = "zebra-prompt-7781"  # the prompt: never in any span
USER = [{"role": "user", "content": f"Say {MARKER}"}]
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


class Seeing(Scripted):
    """A scripted provider that notes the trace context each of its upstream calls would carry."""

    def __init__(self, name: str, script: list[Any] | None = None) -> None:
        super().__init__(name, script)
        self.seen: list[TraceContext | None] = []

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        self.seen.append(OUTGOING.get())
        return await super().chat(call)

    async def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        self.seen.append(OUTGOING.get())
        async for batch in super().chat_stream(call):
            yield batch


def traced(state: AppState) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    state.tracing = Tracing.with_processor(SimpleSpanProcessor(exporter))
    state.observers = Observers([state.tracing], strict=True)
    return exporter


@pytest.fixture
def providers() -> tuple[Seeing, Seeing]:
    return Seeing("a", [UpstreamFailure("busy", kind=FailureKind.RATE_LIMIT, retry_after=30)]), Seeing("b")


async def _client(state: AppState) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(state))) as http:
        yield http


def _by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return [s for s in spans if s.kind is kind]


async def test_a_request_span_with_a_child_span_per_attempt(providers: tuple[Seeing, Seeing]) -> None:
    a, b = providers
    state = world({"m": [a, b]})
    exporter = traced(state)
    async with TestClient(TestServer(create_app(state))) as http:
        resp = await http.post("/v1/chat/completions", headers={"traceparent": TRACEPARENT, "tracestate": "ven=1"},
                               json={"model": "m", "messages": USER, "temperature": 0.5, "max_tokens": 50})
        assert resp.status == 200
        generation = (await resp.json())["id"]
        await state.observers.drain()
    spans = exporter.get_finished_spans()
    [request] = _by_kind(spans, SpanKind.SERVER)
    attempts = sorted(_by_kind(spans, SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert len(spans) == 3 and len(attempts) == 2

    # the client's trace continues: same trace id, its span is the request span's parent
    assert request.context.trace_id == int(CLIENT_TRACE, 16)
    assert request.parent is not None and request.parent.span_id == int(CLIENT_SPAN, 16)
    assert request.context.trace_state.get("ven") == "1"
    assert request.name == "chat m"
    attrs = dict(request.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "m"
    assert attrs["gen_ai.response.model"] == "m" and attrs["gen_ai.response.id"] == generation
    assert attrs["parrotrouter.generation_id"] == generation
    assert attrs["gen_ai.provider.name"] == attrs["gen_ai.system"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 5 and attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.request.temperature"] == 0.5 and attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["parrotrouter.cost_usd"] > 0 and attrs["parrotrouter.attempts"] == 2
    assert attrs["parrotrouter.deployment"] == "b/m" and attrs["http.response.status_code"] == 200
    assert request.status.status_code is StatusCode.UNSET

    # each attempt a child of the request span, the failover visible
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == request.context.span_id
        assert span.context.trace_id == request.context.trace_id
        assert span.name == "chat m"
    failed, served = attempts
    assert dict(failed.attributes or {})["parrotrouter.deployment"] == "a/m"
    assert dict(failed.attributes or {})["parrotrouter.attempt.status"] == 429
    assert dict(failed.attributes or {})["error.type"] == "rate_limit"
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(served.attributes or {})["parrotrouter.attempt.status"] == 200
    assert served.status.status_code is StatusCode.UNSET

    # each upstream call carried its own attempt span's context
    for provider, span in ((a, failed), (b, served)):
        [seen] = provider.seen
        assert seen is not None
        assert seen.traceparent == f"00-{CLIENT_TRACE}-{span.context.span_id:016x}-01"
        assert seen.tracestate == "ven=1"

    # never a prompt or a completion in any attribute
    for span in spans:
        assert MARKER not in repr(dict(span.attributes or {})) and "Hello there" not in repr(span.attributes)


async def test_without_a_client_trace_the_request_span_is_a_root() -> None:
    b = Seeing("b")
    state = world({"m": [b]})
    exporter = traced(state)
    async with TestClient(TestServer(create_app(state))) as http:
        resp = await http.post("/v1/chat/completions", headers={"traceparent": "00-bogus"},
                               json={"model": "m", "messages": USER, "stream": True})
        assert resp.status == 200
        await resp.text()
        await state.observers.drain()
    [request] = _by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    assert request.parent is None
    assert dict(request.attributes or {})["parrotrouter.streamed"] is True
    [seen] = b.seen
    assert seen is not None and seen.traceparent.split("-")[1] == f"{request.context.trace_id:032x}"


async def test_a_failed_request_is_an_error_span() -> None:
    failing = Seeing("a", [UpstreamFailure("down", kind=FailureKind.SERVER_ERROR) for _ in range(3)])
    state = world({"m": [failing]})
    exporter = traced(state)
    async with TestClient(TestServer(create_app(state))) as http:
        resp = await http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
        assert resp.status >= 500
        unknown = await http.post("/v1/chat/completions", json={"model": "x\nnope" + "y" * 400, "messages": USER})
        assert unknown.status in (400, 404)
        await state.observers.drain()
    spans = exporter.get_finished_spans()
    requests = _by_kind(spans, SpanKind.SERVER)
    assert len(requests) == 2
    for span in requests:
        attrs = dict(span.attributes or {})
        assert span.status.status_code is StatusCode.ERROR
        assert attrs["error.type"] == span.status.description
    failed = next(s for s in requests if dict(s.attributes or {})["gen_ai.request.model"] == "m")
    assert dict(failed.attributes or {})["http.response.status_code"] == resp.status
    assert all(s.status.status_code is StatusCode.ERROR for s in _by_kind(spans, SpanKind.CLIENT))
    hostile = next(s for s in requests if s is not failed)
    model = dict(hostile.attributes or {})["gen_ai.request.model"]
    assert isinstance(model, str) and "\n" not in model and len(model) <= 256
    assert hostile.name == "chat"  # a caller's string never names a span (trace backends index names)
    assert failed.name == "chat m"


def test_a_span_begun_without_a_catalog_name_is_named_by_the_model_served() -> None:
    """A requested name that was not a catalog name (`known=False`) never names the span; once
    served, the catalog model served does."""
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter))
    record = UsageRecord(id="chatcmpl-1", endpoint="chat.completions", requested_model="not-in-the-catalog")
    trace = tracing.begin(record, EmbeddingRequest("not-in-the-catalog", ["a"], {}, 1, (1,)), None, known=False)
    record.served_model = "gpt-4o-mini"
    trace.end()
    [span] = exporter.get_finished_spans()
    assert span.name == "chat gpt-4o-mini"
    assert dict(span.attributes or {})["gen_ai.request.model"] == "not-in-the-catalog"


class Breaking(Scripted):
    """Streams one word, then fails: the stream is cut by the upstream after it was committed."""

    async def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        yield [{"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}]
        raise UpstreamFailure("connection reset", kind=FailureKind.STREAM_PROTOCOL)


@pytest.mark.parametrize("provider", [Seeing("ok"), Breaking("cut")], ids=["whole", "cut"])
async def test_a_streamed_attempt_span_lasts_as_long_as_its_stream(provider: Scripted) -> None:
    state = world({"m": [provider]})
    exporter = traced(state)
    async with TestClient(TestServer(create_app(state))) as http:
        resp = await http.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
        assert resp.status == 200
        await resp.text()
        await state.observers.drain()
    [request] = _by_kind(exporter.get_finished_spans(), SpanKind.SERVER)
    [attempt] = _by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert request.end_time is not None and attempt.end_time is not None and request.start_time is not None
    assert request.start_time <= (attempt.start_time or 0) <= attempt.end_time <= request.end_time
    assert dict(attempt.attributes or {})["parrotrouter.attempt.status"] == 200
    if isinstance(provider, Breaking):
        assert attempt.status.status_code is StatusCode.ERROR and request.status.status_code is StatusCode.ERROR
        assert dict(attempt.attributes or {})["parrotrouter.ended_by"] == "upstream"
        assert dict(request.attributes or {})["error.type"] == dict(attempt.attributes or {})["error.type"]
    else:
        assert attempt.status.status_code is StatusCode.UNSET and request.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(("sent", "forwarded"), [
    ({"traceparent": TRACEPARENT, "tracestate": "ven=1,other=x"}, TraceContext(TRACEPARENT, "ven=1,other=x")),
    ({"traceparent": TRACEPARENT, "tracestate": "bad key=1"}, TraceContext(TRACEPARENT, None)),
    ({"traceparent": TRACEPARENT.upper()}, None),
    ({"traceparent": f"00-{'0' * 32}-{CLIENT_SPAN}-01"}, None),
    ({"traceparent": TRACEPARENT + "-00"}, None),  # version 00 has exactly four fields
    ({"traceparent": f"cc-{CLIENT_TRACE}-{CLIENT_SPAN}-01-later"}, TraceContext(TRACEPARENT)),  # a later version
    ({"traceparent": f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01"}, None),
    ({"traceparent": TRACEPARENT + ";x"}, None),
    ({}, None),
])
async def test_tracing_off_forwards_only_a_valid_client_trace(sent: dict[str, str],
                                                               forwarded: TraceContext | None) -> None:
    b = Seeing("b")
    state = world({"m": [b]})
    assert state.tracing is None
    async with TestClient(TestServer(create_app(state))) as http:
        resp = await http.post("/v1/chat/completions", headers=sent, json={"model": "m", "messages": USER})
        assert resp.status == 200
    assert b.seen == [forwarded]


def test_an_embeddings_request_span() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing.with_processor(SimpleSpanProcessor(exporter))
    record = UsageRecord(id="embd-1", endpoint="embeddings", requested_model="text-embedding-3-small")
    trace = tracing.begin(record, EmbeddingRequest("text-embedding-3-small", ["a b"], {}, 3, (2,)), None,
                           known=True)
    trace.end()
    [span] = exporter.get_finished_spans()
    assert span.name == "embeddings text-embedding-3-small" and span.kind is SpanKind.SERVER
    attrs = dict(span.attributes or {})
    assert attrs["gen_ai.operation.name"] == "embeddings" and "gen_ai.request.max_tokens" not in attrs


def test_the_sampler_is_the_environment_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_TRACES_SAMPLER is honoured: `traceidratio` ignores the client's sampled flag."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from parrotrouter.observe.tracing import build_provider

    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    default = build_provider("http://127.0.0.1:1/v1/traces")
    default.shutdown()
    assert isinstance(default.sampler, ParentBased)
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    ratio = build_provider("http://127.0.0.1:1/v1/traces")
    ratio.shutdown()
    assert isinstance(ratio.sampler, TraceIdRatioBased) and ratio.sampler.rate == 0.25
