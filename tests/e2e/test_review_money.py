"""Hostile review of issue 16's money paths, end to end over real sockets with keys that hold
credits: stored chat completions (`store: true`) are billed exactly as unstored ones, streams
included, and a stored stream the client cuts is billed and not kept; `auto` on /v1/completions
picks a model that serves completions; `openrouter/auto` is `auto` to a key's permissions; names
as users write them (OpenRouter-style, dated) keep the key's permissions and bill the price of the
id that was served."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import Gateway
from tests.e2e.responses_world import anthropic_fake
from tests.e2e.test_money_paths import _generation, _read_events, create_key, money_config
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import WORDS, FakeOpenAI

__all__ = ["anthropic_fake"]  # fixture

USER = [{"role": "user", "content": "Say hello"}]


def _post(gw: Gateway, key: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        return http.post("/v1/chat/completions", json=body)


def _stream_ids(gw: Gateway, key: str, body: dict[str, Any]) -> str:
    with httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http, \
            http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        events = _read_events(resp)
    return str(events[0]["id"])


def test_stored_completions_are_billed_as_unstored_ones(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(money_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"}).start()
    key = create_key(gw, credits="1")["key"]
    body = {"model": "gpt-4o-mini", "messages": USER, "max_tokens": 64}
    plain, stored = _post(gw, key, body), _post(gw, key, {**body, "store": True})
    assert plain.status_code == stored.status_code == 200
    costs = [_generation(gw, r.headers["x-generation-id"]) for r in (plain, stored)]
    assert costs[0]["cost"] == costs[1]["cost"] and Decimal(str(costs[0]["cost"])) > 0
    assert costs[0]["usage"] == costs[1]["usage"]
    streamed = [_generation(gw, _stream_ids(gw, key, b)) for b in (body, {**body, "store": True})]
    assert streamed[0]["cost"] == streamed[1]["cost"], streamed  # (the fake streams other usage than it answers)
    assert streamed[0]["usage"] == streamed[1]["usage"] and Decimal(str(streamed[0]["cost"])) > 0
    with httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        assert http.get(f"/v1/chat/completions/{stored.json()['id']}").status_code == 200


def test_a_stored_stream_cut_by_the_client_is_billed_and_not_kept(make_gateway: Any,
                                                                  fake_upstream: FakeOpenAI) -> None:
    gw: Gateway = make_gateway(money_config(fake_upstream), env={"FAKE_UPSTREAM_KEY": "k"}).start()
    key = create_key(gw, credits="1")["key"]
    with httpx.Client(base_url=gw.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        with http.stream("POST", "/v1/chat/completions",
                         json={"model": "fake-paced", "messages": USER, "stream": True, "store": True}) as resp:
            events = _read_events(resp, limit=4)
        cut_id = events[0]["id"]
        cut = _generation(gw, cut_id)
        assert cut["ended_by"] == "client" and cut["status"] == 499
        assert 3 <= cut["usage"]["completion_tokens"] < len(WORDS) and Decimal(str(cut["cost"])) > 0
        assert http.get(f"/v1/chat/completions/{cut_id}").status_code == 404


# ---------------------------------------------------------------------------- zero-config names and auto
@pytest.fixture(scope="module")
def zgw(fake_upstream: FakeOpenAI, anthropic_fake: fa.FakeAnthropic,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """OpenAI and Anthropic enabled from the environment only (fake upstreams)."""
    gw = Gateway(tmp_path_factory.mktemp("review"), {"server": {"key_refresh_seconds": 0.2,
                                                                "ledger_flush_seconds": 0.05}}, env={
        "OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": fake_upstream.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-fake", "ANTHROPIC_BASE_URL": anthropic_fake.url}).start()
    yield gw
    gw.stop()


def _billed(gw: Gateway, resp: httpx.Response, prompt_mtok: Decimal, completion_mtok: Decimal) -> None:
    row = _generation(gw, resp.headers["x-generation-id"])
    usage = row["usage"]
    expected = (usage["prompt_tokens"] * prompt_mtok + usage["completion_tokens"] * completion_mtok) / 1_000_000
    assert Decimal(str(row["cost"])) == expected > 0, row


def test_auto_on_completions_picks_a_model_that_serves_completions(zgw: Gateway) -> None:
    key = create_key(zgw, credits="5")["key"]
    with httpx.Client(base_url=zgw.url, timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        resp = http.post("/v1/completions", json={"model": "auto", "prompt": "Say hi", "max_tokens": 8})
        assert resp.status_code == 200, resp.text
        model = http.get(f"/v1/models/{resp.json()['model']}").json()
    assert model["capabilities"]["completion"] and model["pricing"] is not None


def test_openrouter_auto_is_auto_for_a_key_allowed_auto(zgw: Gateway) -> None:
    key = create_key(zgw, credits="5", permissions={"models": ["auto"]})["key"]
    for name in ("auto", "openrouter/auto"):
        resp = _post(zgw, key, {"model": name, "messages": USER})
        assert resp.status_code == 200, (name, resp.text)


def test_names_as_users_write_them_keep_the_keys_permissions_and_prices(zgw: Gateway) -> None:
    key = create_key(zgw, credits="5", permissions={"models": ["gpt-4o"]})["key"]
    same = _post(zgw, key, {"model": "openai/gpt-4o", "messages": USER})
    assert same.status_code == 200 and same.json()["model"] == "gpt-4o", same.text
    _billed(zgw, same, Decimal("2.5"), Decimal(10))
    for other in ("gpt-4o-2024-05-13", "gpt-4o-mini", "openai/gpt-4o-mini", "claude-3-opus", "auto"):
        denied = _post(zgw, key, {"model": other, "messages": USER})
        assert denied.status_code == 403 or (other == "auto" and denied.json()["model"] == "gpt-4o"), (other,
                                                                                                        denied.text)
    paying = create_key(zgw, credits="5")["key"]
    dated = _post(zgw, paying, {"model": "claude-3-opus-20240229", "messages": USER, "max_tokens": 16})
    assert dated.status_code == 200 and dated.json()["model"] == "claude-3-opus-20240229", dated.text
    _billed(zgw, dated, Decimal(15), Decimal(75))
    snapshot = _post(zgw, paying, {"model": "gpt-4o-2024-05-13", "messages": USER})
    assert snapshot.status_code == 200 and snapshot.json()["model"] == "gpt-4o-2024-05-13", snapshot.text
    _billed(zgw, snapshot, Decimal(5), Decimal(15))  # the May 2024 snapshot's own price, not gpt-4o's


def test_an_alias_and_a_docs_id_name_one_model_at_its_price(zgw: Gateway) -> None:
    paying = create_key(zgw, credits="5")["key"]
    alias = _post(zgw, paying, {"model": "claude-3-opus", "messages": USER, "max_tokens": 16})
    assert alias.status_code == 200 and alias.json()["model"] == "claude-3-opus-20240229", alias.text
    _billed(zgw, alias, Decimal(15), Decimal(75))  # Claude 3 Opus's price, not a newer Opus's
    docs = _post(zgw, paying, {"model": "gpt-4-turbo-preview", "messages": USER})
    assert docs.status_code == 200 and docs.json()["model"] == "gpt-4-turbo-preview", docs.text
    _billed(zgw, docs, Decimal(10), Decimal(30))
    made_up = _post(zgw, paying, {"model": "gpt-4o-mini-search-preview", "messages": USER})
    assert made_up.status_code in (400, 404), made_up.text  # not gpt-4o-mini's price without the search fee


def test_a_denied_model_is_denied_by_its_dated_and_aliased_names(zgw: Gateway) -> None:
    """`gpt-4o-2024-08-06` is gpt-4o (the price table's entry, its price); `claude-3-opus-20240229`
    is what the alias `claude-3-opus` names: a key denied the one is denied the other."""
    key = create_key(zgw, credits="5", permissions={"models": {"denied": ["gpt-4o", "claude-3-opus"]}})["key"]
    for name in ("gpt-4o", "openai/gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-2024-11-20", "claude-3-opus",
                 "claude-3-opus-20240229", "anthropic/claude-3-opus"):
        resp = _post(zgw, key, {"model": name, "messages": USER, "max_tokens": 16})
        assert resp.status_code == 403, (name, resp.text)
    assert _post(zgw, key, {"model": "gpt-4o-mini", "messages": USER}).status_code == 200
    assert _post(zgw, key, {"model": "gpt-4o-2024-05-13", "messages": USER}).status_code == 200  # its own entry
    with zgw.http() as http:
        dated = http.get("/v1/models/gpt-4o-2024-08-06").json()
    assert dated["id"] == "gpt-4o-2024-08-06" and dated["aliases"] == []  # `gpt-4o` names gpt-4o, not it
