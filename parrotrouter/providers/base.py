"""The provider interface: what routing calls, whatever the provider speaks underneath.

A provider turns a `ChatCall` into an OpenAI-shaped `chat.completion` dict, or a stream of
batches of `chat.completion.chunk` dicts (a batch: what arrived together, relayed in one write);
an `EmbeddingCall` into OpenAI's embeddings `list` (providers that serve /v1/embeddings).
HTTP providers do this with a pure `HttpAdapter` (translate the request, the response, one
stream event, an error); the local llama.cpp provider runs the model.
Providers know nothing of keys, limits or HTTP frameworks.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

from ..catalog import Deployment, ModelSpec, ProviderSpec
from ..errors import FailureKind, InvalidRequest, UpstreamFailure
from ..protocol.chat import ChatCompletionRequest
from ..protocol.completions import CompletionRequest
from ..tokens import get_encoding
from ..upstream.client import ServerSentEvent, UpstreamRequest
from .redact import redact

log = logging.getLogger("parrotrouter.providers")

# Fields of ours (routing dialects) that are never sent to an upstream.
GATEWAY_FIELDS = frozenset({"models", "provider", "route", "transforms", "plugins", "usage"})


@dataclasses.dataclass(slots=True)
class ChatCall:
    request: ChatCompletionRequest
    raw: dict[str, Any]  # the client's JSON body, unknown fields included
    model: ModelSpec
    deployment: Deployment

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)


@dataclasses.dataclass(slots=True)
class CompletionCall:
    request: CompletionRequest
    raw: dict[str, Any]
    model: ModelSpec
    deployment: Deployment

    @property
    def stream(self) -> bool:
        return bool(self.request.stream)


@dataclasses.dataclass(slots=True)
class NativeCall:
    """A request in a provider's own wire format (`dialect`, e.g. "anthropic.messages"), to forward
    as it came: only the model and credentials change. `chat` is the same request translated to
    the canonical chat form (what the core counts and bounds with).

    The provider answers with an OpenAI-shaped `chat.completion` (what the core observes: usage,
    finish, texts) that also carries the upstream's own body under `"native"`; a native stream
    yields OpenAI chunks of which any may carry `"native"`: the upstream events it came from, in
    order (chunks with no choices but native events are relayed too)."""

    dialect: str
    body: dict[str, Any]
    chat: ChatCall
    # The client's headers of that wire format the upstream must see too (e.g. `anthropic-beta`).
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.chat.stream


@dataclasses.dataclass(slots=True)
class PartsServed:
    """The parts of a split embeddings call the upstream answered, and so billed, even when
    another part failed: (first input, number of inputs, the upstream's prompt tokens if told)."""

    parts: list[tuple[int, int, int | None]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class EmbeddingCall:
    """An embeddings request, validated and bounded at the edge: `inputs` are strings, or lists of
    token ids (read as cl100k_base ids, the tokenizer of OpenAI's embedding models, by providers
    that take text only: `texts()`). Providers answer OpenAI's shape, `{"object": "list", "data":
    [{"object": "embedding", "index": i, "embedding": [...]}], "model": ..., "usage": {...}}`,
    with float lists or, when the upstream itself encoded them, base64 strings."""

    inputs: list[str] | list[list[int]]
    raw: dict[str, Any]  # the client's JSON body (OpenAI-compatible upstreams get it passed through)
    dimensions: int | None
    encoding_format: str  # what the client asked for: "float" or "base64"
    model: ModelSpec
    deployment: Deployment
    served: PartsServed | None = None  # filled by providers that split the call

    @property
    def tokens(self) -> bool:
        return bool(self.inputs) and not isinstance(self.inputs[0], str)

    def texts(self) -> list[str]:
        """The inputs as text (token arrays decoded; 400 for an id cl100k_base does not have)."""
        if not self.tokens:
            return [x for x in self.inputs if isinstance(x, str)]
        return [decode_tokens(ids) for ids in self.inputs if isinstance(ids, list)]


def decode_tokens(ids: list[int]) -> str:
    """Token ids of OpenAI's embedding models (cl100k_base) as text."""
    encoding = get_encoding("cl100k_base")
    try:
        return encoding.decode_bytes(ids).decode("utf-8", errors="replace")
    except (KeyError, ValueError, OverflowError):
        raise InvalidRequest("'input' has a token id that the cl100k_base tokenizer does not have; token arrays "
                             "are read as cl100k_base ids for this model.", param="input") from None


class StreamTranslator(Protocol):
    """Turns one upstream stream event into zero or more OpenAI chunks (stateful per stream)."""

    done: bool

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]: ...


class HttpAdapter(Protocol):
    """Pure translation between our calls and one provider's HTTP wire format (no I/O)."""

    def chat_request(self, call: ChatCall) -> UpstreamRequest: ...

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]: ...

    def chat_stream(self, call: ChatCall) -> StreamTranslator: ...

    def completion_request(self, call: CompletionCall) -> UpstreamRequest: ...

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]: ...

    def completion_stream(self, call: CompletionCall) -> StreamTranslator: ...

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure: ...


@runtime_checkable
class EmbeddingAdapter(Protocol):
    """An `HttpAdapter` whose provider also serves /v1/embeddings (pure translation, no I/O)."""

    def embeddings_batch(self, call: EmbeddingCall) -> int:
        """Inputs one upstream request may carry (larger calls are split, and the answers joined)."""
        ...

    def embeddings_request(self, call: EmbeddingCall) -> UpstreamRequest: ...

    def embeddings_response(self, body: bytes, call: EmbeddingCall) -> dict[str, Any]: ...


