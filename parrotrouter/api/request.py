"""Reading what the client sent: the bearer key and a JSON body (size, type, encoding checked)."""

from __future__ import annotations

import os
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestPayloadError

from ..auth.permissions import UNRESTRICTED
from ..auth.principal import Principal, api_key_token, bearer_token
from ..errors import InvalidRequest, PermissionDenied, RequestTimeout, RequestTooLarge, UnsupportedMediaType
from ..protocol.validation import decode_json_object
from ..serving.context import RequestContext
from ..state import AppState
from ..upstream.trace_context import from_headers
from .edge import BodyTimeout

STATE_KEY: web.AppKey[AppState] = web.AppKey("parrotrouter_state", AppState)
CONTEXT_KEY: web.RequestKey[RequestContext] = web.RequestKey("parrotrouter_context", RequestContext)
REQUEST_ID_KEY: web.RequestKey[str] = web.RequestKey("parrotrouter_request_id", str)
MAX_REQUEST_ID = 128  # characters of a client's own X-Request-Id (the ledger keeps 128)


def request_id(request: web.Request) -> str:
    """The request's id, for its `x-request-id` and the ledger: the client's own `X-Request-Id`
    when it is 1-128 visible ASCII characters, else a new one."""
    rid = request.get(REQUEST_ID_KEY)
    if rid is None:
        sent = request.headers.get("X-Request-Id")
        if sent and len(sent) <= MAX_REQUEST_ID and sent.isascii() and sent.isprintable() and " " not in sent:
            rid = sent
        else:
            rid = "req_" + os.urandom(12).hex()
        request[REQUEST_ID_KEY] = rid
    return rid


def app_state(request: web.Request) -> AppState:
    return request.app[STATE_KEY]


def authenticate(request: web.Request, *, write: bool = False, read: bool = True) -> Principal:
    """Who is calling (401 otherwise), from where they may call, and whether they may write or
    read (403). `read=False`: the endpoint serves keys without 'read' too (in a reduced form)."""
    return authenticated(request, write=write, read=read).principal


def authenticated(request: web.Request, *, write: bool = False, read: bool = True) -> RequestContext:
    """`authenticate`, giving the request's context (kept on the request for the response hooks)."""
    headers = request.headers
    # Anthropic's clients send the key as `x-api-key`: accepted on every route (their SDKs call
    # /v1/models too), `Authorization: Bearer` first when both come.
    token = bearer_token(headers.get("Authorization")) or api_key_token(headers.get("x-api-key"))
    principal = request.app[STATE_KEY].authenticator.authenticate(token)
    ctx = request[CONTEXT_KEY] = RequestContext(principal, request_id(request))
    if (traceparent := headers.get("traceparent")) is not None:  # W3C Trace Context, validated
        ctx.trace_parent = from_headers(traceparent, headers.get("tracestate"))
    policy = principal.policy
    if policy is not UNRESTRICTED:
        if policy.restricts_clients():
            policy.check_client(request.remote, headers.get("Origin"), headers.get("Referer"),
                                headers.get("User-Agent"))
        if write or read:
            policy.check_operation(write)
    return ctx


def require_master(request: web.Request) -> Principal:
    principal = authenticate(request)
    if not principal.is_master:
        raise PermissionDenied("Only the master key can manage API keys and credits.")
    return principal


async def _read_body(content: StreamReader, limit: int) -> bytes:
    """The whole body, or RequestTooLarge once more than `limit` bytes (after decompression)
    arrived. Unlike `request.read()`, this keeps aiohttp's small read buffer, so a compressed body
    is inflated in 64 KiB steps and no more than about `limit` is ever inflated."""
    if content.is_eof():  # all of it is in (the usual small body): no read to wait for
        body = content.read_nowait()
        if len(body) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        return body
    chunks = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request) -> dict[str, Any]:
    return (await read_json_sized(request))[0]


async def read_json_sized(request: web.Request) -> tuple[dict[str, Any], int]:
    """The body as a JSON object, and its size in bytes (after decompression)."""
    ctype = request.headers.get("Content-Type")
    if ctype is not None:
        mime = ctype.split(";", 1)[0].strip().lower()
        if mime != "application/json" and not mime.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, got '{mime}'.")
    try:
        body = await _read_body(request.content, request.app[STATE_KEY].settings.max_body_bytes)
    except BodyTimeout as exc:
        raise RequestTimeout(str(exc)) from None
    except (RequestPayloadError, HttpProcessingError):  # e.g. a broken Content-Encoding
        raise InvalidRequest("The request body could not be read or decoded (Content-Encoding).") from None
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    return decode_json_object(body), len(body)
