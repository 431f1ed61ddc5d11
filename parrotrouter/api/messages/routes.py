"""`POST /v1/messages` and `POST /v1/messages/count_tokens`: decode the Anthropic request to the
canonical one, let the serving core answer it, encode the answer as Anthropic's."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...errors import InvalidRequest, ParrotError, echo
from ...protocol.validation import convert
from ...routing.policy import parse_policy
from ...serving.core import answer, open_stream
from ...serving.request import GenerationRequest, NativeBody
from ...state import AppState
from ..errors import ERROR_SHAPES
from ..generate import relay, translated_fallback
from ..json import json_response
from ..logging_headers import read_logging
from ..request import app_state, authenticated, read_json_sized
from .bounds import content_blocks, native_prompt_bound, unseen_text
from .count import count_tokens
from .decode import check_body, check_tools_billable, to_chat
from .encode import to_message
from .errors import anthropic_request_id, error_response, on_messages_path
from .protocol import DIALECT, MessagesRequest, native_headers
from .stream import MessageStream


async def create_message(http: web.Request) -> web.StreamResponse:
    ctx = authenticated(http, write=True)
    raw, size = await read_json_sized(http)
    ctx.logging = read_logging(http, raw)
    check_body(raw)
    state = app_state(http)
    payload = convert(raw, MessagesRequest)
    check_tools_billable(payload)
    translated = to_chat(payload, output_cap(state, payload.model))
    request = GenerationRequest.decode(translated.canonical, translated.raw, size, endpoint="messages",
                                       native=NativeBody(DIALECT, raw, native_headers(http.headers),
                                                         prompt_bound=native_prompt_bound(raw, size),
                                                         output_bound=payload.max_tokens, counted=unseen_text(raw)),
                                       routing_body=raw, id_prefix="msg_")
    ctx.principal.policy.check_features(features(request, payload, raw))
    policy = parse_policy(http.headers, request.routing)
    if translated.native_only and (other := translated_fallback(state, payload.model, policy, DIALECT)) is not None:
        raise InvalidRequest("The messages hold only content Anthropic's models read (Files API images, documents "
                             f"by URL, ...); the model '{echo(other)}' is not served by one.", param="messages")
    if not request.stream:
        return json_response(to_message(await answer(state, ctx, request, policy)))
    stream = await open_stream(state, ctx, request, policy)
    meta = stream.relay.meta
    encoder = MessageStream(meta["id"], meta["model"], DIALECT in stream.candidate.provider.native_dialects,
                            stream.cost)
    return await relay(http, stream, encoder)


def features(request: GenerationRequest, payload: MessagesRequest, raw: dict[str, Any]) -> list[str]:
    """The key-permission features used, of the client's own body too (what an Anthropic deployment
    reads): server tools and MCP servers (which only Anthropic runs) are tools, an image from
    Anthropic's Files API is vision."""
    used = request.features()
    if "tools" not in used and (payload.tools or raw.get("mcp_servers")):
        used.append("tools")
    if "vision" not in used and has_image(raw):
        used.append("vision")
    return used


def has_image(body: dict[str, Any]) -> bool:
    """Whether any content block, nested ones included, is an image."""
    return any(block.get("type") == "image" for block in content_blocks(body))


def output_cap(state: AppState, model: str) -> int | None:
    """The most output tokens the requested model gives, when the catalog says (None: unknown)."""
    try:
        return state.catalog.resolve(model).model.max_output_tokens
    except ParrotError:
        return None


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/messages", create_message)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app[ERROR_SHAPES].append((on_messages_path, error_response))
    app.on_response_prepare.append(anthropic_request_id)
