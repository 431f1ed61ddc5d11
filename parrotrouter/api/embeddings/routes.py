"""`POST /v1/embeddings`: decode and bound the request, then the serving core answers it."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from ...protocol.routing_fields import decode_routing
from ...protocol.validation import convert
from ...routing.policy import parse_policy
from ...serving.embeddings import EmbeddingRequest, embed
from ..logging_headers import read_logging
from ..request import app_state, authenticated, read_json_sized
from .protocol import COUNT_OFF_LOOP, EmbeddingsBody, count_tokens, inputs


async def create_embeddings(http: web.Request) -> web.Response:
    ctx = authenticated(http, write=True)
    raw, size = await read_json_sized(http)
    ctx.logging = read_logging(http, raw, answers=False)  # vectors are not content worth keeping
    body = convert(raw, EmbeddingsBody)
    items = inputs(body)
    policy = ctx.principal.policy
    if policy.features is not None:
        policy.check_features(["embeddings"])
    if items and isinstance(items[0], str):
        texts = [x for x in items if isinstance(x, str)]
        counts = await asyncio.to_thread(count_tokens, texts) if size >= COUNT_OFF_LOOP else count_tokens(texts)
    else:
        counts = [len(x) for x in items]
    request = EmbeddingRequest(
        model=body.model, inputs=items, raw=raw, body_size=size, token_counts=tuple(counts),
        encoding_format=body.encoding_format or "float", dimensions=body.dimensions, user=body.user,
        routing=decode_routing(raw))
    answer = await embed(app_state(http), ctx, request, parse_policy(http.headers, request.routing))
    return web.Response(body=orjson.dumps(answer), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/embeddings", create_embeddings)
