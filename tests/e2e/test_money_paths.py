"""Issue 12's money and routing findings, against the real gateway over HTTP: reservations bound
every billable shape under concurrency, a key's model permissions hold through every routing
dialect, one request's fallbacks and retries are bounded, an upstream's long Retry-After is
passed on at once, and a stream is billed however it ends."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parrotrouter.store.db import database_url as async_url
from parrotrouter.store.schema import usage
from tests.conftest import MASTER_KEY, Gateway, fake_config
from tests.fakes.openai_upstream import WORDS, FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]
PRICE = {"prompt": "0.15", "completion": "0.60"}


def money_config(fake: FakeOpenAI, **server: Any) -> dict[str, Any]:
    config = fake_config(fake, key_refresh_seconds=0.2, **server)
    config["providers"].append({**config["providers"][0], "name": "fake2"})
    config["models"] += [
        {"id": "greedy", "pricing": PRICE, "capabilities": {"completion": True},
         "deployments": [{"provider": "fake", "model": "gpt-4o+greedy"}]},
        {"id": "twin", "pricing": PRICE, "strategy": "priority",
         "deployments": [{"provider": "fake2", "model": "gpt-4o-mini"}, {"provider": "fake", "model": "gpt-4o-mini"}]},
        {"id": "many", "pricing": PRICE, "strategy": "priority",
         "deployments": [{"provider": "fake", "model": "fake-500"}, {"provider": "fake2", "model": "fake-500"}]},
    ]
    return config


@pytest.fixture
def money_gw(make_gateway: Any, fake_upstream: FakeOpenAI, database_url: str) -> Gateway:
    gw: Gateway = make_gateway(money_config(fake_upstream, database_url=database_url),
                               env={"FAKE_UPSTREAM_KEY": "k"})
    gw.database_url = database_url  # type: ignore[attr-defined]
    return gw.start()


def create_key(gw: Gateway, **body: Any) -> dict[str, Any]:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "test", **body})
    assert resp.status_code == 201, resp.text
    time.sleep(0.5)  # the key reaches the gateway's key cache
    return resp.json()


async def ledger_rows(gw: Gateway) -> list[Any]:
    engine = create_async_engine(async_url(gw.database_url, gw.home))  # type: ignore[attr-defined]
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.select(usage))).all())
    finally:
        await engine.dispose()


def balance_of(gw: Gateway, key: dict[str, Any]) -> Decimal:
    with gw.http() as http:
        return Decimal(str(http.get(f"/v1/keys/{key['id']}").json()["balance"]["credits"]))


def _schema(size: int) -> dict[str, Any]:
    props = {f"field_{i}": {"type": "string", "description": "a long description " * 4} for i in range(size)}
    return {"type": "object", "properties": props, "required": list(props)}


# Every shape the upstream bills beyond messages and max_tokens: n answers, tool and function
# definitions, a response schema, and best_of x n answers for each of several prompts.
SHAPES: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 300, "n": 8}),
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 50, "tools": [
        {"type": "function", "function": {"name": f"tool_{i}", "description": "does things " * 50,
                                          "parameters": _schema(10)}} for i in range(4)]}),
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 50, "functions": [
        {"name": f"fn_{i}", "description": "legacy function " * 40, "parameters": _schema(12)} for i in range(4)]}),
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 50, "response_format": {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": _schema(60)}}}),
    ("/v1/completions", {"prompt": ["Once upon", "a time"], "max_tokens": 120, "n": 2, "best_of": 3}),
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 400}),
    # template tokens: many empty messages, names, long tool call ids
    ("/v1/chat/completions", {"max_tokens": 1, "messages": [
        {"role": "user", "content": "", "name": f"n{i}"} for i in range(300)]}),
    ("/v1/chat/completions", {"max_tokens": 1, "messages": [
        *USER, {"role": "assistant", "tool_calls": [{"id": "c" * 3000, "type": "function",
                                                    "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c" * 3000, "content": "done"}]}),
    # a thinking budget on top of the answer's
    ("/v1/chat/completions", {"messages": USER, "max_tokens": 10, "reasoning": {"max_tokens": 3000}}),
]


async def test_reservations_cover_every_billable_shape_under_concurrency(money_gw: Gateway) -> None:
    """200 concurrent requests of every shape against a small balance: the greedy upstream bills
    each at its worst case, and the balance never goes below zero (refusals are fine)."""
    initial = Decimal("0.004")
    key = create_key(money_gw, credits=str(initial))

    async with httpx.AsyncClient(base_url=money_gw.url, timeout=60,
                                 limits=httpx.Limits(max_connections=250)) as http:
        async def one(i: int) -> int:
            path, body = SHAPES[i % len(SHAPES)]
            resp = await http.post(path, headers={"Authorization": f"Bearer {key['key']}"},
                                   json={"model": "greedy", **body})
            assert resp.status_code in (200, 402), resp.text
            return resp.status_code

        statuses = await asyncio.gather(*(one(i) for i in range(200)))
    assert 0 < statuses.count(200) < 200 and statuses.count(402) > 0
    await asyncio.sleep(0.6)  # the ledger writes and settles
    rows = [r for r in await ledger_rows(money_gw) if r.key_id == key["id"] and r.status == 200]
    assert len(rows) == statuses.count(200)
    spent = sum((r.cost for r in rows), Decimal(0))
    balance = balance_of(money_gw, key)
    assert balance == initial - spent
    assert spent <= initial and balance >= 0, f"overspent by {spent - initial}"


def _status(gw: Gateway, key: str, body: dict[str, Any], headers: dict[str, str] | None = None,
            path: str = "/v1/chat/completions") -> httpx.Response:
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        return http.post(path, headers={"Authorization": f"Bearer {key}", **(headers or {})}, json=body)


def test_model_permissions_hold_through_every_routing_dialect(money_gw: Gateway) -> None:
    only = create_key(money_gw, credits="1", permissions={"models": ["fake-tools", "fake-500"]})["key"]
    ok = {"model": "fake-tools", "messages": USER}
    assert _status(money_gw, only, ok).status_code == 200
    text = {"model": "fake-tools", "prompt": "x"}
    escapes: list[tuple[dict[str, Any], dict[str, str], str]] = [
        (ok, {"X-Failover-Config": json.dumps({"primary": {"model": "gpt-4o-mini"}})}, "X-Failover-Config"),
        ({**ok, "model": "fake-500"}, {"X-Failover-Config": json.dumps(
            {"fallbacks": [{"model": "gpt-4o-mini", "trigger": "any_error"}]})}, "X-Failover-Config"),
        ({**ok, "model": "fake-500", "models": ["gpt-4o-mini"]}, {}, "models"),
        ({**ok, "model": "mini"}, {}, "model"),  # an alias of gpt-4o-mini
        ({**ok, "model": "fake/gpt-4o-mini"}, {}, "model"),
        ({**ok, "model": "auto"}, {"X-Failover-Config": json.dumps({"primary": {"model": "twin"}})},
         "X-Failover-Config"),
    ]
    for body, headers, param in escapes:
        for path, payload in (("/v1/chat/completions", body), ("/v1/completions", {**text, **{
                k: v for k, v in body.items() if k != "messages"}})):
            resp = _status(money_gw, only, payload, headers, path)
            assert resp.status_code == 403, (path, payload, headers, resp.text)
            assert resp.json()["error"]["param"] == param
    # auto picks among the models the key may use
    picked = _status(money_gw, only, {**ok, "model": "auto"})
    assert picked.status_code == 200 and picked.json()["model"] == "fake-tools"


def test_a_denied_provider_is_never_tried(money_gw: Gateway) -> None:
    key = create_key(money_gw, credits="1", permissions={"models": {"allowed": ["*"], "denied": ["fake2/*"]}})["key"]
    body = {"model": "twin", "messages": USER}  # fake2 first by priority
    for _ in range(3):
        resp = _status(money_gw, key, body)
        assert resp.status_code == 200 and resp.json()["provider"] == "fake"
        assert "fake2" not in resp.headers["x-parrotrouter-attempts"]
    assert _status(money_gw, key, body, {"X-Provider-Preference": "fake2"}).json()["provider"] == "fake"
    for headers in ({"X-Provider": "fake2"},
                    {"X-Failover-Config": json.dumps({"primary": {"provider": "fake2"}})}):
        assert _status(money_gw, key, body, headers).status_code == 403
    assert _status(money_gw, key, {**body, "model": "fake2/twin"}).status_code == 403


def test_fallback_lists_and_attempts_are_bounded(money_gw: Gateway) -> None:
    body = {"model": "fake-500", "messages": USER}
    four = ["fake-503", "fake-429", "fake-401", "gpt-4o-mini"]
    cases: list[tuple[dict[str, Any], dict[str, str], str]] = [
        ({**body, "models": four}, {}, "models"),
        ({**body, "models": ["fake-503"] * 5000}, {}, "models"),
        ({**body, "models": [f"m{i}" for i in range(500_000)]}, {}, "models"),
        ({**body, "models": [7]}, {}, "models[0]"),
        (body, {"X-Failover-Config": json.dumps({"fallbacks": 5})}, "X-Failover-Config"),
        (body, {"X-Failover-Config": json.dumps({"fallbacks": [{"model": 5}]})},
         "X-Failover-Config.fallbacks[0].model"),
        (body, {"X-Failover-Config": json.dumps({"fallbacks": [{"model": "gpt-4o-mini"}] * 4})}, "X-Failover-Config"),
        (body, {"X-Failover-Config": json.dumps({"primary": {"model": ["x"]}})}, "X-Failover-Config.primary.model"),
        ({**body, "provider": {"max_price": {"prompt": "NaN"}}}, {}, "provider.max_price.prompt"),
        ({**body, "provider": {"max_price": {"completion": "Infinity"}}}, {}, "provider.max_price.completion"),
        ({**body, "provider": {"max_price": {"prompt": 1e300}}}, {}, "provider.max_price.prompt"),
        ({**body, "provider": {"order": ["fake"] * 100}}, {}, "provider.order"),
        (body, {"X-Provider": "p" * 5000}, "X-Provider"),
    ]
    for payload, headers, param in cases:
        resp = _status(money_gw, MASTER_KEY, payload, headers)
        assert resp.status_code == 400, (param, resp.text[:300])
        err = resp.json()["error"]
        assert err["param"] == param and len(resp.content) < 2048, err
    # Duplicates do not count against the cap; three distinct fallbacks are served.
    resp = _status(money_gw, MASTER_KEY, {**body, "models": ["fake-500", "fake-503", "fake-503", "gpt-4o-mini"]})
    assert resp.status_code == 200 and resp.json()["model"] == "gpt-4o-mini"
    attempts = resp.headers["x-parrotrouter-attempts"].split(", ")
    assert [a.split(";")[0] for a in attempts] == ["fake/fake-500", "fake/fake-503", "fake/gpt-4o-mini"]


def test_attempt_budget_and_breakers_between_attempts(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(money_config(fake_upstream, max_attempts=3, breaker_failure_threshold=2,
                                            breaker_cooldown=60, request_timeout=2),
                               env={"FAKE_UPSTREAM_KEY": "k"}).start()
    # Retries of one deployment stop as soon as its breaker opens (after 2 failures, not 5 retries).
    resp = _status(gw, MASTER_KEY, {"model": "many", "messages": USER}, {"X-Max-Retries": "5"})
    attempts = resp.headers["x-parrotrouter-attempts"].split(", ")
    assert resp.status_code == 502 and len(attempts) <= 3
    assert [a.split(";")[0] for a in attempts[:2]] == ["fake/fake-500", "fake/fake-500"]
    # The attempt budget holds across fallback models too, and the header stays small.
    resp = _status(gw, MASTER_KEY, {"model": "fake-503", "messages": USER,
                                    "models": ["fake-429", "fake-401", "fake-stall"]}, {"X-Max-Retries": "5"})
    assert resp.status_code >= 500 or resp.status_code == 429
    header = resp.headers["x-parrotrouter-attempts"]
    assert len(header.split(", ")) == 3 and len(header) < 1024
    assert "no further attempt" in resp.json()["error"]["message"]
    # The wall-time budget: fake-stall never answers; its provider would wait 20 s, the budget 2 s.
    began = time.monotonic()
    resp = _status(gw, MASTER_KEY, {"model": "fake-stall", "messages": USER})
    assert resp.status_code == 504 and "time budget" in resp.json()["error"]["message"]
    assert time.monotonic() - began < 15


def test_long_retry_after_is_passed_on_at_once(gateway: Gateway) -> None:
    """fake-429 answers 429 with Retry-After: 7, above the 5 s the gateway waits by default: the
    client hears it at once instead of being held."""
    began = time.monotonic()
    resp = _status(gateway, MASTER_KEY, {"model": "fake-429", "messages": USER}, {"X-Max-Retries": "3"})
    elapsed = time.monotonic() - began
    assert resp.status_code == 429 and resp.headers["retry-after"] == "7"
    assert elapsed < 5, f"held {elapsed:.1f} s"
    assert len(resp.headers["x-parrotrouter-attempts"].split(", ")) == 1


def _read_events(resp: httpx.Response, limit: int | None = None) -> list[dict[str, Any]]:
    events = []
    for line in resp.iter_lines():
        if line.startswith("data: {"):
            events.append(json.loads(line[6:]))
            if limit is not None and len(events) >= limit:
                break
    return events


def _generation(gw: Gateway, generation_id: str) -> dict[str, Any]:
    deadline = time.time() + 5
    while True:
        with gw.http() as http:
            resp = http.get("/v1/generation", params={"id": generation_id})
        if resp.status_code == 200 or time.time() > deadline:
            assert resp.status_code == 200, resp.text
            return resp.json()  # type: ignore[no-any-return]
        time.sleep(0.1)


def test_streams_are_billed_however_they_end(money_gw: Gateway) -> None:
    key = create_key(money_gw, credits="1")["key"]
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=money_gw.url, timeout=30, headers=headers) as http:
        # The client reads 4 chunks (the role chunk and 3 words) of 11 words, then hangs up.
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "fake-paced", "messages": USER, "stream": True}) as resp:
            events = _read_events(resp, limit=4)
        client_cut = events[0]["id"]
        # The upstream fails after one word.
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "fake-error-in-stream", "messages": USER, "stream": True}) as resp:
            failed = _read_events(resp)
        assert failed[-2]["choices"][0]["finish_reason"] == "error"
        assert list(failed[-1]) == ["error"] and failed[-1]["error"] == failed[-2]["error"]
    cut = _generation(money_gw, client_cut)
    assert cut["ended_by"] == "client" and cut["status"] == 499
    assert 3 <= cut["usage"]["completion_tokens"] < len(WORDS) and cut["usage"]["prompt_tokens"] > 0
    assert Decimal(str(cut["cost"])) > 0
    broken = _generation(money_gw, failed[0]["id"])
    assert broken["ended_by"] == "upstream" and broken["usage"]["completion_tokens"] >= 1
    assert broken["usage"]["prompt_tokens"] > 0 and Decimal(str(broken["cost"])) > 0


def test_a_stream_cut_by_shutdown_ends_with_an_error_frame_and_is_billed(make_gateway: Any,
                                                                         fake_upstream: FakeOpenAI,
                                                                         database_url: str) -> None:
    gw: Gateway = make_gateway(money_config(fake_upstream, database_url=database_url, shutdown_timeout=1.5),
                               env={"FAKE_UPSTREAM_KEY": "k"})
    gw.database_url = database_url  # type: ignore[attr-defined]
    gw.start()
    key = create_key(gw, credits="1")["key"]
    with httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http, \
            http.stream("POST", "/v1/chat/completions",
                        json={"model": "fake-paced-slow", "messages": USER, "stream": True}) as resp:
        lines = resp.iter_lines()
        first = next(line for line in lines if line.startswith("data: {"))
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        rest = list(lines)
    assert "data: [DONE]" not in rest
    frames = [json.loads(line[6:]) for line in rest if line.startswith("data: {")]
    assert len(frames) >= 2 and frames[-2]["choices"][0]["finish_reason"] == "error"
    assert frames[-2]["error"]["status"] == 503 and frames[-1] == {"error": frames[-2]["error"]}
    assert gw.proc.wait(20) == 0
    row = next(r for r in asyncio.run(ledger_rows(gw)) if r.id == json.loads(first[6:])["id"])
    assert row.ended_by == "shutdown" and row.error_code == "shutdown"
    assert 1 <= row.completion_tokens < len(WORDS) and row.prompt_tokens > 0 and row.cost > 0
