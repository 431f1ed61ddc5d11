"""The logging headers of a generation request (X-Logging-Level, X-Log-Request, X-Log-Response,
X-Log-Metadata, X-Log-User-ID, X-Log-Session-ID): validated and bounded here, at the edge (a bad
value is a 400 naming the header), and decided against the operator's `content_logging`.

Content (the request body, the answer) is kept only when the operator allows it AND the request
asks for it: `X-Logging-Level: debug` with `X-Log-Request: true` and/or `X-Log-Response: true`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDictProxy, istr

from ..errors import InvalidRequest
from ..serving.context import LogRequest
from .request import app_state

LEVEL, REQUEST, RESPONSE = "X-Logging-Level", "X-Log-Request", "X-Log-Response"
METADATA, USER_ID, SESSION_ID = "X-Log-Metadata", "X-Log-User-ID", "X-Log-Session-ID"
# Looked up on every generation request: as `istr`, whose case-folded form multidict computes once.
HEADERS = tuple(istr(name) for name in (LEVEL, REQUEST, RESPONSE, METADATA, USER_ID, SESSION_ID))
LEVELS = ("error", "info", "debug")
MAX_ID = 128  # characters of X-Log-User-ID and X-Log-Session-ID
MAX_METADATA_BYTES = 2048  # X-Log-Metadata as sent
MAX_METADATA_KEYS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 256
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def read_logging(http: web.Request, body: dict[str, Any], *, answers: bool = True) -> LogRequest | None:
    """The request's logging headers (None when it sent none: the common case costs six lookups, ~0.5 µs).
    `body`: the client's request body, stored when asked and allowed; `answers`: whether the
    endpoint's answer is content worth storing (embeddings' vectors are not)."""
    headers = http.headers
    for name in HEADERS:  # a loop, not any(<generator>): half the cost
        if name in headers:
            break
    else:
        return None
    level = _one(headers, LEVEL)
    if level is not None:
        level = level.strip().lower()
        if level not in LEVELS:
            raise InvalidRequest(f"{LEVEL} must be one of {', '.join(LEVELS)}.", param=LEVEL)
    log_request, log_response = _flag(headers, REQUEST), _flag(headers, RESPONSE)
    metadata = _metadata(_one(headers, METADATA))
    user_id, session_id = _label(headers, USER_ID), _label(headers, SESSION_ID)
    settings = app_state(http).settings
    allowed = level == "debug" and settings.content_logging and app_state(http).accounts is not None
    return LogRequest(level=level or "error", user_id=user_id, session_id=session_id, metadata=metadata,
                      request_body=_body_text(body, settings.content_max_bytes) if allowed and log_request else None,
                      keep_response=allowed and log_response and answers)


def _one(headers: CIMultiDictProxy[str], name: str) -> str | None:
    values = headers.getall(name, ())
    if len(values) > 1:
        raise InvalidRequest(f"{name} was sent {len(values)} times; send it once.", param=name)
    return values[0] if values else None


def _flag(headers: CIMultiDictProxy[str], name: str) -> bool:
    value = _one(headers, name)
    if value is None:
        return False
    flag = _BOOLEANS.get(value.strip().lower())
    if flag is None:
        raise InvalidRequest(f"{name} must be true or false.", param=name)
    return flag


def _label(headers: CIMultiDictProxy[str], name: str) -> str | None:
    value = _one(headers, name)
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_ID or not value.isprintable() or value.strip() != value:
        raise InvalidRequest(f"{name} must be 1 to {MAX_ID} printable characters, without leading or trailing "
                             "spaces.", param=name)
    return value


def _metadata(value: str | None) -> dict[str, str] | None:
    if value is None:
        return None
    problem = (f"{METADATA} must be a JSON object of at most {MAX_METADATA_BYTES} bytes with at most "
               f"{MAX_METADATA_KEYS} keys (1 to {MAX_METADATA_KEY} printable characters) whose values are "
               f"strings of at most {MAX_METADATA_VALUE} printable characters.")
    try:
        if len(value.encode("utf-8", "surrogateescape")) > MAX_METADATA_BYTES:
            raise InvalidRequest(problem, param=METADATA)
        parsed = orjson.loads(value)
    except (orjson.JSONDecodeError, UnicodeError):
        raise InvalidRequest(problem, param=METADATA) from None
    if not isinstance(parsed, dict) or len(parsed) > MAX_METADATA_KEYS:
        raise InvalidRequest(problem, param=METADATA)
    for key, item in parsed.items():
        if not (1 <= len(key) <= MAX_METADATA_KEY and key.isprintable()) or not (
                isinstance(item, str) and len(item) <= MAX_METADATA_VALUE and item.isprintable()):
            raise InvalidRequest(problem, param=METADATA)
    return parsed or None


def _body_text(body: dict[str, Any], max_bytes: int) -> str:
    """The client's body as JSON text, cut past `max_bytes` characters (the store cuts it to bytes
    and flags it): only for a request whose content is stored."""
    try:
        text = orjson.dumps(body).decode()
    except (orjson.JSONEncodeError, TypeError):  # a lone surrogate from a JSON escape
        text = json.dumps(body, ensure_ascii=False)
    return text if len(text) <= max_bytes else text[:max_bytes + 1]
