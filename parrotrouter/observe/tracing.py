"""OpenTelemetry traces, following the GenAI semantic conventions: one SERVER span per generation
or embeddings request, one CLIENT span per upstream attempt under it (retries and failovers each
have theirs), exported over OTLP/HTTP in batches from a background thread.

Only imported when tracing is on (`bootstrap.build_tracing`): tracing off, nothing of OpenTelemetry
is loaded and the request path does not change. A request span is begun by the serving core
(`begin`), and ended once its record is completed (tokens and cost final: `completed`, off the
request path), with the end time the request really ended at (`finished`). No prompt or
completion text ever goes into an attribute: only ids, names, numbers and our own error codes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..accounting.usage import UsageRecord
from ..upstream.trace_context import TraceContext, sending

if TYPE_CHECKING:
    from ..catalog import ProviderSpec
    from ..routing.router import Candidate
    from ..serving.context import RequestContext
    from ..serving.served import Served

log = logging.getLogger("parrotrouter.observe.tracing")
SERVICE = "parrotrouter"  # service.name unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise
MAX_PARKED = 10_000  # request spans waiting for their record's completion, at most (older: ended now)
MAX_PARKED_SECONDS = 120.0  # a record not completed by then (its ledger write failed): its span ends anyway
MAX_VALUE = 256  # characters of a caller's string (the requested model) in a span name or attribute

# gen_ai.operation.name of each ledger endpoint (the Responses and Messages APIs are chats).
OPERATIONS = {"completions": "text_completion", "embeddings": "embeddings"}
# gen_ai.provider.name of our provider types and of OpenAI-compatible presets (the spec's values).
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini", "bedrock": "aws.bedrock",
                  "azure": "azure.ai.openai", "cohere": "cohere"}
OPENAI_COMPATIBLE = {"groq": "groq", "deepseek": "deepseek", "mistral": "mistral_ai", "xai": "x_ai",
                     "perplexity": "perplexity"}
IN_PROCESS = {"llamacpp", "wordllama"}  # models run in this process (or our model host): INTERNAL spans


def provider_name(spec: ProviderSpec) -> str:
    """`gen_ai.provider.name` for a provider: the spec's well-known value, else our type's name."""
    if spec.type == "openai":
        return OPENAI_COMPATIBLE.get(spec.name, "openai")
    return PROVIDER_NAMES.get(spec.type, spec.type)


def bounded(value: str) -> str:
    """A caller's string as an attribute may hold it: printable, at most MAX_VALUE characters."""
    value = value[:MAX_VALUE]
    return value if value.isprintable() else "".join(c if c.isprintable() else "?" for c in value)


def traceparent_of(span: Span) -> TraceContext:
    """The W3C trace context naming `span` as the parent (what its upstream call carries)."""
    sc = span.get_span_context()
    state = sc.trace_state.to_header()
    return TraceContext(f"00-{sc.trace_id:032x}-{sc.span_id:016x}-{int(sc.trace_flags):02x}", state or None)


