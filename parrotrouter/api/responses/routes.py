"""`POST /v1/responses`, `GET`/`DELETE /v1/responses/{id}`, `GET /v1/responses/{id}/input_items`.

A request is decoded to the canonical chat request (and, for deployments that speak the
Responses API, carries the client's body for native passthrough); the serving core answers it;
the answer or stream is encoded back as a response object or typed events, and kept in the
state store unless `store` is false.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from ...accounting.usage import OFF_LOOP_COUNT
from ...errors import InvalidRequest, NotFound, ParrotError, echo
from ...protocol.chat import ChatCompletionRequest
from ...protocol.validation import convert
from ...routing.policy import parse_policy
from ...serving.context import RequestContext
from ...serving.core import Done, Frames, StreamEvent, answer, open_stream
from ...serving.request import GenerationRequest, NativeBody
from ..generate import relay, serves_natively, translated_fallback
from ..json import json_response
from ..logging_headers import read_logging
from ..request import app_state, authenticate, authenticated, read_json_sized
from . import encode
from . import protocol as p
from .decode import Decoded, check_depth, check_request, decode, native_extras
from .events import StreamEncoder, frame
from .native import DIALECT, upstream_body
from .state import STORE_KEY, build_store, conversation, keep, known_id, listed_items, owner_of, reach

log = logging.getLogger("parrotrouter.api.responses")


class _Call:
    """One create request on its way: what to store when it ends."""

    def __init__(self, http: web.Request, ctx: RequestContext, decoded: Decoded) -> None:
        self.http, self.ctx, self.decoded = http, ctx, decoded
        self.request = decoded.request

    async def save(self, response: dict[str, Any] | None) -> None:
        if response is None or self.request.store is False:
            return
        stored = keep(str(response["id"]), self.ctx.principal, str(response.get("model") or self.request.model),
                      self.request.previous_response_id, listed_items(self.decoded.items), response)
        try:
            await self.http.app[STORE_KEY].save(stored)
        except Exception:  # the answer was served and billed: it is still given
            log.exception("storing response %s failed", stored.id)


_HISTORY_ON_LOOP = 64  # stored items decoded on the event loop, at most
_T = TypeVar("_T")


def _parse(raw: dict[str, Any]) -> p.ResponsesRequest:
    check_depth(raw)
    request = convert(raw, p.ResponsesRequest)
    check_request(request)
    return request


async def _walked(size: int, work: Callable[..., _T], *args: Any) -> _T:
    return await asyncio.to_thread(work, *args) if size >= OFF_LOOP_COUNT else work(*args)


async def create_response(http: web.Request) -> web.StreamResponse:
    ctx = authenticated(http, write=True)
    raw, size = await read_json_sized(http)
    ctx.logging = read_logging(http, raw)
    state = app_state(http)
    # Checking and translating walk every item in Python: a large body is walked in a worker thread,
    # so the event loop keeps serving others meanwhile (as large prompts are counted).
    request = await _walked(size, _parse, raw)
    history = await conversation(http.app[STORE_KEY], request.previous_response_id, owner_of(ctx.principal),
                                 state.settings.max_body_bytes)
    decoded = await _walked(size + (OFF_LOOP_COUNT if len(history) > _HISTORY_ON_LOOP else 0), decode,
                            request, history)
    native = serves_natively(state, request.model, DIALECT)
    if decoded.native_only and not native:
        raise InvalidRequest(f"{decoded.native_only} need a model served by the Responses API natively (an "
                             f"OpenAI or Azure deployment); '{echo(request.model)}' is translated to chat.")
    payload = convert(decoded.chat, ChatCompletionRequest)
    features, uncounted = native_extras(request, history, decoded.items) if native else ([], "")
    size = len(orjson.dumps(decoded.chat)) + len(uncounted.encode())  # counted off the event loop when large
    body = NativeBody(DIALECT, upstream_body(raw, history, decoded.items), counted=uncounted) if native else None
    generation = GenerationRequest.decode(payload, decoded.chat, size, endpoint="responses", native=body,
                                          routing_body=raw, id_prefix="resp_")
    if ctx.principal.policy.features is not None:
        ctx.principal.policy.check_features([*generation.features(), *features])
    call = _Call(http, ctx, decoded)
    policy = parse_policy(http.headers, generation.routing)
    if decoded.native_only and (other := translated_fallback(state, request.model, policy, DIALECT)) is not None:
        raise InvalidRequest(f"{decoded.native_only} need a model served by the Responses API natively; the "
                             f"fallback model '{echo(other)}' is translated to chat.", param="models")
    if not generation.stream:
        result = await answer(state, ctx, generation, policy)
        if "native" in result:
            response = encode.from_native(result, encode.response_id(str(result["id"])), str(result["model"]),
                                          request)
        else:
            response = encode.from_chat(result, request, decoded.tools)
        await call.save(response)
        return json_response(response)
    stream = await open_stream(state, ctx, generation, policy)
    rid = encode.response_id(str(stream.relay.meta["id"]))
    encoder = StreamEncoder(request, rid, stream.candidate.model.id, decoded.tools, stream.cost)
    return await relay(http, stream, _Wire(call, encoder))


class _Wire:
    """The Responses API's typed events for the core's stream events; the response is kept (unless
    `store` is false) before the client hears the stream's end, so a follow-up finds it."""

    def __init__(self, call: _Call, encoder: StreamEncoder) -> None:
        self.call, self.encoder = call, encoder

    def encode(self, event: StreamEvent) -> bytes:
        encoder = self.encoder
        if isinstance(event, Frames):
            events = encoder.chunks(event.chunks)
        elif isinstance(event, Done):
            usage = event.usage.get("usage") if event.usage else None
            events = encoder.done(usage if isinstance(usage, dict) else None)
        else:
            events = encoder.failed(_error_of(event.frame))
        return b"".join([frame(e) for e in events])

    def shutdown(self, error_frame: dict[str, Any]) -> bytes:
        return b"".join([frame(e) for e in self.encoder.failed(_error_of(error_frame))])

    async def ending(self) -> None:
        await self.call.save(self.encoder.final)


