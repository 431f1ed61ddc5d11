"""`POST /v1/completions` (legacy text completions): decode and check, then the serving core answers."""

from __future__ import annotations

from aiohttp import web

from ...errors import InvalidRequest
from ...protocol.completions import CompletionRequest, check_prompt
from ...protocol.validation import convert
from ...serving.request import GenerationRequest
from ..generate import generate
from ..logging_headers import read_logging
from ..request import authenticated, read_json_sized


def check_semantics(request: CompletionRequest) -> None:
    """`stream_options` without `stream` is accepted and ignored (never forwarded), as on chat;
    `best_of: 0` (allowed by OpenAI's spec) means the default, one answer per `n`."""
    if request.best_of:
        if request.stream:
            raise InvalidRequest("'best_of' cannot be used with 'stream'.", param="best_of")
        if request.best_of < (request.n or 1):
            raise InvalidRequest("'best_of' must be greater than or equal to 'n'.", param="best_of")
    check_prompt(request.prompt)


async def create_completion(http: web.Request) -> web.StreamResponse:
    ctx = authenticated(http, write=True)
    raw, size = await read_json_sized(http)
    ctx.logging = read_logging(http, raw)
    payload = convert(raw, CompletionRequest)
    check_semantics(payload)
    request = GenerationRequest.decode(payload, raw, size)
    if ctx.principal.policy.features is not None:
        ctx.principal.policy.check_features(request.features())
    return await generate(http, ctx, request)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/completions", create_completion)
