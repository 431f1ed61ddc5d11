"""The Messages API's money edges against the real gateway: what an Anthropic deployment bills for
a native body that the translated chat body does not show (reservations), and native streams cut
midway (billed for the prompt Anthropic reported when the stream started)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.e2e.test_messages_api import USER, error_of, generation, messages_gateway, sse_events
from tests.e2e.test_money_paths import ledger_rows
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def claude() -> Iterator[fa.FakeAnthropic]:
    fake = fa.FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(claude: fa.FakeAnthropic, fake_upstream: FakeOpenAI,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = messages_gateway(tmp_path_factory.mktemp("messages-money"), claude, fake_upstream)
    yield gateway.start()
    gateway.stop()


def key_with(gw: Gateway, credits: str) -> str:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": f"{credits} credits", "credits": credits})
    assert resp.status_code == 201, resp.text
    time.sleep(0.5)
    return str(resp.json()["key"])


def user_blocks(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [*blocks, {"type": "text", "text": "Summarise."}]}]


# What Anthropic reads and bills but the translated chat body drops: text in block types the
# gateway does not translate, documents Anthropic fetches by URL or from its Files API.
SEARCH_RESULT = {"type": "search_result", "source": "https://example.com", "title": "t",
                 "content": [{"type": "text", "text": "word " * 8_000}]}
URL_DOCUMENT = {"type": "document", "source": {"type": "url", "url": "https://example.com/500-pages.pdf"}}
FILE_DOCUMENT = {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}}


@pytest.mark.parametrize("hidden", [SEARCH_RESULT, URL_DOCUMENT, FILE_DOCUMENT],
                         ids=["search-result-text", "url-document", "file-document"])
def test_the_reservation_covers_what_anthropic_reads_natively(gw: Gateway, claude: fa.FakeAnthropic,
                                                              hidden: dict[str, Any]) -> None:
    """A key whose credits cover a short prompt, not the native body's hidden input: 402, and the
    upstream is not called."""
    key = key_with(gw, "0.01")  # 3,333 prompt tokens at $3/M
    sent = len(claude.requests)
    with httpx.Client(base_url=gw.url, timeout=30) as http:  # the key alone (gw.http() sends the master key)
        resp = http.post("/v1/messages", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "claude-text", "max_tokens": 10, "messages": user_blocks(hidden)})
        assert error_of(resp) == (402, "billing_error"), resp.text
        assert len(claude.requests) == sent
        # the same key is served a short prompt
        ok = http.post("/v1/messages", headers={"x-api-key": key},
                       json={"model": "claude-text", "max_tokens": 10, "messages": USER})
        assert ok.status_code == 200, ok.text


def test_a_native_stream_cut_after_it_started_is_billed_for_the_prompt_anthropic_reported(gw: Gateway) -> None:
    """message_start carries the prompt's real size (cache reads and writes too); the client hangs
    up before message_stop: the row has those counts, not the gateway's estimate of 'Hi'."""
    with gw.http() as http, http.stream("POST", "/v1/messages", json={
            "model": "claude-paced-long", "max_tokens": 100, "messages": USER, "stream": True}) as resp:
        events = sse_events(resp, limit=5)  # message_start, ping, block start, 2 deltas
    assert events[0]["message"]["usage"]["input_tokens"] == 50_000
    row = generation(gw, events[0]["message"]["id"])
    assert row["ended_by"] == "client", row
    assert row["usage"]["prompt_tokens"] == 90_000, row  # input + cache reads + cache writes
    assert row["usage"]["completion_tokens"] >= 1


def test_the_reservation_covers_the_max_tokens_anthropic_gets(gw: Gateway, claude: fa.FakeAnthropic) -> None:
    """The catalog caps max_tokens at 8,192 for translated models; an Anthropic deployment gets the
    client's 64,000 (it may generate them all): the reservation holds those."""
    key = key_with(gw, "0.5")  # 8,192 output tokens at $15/M cost $0.12; 64,000 cost $0.96
    sent = len(claude.requests)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        resp = http.post("/v1/messages", headers={"x-api-key": key},
                         json={"model": "claude-text", "max_tokens": 64_000, "messages": USER})
        assert error_of(resp) == (402, "billing_error"), resp.text
        assert len(claude.requests) == sent
        ok = http.post("/v1/messages", headers={"x-api-key": key},
                       json={"model": "claude-text", "max_tokens": 8_000, "messages": USER})
        assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_answer_without_usage_is_counted_not_free(gw: Gateway, stream: bool) -> None:
    """An Anthropic-compatible upstream that reports no usage: the gateway counts the prompt and
    the answer itself (as for any upstream), it does not bill zero tokens."""
    with gw.http() as http:
        resp = http.post("/v1/messages", json={"model": "claude-nousage", "max_tokens": 100, "messages": USER,
                                               "stream": stream})
        assert resp.status_code == 200, resp.text
    message_id = resp.json()["id"] if not stream else resp.text.split('"id":"', 1)[1].split('"', 1)[0]
    row = generation(gw, message_id)
    assert row["usage"]["prompt_tokens"] > 0 and row["usage"]["completion_tokens"] > 0, row
    assert Decimal(str(row["cost"])) > 0


