"""Raw HTTP: every bad input gets a 4xx in the one error envelope, never a 500."""

from __future__ import annotations

import gzip
import json
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway

OK_MESSAGES = [{"role": "user", "content": "hi"}]


def body(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": OK_MESSAGES, **fields}


def assert_envelope(resp: httpx.Response, status: int, code: str, param: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "code", "param", "status"}
    assert err["status"] == status and err["code"] == code
    assert isinstance(err["message"], str) and err["message"]
    if param is not None:
        assert err["param"] == param
    return err


@pytest.mark.parametrize(("fields", "param"), [
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": 1.5}, "top_p"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"frequency_penalty": -2.1}, "frequency_penalty"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"stop": 5}, "stop"),
    ({"n": 0}, "n"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_completion_tokens": -5}, "max_completion_tokens"),
    ({"max_tokens": "many"}, "max_tokens"),
    ({"stream": "yes"}, "stream"),
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "user", "content": [{"type": "video", "url": "x"}]}]}, "messages[0].content[0]"),
    ({"model": 7}, "model"),
    ({"model": ""}, "model"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name"),
    ({"tool_choice": "sometimes", "tools": [{"type": "function", "function": {"name": "f"}}]}, "tool_choice"),
    ({"response_format": {"type": "xml"}}, "response_format.type"),
    ({"logit_bias": {"50256": 500}}, "logit_bias"),
    ({"top_logprobs": 30, "logprobs": True}, "top_logprobs"),
    ({"tool_choice": "auto"}, "tool_choice"),
])
def test_invalid_fields_name_the_param(gateway: Gateway, fields: dict[str, Any], param: str) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=body(**fields))
    err = assert_envelope(resp, 400, "invalid_request")
    assert err["param"] is not None and err["param"].startswith(param), err


def test_missing_model(gateway: Gateway) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json={"messages": OK_MESSAGES})
    assert_envelope(resp, 400, "invalid_request", "model")


def test_unknown_model(gateway: Gateway) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=body(model="nope"))
    err = assert_envelope(resp, 400, "unsupported_model", "model")
    assert "nope" in err["message"] and "/v1/models" in err["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe{}", b'{"model": "a"'])
def test_malformed_bodies(gateway: Gateway, raw: bytes) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(resp, 400, "invalid_request")


def test_invalid_utf8_inside_a_string(gateway: Gateway) -> None:
    raw = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xc3\x28"}]}'
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(resp, 400, "invalid_request")


def test_deep_nesting(gateway: Gateway) -> None:
    raw = b'{"model": "gpt-4o-mini", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert_envelope(resp, 400, "invalid_request")


def test_wrong_content_type(gateway: Gateway) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", content=json.dumps(body()),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert_envelope(resp, 415, "invalid_request")


def test_body_over_limit(gateway: Gateway) -> None:
    big = "x" * (11 * 2**20)
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=body(messages=[{"role": "user", "content": big}]))
    assert_envelope(resp, 413, "request_too_large")


def test_body_limit_counts_after_decompression(gateway: Gateway) -> None:
    big = json.dumps(body(messages=[{"role": "user", "content": "a" * (12 * 2**20)}])).encode()
    packed = gzip.compress(big)
    assert len(packed) < 2**20
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", content=packed,
                         headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert_envelope(resp, 413, "request_too_large")
        small = gzip.compress(json.dumps(body()).encode())
        ok = http.post("/v1/chat/completions", content=small,
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert ok.status_code == 200
        broken = http.post("/v1/chat/completions", content=b"not gzip at all",
                           headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert_envelope(broken, 400, "invalid_request")


def test_unknown_route_and_method(gateway: Gateway) -> None:
    with gateway.http() as http:
        assert_envelope(http.get("/v1/nothing-here"), 404, "not_found")
        resp = http.get("/v1/completions")
        assert_envelope(resp, 405, "method_not_allowed")
        assert "POST" in resp.headers["allow"]
        resp = http.put("/v1/chat/completions")  # GET lists stored completions, POST creates one
        assert_envelope(resp, 405, "method_not_allowed")
        assert {"GET", "POST"} <= {m.strip() for m in resp.headers["allow"].split(",")}


@pytest.mark.parametrize(("headers", "code"), [
    ({}, "missing_api_key"),
    ({"Authorization": "Bearer"}, "missing_api_key"),
    ({"Authorization": "Basic abc"}, "missing_api_key"),
    ({"Authorization": "Bearer pr-wrong"}, "invalid_api_key"),
    ({"Authorization": "Bearer sk-something"}, "invalid_api_key"),
])
def test_auth_failures(gateway: Gateway, headers: dict[str, str], code: str) -> None:
    with httpx.Client(base_url=gateway.url) as http:
        resp = http.post("/v1/chat/completions", json=body(), headers=headers)
    err = assert_envelope(resp, 401, code)
    assert "pr-wrong" not in err["message"]


def test_models_query_validation(gateway: Gateway) -> None:
    with gateway.http() as http:
        assert_envelope(http.get("/v1/models", params={"capability": "teleport"}), 400, "invalid_request",
                        "capability")
        assert_envelope(http.get("/v1/models", params={"active_only": "maybe"}), 400, "invalid_request",
                        "active_only")
        only = http.get("/v1/models", params={"capability": "vision"}).json()["data"]
        assert [m["id"] for m in only] == ["gpt-4o-mini"]
        assert http.get("/v1/models", params={"provider": "other"}).json()["data"] == []


def test_completions_validation(gateway: Gateway) -> None:
    with gateway.http() as http:
        for fields, param in [({"prompt": []}, "prompt"), ({"prompt": [1.5]}, "prompt"),
                              ({"prompt": "x", "best_of": 1, "n": 2}, "best_of"),
                              ({"prompt": "x", "best_of": 2, "stream": True}, "best_of"),
                              ({"prompt": "x", "logprobs": 9}, "logprobs"), ({}, "prompt")]:
            resp = http.post("/v1/completions", json={"model": "gpt-4o-mini", **fields})
            assert_envelope(resp, 400, "invalid_request", param)
