"""Cost and limits on every answer, against the real gateway with the official SDKs as callers:
`usage.cost` on every JSON answer and final stream event of chat completions, completions,
embeddings, the Responses API and the Messages API (translated and native), always equal to the
ledger row's cost (GET /v1/generation), also when the upstream reported no usage (the gateway
counts) or the model has no price (0); OpenRouter's `usage: {include: true}` accounting shape and
its validation; `X-RateLimit-*` on every response to a key, limited or not."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.e2e.responses_world import anthropic_fake, create_key, responses_config
from tests.fakes import anthropic_upstream as fa
from tests.fakes.embeddings_upstream import FakeEmbeddings
from tests.fakes.openai_upstream import FakeOpenAI

__all__ = ["anthropic_fake"]  # fixture

PRICE = {"prompt": "0.15", "completion": "0.60"}
USER = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def embeddings() -> Iterator[FakeEmbeddings]:
    fake = FakeEmbeddings().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(fake_upstream: FakeOpenAI, anthropic_fake: fa.FakeAnthropic, embeddings: FakeEmbeddings,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    config = responses_config(fake_upstream, anthropic_fake, key_refresh_seconds=0.2)
    config["providers"].append({"name": "emb", "type": "openai", "base_url": embeddings.openai_url,
                                "api_key": {"$env": "UP_KEY"}})
    config["models"] += [
        {"id": "fake-no-usage", "deployments": [{"provider": "fake", "model": "fake-no-usage"}], "pricing": PRICE,
         "capabilities": {"completion": True}},
        *({"id": f"fake-{odd}", "deployments": [{"provider": "fake", "model": f"fake-{odd}"}], "pricing": PRICE}
          for odd in ("empty-usage", "null-usage")),
        {"id": "native-no-usage", "deployments": [{"provider": "openai", "model": "native-no-usage"}],
         "pricing": PRICE},
        {"id": "claude-nousage", "deployments": [{"provider": "claude", "model": "claude-nousage"}],
         "pricing": PRICE},
        {"id": "text-embedding-total-only", "deployments": [{"provider": "emb", "model": "total-only"}],
         "pricing": {"prompt": "0.02", "completion": "0"}},
        {"id": "gpt-4o-mini-text", "deployments": [{"provider": "fake", "model": "gpt-4o-mini"}], "pricing": PRICE,
         "capabilities": {"completion": True}},
        # a model the price table does not know and the config does not price: it costs nothing
        {"id": "no-price", "deployments": [{"provider": "fake", "model": "house-model-without-price"}]},
        {"id": "text-embedding-3-small", "deployments": [{"provider": "emb"}],
         "pricing": {"prompt": "0.02", "completion": "0"}},
    ]
    gateway = Gateway(tmp_path_factory.mktemp("cost"), config, env={"UP_KEY": "upstream-key"}).start()
    yield gateway
    gateway.stop()


def ledger_cost(gw: Gateway, generation_id: str) -> float:
    """The ledger row's cost, as GET /v1/generation returns it (a JSON number)."""
    with gw.http() as http:
        resp = http.get("/v1/generation", params={"id": generation_id})
    assert resp.status_code == 200, resp.text
    cost = resp.json()["cost"]
    assert isinstance(cost, int | float)
    return float(cost)


def extra_cost(usage: Any) -> float:
    """`cost` as the SDK keeps it: an unknown field of its usage model."""
    assert usage is not None and usage.model_extra is not None and "cost" in usage.model_extra, usage
    cost = usage.model_extra["cost"]
    assert isinstance(cost, int | float) and cost >= 0
    return float(cost)


