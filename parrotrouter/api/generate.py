"""HTTP for the generation endpoints: hand the decoded request to the serving core, answer JSON or
Server-Sent Events (`data: <json>`, a usage chunk when asked, `data: [DONE]`; when a stream fails
after it started, never [DONE] but two frames: the chunk with `finish_reason: "error"` and the error
envelope, then a plain `data: {"error": {...}}` — clients that read only one of the two forms (the
AI SDK's `openai.chat()` takes a chunk with a finish reason for a clean end) still see the error)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson
from aiohttp import web

from ..errors import ParrotError
from ..routing.policy import RoutingPolicy, parse_policy
from ..serving.context import RequestContext
from ..serving.core import Done, Failed, Frames, Stream, StreamEvent, answer, open_stream
from ..serving.request import GenerationRequest
from ..serving.types import JSONObject
from ..state import AppState
from .request import app_state

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
_DONE = b"data: [DONE]\n\n"


def sse(obj: JSONObject) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def failure(frame: JSONObject) -> bytes:
    """The end of a failed stream: the error chunk, then the bare error envelope."""
    return sse(frame) + sse({"error": frame["error"]})


def encode(event: StreamEvent) -> bytes:
    if isinstance(event, Frames):
        return b"data: " + b"\n\ndata: ".join(map(orjson.dumps, event.chunks)) + b"\n\n" if event.chunks else b""
    if isinstance(event, Done):
        return sse(event.usage) + _DONE if event.usage is not None else _DONE
    return failure(event.frame)


class StreamEncoder(Protocol):
    """How an inbound API writes the core's stream events (chat: `encode` and `sse`)."""

    def encode(self, event: StreamEvent) -> bytes: ...

    def shutdown(self, frame: JSONObject) -> bytes:
        """The last write of a stream the server cut (`frame`: the core's error frame)."""
        ...

    async def ending(self) -> None:
        """Called once the stream's last event (`Done` or `Failed`) is encoded, before it is written
        (Responses keeps the response here, so a follow-up request finds it)."""
        ...


class ChatEncoder:
    def encode(self, event: StreamEvent) -> bytes:
        return encode(event)

    def shutdown(self, frame: JSONObject) -> bytes:
        return failure(frame)

    async def ending(self) -> None:
        return None


async def generate(http: web.Request, ctx: RequestContext, request: GenerationRequest,
                   keep: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
                   encoder: StreamEncoder | None = None) -> web.StreamResponse:
    """Serve a decoded generation request over HTTP; `keep` is given a JSON answer, `encoder`
    writes a stream (chat's `store: true` keeps both)."""
    state = app_state(http)
    policy = parse_policy(http.headers, request.routing)
    if not request.stream:
        served = await answer(state, ctx, request, policy)
        if keep is not None:
            await keep(served)
        return web.Response(body=orjson.dumps(served), content_type="application/json")
    stream = await open_stream(state, ctx, request, policy)
    return await relay(http, stream, encoder or ChatEncoder())


async def relay(http: web.Request, stream: Stream, encoder: StreamEncoder) -> web.StreamResponse:
    """Write a stream's events as the encoder says; the client hanging up, the upstream failing
    and the server shutting down all end it cleanly, and `finish` bills it."""
    state = app_state(http)
    response = web.StreamResponse(status=200, headers=SSE_HEADERS)
    task = asyncio.current_task()
    if task is not None:
        state.streams.add(task)  # shutdown drains them, then cuts what is left
    try:
        await response.prepare(http)
        async for event in stream.events():
            data = encoder.encode(event)
            if isinstance(event, Done | Failed):
                await encoder.ending()
                await response.write_eof(data)  # the last frames and the stream's end in one write
                break
            if data:
                await response.write(data)
    except ConnectionResetError:
        pass  # the client hung up: `finish` bills what was relayed
    except asyncio.CancelledError:
        if state.stopping:  # cut by shutdown: the client is told so, within a second
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await response.write(encoder.shutdown(stream.shutdown_frame()))
                    await response.write_eof()
        raise
    finally:
        if task is not None:
            state.streams.discard(task)
        await stream.finish()
    return response


def serves_natively(state: AppState, model: str, dialect: str) -> bool:
    """Whether every deployment of `model` takes the wire format `dialect` natively."""
    try:
        deployments = state.catalog.resolve(model).deployments()
    except ParrotError:
        return False
    providers = state.providers
    return bool(deployments) and all(
        d.provider in providers and dialect in providers[d.provider].native_dialects for d in deployments)


def translated_fallback(state: AppState, model: str, policy: RoutingPolicy, dialect: str) -> str | None:
    """A model the request may be served by (the body's `models`, X-Failover-Config, ...) that
    does not take `dialect` natively: what only a native upstream reads would be lost there."""
    names = [policy.primary_model or model, *policy.fallback_models,
             *(fb.model for fb in policy.conditional_fallbacks if fb.model)]
    return next((name for name in names if not serves_natively(state, name, dialect)), None)
