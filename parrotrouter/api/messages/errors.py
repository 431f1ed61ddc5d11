"""Every error on the Messages API paths in Anthropic's shape, `{"type": "error", "error": {"type",
"message"}}` with Anthropic's status codes: our exceptions, and the 404/405/413 aiohttp raises
before a handler runs. Every answer on these paths also carries the request id as Anthropic's
`request-id` header (what the Anthropic SDKs show as the request id)."""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiohttp import web

from ...errors import InternalServerError, ParrotError, UpstreamFailure
from ..errors import Handler, _from_http_exception
from ..request import request_id
from .encode import anthropic_error

log = logging.getLogger("parrotrouter.api")
PREFIX = "/v1/messages"


def error_response(err: ParrotError) -> web.Response:
    if isinstance(err, UpstreamFailure):
        err = err.to_client_error()
    status, body = anthropic_error(err)
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json",
                        headers=err.response_headers())


def on_messages_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@web.middleware
async def anthropic_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not on_messages_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except ParrotError as err:
        return error_response(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(InternalServerError("Internal server error."))


async def anthropic_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if on_messages_path(request.path):
        response.headers["request-id"] = request_id(request)
