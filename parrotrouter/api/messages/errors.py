"""Every error on the Messages API paths in Anthropic's shape, `{"type": "error", "error": {"type",
"message"}}` with Anthropic's status codes: the app's error middleware renders errors on these
paths with `error_response` (our exceptions, and the 404/405/413 aiohttp raises). Every answer on
these paths also carries the request id as Anthropic's `request-id` header (what the Anthropic SDKs
show as the request id)."""

from __future__ import annotations

import orjson
from aiohttp import web

from ...errors import ParrotError, UpstreamFailure
from ..request import request_id
from .encode import anthropic_error

PREFIX = "/v1/messages"


def error_response(err: ParrotError) -> web.Response:
    if isinstance(err, UpstreamFailure):
        err = err.to_client_error()
    status, body = anthropic_error(err)
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=err.response_headers())


def on_messages_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


async def anthropic_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if on_messages_path(request.path):
        response.headers["request-id"] = request_id(request)
