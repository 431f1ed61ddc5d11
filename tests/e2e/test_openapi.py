"""`GET /openapi.json`: public, valid OpenAPI 3.1, and in step with the routes the gateway serves."""

from __future__ import annotations

import httpx
import jsonschema
import pytest
import schemathesis
from aiohttp import web

from parrotrouter.api.openapi.document import OPERATIONS, build_document, check_routes
from tests.conftest import Gateway


def test_document_is_public_and_valid(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        resp = http.get("/openapi.json")  # no key: the document is public
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    document = resp.json()
    assert document["openapi"].startswith("3.1.")
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema
    for name, component in document["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(component)
        except jsonschema.SchemaError as exc:
            pytest.fail(f"components.schemas.{name}: {exc.message}")


def test_document_lists_every_route_and_its_errors(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        document = http.get("/openapi.json").json()
    described = {(method, path) for path, item in document["paths"].items() for method in item}
    assert described == {(op.method, op.path) for op in OPERATIONS}
    for path, item in document["paths"].items():
        # Anthropic's Messages API answers errors in Anthropic's shape; every other route in ours.
        shape = "AnthropicError" if path.startswith("/v1/messages") else "ErrorEnvelope"
        envelope = {"$ref": f"#/components/schemas/{shape}"}
        for method, operation in item.items():
            for status in ("4XX", "5XX"):
                assert operation["responses"][status]["content"]["application/json"]["schema"] == envelope, \
                    (method, path)
            public = path in ("/health", "/ready", "/openapi.json")
            assert operation["security"] == ([] if public else [{"bearerAuth": []}]), (method, path)


def test_request_bodies_come_from_the_structs() -> None:
    document = build_document([(op.method, op.path) for op in OPERATIONS])
    schemas = document["components"]["schemas"]
    chat = schemas["ChatCompletionRequest"]
    assert chat["required"] == ["model", "messages"]
    assert chat["properties"]["temperature"]["anyOf"][0] == {"type": "number", "minimum": 0.0, "maximum": 2.0}
    assert schemas["KeyCreate"]["additionalProperties"] is False
    assert schemas["KeyCreate"]["properties"]["expires_at"]["anyOf"][0]["format"] == "date-time"
    assert {"type": "number"} in schemas["CreditsAdd"]["properties"]["amount"]["anyOf"]


def test_a_route_without_description_stops_start_up() -> None:
    app = web.Application()

    async def handler(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/v1/undescribed", handler)
    routes = [(r.method, r.resource.canonical) for r in app.router.routes() if r.resource is not None]
    described = [(op.method.upper(), op.path) for op in OPERATIONS]
    with pytest.raises(RuntimeError, match=r"undescribed.*'/v1/undescribed'"):
        check_routes(described + routes)
    with pytest.raises(RuntimeError, match=r"no such route.*'/v1/keys'"):
        check_routes([r for r in described if r[1] != "/v1/keys"])
