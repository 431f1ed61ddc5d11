"""Every response carries `x-request-id` (the client's own `X-Request-Id` is kept when it is a sane
value); the SDK shows it as the request id and the ledger stores it with the request."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import Gateway, fake_config
from tests.fakes.openai_upstream import FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def ledger_gw(make_gateway: Any, fake_upstream: FakeOpenAI, database_url: str) -> Gateway:
    gw: Gateway = make_gateway(fake_config(fake_upstream, database_url=database_url),
                               env={"FAKE_UPSTREAM_KEY": "k"})
    return gw.start()


def _generation(gw: Gateway, generation_id: str) -> dict[str, Any]:
    deadline = time.time() + 5
    with gw.http() as http:
        while True:
            resp = http.get("/v1/generation", params={"id": generation_id})
            if resp.status_code == 200 or time.time() > deadline:
                assert resp.status_code == 200, resp.text
                return dict(resp.json())
            time.sleep(0.1)


def test_the_client_request_id_is_kept_and_recorded(ledger_gw: Gateway) -> None:
    with ledger_gw.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER},
                         headers={"X-Request-Id": "trace-4711/abc"})
        assert resp.status_code == 200 and resp.headers["x-request-id"] == "trace-4711/abc"
        streamed = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER, "stream": True})
        ours = streamed.headers["x-request-id"]
    assert ours.startswith("req_") and len(ours) == 28
    assert _generation(ledger_gw, resp.json()["id"])["request_id"] == "trace-4711/abc"
    first = next(line for line in streamed.text.split("\n") if line.startswith("data: {"))
    assert _generation(ledger_gw, first[6:].split('"id":"', 1)[1].split('"', 1)[0])["request_id"] == ours


@pytest.mark.parametrize("sent", ["x" * 129, "has space", "tab\tinside", "caf\u00e9"])
def test_an_unusable_client_request_id_is_replaced(gateway: Gateway, sent: str) -> None:
    with gateway.http() as http:
        resp = http.get("/v1/models", headers={"X-Request-Id": sent.encode("utf-8")})
    assert resp.status_code == 200
    assert resp.headers["x-request-id"].startswith("req_")


def test_every_answer_carries_a_request_id(gateway: Gateway) -> None:
    with gateway.http(key=None) as anonymous, gateway.http() as http:
        answers = [anonymous.get("/v1/models"), http.get("/v1/nowhere"), http.get("/health"),
                   http.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})]
    assert [r.status_code for r in answers] == [401, 404, 200, 400]
    ids = [r.headers["x-request-id"] for r in answers]
    assert len(set(ids)) == len(ids)


def test_the_sdk_shows_the_request_id(gateway: Gateway) -> None:
    client = gateway.client()
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=USER,  # type: ignore[arg-type]
                                                extra_headers={"X-Request-Id": "sdk-visible-1"})
    assert completion._request_id == "sdk-visible-1"
