"""Pins the error envelope across every failure path (cf. datasette's tests/test_error_shape.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Gateway

ENVELOPE_KEYS = {"message", "type", "code", "param", "status"}
USER = [{"role": "user", "content": "hi"}]

CASES = [
    # (name, method, path, json body or raw bytes, headers override, status, code)
    ("missing key", "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER}, {}, 401,
     "missing_api_key"),
    ("bad key", "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER},
     {"Authorization": "Bearer pr-nope"}, 401, "invalid_api_key"),
    ("bad json", "POST", "/v1/chat/completions", b"{", None, 400, "invalid_request"),
    ("bad param", "POST", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": USER, "n": -1}, None,
     400, "invalid_request"),
    ("unknown model", "POST", "/v1/chat/completions", {"model": "zzz", "messages": USER}, None, 400,
     "unsupported_model"),
    ("context", "POST", "/v1/chat/completions", {"model": "fake-400-context", "messages": USER}, None, 400,
     "context_length_exceeded"),
    ("not found", "GET", "/v1/unknown", None, None, 404, "not_found"),
    ("method", "DELETE", "/v1/models", None, None, 405, "method_not_allowed"),
    ("too large", "POST", "/v1/chat/completions", b"{" + b" " * (11 * 2**20) + b"}", None, 413,
     "request_too_large"),
    ("media type", "POST", "/v1/chat/completions", b"x=1", {"Content-Type": "text/plain"}, 415,
     "invalid_request"),
    ("upstream 429", "POST", "/v1/chat/completions", {"model": "fake-429", "messages": USER}, None, 429,
     "rate_limit_exceeded"),
    ("upstream 500", "POST", "/v1/chat/completions", {"model": "fake-500", "messages": USER}, None, 502,
     "upstream_error"),
    ("upstream 503", "POST", "/v1/chat/completions", {"model": "fake-503", "messages": USER}, None, 503,
     "model_overloaded"),
    ("upstream auth", "POST", "/v1/chat/completions", {"model": "fake-401", "messages": USER}, None, 502,
     "upstream_error"),
    ("upstream stall", "POST", "/v1/chat/completions", {"model": "fake-stall", "messages": USER}, None, 504,
     "timeout"),
    ("model not found", "GET", "/v1/models/zzz", None, None, 404, "not_found"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_shape(gateway: Gateway, case: tuple) -> None:
    _, method, path, payload, headers, status, code = case
    base_headers = {"Authorization": "Bearer " + __import__("tests.conftest").conftest.MASTER_KEY}
    if headers is not None:
        base_headers = dict(headers) if "Authorization" in headers or not headers else {**base_headers, **headers}
    kwargs: dict = {"headers": base_headers}
    if isinstance(payload, bytes):
        kwargs["content"] = payload
        kwargs["headers"].setdefault("Content-Type", "application/json")
    elif payload is not None:
        kwargs["json"] = payload
    with httpx.Client(base_url=gateway.url, timeout=30) as http:
        resp = http.request(method, path, **kwargs)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    assert set(doc) == {"error"}
    err = doc["error"]
    assert set(err) == ENVELOPE_KEYS
    assert err["code"] == code and err["status"] == status
    assert isinstance(err["type"], str) and isinstance(err["message"], str) and err["message"]
    if status == 429:
        assert resp.headers.get("retry-after")
