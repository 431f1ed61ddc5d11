"""Keys, permissions, credits and the ledger, end to end, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec
import openai
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parrotrouter.accounting.bounds import chat_billable
from parrotrouter.accounting.credits import ceil_nanos
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.store.db import database_url as async_url
from parrotrouter.store.schema import usage
from tests.conftest import MASTER_KEY, Gateway, fake_config
from tests.fakes.openai_upstream import FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]
PROMPT_PRICE, COMPLETION_PRICE = Decimal("0.15"), Decimal("0.60")  # per 1M tokens, from fake_config


@pytest.fixture
def acct_gw(make_gateway: Any, fake_upstream: FakeOpenAI, database_url: str) -> Gateway:
    gw: Gateway = make_gateway(fake_config(fake_upstream, database_url=database_url, key_refresh_seconds=0.5),
                               env={"FAKE_UPSTREAM_KEY": "k"})
    gw.database_url = database_url  # type: ignore[attr-defined]
    return gw.start()


def create_key(gw: Gateway, **body: Any) -> dict[str, Any]:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "test", **body})
    assert resp.status_code == 201, resp.text
    return resp.json()


async def ledger_rows(gw: Gateway) -> list[Any]:
    engine = create_async_engine(async_url(gw.database_url, gw.home))  # type: ignore[attr-defined]
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(sa.select(usage))).all())
    finally:
        await engine.dispose()


def test_key_lifecycle_through_the_admin_api(acct_gw: Gateway) -> None:
    created = create_key(acct_gw, description="for tests", credits="2.5", metadata={"team": "search"},
                         permissions={"models": ["gpt-4o-mini"], "max_requests_per_minute": 60})
    secret = created["key"]
    assert secret.startswith("pr-") and len(secret) >= 3 + 32
    assert created["id"].startswith("key_") and created["prefix"] == secret[:10]
    assert created["balance"] == {"credits": 2.5, "currency": "USD"}
    with acct_gw.http() as http:
        listed = http.get("/v1/keys").json()["data"]
        shown = http.get(f"/v1/keys/{created['id']}").json()
        assert secret not in str(listed) and secret not in str(shown) and "key" not in shown
        patched = http.patch(f"/v1/keys/{created['id']}", json={"name": "renamed", "description": None}).json()
        assert patched["name"] == "renamed" and patched["description"] is None
        assert patched["permissions"]["models"] == ["gpt-4o-mini"]  # untouched fields stay
        bad = http.patch(f"/v1/keys/{created['id']}", json={"permissions": {"operations": ["fly"]}})
        assert bad.status_code == 400 and bad.json()["error"]["param"].startswith("permissions.operations")
        assert http.get("/v1/keys/key_nope").status_code == 404
    user = acct_gw.client(secret)
    assert user.chat.completions.create(model="gpt-4o-mini", messages=USER).choices
    forbidden = httpx.get(acct_gw.url + "/v1/keys", headers={"Authorization": f"Bearer {secret}"})
    assert forbidden.status_code == 403  # ordinary keys cannot manage keys
    with acct_gw.http() as http:
        rotated = http.post(f"/v1/keys/{created['id']}/rotate").json()
    new_secret = rotated["key"]
    assert new_secret != secret and rotated["id"] == created["id"]
    _eventually(lambda: _status(acct_gw, secret) == 401)
    assert acct_gw.client(new_secret).chat.completions.create(model="gpt-4o-mini", messages=USER).choices
    with acct_gw.http() as http:
        revoked = http.delete(f"/v1/keys/{created['id']}").json()
    assert revoked["revoked"] is True
    _eventually(lambda: _status(acct_gw, new_secret) == 401)
    with pytest.raises(openai.AuthenticationError) as info:
        acct_gw.client(new_secret).chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert info.value.code == "invalid_api_key" and "revoked" in info.value.message


def _status(gw: Gateway, key: str) -> int:
    with httpx.Client(base_url=gw.url) as http:
        return http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                         json={"model": "gpt-4o-mini", "messages": USER}).status_code


def _eventually(check: Any, timeout: float = 5.0) -> float:
    began = time.time()
    while time.time() - began < timeout:
        if check():
            return time.time() - began
        time.sleep(0.05)
    raise AssertionError("condition not met within the time limit")


def test_admin_api_validation(acct_gw: Gateway) -> None:
    with acct_gw.http() as http:
        for body, param in [({}, "name"), ({"name": "x", "credits": "-1"}, "credits"),
                            ({"name": "x", "restrictions": {"ip_whitelist": ["nope"]}}, "restrictions.ip_whitelist[0]"),
                            ({"name": "x", "credits": 1, "account_id": "acct_x"}, "credits"),
                            ({"name": "x", "account_id": "acct_missing"}, "account_id"),
                            ({"name": "x", "expires_at": "2030-01-01T00:00:00"}, "expires_at"),
                            ({"name": "x", "surprise": 1}, "surprise")]:
            resp = http.post("/v1/keys", json=body)
            assert resp.status_code == 400, (body, resp.text)
            assert resp.json()["error"]["param"] == param, resp.json()


def test_every_auth_failure_through_the_sdk(acct_gw: Gateway) -> None:
    expired = create_key(acct_gw, credits="1", expires_at=(datetime.now(UTC) - timedelta(minutes=1)).isoformat())
    broke = create_key(acct_gw, credits="0")
    read_only = create_key(acct_gw, credits="1", permissions={"operations": ["read"]})
    only_mini = create_key(acct_gw, credits="1", permissions={"models": {"allowed": ["gpt-4o*"],
                                                                          "denied": ["fake-*"]}})
    no_stream = create_key(acct_gw, credits="1", permissions={"features": ["chat"]})
    office_ip = create_key(acct_gw, credits="1", restrictions={"ip_whitelist": ["10.0.0.0/8"]})
    web_only = create_key(acct_gw, credits="1", restrictions={"domains": ["*.example.com"]})
    agent = create_key(acct_gw, credits="1", restrictions={"user_agents": ["MyApp/*"]})
    _eventually(lambda: _status(acct_gw, broke["key"]) == 402)

    def call(key: str, model: str = "gpt-4o-mini", **kw: Any) -> Any:
        return acct_gw.client(key, **kw).chat.completions.create(model=model, messages=USER)

    with pytest.raises(openai.AuthenticationError) as info:  # the SDK with its Authorization header removed
        acct_gw.client("unused").chat.completions.create(
            model="gpt-4o-mini", messages=USER, extra_headers={"Authorization": openai.Omit()})
    assert info.value.status_code == 401 and info.value.code == "missing_api_key"
    for key, code in [("pr-" + "x" * 43, "invalid_api_key"), (expired["key"], "expired_api_key")]:
        with pytest.raises(openai.AuthenticationError) as info:
            call(key)
        assert info.value.code == code
    with pytest.raises(openai.APIStatusError) as status:
        call(broke["key"])
    assert status.value.status_code == 402 and status.value.body["code"] == "insufficient_credits"
    for key, model, needle in [(read_only["key"], "gpt-4o-mini", "read-only"),
                               (only_mini["key"], "fake-tools", "model"),
                               (office_ip["key"], "gpt-4o-mini", "IP address"),
                               (web_only["key"], "gpt-4o-mini", "domain"),
                               (agent["key"], "gpt-4o-mini", "user agent")]:
        with pytest.raises(openai.PermissionDeniedError) as denied:
            call(key, model)
        assert denied.value.code == "permission_denied" and needle in denied.value.message
    with pytest.raises(openai.PermissionDeniedError) as denied:
        list(acct_gw.client(no_stream["key"]).chat.completions.create(model="gpt-4o-mini", messages=USER,
                                                                       stream=True))
    assert "streaming" in denied.value.message
    assert call(no_stream["key"]).choices
    assert call(web_only["key"], default_headers={"Origin": "https://app.example.com"}).choices
    assert call(agent["key"], default_headers={"User-Agent": "MyApp/2.1"}).choices
    models = {m.id for m in acct_gw.client(only_mini["key"]).models.list()}
    assert models == {"gpt-4o-mini"}
    with acct_gw.http(read_only["key"]) as http:
        assert http.get("/v1/models").status_code == 200


def _reservation(max_tokens: int, model: str = "gpt-4o-mini") -> Decimal:
    """What the gateway reserves for a request (its documented bound), in whole nano-dollars."""
    raw = {"model": model, "messages": USER, "max_tokens": max_tokens}
    request = msgspec.convert(raw, ChatCompletionRequest)
    bound = chat_billable(request, raw, model, max_tokens)
    return ceil_nanos((bound.prompt * PROMPT_PRICE + bound.output * COMPLETION_PRICE) / 1_000_000)


async def test_concurrent_requests_admit_exactly_what_the_balance_covers(acct_gw: Gateway) -> None:
    per_request = _reservation(1000, "fake-hold")
    key = create_key(acct_gw, credits=str(per_request * 20 + per_request / 2))
    await asyncio.sleep(1.2)  # the new key reaches the key cache

    async with httpx.AsyncClient(base_url=acct_gw.url, timeout=60,
                                 limits=httpx.Limits(max_connections=250)) as http:
        async def one() -> int:
            resp = await http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                                   json={"model": "fake-hold", "messages": USER, "max_tokens": 1000})
            return resp.status_code

        statuses = await asyncio.gather(*(one() for _ in range(200)))
    assert statuses.count(200) == 20, statuses
    assert statuses.count(402) == 180
    await asyncio.sleep(0.6)
    with acct_gw.http() as http:
        balance = Decimal(str(http.get(f"/v1/keys/{key['id']}").json()["balance"]["credits"]))
    rows = [r for r in await ledger_rows(acct_gw) if r.key_id == key["id"]]
    assert len(rows) == 200
    spent = sum((r.cost for r in rows), Decimal(0))
    assert spent > 0 and balance >= 0
    assert balance == per_request * 20 + per_request / 2 - spent


def test_credits_ledger_and_reports(acct_gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    key = create_key(acct_gw, credits="1", permissions={"max_cost_per_day": "0.5", "max_requests_per_minute": 30})
    _eventually(lambda: _status(acct_gw, key["key"]) == 200)
    client = acct_gw.client(key["key"])
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=USER, user="end-user-7")
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))
    with acct_gw.http(key["key"]) as http:
        generation = http.get("/v1/generation", params={"id": resp.id}).json()
        credits = http.get("/v1/credits").json()
        current = http.get("/v1/usage/current", params={"granularity": "day", "include_breakdown": "true"}).json()
        assert http.get("/v1/generation", params={"id": "chatcmpl-nope"}).status_code == 404
    assert generation["id"] == resp.id and generation["model"] == "gpt-4o-mini"
    assert generation["usage"]["prompt_tokens"] == resp.usage.prompt_tokens
    assert generation["usage"]["completion_tokens"] == resp.usage.completion_tokens
    expected = (resp.usage.prompt_tokens * PROMPT_PRICE + resp.usage.completion_tokens * COMPLETION_PRICE) / 10**6
    assert Decimal(str(generation["cost"])) == expected
    assert generation["user"] == "end-user-7" and generation["status"] == 200 and generation["streamed"] is False
    assert generation["provider"] == "fake" and generation["latency_ms"] > 0
    stream_row = asyncio.run(ledger_rows(acct_gw))
    streamed = next(r for r in stream_row if r.id == chunks[0].id)
    assert streamed.streamed and streamed.ttft_ms is not None and streamed.completion_tokens == 11
    total_cost = sum((r.cost for r in stream_row if r.key_id == key["id"]), Decimal(0))
    assert credits["object"] == "credit_balance"
    assert Decimal(str(credits["balance"]["credits"])) == Decimal(1) - total_cost
    assert credits["usage"]["daily"]["requests"] == credits["usage"]["monthly"]["requests"] >= 3
    assert Decimal(str(credits["usage"]["daily"]["credits_used"])) == total_cost
    assert credits["limits"]["daily_limit"]["credits"] == 0.5
    assert Decimal(str(credits["limits"]["daily_limit"]["remaining"])) == Decimal("0.5") - total_cost
    assert credits["limits"]["rate_limit"]["requests_per_minute"] == 30
    assert credits["billing"]["plan"] == "self-hosted"
    assert current["requests"] >= 3 and current["active_users"] >= 1
    by_model = {m["name"]: m for m in current["breakdown"]["by_model"]}
    assert by_model["gpt-4o-mini"]["requests"] >= 2 and by_model["gpt-4o-mini"]["avg_latency_ms"] > 0
    with acct_gw.http() as http:  # the master key sees every key's rows
        assert http.get("/v1/generation", params={"id": resp.id}).status_code == 200
    other = create_key(acct_gw, credits="1")
    _eventually(lambda: _status(acct_gw, other["key"]) == 200)
    with acct_gw.http(other["key"]) as http:
        assert http.get("/v1/generation", params={"id": resp.id}).status_code == 404


def test_write_only_key_sees_only_its_balance(acct_gw: Gateway) -> None:
    key = create_key(acct_gw, credits="3", permissions={"operations": ["write"]})
    _eventually(lambda: _status(acct_gw, key["key"]) == 200)
    with acct_gw.http(key["key"]) as http:
        credits = http.get("/v1/credits").json()
        assert http.get("/v1/models").status_code == 403
    assert set(credits) == {"object", "balance"}


def test_daily_cost_limit(acct_gw: Gateway) -> None:
    limit = _reservation(500) * 3
    key = create_key(acct_gw, credits="10", permissions={"max_cost_per_day": str(limit)})
    _eventually(lambda: _status(acct_gw, key["key"]) in (200, 402))
    client = acct_gw.client(key["key"])
    outcomes = []
    for _ in range(8):
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=USER, max_tokens=500)
            outcomes.append(200)
        except openai.APIStatusError as err:
            assert err.status_code == 402 and "daily cost limit" in err.message
            outcomes.append(402)
    assert 402 in outcomes and outcomes.count(200) >= 3


def test_sigterm_during_load_keeps_every_admitted_request(acct_gw: Gateway) -> None:
    key = create_key(acct_gw, credits="5")
    _eventually(lambda: _status(acct_gw, key["key"]) == 200)

    async def load() -> list[tuple[int, str | None]]:
        async with httpx.AsyncClient(base_url=acct_gw.url, timeout=30) as http:
            async def one() -> tuple[int, str | None]:
                try:
                    resp = await http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key['key']}"},
                                           json={"model": "fake-slow", "messages": USER})
                except httpx.HTTPError:
                    return 0, None
                return resp.status_code, resp.json().get("id") if resp.status_code == 200 else None

            tasks = [asyncio.create_task(one()) for _ in range(30)]
            await asyncio.sleep(0.5)
            assert acct_gw.proc is not None
            acct_gw.proc.send_signal(signal.SIGTERM)
            return await asyncio.gather(*tasks)

    results = asyncio.run(load())
    assert acct_gw.proc is not None and acct_gw.proc.wait(20) == 0
    admitted = {gid for status, gid in results if status == 200}
    assert len(admitted) == 30
    rows = {r.id: r for r in asyncio.run(ledger_rows(acct_gw))}
    assert admitted <= set(rows)
    assert all(rows[g].cost > 0 for g in admitted)


def test_revocation_reaches_every_worker_within_5s(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                    database_url: str) -> None:
    gw: Gateway = make_gateway(fake_config(fake_upstream, database_url=database_url),
                               env={"FAKE_UPSTREAM_KEY": "k"}, args=["--workers", "2"]).start()
    key = create_key(gw, credits="1")
    _eventually(lambda: all(_status(gw, key["key"]) == 200 for _ in range(10)))
    with gw.http() as http:
        http.delete(f"/v1/keys/{key['id']}")
    elapsed = _eventually(lambda: all(_status(gw, key["key"]) == 401 for _ in range(10)), timeout=5.0)
    assert elapsed < 5.0
    assert MASTER_KEY


def test_cli_mirrors_the_admin_api(acct_gw: Gateway) -> None:
    import json
    import subprocess
    import sys

    env = dict(acct_gw.env)
    base = [sys.executable, "-m", "parrotrouter"]
    cfg = ["--config", str(acct_gw.config_path)]

    def cli(*args: str) -> str:
        out = subprocess.run([*base, *args, *cfg], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    created = json.loads(cli("keys", "create", "--name", "cli", "--credits", "1.25", "--model", "gpt-4o-mini",
                             "--json"))
    assert created["key"].startswith("pr-")
    listing = cli("keys", "list")
    assert created["id"] in listing and "1.25" in listing and created["key"] not in listing
    cli("credits", "add", created["id"], "0.75")
    shown = json.loads(cli("keys", "show", created["id"], "--json"))
    assert shown["balance"]["credits"] == 2 and "key" not in shown
    _eventually(lambda: _status(acct_gw, created["key"]) == 200)
    rotated = json.loads(cli("keys", "rotate", created["id"], "--json"))
    cli("keys", "update", created["id"], "--name", "cli2", "--rpm", "10")
    assert json.loads(cli("keys", "show", created["id"], "--json"))["permissions"]["max_requests_per_minute"] == 10
    _eventually(lambda: _status(acct_gw, rotated["key"]) == 200)
    cli("keys", "revoke", created["id"])
    _eventually(lambda: _status(acct_gw, rotated["key"]) == 401)
