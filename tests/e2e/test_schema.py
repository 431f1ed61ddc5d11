"""Responses and stream chunks validate against OpenAI's published OpenAPI schema.

The schemas come from an excerpt kept in the repository (tests/data/openai-openapi-excerpt.json,
cut from OpenAI's document by tests/data/make_openai_excerpt.py), so the suite needs no file
outside the repository.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import REPO, Gateway

SPEC = REPO / "tests" / "data" / "openai-openapi-excerpt.json"


def _nullable_to_anyof(node: Any) -> Any:
    """The document mixes OpenAPI 3.0's `nullable: true` into 3.1 schemas; make it JSON Schema."""
    if isinstance(node, dict):
        node = {k: _nullable_to_anyof(v) for k, v in node.items()}
        if node.pop("nullable", False):
            node = {"anyOf": [node, {"type": "null"}]}
        return node
    if isinstance(node, list):
        return [_nullable_to_anyof(v) for v in node]
    return node


@pytest.fixture(scope="module")
def validator_for() -> Any:
    doc = _nullable_to_anyof(json.loads(SPEC.read_text()))
    schemas = doc["components"]["schemas"]

    def make(name: str) -> jsonschema.Validator:
        root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
        return jsonschema.Draft202012Validator(root)

    return make


def _sse_json(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "fake-tools", "fake-no-usage"])
def test_chat_completion_matches_schema(gateway: Gateway, validator_for: Any, model: str) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": model, "n": 2, "messages": [
            {"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "f"}}]})
    assert resp.status_code == 200
    validator_for("CreateChatCompletionResponse").validate(resp.json())


@pytest.mark.parametrize("model", ["gpt-4o-mini", "fake-tools"])
def test_stream_chunks_match_schema(gateway: Gateway, validator_for: Any, model: str) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": model, "stream": True, "stream_options": {
            "include_usage": True}, "messages": [{"role": "user", "content": "hi"}]})
    assert resp.headers["content-type"] == "text/event-stream"
    assert resp.headers["cache-control"] == "no-cache"
    assert resp.text.endswith("data: [DONE]\n\n")
    chunks = _sse_json(resp.text)
    validator = validator_for("CreateChatCompletionStreamResponse")
    for chunk in chunks:
        validator.validate(chunk)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_text_completion_matches_schema(gateway: Gateway, validator_for: Any) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "Once"})
    validator_for("CreateCompletionResponse").validate(resp.json())


def test_models_list_matches_schema(gateway: Gateway, validator_for: Any) -> None:
    with gateway.http() as http:
        resp = http.get("/v1/models")
    validator_for("ListModelsResponse").validate(resp.json())


def test_error_matches_schema(gateway: Gateway, validator_for: Any) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        resp = http.post("/v1/chat/completions", json={})
    validator_for("ErrorResponse").validate(resp.json())