def _error_of(chunk: dict[str, Any]) -> dict[str, Any]:
    error = chunk.get("error")
    return error if isinstance(error, dict) else {}


def _stored(http: web.Request) -> tuple[str, str]:
    principal = authenticate(http)
    return http.match_info["response_id"], owner_of(principal)


def _not_found(rid: str) -> ParrotError:
    return NotFound(f"Response with id '{echo(rid)}' not found.", param="response_id")


async def get_response(http: web.Request) -> web.Response:
    rid, owner = _stored(http)
    stored = await reach(http.app[STORE_KEY].get(rid, owner)) if known_id(rid) else None
    if stored is None:
        raise _not_found(rid)
    return json_response(stored.response)


async def delete_response(http: web.Request) -> web.Response:
    principal = authenticate(http, write=True)
    rid = http.match_info["response_id"]
    if not known_id(rid) or not await reach(http.app[STORE_KEY].delete(rid, owner_of(principal))):
        raise _not_found(rid)
    return json_response({"id": rid, "object": "response", "deleted": True})


async def list_input_items(http: web.Request) -> web.Response:
    rid, owner = _stored(http)
    stored = await reach(http.app[STORE_KEY].get(rid, owner)) if known_id(rid) else None
    if stored is None:
        raise _not_found(rid)
    limit, order, after, before = _page_params(http)
    items = list(stored.input) if order == "asc" else list(reversed(stored.input))
    ids = [str(item.get("id")) for item in items]
    start = ids.index(after) + 1 if after in ids else 0
    end = ids.index(before) if before in ids else len(items)
    page = items[start:end][:limit]
    return json_response({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                          "last_id": page[-1]["id"] if page else None, "has_more": start + len(page) < end})


def _page_params(http: web.Request) -> tuple[int, str, str | None, str | None]:
    query = http.query
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 100:
        raise InvalidRequest("'limit' must be an integer from 1 to 100.", param="limit")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
    return limit, order, query.get("after"), query.get("before")


def add_routes(app: web.Application) -> None:
    from ..request import STATE_KEY

    app[STORE_KEY] = build_store(app[STATE_KEY])
    app.router.add_post("/v1/responses", create_response)
    app.router.add_get("/v1/responses/{response_id}", get_response)
    app.router.add_delete("/v1/responses/{response_id}", delete_response)
    app.router.add_get("/v1/responses/{response_id}/input_items", list_input_items)
