"""Every caller-controlled number, string and amount has a documented bound: beyond it a 400 that
names the param; within it no later 500 (not from the reservation, not from a stored value); error
messages never grow with the input; USD is written as plain decimals; upstream 4xx messages are
passed on redacted. Real gateway over HTTP, accounts on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parrotrouter.store.db import database_url as async_url
from parrotrouter.store.schema import api_keys, meta
from tests.conftest import Gateway, fake_config
from tests.e2e.test_bad_input import assert_envelope
from tests.fakes.openai_upstream import FakeOpenAI

USER = [{"role": "user", "content": "hi"}]
CAP = 10_000_000  # max_tokens' documented maximum
BIG = "m" * 1_000_000


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": USER, **fields}


def tool(i: int) -> dict[str, Any]:
    return {"type": "function", "function": {"name": f"f{i}"}}


# ---------------------------------------------------------------------- numbers and strings
@pytest.mark.parametrize(("fields", "param"), [
    ({"max_tokens": 2**63}, "max_tokens"),
    ({"max_tokens": CAP + 1}, "max_tokens"),
    ({"max_tokens": 1e30}, "max_tokens"),
    ({"max_completion_tokens": 2**63}, "max_completion_tokens"),
    ({"max_completion_tokens": CAP + 1}, "max_completion_tokens"),
    ({"seed": 2**63}, "seed"),
    ({"seed": -(2**63) - 1}, "seed"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
    ({"stop": "s" * 1025}, "stop"),
    ({"stop": ["a", "s" * 1025]}, "stop"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ({"metadata": {"k" * 65: "v"}}, "metadata"),
    ({"metadata": {"k": "v" * 513}}, "metadata"),
    ({"user": "u" * 257}, "user"),
    ({"prompt_cache_key": "p" * 65}, "prompt_cache_key"),
    ({"safety_identifier": "s" * 65}, "safety_identifier"),
    ({"tools": [tool(i) for i in range(129)]}, "tools"),
    ({"functions": [{"name": f"f{i}"} for i in range(129)]}, "functions"),
    ({"n": 129}, "n"),
])
def test_chat_values_beyond_their_bounds_are_400s(gateway: Gateway, fields: dict[str, Any], param: str) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=chat(**fields))
    err = assert_envelope(resp, 400, "invalid_request")
    assert err["param"] is not None and err["param"].startswith(param), err
    assert len(resp.content) < 2048


@pytest.mark.parametrize(("fields", "param"), [
    ({"max_tokens": 2**63}, "max_tokens"),
    ({"max_tokens": CAP + 1}, "max_tokens"),
    ({"seed": 2**63}, "seed"),
    ({"user": "u" * 257}, "user"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
    ({"stop": ["s" * 1025]}, "stop"),
    ({"best_of": 21}, "best_of"),
])
def test_completion_values_beyond_their_bounds_are_400s(gateway: Gateway, fields: dict[str, Any],
                                                         param: str) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "x", **fields})
    err = assert_envelope(resp, 400, "invalid_request")
    assert err["param"] is not None and err["param"].startswith(param), err


def test_values_at_their_bounds_are_served(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    at_bounds = chat(max_tokens=CAP, max_completion_tokens=CAP, seed=2**63 - 1,
                     logit_bias={str(i): 100 for i in range(300)}, stop=["s" * 1024] * 4,
                     metadata={f"{i:064d}": "v" * 512 for i in range(16)}, user="u" * 256,
                     prompt_cache_key="p" * 64, safety_identifier="s" * 64, tools=[tool(i) for i in range(128)])
    with gateway.http() as http:
        assert http.post("/v1/chat/completions", json=at_bounds).status_code == 200
        assert fake_upstream.last("gpt-4o-mini")["max_tokens"] == CAP
        low = http.post("/v1/chat/completions", json=chat(seed=-(2**63)))
        assert low.status_code == 200
        completion = http.post("/v1/completions", json={"model": "gpt-4o-mini", "prompt": "x", "max_tokens": CAP,
                                                        "seed": 2**63 - 1})
        assert completion.status_code == 200, completion.text


# ---------------------------------------------------------------------- echoed values
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_huge_model_name_comes_back_truncated(gateway: Gateway, path: str) -> None:
    body = chat(model=BIG) if path == "/v1/chat/completions" else {"model": BIG, "prompt": "x"}
    with gateway.http() as http:
        resp = http.post(path, json=body)
    err = assert_envelope(resp, 400, "unsupported_model", "model")
    assert len(resp.content) < 2048 and "mmmm" in err["message"] and "more characters" in err["message"]


def test_huge_path_params_and_fields_come_back_truncated(gateway: Gateway) -> None:
    long = "z" * 7000  # near aiohttp's request-line limit (8190 bytes)
    with gateway.http() as http:
        model = http.get(f"/v1/models/{long}")
        key = http.get(f"/v1/keys/key_{long}")
        credits = http.post(f"/v1/keys/key_{long}/credits", json={"amount": 1})
        field = http.post("/v1/keys", json={"name": "k", BIG: 1})
        role = http.post("/v1/chat/completions", json=chat(messages=[{"role": BIG, "content": "x"}]))
        enum = http.post("/v1/chat/completions", json=chat(reasoning_effort=BIG))
    assert_envelope(model, 404, "not_found", "model")
    assert_envelope(key, 404, "not_found", "id")
    assert_envelope(credits, 404, "not_found", "id")
    assert_envelope(field, 400, "invalid_request")
    assert_envelope(role, 400, "invalid_request", "messages[0].role")
    assert_envelope(enum, 400, "invalid_request", "reasoning_effort")
    for resp in (model, key, credits, field, role, enum):
        assert len(resp.content) < 2048, resp.text[:200]


# ---------------------------------------------------------------------- upstream messages
def test_an_upstream_400_is_passed_on_redacted_and_logged(gateway: Gateway) -> None:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json=chat(model="fake-400-leaky"))
    err = assert_envelope(resp, 400, "invalid_request")
    assert "Invalid 'temperature': must be at most 2." in err["message"]
    for secret in ("org-abc123", "sk-proj", "abc1", "wxyz", "/srv/app", "keys.py", "10.20.30.40", "ops@", "corp."):
        assert secret not in err["message"], (secret, err["message"])
    deadline = time.time() + 5
    while "org-abc123" not in gateway.output() and time.time() < deadline:
        time.sleep(0.05)
    logged = [line for line in gateway.output().splitlines() if "org-abc123" in line]
    assert logged and "/srv/app/keys.py" in logged[-1] and "fake" in logged[-1]


# ---------------------------------------------------------------------- accounts
@pytest.fixture
def acct_gw(make_gateway: Any, fake_upstream: FakeOpenAI, database_url: str) -> Gateway:
    config = fake_config(fake_upstream, database_url=database_url, key_refresh_seconds=0.3)
    # A model cheap enough that a request costs less than a millionth of a dollar (1E-8 as `str`).
    config["models"].append({"id": "cheap", "deployments": [{"provider": "fake", "model": "gpt-4o-mini"}],
                             "pricing": {"prompt": "0.001", "completion": "0.001"}})
    gw: Gateway = make_gateway(config, env={"FAKE_UPSTREAM_KEY": "k"})
    gw.database_url = database_url  # type: ignore[attr-defined]
    return gw.start()


def create_key(gw: Gateway, **body: Any) -> dict[str, Any]:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "bounds", **body})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def eventually(check: Any, timeout: float = 5.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met within the time limit")


def status_of(gw: Gateway, key: str, model: str = "gpt-4o-mini") -> int:
    return httpx.post(gw.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json=chat(model=model), timeout=30).status_code


def test_amounts_beyond_their_bounds_are_400s(acct_gw: Gateway) -> None:
    with acct_gw.http() as http:
        for body, param in [
            ({"credits": 1e30}, "credits"), ({"credits": "1e30"}, "credits"), ({"credits": 9.2e9}, "credits"),
            ({"credits": "1000000000.5"}, "credits"), ({"credits": "NaN"}, "credits"), ({"credits": "-1"}, "credits"),
            ({"credits": "0.0000000001"}, "credits"), ({"permissions": {"max_cost_per_day": "1e30"}},
                                                         "permissions.max_cost_per_day"),
            ({"permissions": {"max_cost_per_day": "NaN"}}, "permissions.max_cost_per_day"),
            ({"permissions": {"max_cost_per_day": 1e10}}, "permissions.max_cost_per_day"),
            ({"permissions": {"max_requests_per_minute": 2**63}}, "permissions.max_requests_per_minute"),
            ({"permissions": {"max_tokens_per_minute": 10**9 + 1}}, "permissions.max_tokens_per_minute"),
            ({"permissions": {"models": ["m" * 501]}}, "permissions.models[0]"),
            ({"restrictions": {"ip_whitelist": ["10.0.0.1"] * 1001}}, "restrictions.ip_whitelist"),
            ({"metadata": {"blob": "b" * 20_000}}, "metadata"), ({"account_id": "a" * 41}, "account_id"),
        ]:
            resp = http.post("/v1/keys", json={"name": "x", **body})
            assert_envelope(resp, 400, "invalid_request", param)
            assert len(resp.content) < 2048
        key = create_key(acct_gw, credits="1000000000")  # the maximum is accepted
        assert key["balance"]["credits"] == 1_000_000_000
        for amount in ("1", "1e30", 1e30, "NaN", "-Infinity", "-1000000000.000000001", "0.0000000001"):
            resp = http.post(f"/v1/keys/{key['id']}/credits", json={"amount": amount})
            assert_envelope(resp, 400, "invalid_request", "amount")
        patched = http.patch(f"/v1/keys/{key['id']}", json={"permissions": {"max_cost_per_day": "1e30"}})
        assert_envelope(patched, 400, "invalid_request", "permissions.max_cost_per_day")
        taken = http.post(f"/v1/keys/{key['id']}/credits", json={"amount": "-999999999.5"})
        assert taken.status_code == 200 and taken.json()["balance"]["credits"] == 0.5
        assert http.get(f"/v1/keys/{key['id']}").status_code == 200


def test_text_no_database_can_store_is_a_400_or_404(acct_gw: Gateway) -> None:
    """NUL and lone surrogates: PostgreSQL refuses the one, neither database can encode the other
    (the JSON decoder already refuses a lone surrogate escape: a 400 without a param)."""
    key = create_key(acct_gw, credits="1")
    with acct_gw.http() as http:
        for bad in ("a\\u0000b", "\\ud800"):  # JSON escapes, in the raw bodies below
            for body, param in [
                (f'{{"name": "{bad}"}}', "name"),
                (f'{{"name": "x", "description": "{bad}"}}', "description"),
                (f'{{"name": "x", "metadata": {{"team": "{bad}"}}}}', "metadata.team"),
                (f'{{"name": "x", "metadata": {{"{bad}": 1}}}}', "metadata"),
                (f'{{"name": "x", "permissions": {{"models": ["{bad}"]}}}}', "permissions.models[0]"),
                (f'{{"name": "x", "restrictions": {{"user_agents": ["{bad}"]}}}}', "restrictions.user_agents[0]"),
            ]:
                headers = {"Content-Type": "application/json"}
                named = param if "u0000" in bad else None
                assert_envelope(http.post("/v1/keys", content=body, headers=headers), 400, "invalid_request", named)
                patch = http.patch(f"/v1/keys/{key['id']}", content=body, headers=headers)
                assert_envelope(patch, 400, "invalid_request", named)
        for path in ("/v1/keys/a%00b", "/v1/keys/a%00b/rotate"):
            resp = http.get(path) if not path.endswith("rotate") else http.post(path)
            assert_envelope(resp, 404, "not_found")
        assert_envelope(http.get("/v1/generation", params={"id": "a\x00b"}), 404, "not_found")
        assert http.get("/ready").status_code == 200


def test_max_tokens_at_the_cap_is_a_402_for_a_key_and_served_for_the_master_key(acct_gw: Gateway) -> None:
    key = create_key(acct_gw, credits="1", permissions={"max_tokens_per_minute": 10**9})
    eventually(lambda: status_of(acct_gw, key["key"]) == 200)
    headers = {"Authorization": f"Bearer {key['key']}"}
    with httpx.Client(base_url=acct_gw.url, headers=headers, timeout=30) as http:
        for path, body in [("/v1/chat/completions", chat(max_tokens=CAP)),
                           ("/v1/chat/completions", chat(max_completion_tokens=CAP, stream=True)),
                           ("/v1/completions", {"model": "gpt-4o-mini", "prompt": "x", "max_tokens": CAP})]:
            assert_envelope(http.post(path, json=body), 402, "insufficient_credits")
    rich = create_key(acct_gw, credits="1000000000")
    eventually(lambda: status_of(acct_gw, rich["key"]) == 200)
    with httpx.Client(base_url=acct_gw.url, headers={"Authorization": f"Bearer {rich['key']}"}, timeout=30) as http:
        assert http.post("/v1/chat/completions", json=chat(max_tokens=CAP)).status_code == 200
    with acct_gw.http() as http:
        assert http.post("/v1/chat/completions", json=chat(max_tokens=CAP)).status_code == 200


async def _store_raw(gw: Gateway, key_id: str, **values: Any) -> None:
    """Write a key row as an older version, or a hand-made edit, might have left it."""
    engine = create_async_engine(async_url(gw.database_url, gw.home))  # type: ignore[attr-defined]
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(**values))
            await conn.execute(sa.update(meta).where(meta.c.name == "keys_version").values(value=meta.c.value + 1))
    finally:
        await engine.dispose()


def test_stored_values_beyond_the_bounds_never_break_requests(acct_gw: Gateway) -> None:
    huge = create_key(acct_gw, credits="5")
    nan = create_key(acct_gw, credits="5")
    bad_ip = create_key(acct_gw, credits="5")
    not_object = create_key(acct_gw, credits="5")
    asyncio.run(_store_raw(acct_gw, huge["id"], permissions={"max_cost_per_day": "1e30",
                                                             "max_requests_per_minute": "abc"}))
    asyncio.run(_store_raw(acct_gw, nan["id"], permissions={"max_cost_per_day": "NaN",
                                                            "max_tokens_per_minute": 10**30}))
    asyncio.run(_store_raw(acct_gw, bad_ip["id"], restrictions={"ip_whitelist": ["not-an-ip"]}))
    asyncio.run(_store_raw(acct_gw, not_object["id"], permissions=["chat"]))
    # The stored values are in force once the key cache has read them again (its refresh delay):
    # until then the keys as created are served. The two refusals say that the new values are read.
    eventually(lambda: status_of(acct_gw, bad_ip["key"]) == 403)  # an unreadable allow-list admits nobody
    eventually(lambda: status_of(acct_gw, not_object["key"]) == 403)
    assert status_of(acct_gw, huge["key"]) == 200
    assert status_of(acct_gw, nan["key"]) == 200
    for key in (huge, nan):
        with httpx.Client(base_url=acct_gw.url, headers={"Authorization": f"Bearer {key['key']}"}) as http:
            credits = http.get("/v1/credits")
            stream = http.post("/v1/chat/completions", json=chat(stream=True, max_tokens=CAP))
        assert credits.status_code == 200, credits.text
        assert credits.json()["limits"]["daily_limit"]["credits"] == 1_000_000_000
        assert stream.status_code == 402  # the balance (5 USD) bounds it, no overflow
    with acct_gw.http() as http:
        assert http.get("/v1/keys").status_code == 200
        assert http.get(f"/v1/keys/{huge['id']}").status_code == 200
    create_key(acct_gw)  # another reload of the key table: the warnings are not repeated
    eventually(lambda: status_of(acct_gw, huge["key"]) == 200)
    time.sleep(0.5)
    warnings = [line for line in acct_gw.output().splitlines() if huge["id"] in line and "max_cost_per_day" in line]
    assert len(warnings) == 1, warnings


# ---------------------------------------------------------------------- plain decimals
_EXPONENT = re.compile(r"(?<![\w-])\d+(?:\.\d+)?[eE][+-]?\d+(?![\w-])")


def plain_json(resp: httpx.Response) -> Any:
    """The body, parsed with every non-integer number checked to be written without an exponent."""
    assert resp.status_code == 200, resp.text

    def number(text: str) -> Decimal:
        assert "e" not in text.lower(), (text, resp.request.url)
        return Decimal(text)

    return json.loads(resp.text, parse_float=number, parse_int=Decimal)


def test_amounts_are_written_as_plain_decimals(acct_gw: Gateway) -> None:
    hundred = create_key(acct_gw, credits="100")
    micro = create_key(acct_gw, credits="0.000001")
    tenth_micro = create_key(acct_gw, credits="0.0000001")
    assert hundred["balance"]["credits"] == 100 and '"credits":1E' not in json.dumps(hundred)
    with httpx.Client(base_url=acct_gw.url, headers={"Authorization": f"Bearer {hundred['key']}"}) as http:
        eventually(lambda: http.get("/v1/credits").status_code == 200)  # the key is known (no request made)
        made = http.post("/v1/chat/completions", json=chat(model="cheap")).json()
        generation = plain_json(http.get("/v1/generation", params={"id": made["id"]}))
        usage = plain_json(http.get("/v1/usage/current", params={"granularity": "day", "include_breakdown": "true"}))
        credits = plain_json(http.get("/v1/credits"))
    cost = generation["cost"]
    assert Decimal(0) < cost < Decimal("0.000001")  # str() would have written it as ...E-8
    assert usage["cost"] == cost and usage["breakdown"]["by_model"][0]["cost"] == cost
    assert credits["usage"]["daily"]["credits_used"] == cost and credits["balance"]["credits"] == 100 - cost
    with acct_gw.http() as http:
        listed = plain_json(http.get("/v1/keys"))["data"]
        shown = [plain_json(http.get(f"/v1/keys/{k['id']}")) for k in (hundred, micro, tenth_micro)]
    balances = {k["id"]: k["balance"]["credits"] for k in listed}
    assert balances[micro["id"]] == Decimal("0.000001") and balances[tenth_micro["id"]] == Decimal("0.0000001")
    assert [s["balance"]["credits"] for s in shown] == [100 - cost, Decimal("0.000001"), Decimal("0.0000001")]


def cli(gw: Gateway, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "parrotrouter", *args, "--config", str(gw.config_path)],
                         env=dict(gw.env), capture_output=True, text=True, timeout=60)
    assert (out.returncode == 0) == ok, (args, out.stdout, out.stderr)
    return out


@pytest.mark.timeout(300)  # fifteen CLI processes, each a Python start-up
def test_the_cli_prints_plain_decimals_and_one_line_errors(acct_gw: Gateway) -> None:
    empty = json.loads(cli(acct_gw, "keys", "create", "--name", "cli", "--credits", "0", "--json").stdout)
    added = cli(acct_gw, "credits", "add", empty["id"], "100").stdout
    assert added.strip() == f"{empty['account_id']}: balance 100 USD"
    tiny = json.loads(cli(acct_gw, "keys", "create", "--name", "tiny", "--credits", "0.0000001", "--json").stdout)
    assert tiny["balance"]["credits"] == 1e-7
    outputs = [added, cli(acct_gw, "keys", "list").stdout, cli(acct_gw, "keys", "show", empty["id"]).stdout,
               cli(acct_gw, "keys", "show", tiny["id"]).stdout, cli(acct_gw, "keys", "list", "--json").stdout,
               cli(acct_gw, "keys", "show", tiny["id"], "--json").stdout]
    for out in outputs:
        assert not _EXPONENT.search(out), out
    assert "0.0000001" in outputs[1] and "100" in outputs[1] and '"credits":0.0000001' in outputs[5]
    for args, param in [(("keys", "create", "--name", "x", "--credits", "1e30"), "credits"),
                        (("keys", "create", "--name", "x", "--credits", "NaN"), "credits"),
                        (("keys", "create", "--name", "x", "--max-cost-per-day", "1e30"),
                         "permissions.max_cost_per_day"),
                        (("keys", "create", "--name", "x", "--permissions", "{broken"), "permissions"),
                        (("credits", "add", empty["id"], "1e30"), "amount"),
                        (("credits", "add", empty["id"], "abc"), "amount"),
                        (("credits", "add", empty["id"], "0.0000000001"), "amount"),
                        (("credits", "add", "key_" + "z" * 5000, "1"), "id")]:
        failed = cli(acct_gw, *args, ok=False)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error ({param}): "), failed.stderr
        assert "Traceback" not in failed.stderr and len(failed.stderr) < 1024