def build_provider(endpoint: str | None, env: dict[str, str] | os._Environ[str] = os.environ) -> TracerProvider:
    """A tracer provider exporting over OTLP/HTTP (the exporter reads the OTEL_EXPORTER_OTLP_*
    variables; `endpoint`, when given, is the traces URL), sampled as OTEL_TRACES_SAMPLER says."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider(resource=service_resource(env))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def service_resource(env: dict[str, str] | os._Environ[str] = os.environ) -> Resource:
    """The resource from OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME, named `parrotrouter` when
    they name no service."""
    resource = Resource.create()
    if env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        return resource
    return resource.merge(Resource({SERVICE_NAME: SERVICE}))


class Tracing:
    """The traces of this process: begins request spans (`begin`) and ends them (an `Observer`)."""

    wants_completed = True

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("parrotrouter")
        self.propagator = TraceContextTextMapPropagator()
        # Request spans whose request ended, by record id, oldest first: ended when completed.
        self.parked: collections.OrderedDict[str, RequestSpan] = collections.OrderedDict()

    @classmethod
    def exporting(cls, endpoint: str | None) -> Tracing:
        return cls(build_provider(endpoint))

    @classmethod
    def with_processor(cls, processor: SpanProcessor) -> Tracing:
        """Tracing into `processor` (tests: the SDK's in-memory exporter behind a simple processor)."""
        provider = TracerProvider(resource=service_resource())
        provider.add_span_processor(processor)
        return cls(provider)

    def begin(self, record: UsageRecord, request: Served, parent: TraceContext | None,
              known: bool) -> RequestSpan:
        """The request's span, child of the client's trace context when it sent a valid one. Named
        `{operation} {model}` when the requested model is a catalog name (`known`), else just
        `{operation}` until the request is served (then by the catalog model served): a caller's
        string never makes a span name, whose count trace backends index."""
        operation = OPERATIONS.get(record.endpoint, "chat")
        context = self.propagator.extract(parent.headers()) if parent is not None else None
        model = bounded(record.requested_model)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "parrotrouter.generation_id": record.id,
            "parrotrouter.endpoint": record.endpoint,
            "parrotrouter.streamed": record.streamed,
        }
        if record.request_id is not None:
            attributes["parrotrouter.request_id"] = record.request_id
        if record.key_id is not None:
            attributes["parrotrouter.key_id"] = record.key_id
        if record.account_id is not None:
            attributes["parrotrouter.account_id"] = record.account_id
        attributes.update(request_parameters(request))
        name = f"{operation} {model}" if known else operation
        span = self.tracer.start_span(name, context=context, kind=SpanKind.SERVER,
                                      attributes=attributes)
        return RequestSpan(self, span, record, operation, named=known)

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        trace = ctx.trace
        if not isinstance(trace, RequestSpan):
            return
        trace.stream_ended()
        if not trace.span.is_recording():  # sampled out: nothing to complete
            trace.span.end()
            return
        trace.end_ns = time.time_ns()
        self.parked[record.id] = trace
        if len(self.parked) > MAX_PARKED:
            self.parked.popitem(last=False)[1].end()

    def completed(self, records: list[UsageRecord]) -> None:
        for rec in records:
            trace = self.parked.pop(rec.id, None)
            if trace is not None:
                trace.end()
        too_old = time.time_ns() - int(MAX_PARKED_SECONDS * 1e9)
        while self.parked:
            oldest = next(iter(self.parked.values()))
            if oldest.end_ns > too_old:
                break
            self.parked.popitem(last=False)
            oldest.end()

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        """End what is still parked, then export the last batch (in a thread: it may wait)."""
        while self.parked:
            self.parked.popitem(last=False)[1].end()
        await asyncio.to_thread(self.provider.shutdown)


def request_parameters(request: Served) -> dict[str, Any]:
    """The request's sampling parameters, as `gen_ai.request.*` attributes (numbers only)."""
    out: dict[str, Any] = {}
    limit = request.output_limit
    if isinstance(limit, int) and limit > 0:  # embeddings have none (0)
        out["gen_ai.request.max_tokens"] = limit
    payload = getattr(request, "payload", None)
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        value = getattr(payload, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"gen_ai.request.{name}"] = float(value)
    n = getattr(payload, "n", None)
    if isinstance(n, int) and n != 1:
        out["gen_ai.request.choice.count"] = n
    return out


