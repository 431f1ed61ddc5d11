"""A provider reached over HTTP: an upstream client (I/O) plus a pure `HttpAdapter` (translation)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from ..catalog import ProviderSpec
from ..errors import InvalidRequest, ParrotError
from ..upstream.client import SSEParser, StreamParser, Transport, UpstreamRequest
from ..upstream.lean_client import make_upstream_client
from .base import (
    ChatCall,
    CompletionCall,
    EmbeddingAdapter,
    EmbeddingCall,
    HttpAdapter,
    Provider,
    StreamTranslator,
    malformed,
)

log = logging.getLogger("parrotrouter.providers")
EMBEDDING_CONCURRENCY = 8  # upstream requests in flight for one split embeddings call
_Call = TypeVar("_Call", ChatCall, CompletionCall, EmbeddingCall)


class HttpProvider(Provider):
    def __init__(self, spec: ProviderSpec, adapter: HttpAdapter, *, supports_completions: bool,
                 transport: Transport | None = None, parser: Callable[[], StreamParser] = SSEParser) -> None:
        super().__init__(spec)
        self.adapter = adapter
        self.supports_completions = supports_completions
        self.parser = parser  # the framing of the provider's streams (one parser per stream)
        self.client: Transport | None = transport  # injected (tests), else made at start

    async def start(self) -> None:
        if self.client is None:
            assert self.spec.base_url is not None
            self.client = make_upstream_client(self.spec.base_url, self.spec.timeouts, self.spec.max_connections,
                                               unix_socket=self.spec.unix_socket)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()

    async def _call(self, request: UpstreamRequest) -> bytes:
        client = self.client
        assert client is not None, "provider not started"
        async with client.open(request) as response:
            body = await client.read_body(response)
            if response.status >= 400:
                raise self.adapter.error(response.status, response.headers, body)
            return body

    async def _stream(self, request: UpstreamRequest,
                      translator: StreamTranslator) -> AsyncIterator[list[dict[str, Any]]]:
        client = self.client
        assert client is not None, "provider not started"
        async with client.open(request) as response:
            if response.status >= 400:
                raise self.adapter.error(response.status, response.headers, await client.read_body(response))
            try:
                async for events in client.stream_events(response, self.parser()):
                    chunks: list[dict[str, Any]] = []
                    try:
                        for event in events:
                            chunks += translator.feed(event)
                            if translator.done:
                                break
                    except Exception as exc:
                        if chunks:  # what arrived before the bad event still goes out first
                            yield chunks
                        raise _translation_failure(self.name, exc) from None
                    if chunks:
                        yield chunks
                    if translator.done:
                        return
            except Exception as exc:  # a framing the parser could not decode: a malformed answer
                raise _translation_failure(self.name, exc) from None
        if not translator.done:
            raise malformed("stream: it ended before its end marker")

    async def chat(self, call: ChatCall) -> dict[str, Any]:
        body = await self._call(self._encode(self.adapter.chat_request, call))
        try:
            return self.adapter.chat_response(body, call)
        except Exception as exc:
            raise _translation_failure(self.name, exc) from None

    def _encode(self, encode: Callable[[_Call], UpstreamRequest], call: _Call) -> UpstreamRequest:
        """The one place where a request the adapter could not encode (an odd value its
        translation did not foresee) becomes a 400 naming the provider, instead of a 500."""
        try:
            return encode(call)
        except ParrotError:
            raise
        except Exception as exc:
            log.error("provider %s could not encode a request (%s: %s)", self.name, type(exc).__name__,
                      str(exc)[:200], exc_info=True)
            raise InvalidRequest(f"This request cannot be translated for the provider '{self.name}'.") from None

    def chat_stream(self, call: ChatCall) -> AsyncIterator[list[dict[str, Any]]]:
        return self._stream(self._encode(self.adapter.chat_request, call), self.adapter.chat_stream(call))

    async def completion(self, call: CompletionCall) -> dict[str, Any]:
        if not self.supports_completions:
            return await super().completion(call)
        body = await self._call(self._encode(self.adapter.completion_request, call))
        try:
            return self.adapter.completion_response(body, call)
        except Exception as exc:
            raise _translation_failure(self.name, exc) from None

    def completion_stream(self, call: CompletionCall) -> AsyncIterator[list[dict[str, Any]]]:
        if not self.supports_completions:
            return super().completion_stream(call)
        return self._stream(self._encode(self.adapter.completion_request, call), self.adapter.completion_stream(call))

    async def embeddings(self, call: EmbeddingCall) -> dict[str, Any]:
        adapter = self.adapter
        if not isinstance(adapter, EmbeddingAdapter):
            return await super().embeddings(call)
        size = max(1, adapter.embeddings_batch(call))
        if len(call.inputs) <= size:
            return await self._embed(adapter, call)
        parts = [dataclasses.replace(call, inputs=call.inputs[i:i + size]) for i in range(0, len(call.inputs), size)]
        gate = asyncio.Semaphore(EMBEDDING_CONCURRENCY)

        async def one(start: int, part: EmbeddingCall) -> dict[str, Any]:
            async with gate:
                answer = await self._embed(adapter, part)
            if call.served is not None:  # billed by the upstream whatever becomes of the other parts
                usage = answer.get("usage")
                tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
                call.served.parts.append((start, len(part.inputs), tokens if isinstance(tokens, int) else None))
            return answer

        tasks = [asyncio.ensure_future(one(n * size, part)) for n, part in enumerate(parts)]
        try:
            return joined(await asyncio.gather(*tasks), size)
        finally:  # one part failed (or the caller went away): the others stop too
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _embed(self, adapter: EmbeddingAdapter, call: EmbeddingCall) -> dict[str, Any]:
        body = await self._call(self._encode(adapter.embeddings_request, call))
        try:
            return adapter.embeddings_response(body, call)
        except Exception as exc:
            raise _translation_failure(self.name, exc) from None


def joined(answers: list[dict[str, Any]], size: int) -> dict[str, Any]:
    """The answers to consecutive parts of one call (`size` inputs each) as one answer; its usage
    only when every part reported one."""
    data: list[Any] = []
    prompt: int | None = 0
    for n, answer in enumerate(answers):
        items = answer.get("data")
        if not isinstance(items, list):
            raise malformed("embeddings answer")
        for position, item in enumerate(items):
            if not isinstance(item, dict):
                raise malformed("embeddings answer")
            index = item.get("index", position)
            data.append({**item, "index": n * size + index if isinstance(index, int) else index})
        usage = answer.get("usage")
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        prompt = prompt + tokens if prompt is not None and isinstance(tokens, int) else None
    out: dict[str, Any] = {"object": "list", "data": data, "model": answers[0].get("model")}
    if prompt is not None:
        out["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return out


def _translation_failure(provider: str, exc: Exception) -> Exception:
    """The one place where an upstream answer the adapter could not translate becomes a failure
    the router understands (a malformed answer: fail over), instead of an unhandled error."""
    if isinstance(exc, ParrotError):
        return exc
    log.warning("provider %s sent an answer its adapter could not translate (%s: %s)", provider,
                type(exc).__name__, str(exc)[:200])
    return malformed("answer")


ProviderFactory = Callable[[ProviderSpec], Provider]


def build_provider(spec: ProviderSpec, model_host: str | None = None) -> Provider:
    """The provider for a spec, as its registered type builds it. With `model_host`, local models
    are reached in the shared model-host process instead of loaded here."""
    if spec.type == "llamacpp" and model_host is not None:
        from .model_host import ModelHostAdapter, remote_spec

        remote = remote_spec(spec, model_host)
        return HttpProvider(remote, ModelHostAdapter(remote), supports_completions=True)
    from .registry import provider_type

    return provider_type(spec.type).build(spec)
