"""Reading what the client sent: the bearer key and a JSON body (size, type, encoding checked)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ..auth.permissions import UNRESTRICTED
from ..auth.principal import Principal, bearer_token
from ..errors import InvalidRequest, PermissionDenied, RequestTooLarge, UnsupportedMediaType
from ..protocol.validation import decode_json_object
from ..state import AppState

STATE_KEY: web.AppKey[AppState] = web.AppKey("parrotrouter_state", AppState)


def app_state(request: web.Request) -> AppState:
    return request.app[STATE_KEY]


def authenticate(request: web.Request, *, write: bool = False, read: bool = True) -> Principal:
    """Who is calling (401 otherwise), from where they may call, and whether they may write or
    read (403). `read=False`: the endpoint serves keys without 'read' too (in a reduced form)."""
    headers = request.headers
    principal = request.app[STATE_KEY].authenticator.authenticate(bearer_token(headers.get("Authorization")))
    request["principal"] = principal
    policy = principal.policy
    if policy is not UNRESTRICTED:
        if policy.restricts_clients():
            policy.check_client(request.remote, headers.get("Origin"), headers.get("Referer"),
                                headers.get("User-Agent"))
        if write or read:
            policy.check_operation(write)
    return principal


def require_master(request: web.Request) -> Principal:
    principal = authenticate(request)
    if not principal.is_master:
        raise PermissionDenied("Only the master key can manage API keys and credits.")
    return principal


async def read_json(request: web.Request) -> dict[str, Any]:
    ctype = request.headers.get("Content-Type")
    if ctype is not None:
        mime = ctype.split(";", 1)[0].strip().lower()
        if mime != "application/json" and not mime.endswith("+json"):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, got '{mime}'.")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[STATE_KEY].settings.max_body_bytes
        raise RequestTooLarge(f"The request body is larger than {limit} bytes.") from None
    except (RequestPayloadError, HttpProcessingError):  # e.g. a broken Content-Encoding
        raise InvalidRequest("The request body could not be read or decoded (Content-Encoding).") from None
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.")
    request["body_size"] = len(body)
    return decode_json_object(body)
