"""JSON responses for the admin and reporting endpoints: Decimals are written as exact numbers."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

_ENCODER = msgspec.json.Encoder(decimal_format="number")


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(obj), status=status, content_type="application/json")
