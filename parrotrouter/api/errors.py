"""Our exceptions become the error envelope here, and only here: OpenAI's shape, or the shape an
inbound API registers for its paths (`ERROR_SHAPES`: the Anthropic Messages API's)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from ..errors import (
    InternalServerError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ParrotError,
    RequestTooLarge,
    UpstreamFailure,
)

log = logging.getLogger("parrotrouter.api")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Render = Callable[[ParrotError], web.Response]
# (does this path answer in another shape, how to render an error in it): consulted only on errors.
ERROR_SHAPES: web.AppKey[list[tuple[Callable[[str], bool], Render]]] = web.AppKey("parrotrouter_error_shapes", list)


def error_response(err: ParrotError, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(err, UpstreamFailure):
        err = err.to_client_error()
    all_headers = err.response_headers()
    if headers:
        all_headers.update(headers)
    return web.Response(body=orjson.dumps(err.envelope()), status=err.status,
                        content_type="application/json", headers=all_headers)


def from_http_exception(exc: web.HTTPException) -> ParrotError:
    if exc.status == 404:
        return NotFound("Unknown route. See /v1/models, /v1/chat/completions and /v1/completions.")
    if exc.status == 405:
        allowed = getattr(exc, "allowed_methods", None) or ()
        return MethodNotAllowed(
            "Method not allowed for this route." + (f" Allowed: {', '.join(sorted(allowed))}." if allowed else ""),
            headers={"Allow": ", ".join(sorted(allowed))} if allowed else None,
        )
    if exc.status == 413:
        return RequestTooLarge("The request body is too large.")
    if 400 <= exc.status < 500:
        return InvalidRequest(exc.reason or "Bad request.")
    return InternalServerError("Internal server error.")


def _render(request: web.Request) -> Render:
    for applies, render in request.app.get(ERROR_SHAPES, ()):
        if applies(request.path):
            return render
    return error_response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ParrotError as err:
        return _render(request)(err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _render(request)(from_http_exception(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(request)(InternalServerError("Internal server error."))
