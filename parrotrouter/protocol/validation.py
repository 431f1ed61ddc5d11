"""Decode request bodies into typed structs; any type or range error becomes a 400 naming `param`."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import orjson

from ..errors import InvalidRequest

T = TypeVar("T")

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _param_from_error(text: str) -> tuple[str, str | None]:
    match = _AT.match(text)
    assert match is not None
    msg, path = match.group("msg"), match.group("path")
    param = path.lstrip(".") if path else None
    missing = _MISSING.match(msg) or _UNKNOWN.match(msg)
    if missing:
        field = missing.group("field")
        param = f"{param}.{field}" if param else field
    return msg, param or None


def decode_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON request body that must be an object (orjson: strict UTF-8, depth-limited)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return raw


def convert(raw: dict[str, Any], type_: type[T]) -> T:
    """Validate an already decoded JSON object against a request struct."""
    try:
        return msgspec.convert(raw, type_)
    except msgspec.ValidationError as exc:
        msg, param = _param_from_error(str(exc))
        if _MISSING.match(msg):
            raise InvalidRequest(f"Missing required parameter '{param}'.", param=param) from None
        where = f"'{param}'" if param else "the request"
        raise InvalidRequest(f"Invalid value for {where}: {msg}.", param=param) from None
