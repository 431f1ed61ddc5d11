"""Decode request bodies into typed structs; any type or range error becomes a 400 naming `param`.

Decoder messages can quote what the caller sent (an unknown enum value, an unknown field name);
every quoted piece goes through `errors.echo`, so the error stays small whatever the input."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
import orjson

from ..errors import InvalidRequest, echo

T = TypeVar("T")

PARAM_LIMIT = 120  # characters of a parameter path (its keys come from the caller)
_QUOTED = re.compile(r"^(?P<head>Invalid (?:enum )?value )'(?P<value>.*)'$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>.*)`$", re.DOTALL)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>.*)`$", re.DOTALL)


def _param_from_error(text: str) -> tuple[str, str | None]:
    """(message, param path) of a msgspec error: `<message> - at `$.a.b``, or, for a bad object
    key, `<message> - at `key` in `$.a``."""
    msg, sep, where = text.rpartition(" - at `")
    if not sep:
        msg, where = text, ""
    path: str | None = None
    if where.startswith("key` in `$"):
        path = where[len("key` in `$"):].rstrip("`")
    elif where.startswith("$"):
        path = where[1:].rstrip("`")
    param = path.lstrip(".") if path else None
    field = _MISSING.match(msg) or _UNKNOWN.match(msg)
    if field:
        name = field.group("field")
        param = f"{param}.{name}" if param else name
    return msg, echo(param, PARAM_LIMIT) if param else None


def _bounded(msg: str) -> str:
    """The decoder's message with any value it quotes cut to `echo`'s size."""
    quoted = _QUOTED.match(msg)
    if quoted:
        return f"{quoted.group('head')}'{echo(quoted.group('value'))}'"
    unknown = _UNKNOWN.match(msg)
    if unknown:
        return f"Object contains unknown field `{echo(unknown.group('field'))}`"
    return echo(msg, 300)


def decode_json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON request body that must be an object (orjson: strict UTF-8, depth-limited)."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {echo(str(exc), 200)}") from None
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
        raise InvalidRequest(f"Invalid value for {where}: {_bounded(msg)}.", param=param) from None


def storable(text: str) -> bool:
    """Whether both databases can store `text`: PostgreSQL refuses NUL, and neither can encode
    a lone surrogate (JSON's `\\ud800`) as UTF-8."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_storable(value: Any, param: str) -> None:
    """400 naming `param` unless every string in `value` (keys of objects included) is storable."""
    if isinstance(value, str):
        if not storable(value):
            raise InvalidRequest(f"'{param}' contains a NUL character or invalid Unicode.", param=param)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_storable(key, param)
            check_storable(item, f"{param}.{echo(key, 40)}" if isinstance(key, str) and storable(key) else param)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_storable(item, f"{param}[{i}]")
