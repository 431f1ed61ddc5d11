from __future__ import annotations

import dataclasses

import orjson
from aiohttp import web

from .document import build_document


@dataclasses.dataclass(slots=True)
class _Document:
    body: bytes = b""


DOCUMENT_KEY: web.AppKey[_Document] = web.AppKey("parrotrouter_openapi", _Document)


async def openapi_document(http: web.Request) -> web.Response:
    return web.Response(body=http.app[DOCUMENT_KEY].body, content_type="application/json")


def add_routes(app: web.Application) -> None:
    document = _Document()
    app[DOCUMENT_KEY] = document

    async def build(app: web.Application) -> None:
        """Every route is registered by now: describe them once; requests get the same bytes."""
        routes = [(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None]
        document.body = orjson.dumps(build_document(routes))

    app.router.add_get("/openapi.json", openapi_document)
    app.on_startup.append(build)
