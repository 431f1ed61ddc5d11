"""Routing and resilience with fault injection over real HTTP: retries, failover, pre-commit
stream failover, circuit breakers (shared through Redis), routing headers, the OpenRouter
dialect, model auto and route explain. The official openai SDK is the client."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import IN_CI, Gateway
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import ANSWER, FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]
FAULTS = ["429", "500", "503", "401", "slow-first-byte", "stall", "error-first", "stall-first",
          "malformed-first", "cut-0"]
# Faults a non-streaming request meets too (the others happen inside a 200 event stream).
PLAIN_FAULTS = {"429", "500", "503", "401", "stall", "refused"}
REDIS_URL = os.environ.get("PARROTROUTER_TEST_REDIS", "redis://127.0.0.1:6379/12")
PRICE = {"prompt": "0.15", "completion": "0.60"}


# Bound but never listening: connecting is refused, and no other process can take the port meanwhile.
_DEAD = socket.socket()
_DEAD.bind(("127.0.0.1", 0))
DEAD_PORT = _DEAD.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def _close_dead_port() -> Iterator[None]:
    yield
    _DEAD.close()


def routing_config(fake: FakeOpenAI, claude_url: str, **server: Any) -> dict[str, Any]:
    timeouts = {"connect": 1, "first_token": 1.0, "idle": 1.0, "total": 2.5}
    providers = [
        {"name": "fake", "type": "openai", "base_url": fake.base_url, "timeouts": timeouts, "region": "eu"},
        {"name": "alt", "type": "openai", "base_url": fake.base_url, "timeouts": timeouts, "region": "us"},
        {"name": "dead", "type": "openai", "base_url": f"http://127.0.0.1:{DEAD_PORT}/v1", "timeouts": timeouts},
        {"name": "claude", "type": "anthropic", "base_url": claude_url, "api_key": {"$env": "FAKE_KEY"}},
    ]
    models: list[dict[str, Any]] = [
        {"id": f"chain-{f}", "strategy": "priority", "pricing": PRICE, "deployments": [
            {"provider": "fake", "model": f"fake-{f}"}, {"provider": "alt", "model": "gpt-4o-mini"}]}
        for f in [*FAULTS, "cut-3", "malformed", "error-in-stream", "stall-after-2", "400-context"]]
    models += [
        {"id": "chain-refused", "strategy": "priority", "pricing": PRICE,
         "deployments": [{"provider": "dead", "model": "gpt-4o-mini"}, {"provider": "fake", "model": "gpt-4o-mini"}]},
        {"id": "single-flaky", "pricing": PRICE, "deployments": [{"provider": "fake", "model": "fake-flaky"}]},
        {"id": "single-500", "pricing": PRICE, "deployments": [{"provider": "fake", "model": "fake-500"}]},
        {"id": "ok", "pricing": PRICE, "deployments": [{"provider": "fake", "model": "gpt-4o-mini"}]},
        {"id": "both", "strategy": "priority", "pricing": PRICE, "deployments": [
            {"provider": "fake", "model": "gpt-4o-mini", "pricing": {"prompt": "5", "completion": "15"}},
            {"provider": "alt", "model": "gpt-4o-mini", "pricing": {"prompt": "0.1", "completion": "0.4"}}]},
        {"id": "breaker", "strategy": "priority", "pricing": PRICE, "deployments": [
            {"provider": "fake", "model": "fake-500"}, {"provider": "alt", "model": "gpt-4o-mini"}]},
        {"id": "mixed", "strategy": "priority", "pricing": PRICE, "capabilities": {"vision": True},
         "deployments": [{"provider": "claude", "model": "claude-text"}, {"provider": "fake", "model": "gpt-4o-mini"}]},
        {"id": "tiny-no-tools", "pricing": {"prompt": "0.01", "completion": "0.01"},
         "capabilities": {"function_calling": False}, "deployments": [{"provider": "alt", "model": "gpt-4o-mini"}]},
    ]
    models += [{"id": f"fault-{f}", "pricing": PRICE, "deployments": [{"provider": "fake", "model": f"fake-{f}"}]}
               for f in [*FAULTS, "cut-3", "gpt-4o-mini", "slow", "429-short"]]
    server = {"breaker_failure_threshold": 10_000, **server}
    return {"env_providers": False, "server": server, "providers": providers, "models": models}


@pytest.fixture(scope="module")
def claude() -> Iterator[fa.FakeAnthropic]:
    server = fa.FakeAnthropic().start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture(scope="module")
def rgw(fake_upstream: FakeOpenAI, claude: fa.FakeAnthropic,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("routing"), routing_config(fake_upstream, claude.url),
                 env={"FAKE_KEY": "k"}).start()
    yield gw
    gw.stop()


def attempts_of(raw: Any) -> list[str]:
    return [a.split(";")[0] for a in raw.headers.get("x-parrotrouter-attempts", "").split(", ") if a]


def generation(gw: Gateway, gid: str) -> dict[str, Any]:
    with gw.http() as http:
        return http.get("/v1/generation", params={"id": gid}).json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("fault", [*FAULTS, "refused"])
def test_failures_before_any_content_fail_over(rgw: Gateway, fault: str) -> None:
    client = rgw.client()
    model = f"chain-{fault}"
    if fault in PLAIN_FAULTS:
        raw = client.chat.completions.with_raw_response.create(model=model, messages=USER)
        resp = raw.parse()
        assert resp.choices[0].message.content == ANSWER
        assert resp.model == model and resp.model_extra["provider"] == ("alt" if fault != "refused" else "fake")
        tried = attempts_of(raw)
        assert len(tried) == 2 and tried[-1].endswith("gpt-4o-mini")
        row = generation(rgw, resp.id)
        assert [a["status"] for a in row["attempts"]][-1] == 200 and row["attempts"][0]["error_code"]
    stream_raw = client.chat.completions.with_raw_response.create(model=model, messages=USER, stream=True)
    chunks = list(stream_raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ANSWER
    assert chunks[0].choices[0].delta.role == "assistant"  # one clean stream, nothing spliced in
    assert len(attempts_of(stream_raw)) == 2
    row = generation(rgw, chunks[0].id)
    assert row["streamed"] and [a["status"] for a in row["attempts"]][-1] == 200


@pytest.mark.parametrize("fault", ["cut-3", "malformed", "error-in-stream", "stall-after-2"])
def test_failures_after_content_end_with_an_error_frame(rgw: Gateway, fault: str) -> None:
    with rgw.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": f"chain-{fault}", "messages": USER, "stream": True})
    assert resp.status_code == 200
    assert "data: [DONE]" not in resp.text
    frames = [json.loads(line[6:]) for line in resp.text.split("\n") if line.startswith("data: {")]
    assert frames[-1] == {"error": frames[-2]["error"]}  # the bare error frame every client understands
    frames = frames[:-1]
    assert any(f["choices"] and f["choices"][0]["delta"].get("content") for f in frames)  # content was sent
    last = frames[-1]
    assert last["choices"][0]["finish_reason"] == "error" and last["error"]["code"]
    assert "Hello" in "".join(f["choices"][0]["delta"].get("content") or "" for f in frames if f["choices"])


def test_client_errors_are_never_retried(rgw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        rgw.client().chat.completions.create(model="chain-400-context", messages=USER)
    assert attempts_of(info.value.response) == ["fake/fake-400-context"]


def test_retry_same_deployment_honours_retry_after(rgw: Gateway) -> None:
    began = time.time()
    raw = rgw.client().chat.completions.with_raw_response.create(model="single-flaky", messages=USER)
    assert raw.parse().choices[0].message.content == ANSWER
    assert attempts_of(raw) == ["fake/fake-flaky", "fake/fake-flaky"]
    assert time.time() - began >= 1.0


def test_give_up_passes_the_last_error_on(rgw: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        rgw.client().chat.completions.create(model="single-500", messages=USER)
    assert info.value.status_code == 502 and len(attempts_of(info.value.response)) == 2  # one retry


# ---------------------------------------------------------------------------- headers
def call(gw: Gateway, model: str, headers: dict[str, str], **kw: Any) -> httpx.Response:
    with gw.http() as http:
        return http.post("/v1/chat/completions", json={"model": model, "messages": USER, **kw}, headers=headers)


def test_x_provider_and_preference(rgw: Gateway) -> None:
    assert call(rgw, "both", {"X-Provider": "alt"}).json()["provider"] == "alt"
    assert call(rgw, "both", {"X-Provider-Preference": "alt, fake"}).json()["provider"] == "alt"
    assert call(rgw, "both", {}).json()["provider"] == "fake"  # priority order by default
    resp = call(rgw, "both", {"X-Provider": "nobody"})
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "no_route"
    assert resp.json()["error"]["param"] == "X-Provider"


def test_routing_strategy_and_cost_limit(rgw: Gateway) -> None:
    assert call(rgw, "both", {"X-Routing-Strategy": "cost-optimized"}).json()["provider"] == "alt"
    assert call(rgw, "both", {"X-Max-Cost-Per-1K-Tokens": "0.001"}).json()["provider"] == "alt"
    assert call(rgw, "both", {"X-Routing-Strategy": "geographic", "X-User-Region": "us"}).json()["provider"] == "alt"
    assert call(rgw, "both", {"X-Routing-Strategy": "geographic", "X-User-Region": "eu"}).json()["provider"] == "fake"
    resp = call(rgw, "both", {"X-Max-Cost-Per-1K-Tokens": "0.00001"})
    assert resp.status_code == 404 and resp.json()["error"]["param"] == "X-Max-Cost-Per-1K-Tokens"


def test_failover_switches(rgw: Gateway) -> None:
    assert call(rgw, "chain-500", {"X-Failover-Enabled": "false"}).status_code == 502
    resp = call(rgw, "chain-500", {"X-Failover-Providers": "alt"})
    assert resp.status_code == 200 and resp.json()["provider"] == "alt"
    # A 429 asking for a 1 s wait is retried once by default; with X-Max-Retries: 0 it goes to the client.
    retried = call(rgw, "fault-429-short", {"X-Retry-Delay-Ms": "1"})
    assert retried.status_code == 429 and attempts_of(retried) == ["fake/fake-429-short"] * 2
    passed_on = call(rgw, "fault-429-short", {"X-Max-Retries": "0"})
    assert passed_on.status_code == 429 and passed_on.headers["retry-after"] == "1"
    assert attempts_of(passed_on) == ["fake/fake-429-short"]
    with rgw.http() as http:
        fast = http.post("/v1/chat/completions", json={"model": "single-500", "messages": USER},
                         headers={"X-Max-Retries": "3", "X-Retry-Delay-Ms": "1"})
    assert len(attempts_of(fast)) == 4


def test_failover_config_triggers(rgw: Gateway) -> None:
    only_rate_limits = json.dumps({"primary": {"provider": "fake", "model": "fault-500"},
                                   "fallbacks": [{"trigger": ["rate_limit"], "model": "ok"}]})
    assert call(rgw, "ok", {"X-Failover-Config": only_rate_limits}).status_code == 502
    server_errors = json.dumps({"primary": {"provider": "fake", "model": "fault-500"},
                                "fallbacks": [{"trigger": ["server_error", "timeout"], "model": "ok"}],
                                "failure_threshold": 3})
    resp = call(rgw, "whatever", {"X-Failover-Config": server_errors})
    assert resp.status_code == 200 and resp.json()["model"] == "ok"
    any_error = json.dumps({"fallbacks": [{"trigger": "any_error", "provider": "alt", "model": "both"}]})
    assert call(rgw, "fault-401", {"X-Failover-Config": any_error}).json()["provider"] == "alt"


@pytest.mark.parametrize(("header", "value"), [
    ("X-Routing-Strategy", "fastest-please"), ("X-Max-Retries", "many"), ("X-Max-Retries", "99"),
    ("X-Retry-Delay-Ms", "-5"), ("X-Failover-Enabled", "maybe"), ("X-Max-Cost-Per-1K-Tokens", "-1"),
    ("X-Max-Latency-Ms", "0"), ("X-Failover-Config", "{not json"),
    ("X-Failover-Config", '{"fallbacks": [{"trigger": ["cosmic_rays"], "model": "ok"}]}')])
def test_invalid_headers_name_themselves(rgw: Gateway, header: str, value: str) -> None:
    resp = call(rgw, "ok", {header: value})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == header


def test_max_latency_filters_measured_slow_deployments(rgw: Gateway) -> None:
    assert call(rgw, "chain-slow-first-byte", {"X-Provider": "fake", "X-Failover-Enabled": "false"}).status_code == 504
    with rgw.http() as http:
        slow = http.post("/v1/chat/completions", json={"model": "fault-slow", "messages": USER})
        assert slow.status_code == 200  # 1.5 s: now measured
        explain = http.post("/v1/route/explain", headers={"X-Max-Latency-Ms": "1000"},
                            json={"model": "fault-slow", "messages": USER}).json()
    assert explain["candidates"] == [] and explain["removed"][0]["filter"] == "X-Max-Latency-Ms"


# ---------------------------------------------------------------------------- OpenRouter dialect
def test_openrouter_models_and_provider_fields(rgw: Gateway) -> None:
    resp = call(rgw, "fault-500", {}, models=["fault-429", "ok"])
    assert resp.status_code == 200 and resp.json()["model"] == "ok"
    assert call(rgw, "both", {}, provider={"order": ["alt", "fake"]}).json()["provider"] == "alt"
    assert call(rgw, "both", {}, provider={"only": ["alt"]}).json()["provider"] == "alt"
    assert call(rgw, "both", {}, provider={"ignore": ["fake"]}).json()["provider"] == "alt"
    assert call(rgw, "both", {}, provider={"sort": "price"}).json()["provider"] == "alt"
    assert call(rgw, "both", {}, provider={"max_price": {"prompt": 1, "completion": 1}}).json()["provider"] == "alt"
    assert call(rgw, "chain-500", {}, provider={"allow_fallbacks": False}).status_code == 502
    sent = call(rgw, "mixed", {}, provider={"require_parameters": True}, logprobs=True)
    assert sent.status_code == 200 and sent.json()["provider"] == "fake"
    none_left = call(rgw, "mixed", {}, provider={"only": ["claude"], "require_parameters": True}, logprobs=True)
    assert none_left.status_code == 404
    err = none_left.json()["error"]
    assert err["code"] == "no_route" and err["param"] == "provider.require_parameters" and "logprobs" in err["message"]
    for bad in ({"order": "alt"}, {"sort": "vibes"}, {"allow_fallbacks": "no"}, {"max_price": {"prompt": "x"}}):
        assert call(rgw, "both", {}, provider=bad).status_code == 400
    assert call(rgw, "both", {}, models="ok").json()["error"]["param"] == "models"


def test_route_explain(rgw: Gateway) -> None:
    with rgw.http() as http:
        explain = http.post("/v1/route/explain", headers={"X-Provider-Preference": "alt"},
                            json={"model": "mixed", "messages": USER, "logprobs": True,
                                  "provider": {"require_parameters": True}}).json()
    assert explain["object"] == "route.explain" and explain["strategy"] == "priority"
    assert [c["deployment"] for c in explain["candidates"]] == ["fake/gpt-4o-mini"]
    assert explain["removed"] == [{"deployment": "claude/claude-text", "filter": "provider.require_parameters",
                                   "reason": "claude/claude-text does not support logprobs"}]


def test_model_auto(rgw: Gateway) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    cheapest = call(rgw, "auto", {"X-Routing-Strategy": "cost-optimized"}).json()
    assert cheapest["model"] == "tiny-no-tools"
    with_tools = call(rgw, "auto", {"X-Routing-Strategy": "cost-optimized"}, tools=tools).json()
    assert with_tools["model"] != "tiny-no-tools" and with_tools["choices"]
    vision = call(rgw, "auto", {}, messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]).json()
    assert vision["model"] == "mixed"


# ---------------------------------------------------------------------------- circuit breakers
def test_breaker_opens_and_skips_the_failing_deployment(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                        claude: fa.FakeAnthropic) -> None:
    gw: Gateway = make_gateway(routing_config(fake_upstream, claude.url, breaker_failure_threshold=2,
                                              breaker_cooldown=30), env={"FAKE_KEY": "k"}).start()
    client = gw.client()
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model="breaker", messages=USER)
        assert attempts_of(raw) == ["fake/fake-500", "alt/gpt-4o-mini"]
    raw = client.chat.completions.with_raw_response.create(model="breaker", messages=USER)
    assert attempts_of(raw) == ["alt/gpt-4o-mini"]  # the open breaker keeps fake-500 out
    with gw.http() as http:
        explain = http.post("/v1/route/explain", json={"model": "breaker", "messages": USER}).json()
        single = http.post("/v1/chat/completions", json={"model": "fault-500", "messages": USER})
        for _ in range(2):
            single = http.post("/v1/chat/completions", json={"model": "fault-500", "messages": USER})
    assert explain["removed"][0]["filter"] == "circuit_open"
    assert single.status_code == 503 and int(single.headers["retry-after"]) >= 1


def test_two_gateways_share_breakers_through_redis(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                   claude: fa.FakeAnthropic) -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).flushdb()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable under CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    config = routing_config(fake_upstream, claude.url, breaker_failure_threshold=2, breaker_cooldown=30,
                            redis_url=REDIS_URL)
    a: Gateway = make_gateway(config, env={"FAKE_KEY": "k"}).start()
    b: Gateway = make_gateway(config, env={"FAKE_KEY": "k"}).start()
    for _ in range(2):
        a.client().chat.completions.create(model="breaker", messages=USER)
    deadline = time.time() + 5
    while time.time() < deadline:
        raw = b.client().chat.completions.with_raw_response.create(model="breaker", messages=USER)
        if attempts_of(raw) == ["alt/gpt-4o-mini"]:
            break
        time.sleep(0.2)
    assert attempts_of(raw) == ["alt/gpt-4o-mini"], "the second gateway still sends to the open deployment"


# ---------------------------------------------------------------------------- property
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=st.lists(st.sampled_from([f"fault-{f}" for f in [*FAULTS, "cut-3", "gpt-4o-mini"]]),
                      min_size=1, max_size=3))
def test_streams_end_complete_or_with_an_error_frame(rgw: Gateway, chain: list[str]) -> None:
    with rgw.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": chain[0], "models": chain[1:], "messages": USER,
                                                       "stream": True})
    if resp.headers["content-type"].startswith("application/json"):
        assert resp.status_code >= 400 and resp.json()["error"]["code"]  # failed before any byte: plain error
        return
    frames = [line for line in resp.text.split("\n") if line.startswith("data: ")]
    if frames[-1] == "data: [DONE]":
        chunks = [json.loads(f[6:]) for f in frames[:-1]]
        finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
        assert finishes[-1] == "stop" and all(f is None for f in finishes[:-1])
        assert "error" not in resp.text.split("data: [DONE]")[0].split("finish_reason")[-1]
    else:
        last, bare = json.loads(frames[-2][6:]), json.loads(frames[-1][6:])
        assert last["choices"][0]["finish_reason"] == "error" and last["error"]["code"]
        assert bare == {"error": last["error"]}