class Provider(abc.ABC):
    # The inbound wire formats this provider can take natively (see `NativeCall`).
    native_dialects: frozenset[str] = frozenset()

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    @abc.abstractmethod
    async def chat(self, call: ChatCall) -> dict[str, Any]: ...

    @abc.abstractmethod
    def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]: ...

    async def completion(self, call: CompletionCall) -> dict[str, Any]:
        raise InvalidRequest(f"Provider '{self.name}' does not offer /v1/completions.", param="model")

    def completion_stream(self, call: CompletionCall) -> AsyncIterator[list[dict[str, Any]]]:
        raise InvalidRequest(f"Provider '{self.name}' does not offer /v1/completions.", param="model")

    async def native(self, call: NativeCall) -> dict[str, Any]:
        raise InvalidRequest(f"Provider '{self.name}' does not speak {call.dialect} natively.", param="model")

    def native_stream(self, call: NativeCall) -> AsyncIterator[list[dict[str, Any]]]:
        raise InvalidRequest(f"Provider '{self.name}' does not speak {call.dialect} natively.", param="model")

    async def embeddings(self, call: EmbeddingCall) -> dict[str, Any]:
        """OpenAI-shaped embeddings (see `EmbeddingCall`)."""
        raise InvalidRequest(f"Provider '{self.name}' does not offer /v1/embeddings.", param="model")

    async def delete_model(self, upstream_model: str) -> bool:
        """Delete one of the account's own models (a fine-tuned model) at the provider; whether it
        says it was deleted. Only OpenAI-compatible providers offer it."""
        raise InvalidRequest(f"Provider '{self.name}' does not offer deleting models.", param="model")

    async def start(self) -> None:
        """Acquire resources (connection pools, model weights). Called once at start-up."""

    async def aclose(self) -> None:
        """Release resources. Called once at shutdown."""

    def ready(self) -> bool:
        return True


def malformed(what: str) -> UpstreamFailure:
    return UpstreamFailure(f"The upstream provider sent a malformed {what}.",
                           kind=FailureKind.STREAM_PROTOCOL)


def json_object(data: bytes | str, what: str) -> dict[str, Any]:
    """An upstream's answer or stream event: a JSON object, else a malformed-`what` failure."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise malformed(what) from None
    if not isinstance(value, dict):
        raise malformed(what)
    return value


def json_or_none(body: bytes) -> Any:
    """An upstream's error body, parsed when it is JSON (None when it is not)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


_KIND_BY_STATUS: dict[int, FailureKind] = {
    400: FailureKind.BAD_REQUEST,
    401: FailureKind.AUTH,
    403: FailureKind.AUTH,
    404: FailureKind.NOT_FOUND,
    408: FailureKind.TIMEOUT,
    409: FailureKind.SERVER_ERROR,
    413: FailureKind.BAD_REQUEST,
    422: FailureKind.BAD_REQUEST,
    429: FailureKind.RATE_LIMIT,
    500: FailureKind.SERVER_ERROR,
    502: FailureKind.SERVER_ERROR,
    503: FailureKind.MODEL_OVERLOADED,
    504: FailureKind.TIMEOUT,
    529: FailureKind.MODEL_OVERLOADED,
}


def kind_for_status(status: int) -> FailureKind:
    kind = _KIND_BY_STATUS.get(status)
    if kind is not None:
        return kind
    return FailureKind.BAD_REQUEST if 400 <= status < 500 else FailureKind.SERVER_ERROR


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """`Retry-After` (seconds form) or OpenAI's `retry-after-ms`, when the upstream sent one."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None  # HTTP-date form: not worth trusting clocks for
    return None


def upstream_failure(
    status: int, headers: Mapping[str, str], message: Any, *, kind: FailureKind | None = None,
    provider: str,
) -> UpstreamFailure:
    """Build the failure for an upstream HTTP error (one per attempt; the kind decides retries)."""
    kind = kind or kind_for_status(status)
    text = f"The provider '{provider}' {_WHAT.get(kind, 'returned an error')} (HTTP {status})"
    return UpstreamFailure(text + client_detail(provider, status, message, kind), kind=kind,
                           upstream_status=status, retry_after=retry_after_seconds(headers))


# What an upstream failure is, in words; its own message is added only where `client_detail` says.
_WHAT: dict[FailureKind, str] = {
    FailureKind.AUTH: "rejected the gateway's credentials",
    FailureKind.NOT_FOUND: "does not know the requested model or endpoint",
    FailureKind.RATE_LIMIT: "is rate limiting the gateway",
    FailureKind.MODEL_OVERLOADED: "is overloaded",
    FailureKind.SERVER_ERROR: "failed",
    FailureKind.TIMEOUT: "timed out",
    FailureKind.BAD_REQUEST: "rejected the request",
    FailureKind.CONTEXT_LENGTH_EXCEEDED: "rejected the request as too long for the model",
    FailureKind.CONTENT_FILTER: "refused the content",
}


def client_detail(provider: str, status: int, message: Any, kind: FailureKind) -> str:
    """The upstream's own message as the client may read it (": ..." or "."), and the original in
    the log. Only a client error (4xx) says something the caller can act on; it is passed on with
    credentials, account ids, hosts, addresses and paths redacted, and bounded. Messages of
    credential errors quote the gateway's key, and server errors describe the provider's
    internals: neither is passed on."""
    if not isinstance(message, str) or not message:
        return "."
    log.log(logging.INFO if kind is FailureKind.RATE_LIMIT else logging.WARNING,
            "provider %s answered HTTP %s: %r", provider, status, message[:2000])
    if not 400 <= status < 500 or kind in (FailureKind.AUTH, FailureKind.NOT_FOUND):
        return "."
    return ": " + redact(message)
