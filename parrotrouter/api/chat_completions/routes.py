"""`POST /v1/chat/completions`: decode and check the request, then the serving core answers it."""

from __future__ import annotations

from aiohttp import web

from ...errors import InvalidRequest
from ...protocol.chat import ChatCompletionRequest
from ...protocol.validation import convert
from ...serving.request import GenerationRequest
from ..generate import generate
from ..logging_headers import read_logging
from ..request import authenticated, read_json_sized
from . import stored


def check_semantics(request: ChatCompletionRequest) -> None:
    """Rules between fields that types alone cannot state (as OpenAI enforces them). `stream_options`
    without `stream` is accepted and ignored (OpenAI's spec and SDK send it so; never forwarded)."""
    if request.top_logprobs is not None and not request.logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs")
    if request.tool_choice is not None and request.tool_choice != "none" and not request.tools:
        raise InvalidRequest("'tool_choice' is only allowed when 'tools' are given.", param="tool_choice")
    if request.parallel_tool_calls is not None and not request.tools:
        raise InvalidRequest("'parallel_tool_calls' is only allowed when 'tools' are given.",
                             param="parallel_tool_calls")


async def create_chat_completion(http: web.Request) -> web.StreamResponse:
    ctx = authenticated(http, write=True)
    raw, size = await read_json_sized(http)
    ctx.logging = read_logging(http, raw)
    payload = convert(raw, ChatCompletionRequest)
    check_semantics(payload)
    request = GenerationRequest.decode(payload, raw, size)
    if ctx.principal.policy.features is not None:
        ctx.principal.policy.check_features(request.features())
    if payload.store:  # kept for GET /v1/chat/completions/{id} and the list (stored.py)
        keep = stored.keeper(http, ctx.principal, raw)
        return await generate(http, ctx, request, keep, stored.StoringEncoder(keep))
    return await generate(http, ctx, request)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", create_chat_completion)
    stored.add_routes(app)