def test_an_answer_the_gateway_cannot_read_is_a_502_not_a_500(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/messages", json={"model": "claude-odd", "max_tokens": 100, "messages": USER})
    assert error_of(resp) == (502, "api_error"), resp.text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_client_that_leaves_before_the_answer_is_billed_for_what_anthropic_read(gw: Gateway, claude: fa.FakeAnthropic,
                                                                                  stream: bool) -> None:
    """Anthropic had the whole prompt, search results included (8,000 words the translated body
    drops); the client hangs up before the first byte: the row counts those words too."""
    sent = len(claude.requests)
    request_id = f"req_leaves_{stream}"
    body = json.dumps({"model": "claude-thinks", "max_tokens": 100, "messages": user_blocks(SEARCH_RESULT),
                       "stream": stream}).encode()
    host, port = gw.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:  # hangs up once Anthropic has the request
        conn.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
                     b"x-api-key: %s\r\nx-request-id: %s\r\nContent-Length: %d\r\n\r\n%s"
                     % (MASTER_KEY.encode(), request_id.encode(), len(body), body))
        deadline = time.time() + 5
        while len(claude.requests) == sent:
            assert time.time() < deadline
            time.sleep(0.02)
    deadline = time.time() + 5
    while not (rows := [r for r in asyncio.run(ledger_rows(gw)) if r.request_id == request_id]):
        assert time.time() < deadline
        time.sleep(0.2)
    assert rows[0].ended_by == "client" and rows[0].prompt_tokens >= 8_000, rows[0]


def test_token_rate_limits_take_the_max_tokens_anthropic_gets(gw: Gateway, claude: fa.FakeAnthropic) -> None:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "20k tokens a minute", "credits": "100",
                                           "permissions": {"max_tokens_per_minute": 20_000}})
    time.sleep(0.5)
    key = resp.json()["key"]
    sent = len(claude.requests)
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        big = http.post("/v1/messages", headers={"x-api-key": key},
                        json={"model": "claude-text", "max_tokens": 64_000, "messages": USER})
        assert big.status_code == 429 and error_of(big)[1] == "rate_limit_error", big.text
        assert len(claude.requests) == sent
        ok = http.post("/v1/messages", headers={"x-api-key": key},
                       json={"model": "claude-text", "max_tokens": 8_000, "messages": USER})
        assert ok.status_code == 200, ok.text


def test_a_spent_key_cannot_spend_the_operators_count_tokens_quota(gw: Gateway, claude: fa.FakeAnthropic) -> None:
    spent, funded = key_with(gw, "0"), key_with(gw, "0.01")
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        sent = len(claude.requests)
        resp = http.post("/v1/messages/count_tokens", headers={"x-api-key": spent},
                         json={"model": "claude-text", "messages": USER})
        assert error_of(resp) == (402, "billing_error"), resp.text
        assert len(claude.requests) == sent
        for _ in range(3):  # the hold is given back each time
            resp = http.post("/v1/messages/count_tokens", headers={"x-api-key": funded},
                             json={"model": "claude-text", "messages": USER})
            assert resp.json() == {"input_tokens": fa.COUNT_TOKENS}, resp.text
        estimate = http.post("/v1/messages/count_tokens", headers={"x-api-key": spent},  # no upstream call
                             json={"model": "gpt-4o-mini", "messages": USER})
        assert estimate.status_code == 200 and estimate.headers["x-parrotrouter-estimate"] == "true"


@pytest.mark.parametrize("tool", [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
                                  {"type": "code_execution_20250825", "name": "code_execution"}],
                         ids=["web-search", "code-execution"])
def test_server_tools_anthropic_bills_per_use_are_refused(gw: Gateway, claude: fa.FakeAnthropic,
                                                         tool: dict[str, Any]) -> None:
    """Anthropic bills them on top of the tokens ($10 per 1,000 searches, container hours), which
    the ledger cannot price: a 400 naming the tool, nothing sent upstream."""
    sent = len(claude.requests)
    with gw.http() as http:
        resp = http.post("/v1/messages", json={"model": "claude-text", "max_tokens": 10, "messages": USER,
                                               "tools": [{"name": "f", "input_schema": {"type": "object"}}, tool]})
    assert error_of(resp) == (400, "invalid_request_error"), resp.text
    assert "tools[1]" in resp.json()["error"]["message"] or tool["type"] in resp.json()["error"]["message"]
    assert len(claude.requests) == sent
