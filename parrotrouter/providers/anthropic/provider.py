"""The Anthropic adapter (translated chat requests) and provider (which also takes Messages API
bodies natively: `native`, `native_stream`, `count_tokens`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from ...catalog import ProviderSpec
from ...errors import FailureKind, InvalidRequest, UpstreamFailure
from ...upstream.client import ServerSentEvent, Transport, UpstreamRequest
from ..base import (
    GATEWAY_FIELDS,
    ChatCall,
    CompletionCall,
    NativeCall,
    json_object,
    json_or_none,
    malformed,
    upstream_failure,
)
from ..http import HttpProvider
from .request import to_anthropic
from .response import ERROR_KINDS, AnthropicStream, from_anthropic, parse_event, usage_of

API_VERSION = "2023-06-01"
DIALECT = "anthropic.messages"
# The client's own headers a native request carries upstream (the rest are ours or the transport's).
NATIVE_HEADERS = ("anthropic-version", "anthropic-beta")


class AnthropicAdapter:
    def __init__(self, spec: ProviderSpec) -> None:
        assert spec.base_url is not None
        self.spec = spec
        base = spec.base_url[:-3] if spec.base_url.endswith("/v1") else spec.base_url
        self._url = base + "/v1/messages"
        self.count_url = base + "/v1/messages/count_tokens"
        headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
        if spec.api_key:
            headers["x-api-key"] = spec.api_key.reveal()
        headers.update(spec.headers)
        self._headers = headers

    def chat_request(self, call: ChatCall) -> UpstreamRequest:
        body = to_anthropic(call.request, call.deployment.upstream_model, call.model.max_output_tokens)
        return UpstreamRequest(self._url, orjson.dumps(body), self._headers, call.stream)

    def native_request(self, call: NativeCall, url: str | None = None, stream: bool | None = None) -> UpstreamRequest:
        """The client's body with only `model` (the deployment's) and the credentials changed; its
        `anthropic-version` and `anthropic-beta` headers go along (the operator's configured
        headers still win, betas are merged)."""
        body = {k: v for k, v in call.body.items() if k not in GATEWAY_FIELDS}
        body["model"] = call.chat.deployment.upstream_model
        headers = dict(self._headers)
        for name in NATIVE_HEADERS:
            value = call.headers.get(name)
            if value:
                headers[name] = value
        configured_betas = self.spec.headers.get("anthropic-beta")
        if configured_betas and call.headers.get("anthropic-beta"):
            headers["anthropic-beta"] = f"{call.headers['anthropic-beta']},{configured_betas}"
        for name, value in self.spec.headers.items():
            if name != "anthropic-beta":
                headers[name] = value
        return UpstreamRequest(url or self._url, orjson.dumps(body), headers,
                               call.stream if stream is None else stream)

    def chat_response(self, body: bytes, call: ChatCall) -> dict[str, Any]:
        msg = json_object(body, "message")
        if msg.get("type") != "message":
            raise malformed("message")
        return from_anthropic(msg)

    def chat_stream(self, call: ChatCall) -> AnthropicStream:
        return AnthropicStream(self.spec.name)

    def completion_request(self, call: CompletionCall) -> UpstreamRequest:
        raise InvalidRequest("Anthropic has no text completions endpoint; use /v1/chat/completions.", param="model")

    def completion_response(self, body: bytes, call: CompletionCall) -> dict[str, Any]:
        raise malformed("completion")  # never reached: completion_request refuses first

    def completion_stream(self, call: CompletionCall) -> AnthropicStream:
        return AnthropicStream(self.spec.name)

    def error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamFailure:
        parsed = json_or_none(body)
        err = parsed.get("error") if isinstance(parsed, dict) else None
        err = err if isinstance(err, dict) else {}
        kind = ERROR_KINDS.get(str(err.get("type"))) if status != 529 else FailureKind.MODEL_OVERLOADED
        return upstream_failure(status, headers, err.get("message"), kind=kind, provider=self.spec.name)


class NativeStream(AnthropicStream):
    """The OpenAI chunks of each event (what the core counts and bills), the event itself riding
    on the first of them — or on a chunk of its own when it translates to none (ping, block
    starts and stops, message_stop's usage chunk carries it too)."""

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        data = parse_event(event)
        chunks = self.translate(data)
        if not isinstance(data, dict):
            return chunks
        if chunks:
            chunks[0]["native"] = [data]
        else:
            chunks = [{"object": "chat.completion.chunk", "choices": [], "native": [data]}]
        if data.get("type") in ("message_start", "message_delta") and (usage := usage_of(self.usage)) is not None:
            # message_start: the prompt's real size (cache reads and writes too), known now: a stream
            # cut before message_stop is billed for it, not for the estimate of the translated body;
            # message_delta: the final counts, so the event relayed to the client can carry the cost
            chunks[0]["usage"] = usage
        return chunks


class AnthropicProvider(HttpProvider):
    native_dialects = frozenset({DIALECT})
    adapter: AnthropicAdapter

    def __init__(self, spec: ProviderSpec, adapter: AnthropicAdapter, transport: Transport | None = None) -> None:
        super().__init__(spec, adapter, supports_completions=False, transport=transport)

    def _native_request(self, call: NativeCall, url: str | None = None, stream: bool | None = None) -> UpstreamRequest:
        """As `HttpProvider._encode`: a body that cannot be encoded is a 400, not a 500."""
        try:
            return self.adapter.native_request(call, url, stream)
        except (TypeError, ValueError):  # orjson: nesting beyond its limit, integers beyond 64 bits
            raise InvalidRequest("This request cannot be encoded for the provider "
                                 f"'{self.name}' (too deeply nested, or an integer beyond 64 bits).") from None

    async def native(self, call: NativeCall) -> dict[str, Any]:
        if call.dialect != DIALECT:
            return await super().native(call)
        msg = json_object(await self._call(self._native_request(call)), "message")
        if msg.get("type") != "message":
            raise malformed("message")
        try:
            out = from_anthropic(msg)
        except (AttributeError, KeyError, TypeError, ValueError):  # as HttpProvider.chat: fail over
            raise malformed("message") from None
        out["native"] = msg
        return out

    def native_stream(self, call: NativeCall) -> AsyncIterator[list[dict[str, Any]]]:
        if call.dialect != DIALECT:
            return super().native_stream(call)
        return self._stream(self._native_request(call), NativeStream(self.name))

    async def count_tokens(self, call: NativeCall) -> int:
        """Anthropic's own count of the request's input tokens (its count_tokens endpoint)."""
        answer = json_object(await self._call(self._native_request(call, self.adapter.count_url, False)),
                             "token count")
        count = answer.get("input_tokens")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise malformed("token count")
        return count