# ---------------------------------------------------------------------------- chat and completions
@pytest.mark.parametrize("model", ["gpt-4o-mini", "fake-no-usage", "fake-empty-usage", "fake-null-usage", "no-price"])
def test_chat_answer_and_stream_carry_the_ledger_cost(gw: Gateway, model: str) -> None:
    client = gw.client()
    answer = client.chat.completions.create(model=model, messages=USER)  # type: ignore[arg-type]
    cost = extra_cost(answer.usage)
    assert cost == ledger_cost(gw, answer.id)
    assert (cost == 0) == (model == "no-price")
    if "usage" in model:  # no usage, or one without counts: counted by the gateway, priced as the ledger prices it
        assert answer.usage is not None and answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    streamed = extra_cost(last.usage)
    assert streamed == ledger_cost(gw, last.id) and (streamed == 0) == (model == "no-price")


@pytest.mark.parametrize("model", ["gpt-4o-mini-text", "no-price"])
def test_completions_answer_and_stream_carry_the_ledger_cost(gw: Gateway, model: str) -> None:
    client = gw.client()
    answer = client.completions.create(model=model, prompt="Say hi", max_tokens=20)
    assert extra_cost(answer.usage) == ledger_cost(gw, answer.id)
    chunks = list(client.completions.create(model=model, prompt="Say hi", max_tokens=20, stream=True,
                                            stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None
    assert extra_cost(chunks[-1].usage) == ledger_cost(gw, chunks[-1].id)
    assert (extra_cost(chunks[-1].usage) == 0) == (model == "no-price")


def test_embeddings_carry_the_ledger_cost(gw: Gateway) -> None:
    result = gw.client().embeddings.create(model="text-embedding-3-small", input=["a b c", "d e"])
    cost = extra_cost(result.usage)
    assert cost > 0 and cost == ledger_cost_of_last(gw, "embeddings")


def test_embeddings_reporting_only_a_total_are_charged_that_total(gw: Gateway) -> None:
    result = gw.client().embeddings.create(model="text-embedding-total-only", input=["a b c", "d e"])
    assert result.usage.prompt_tokens == 5 and result.usage.total_tokens == 5
    cost = extra_cost(result.usage)
    assert cost > 0 and cost == ledger_cost_of_last(gw, "embeddings")


def test_a_tiny_cost_is_a_plain_decimal(gw: Gateway) -> None:
    """Five tokens at $0.02 per million: 0.0000001, written as such (never 1e-07), as amounts are."""
    with gw.http() as http:
        resp = http.post("/v1/embeddings", json={"model": "text-embedding-3-small", "input": "a b c d e",
                                                 "encoding_format": "float"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] == 5
    assert resp.text.endswith('"cost":0.0000001}}')
    assert ledger_cost_of_last(gw, "embeddings") == 0.0000001


def ledger_cost_of_last(gw: Gateway, endpoint: str) -> float:
    """The cost of the newest ledger row of an endpoint (embeddings answers carry no generation id)."""
    deadline = time.time() + 5
    while True:
        with sqlite3.connect(gw.home / "parrotrouter.db") as db:
            row = db.execute("SELECT id FROM usage WHERE endpoint = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                             (endpoint,)).fetchone()
        if row is not None or time.time() > deadline:
            assert row is not None
            return ledger_cost(gw, str(row[0]))
        time.sleep(0.05)


# ---------------------------------------------------------------------------- Responses API
@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-native"])
def test_responses_usage_carries_the_ledger_cost(gw: Gateway, model: str) -> None:
    """Translated and native (the upstream's own response object, the cost added to its usage)."""
    client = gw.client()
    response = client.responses.create(model=model, input="Say hello")
    cost = extra_cost(response.usage)
    assert cost > 0 and cost == ledger_cost(gw, response.id)
    events = list(client.responses.create(model=model, input="Say hello", stream=True))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert extra_cost(completed.response.usage) == ledger_cost(gw, completed.response.id)
    stored = client.responses.retrieve(completed.response.id)  # the stored response says the same
    assert extra_cost(stored.usage) == extra_cost(completed.response.usage)


def test_a_native_response_without_usage_gets_ours_with_the_ledger_cost(gw: Gateway) -> None:
    """The upstream's response object had `usage: null`: the answer carries the counts the gateway
    charged, in the Responses shape, with their cost."""
    with gw.http() as http:
        resp = http.post("/v1/responses", json={"model": "native-no-usage", "input": "Say hello"})
    assert resp.status_code == 200, resp.text
    usage = resp.json()["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["cost"] > 0 and usage["cost"] == ledger_cost(gw, resp.json()["id"])


# ---------------------------------------------------------------------------- Messages API
def test_a_native_message_without_usage_gets_ours_with_the_ledger_cost(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/messages", json={"model": "claude-nousage", "max_tokens": 100, "messages": USER})
    assert resp.status_code == 200, resp.text
    usage = resp.json()["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["cost"] > 0 and usage["cost"] == ledger_cost(gw, resp.json()["id"])


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-text"])
def test_messages_usage_carries_the_ledger_cost(gw: Gateway, model: str) -> None:
    """Translated and native: the message's usage and the message_delta event's."""
    sdk = anthropic.Anthropic(base_url=gw.url, api_key=MASTER_KEY, max_retries=0)
    try:
        message = sdk.messages.create(model=model, max_tokens=100, messages=USER)  # type: ignore[arg-type]
        cost = extra_cost(message.usage)
        assert cost > 0 and cost == ledger_cost(gw, message.id)
        events = list(sdk.messages.create(model=model, max_tokens=100, messages=USER,  # type: ignore[arg-type]
                                          stream=True))
    finally:
        sdk.close()
    start = events[0]
    delta = next(e for e in events if e.type == "message_delta")
    assert start.type == "message_start"
    assert extra_cost(delta.usage) == ledger_cost(gw, start.message.id) > 0


# ---------------------------------------------------------------------------- usage: {include: true}
def accounting_shape(usage: dict[str, Any]) -> None:
    assert isinstance(usage["cost"], int | float) and usage["cost"] > 0
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "fake-no-usage"])
def test_usage_include_gives_openrouters_accounting_shape(gw: Gateway, fake_upstream: FakeOpenAI, model: str) -> None:
    client = gw.client()
    answer = client.chat.completions.create(model=model, messages=USER,  # type: ignore[arg-type]
                                            extra_body={"usage": {"include": True}})
    assert answer.usage is not None
    accounting_shape(answer.usage.model_dump())
    assert answer.usage.model_dump()["cost"] == ledger_cost(gw, answer.id)
    assert "usage" not in fake_upstream.last(model)  # the gateway's field, never the upstream's
    # a stream gets its usage chunk without stream_options
    chunks = list(client.chat.completions.create(model=model, messages=USER, stream=True,  # type: ignore[arg-type]
                                                 extra_body={"usage": {"include": True}}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    usage = chunks[-1].usage.model_dump()
    accounting_shape(usage)
    assert usage["cost"] == ledger_cost(gw, chunks[-1].id)
    assert "usage" not in fake_upstream.last(model)


def test_usage_include_on_completions(gw: Gateway) -> None:
    with gw.http() as http, http.stream("POST", "/v1/completions", json={
            "model": "gpt-4o-mini-text", "prompt": "Say hi", "stream": True, "usage": {"include": True}}) as resp:
        assert resp.status_code == 200
        frames = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    last = json.loads(frames[-2])
    accounting_shape(last["usage"])


def test_without_usage_include_a_stream_has_no_usage_chunk(gw: Gateway) -> None:
    chunks = list(gw.client().chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                      extra_body={"usage": {"include": False}}))
    assert all(c.usage is None for c in chunks)


@pytest.mark.parametrize(("usage", "param"), [
    (5, "usage"), ("yes", "usage"), ([], "usage"), ({"include": "yes"}, "usage.include"),
    ({"include": 1}, "usage.include"), ({"include": None}, "usage.include"), ({"exclude": True}, "usage.exclude"),
    ({"include": True, "x" * 5000: 1}, None),
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/messages", "/v1/responses"])
def test_bad_usage_values_are_a_400_naming_the_param(gw: Gateway, path: str, usage: Any, param: str | None) -> None:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "usage": usage, **REQUEST_OF[path]}
    with gw.http() as http:
        resp = http.post(path, json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error.get("code") == "invalid_request_error" or error["type"] == "invalid_request_error"
    named = error.get("param") or error["message"]  # Anthropic's errors have no `param`: the message names it
    assert (param or "usage.") in named, error
    assert len(resp.text) < 2000  # a hostile field name is not echoed whole


REQUEST_OF: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": USER}, "/v1/completions": {"prompt": "hi"},
    "/v1/messages": {"messages": USER, "max_tokens": 50}, "/v1/responses": {"input": "hi"}}


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/responses"])
def test_usage_include_is_accepted_where_usage_always_has_its_cost(gw: Gateway, path: str) -> None:
    with gw.http() as http:
        resp = http.post(path, json={"model": "gpt-4o-mini", "usage": {"include": True}, **REQUEST_OF[path]})
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["cost"] == ledger_cost(gw, resp.json()["id"]) > 0


# ---------------------------------------------------------------------------- X-RateLimit-*
def limit_headers(resp: httpx.Response) -> tuple[str, str, str]:
    return resp.headers["X-RateLimit-Limit"], resp.headers["X-RateLimit-Remaining"], resp.headers["X-RateLimit-Reset"]


def test_a_key_nothing_limits_is_told_so(gw: Gateway) -> None:
    key = create_key(gw)
    for token in (key, MASTER_KEY):
        with gw.http(token) as http:
            for resp in (http.get("/v1/models"), http.post("/v1/chat/completions",
                                                           json={"model": "gpt-4o-mini", "messages": USER}),
                         http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": "bad"})):
                assert resp.status_code in (200, 400)
                assert limit_headers(resp) == ("unlimited", "unlimited", "0")
    with httpx.Client(base_url=gw.url) as http:  # no key: nothing to report
        assert "X-RateLimit-Limit" not in http.get("/v1/models").headers
        assert "X-RateLimit-Limit" not in http.get("/health").headers


def test_a_limited_key_sees_its_numbers(gw: Gateway) -> None:
    key = create_key(gw, permissions={"max_requests_per_minute": 7})
    with gw.http(key) as http:
        seen = []
        for _ in range(3):
            resp = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
            assert resp.status_code == 200, resp.text
            seen.append(limit_headers(resp))
            assert resp.headers["X-RateLimit-Bucket"] == "rpm"
        peek = http.get("/v1/models")
    # create_key's own check of the key (GET /v1/models) took nothing: 7 - 1, - 2, - 3
    assert [int(remaining) for _, remaining, _ in seen] == [6, 5, 4], seen
    assert {limit for limit, _, _ in seen} == {"7"}
    now = time.time()
    assert all(now - 1 <= int(reset) <= now + 61 for _, _, reset in seen)
    assert limit_headers(peek)[:2] == ("7", "4")  # reported without taking


def test_gateway_defaults_are_a_keys_effective_limits(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    from tests.conftest import fake_config

    gw = make_gateway(fake_config(fake_upstream, rate_limit_rpm=50, key_refresh_seconds=0.2),
                      env={"FAKE_UPSTREAM_KEY": "sk"}).start()
    key = create_key(gw)
    with gw.http(key) as http:
        resp = http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": USER})
    assert resp.status_code == 200 and limit_headers(resp)[:2] == ("50", "49")
    with gw.http() as http:  # the master key is never limited
        assert limit_headers(http.get("/v1/models"))[:2] == ("unlimited", "unlimited")


def test_the_openai_sdk_reads_the_headers(gw: Gateway) -> None:
    raw = gw.client().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    assert raw.headers["x-ratelimit-limit"] == "unlimited"
    assert extra_cost(raw.parse().usage) > 0
