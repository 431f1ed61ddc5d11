"""JSON responses for the admin and reporting endpoints: Decimals are written as exact, plain
numbers (100, 0.0000001), never in exponent form (1E+2, 1E-7) that `str(Decimal)` would give."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec
import orjson
from aiohttp import web

from ..store.schema import usd_text


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return orjson.Fragment(usd_text(obj))
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    return msgspec.to_builtins(obj)  # structs and the like


def encode(obj: Any) -> bytes:
    """`obj` as JSON, Decimals as plain decimal numbers."""
    try:
        return orjson.dumps(obj, default=_default)
    except TypeError:  # an integer beyond 64 bits: only a hand-edited stored value can hold one
        return msgspec.json.encode(_raw_decimals(obj))


def _raw_decimals(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return msgspec.Raw(usd_text(obj).encode())
    if isinstance(obj, dict):
        return {k: _raw_decimals(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_raw_decimals(v) for v in obj]
    return obj


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(obj), status=status, content_type="application/json")