class RequestSpan:
    """One request's span, and the spans of its upstream attempts (`attempt`)."""

    __slots__ = ("context", "end_ns", "named", "operation", "provider", "record", "span", "streaming", "tracing")

    def __init__(self, tracing: Tracing, span: Span, record: UsageRecord, operation: str, *, named: bool) -> None:
        self.tracing, self.span, self.record, self.operation = tracing, span, record, operation
        self.context = set_span_in_context(span)
        self.end_ns = 0
        self.named = named  # the span's name has the requested model (a catalog name) already
        self.provider: str | None = None  # gen_ai.provider.name of the last attempt's provider
        # The attempt whose stream is being relayed: its span lasts until the stream ends.
        self.streaming: Span | None = None

    @contextlib.contextmanager
    def attempt(self, cand: Candidate) -> Iterator[None]:
        """A CLIENT span around one upstream attempt; its context goes upstream as `traceparent`."""
        spec = cand.provider.spec
        name = self.provider = provider_name(spec)
        model = cand.deployment.upstream_model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": self.operation, "gen_ai.provider.name": name, "gen_ai.system": name,
            "gen_ai.request.model": model, "parrotrouter.provider": spec.name,
            "parrotrouter.deployment": cand.deployment.id, "parrotrouter.model": cand.model.id,
        }
        attributes.update(_server(spec.base_url))
        kind = SpanKind.INTERNAL if spec.type in IN_PROCESS else SpanKind.CLIENT
        span = self.tracing.tracer.start_span(f"{self.operation} {model}", context=self.context, kind=kind,
                                              attributes=attributes)
        recorded = len(self.record.attempts)
        error: BaseException | None = None
        try:
            with sending(traceparent_of(span)):
                yield
        except BaseException as exc:
            error = exc
            raise
        finally:
            outcome = self.record.attempts[recorded:]
            if error is None and self.record.streamed and outcome:
                span.set_attribute("parrotrouter.attempt.status", outcome[-1].status)
                self.streaming = span  # committed to this stream: ended with it (`stream_ended`)
            else:
                _end_attempt(span, outcome, error)

    def stream_ended(self) -> None:
        """The request ended: so did the stream of its last attempt, if it streamed."""
        span, self.streaming = self.streaming, None
        if span is None:
            return
        record = self.record
        if record.ended_by is not None:
            span.set_attribute("parrotrouter.ended_by", record.ended_by)
            if record.ended_by == "upstream":  # the upstream failed mid-stream
                error = record.error_code or "stream_failed"
                span.set_attribute("error.type", error)
                span.set_status(Status(StatusCode.ERROR, error))
        span.end()

    def end(self) -> None:
        """End the request span with what its completed record says (tokens, cost, outcome)."""
        span, record = self.span, self.record
        attributes: dict[str, Any] = {
            "gen_ai.response.id": record.id,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "parrotrouter.cost_usd": float(record.cost),
            "parrotrouter.attempts": len(record.attempts),
            "http.response.status_code": record.status,
        }
        if record.served_model is not None:
            attributes["gen_ai.response.model"] = record.served_model
            if not self.named:
                span.update_name(f"{self.operation} {record.served_model}")
        if self.provider is not None:
            attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = self.provider
        if record.provider is not None:
            attributes["parrotrouter.provider"] = record.provider
        if record.deployment is not None:
            attributes["parrotrouter.deployment"] = record.deployment
        if record.finish_reason is not None:
            attributes["gen_ai.response.finish_reasons"] = [record.finish_reason]
        if record.cached_tokens:
            attributes["parrotrouter.usage.cached_tokens"] = record.cached_tokens
        if record.reasoning_tokens:
            attributes["parrotrouter.usage.reasoning_tokens"] = record.reasoning_tokens
        if record.ttft_ms is not None:
            attributes["parrotrouter.ttft_ms"] = round(record.ttft_ms, 3)
        if record.ended_by is not None:
            attributes["parrotrouter.ended_by"] = record.ended_by
        if record.status >= 400 or record.ended_by == "upstream":  # refused, failed, or cut by the upstream
            error = record.error_code or (str(record.status) if record.status >= 400 else "stream_failed")
            attributes["error.type"] = error
            span.set_status(Status(StatusCode.ERROR, error))
        span.set_attributes(attributes)
        span.end(end_time=self.end_ns or None)


def _end_attempt(span: Span, outcome: list[Any], error: BaseException | None) -> None:
    """An attempt span's outcome: the status and error code the attempt was recorded with."""
    if outcome:
        attempt = outcome[-1]
        span.set_attribute("parrotrouter.attempt.status", attempt.status)
        if attempt.error_code is not None:
            span.set_attribute("error.type", attempt.error_code)
            span.set_status(Status(StatusCode.ERROR, attempt.error_code))
    elif error is not None:  # not an upstream failure: the request was cancelled, or a bug of ours
        kind = "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__qualname__
        span.set_attribute("error.type", kind)
        span.set_status(Status(StatusCode.ERROR, kind))
    span.end()


@functools.lru_cache(maxsize=256)
def _server(base_url: str | None) -> dict[str, Any]:
    """server.address and server.port of an upstream's base URL (read only: callers copy it)."""
    if not base_url:
        return {}
    try:
        parts = urlsplit(base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    return {"server.address": parts.hostname, "server.port": port} if parts.hostname else {}
