"""Prices and `auto` against the real gateway over real sockets: a model with no known price is
refused (402 `price_unknown`) to keys that pay with credits on every generation endpoint — chat
(JSON and stream), completions, the Responses API, the Messages API, embeddings — and served to the
master key at cost 0; `free: true` and `pricing:` in the config make it usable; `/v1/models` says
where each price came from and takes the docs' filters; `model: "auto"` with OpenAI and Anthropic
enabled from the environment picks the cheapest capable priced model, honours tools, the key's
allowed models and `X-Routing-Strategy`, and the operator's `auto_model`."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway
from tests.e2e.responses_world import anthropic_fake, create_key
from tests.fakes import anthropic_upstream as fa
from tests.fakes.embeddings_upstream import FakeEmbeddings
from tests.fakes.openai_upstream import FakeOpenAI

__all__ = ["anthropic_fake"]  # fixture

PRICE = {"prompt": "0.15", "completion": "0.60"}
USER = [{"role": "user", "content": "Hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.fixture(scope="module")
def embeddings() -> Iterator[FakeEmbeddings]:
    fake = FakeEmbeddings().start()
    yield fake
    fake.stop()


def unpriced_config(fake: FakeOpenAI, claude: fa.FakeAnthropic, emb: FakeEmbeddings) -> dict[str, Any]:
    def on(provider: str, upstream: str, **extra: Any) -> dict[str, Any]:
        return {"deployments": [{"provider": provider, "model": upstream}], **extra}

    return {
        "env_providers": False, "server": {"ledger_flush_seconds": 0.05, "key_refresh_seconds": 0.2},
        "providers": [
            {"name": "fake", "type": "openai", "base_url": fake.base_url, "api_key": {"$env": "UP_KEY"}},
            {"name": "claude", "type": "anthropic", "base_url": claude.url, "api_key": {"$env": "UP_KEY"}},
            {"name": "emb", "type": "openai", "base_url": emb.openai_url, "api_key": {"$env": "UP_KEY"}}],
        "models": [
            {"id": "house", **on("fake", "gpt-4o-mini"), "capabilities": {"completion": True}},
            {"id": "house-free", "free": True, **on("fake", "gpt-4o-mini")},
            {"id": "house-priced", "pricing": PRICE, **on("fake", "gpt-4o-mini"), "capabilities": {"vision": True}},
            {"id": "claude-house", **on("claude", "claude-text")},
            {"id": "house-embed", **on("emb", "text-embedding-3-small"),
             "capabilities": {"chat": False, "embeddings": True}},
            # one deployment priced (its own price), one not: a key with credits gets the priced one
            {"id": "half-priced", "strategy": "priority", "deployments": [
                {"provider": "claude", "model": "claude-text"},
                {"provider": "fake", "model": "gpt-4o-mini", "pricing": PRICE}]},
        ]}


@pytest.fixture(scope="module")
def pgw(fake_upstream: FakeOpenAI, anthropic_fake: fa.FakeAnthropic, embeddings: FakeEmbeddings,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("prices"), unpriced_config(fake_upstream, anthropic_fake, embeddings),
                 env={"UP_KEY": "upstream-key"}).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def paying(pgw: Gateway) -> str:
    return create_key(pgw, credits="5")


# (path, body) of each generation endpoint, for a model name
def requests_for(model: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("/v1/chat/completions", {"model": model, "messages": USER}),
        ("/v1/chat/completions", {"model": model, "messages": USER, "stream": True}),
        ("/v1/completions", {"model": model, "prompt": "Say hi", "max_tokens": 8}),
        ("/v1/responses", {"model": model, "input": "Say hi"}),
        ("/v1/responses", {"model": model, "input": "Say hi", "stream": True}),
        ("/v1/messages", {"model": model, "max_tokens": 16, "messages": USER}),
        ("/v1/messages", {"model": model, "max_tokens": 16, "messages": USER, "stream": True}),
    ]


def post(gw: Gateway, key: str, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        return http.post(path, json=body, headers={"Authorization": f"Bearer {key}", **headers})


@pytest.mark.parametrize(("path", "body"), [*requests_for("house"), *requests_for("claude-house"),
                                            ("/v1/embeddings", {"model": "house-embed", "input": ["a b"]})])
def test_an_unpriced_model_is_refused_to_a_key_with_credits(pgw: Gateway, paying: str, fake_upstream: FakeOpenAI,
                                                            path: str, body: dict[str, Any]) -> None:
    before = len(fake_upstream.requests)
    resp = post(pgw, paying, path, body)
    assert resp.status_code == 402, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    if path == "/v1/messages":  # Anthropic's error shape on its API
        assert resp.json()["type"] == "error" and err["type"] == "billing_error"
    else:
        assert err["code"] == "price_unknown" and err["status"] == 402 and err["param"] == "model"
    assert f"The price of model '{body['model']}'" in err["message"]
    assert "price it" in err["message"] and "free: true" in err["message"]
    assert len(fake_upstream.requests) == before  # nothing was sent upstream


@pytest.mark.parametrize(("path", "body"), [*requests_for("house"),
                                            *(r for r in requests_for("claude-house") if r[0] != "/v1/completions"),
                                            ("/v1/embeddings", {"model": "house-embed", "input": ["a b"]})])
def test_the_master_key_may_use_an_unpriced_model_at_cost_0(pgw: Gateway, path: str, body: dict[str, Any]) -> None:
    resp = post(pgw, MASTER_KEY, path, body)
    assert resp.status_code == 200, resp.text
    gid = resp.headers["x-generation-id"]
    with pgw.http() as http:
        row = http.get("/v1/generation", params={"id": gid})
    assert row.status_code == 200 and row.json()["cost"] == 0


@pytest.mark.parametrize("model", ["house-free", "house-priced"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_priced_or_free_model_is_served_to_a_key_with_credits(pgw: Gateway, paying: str, model: str,
                                                                stream: bool) -> None:
    resp = post(pgw, paying, "/v1/chat/completions", {"model": model, "messages": USER, "stream": stream})
    assert resp.status_code == 200, resp.text


def test_the_unpriced_deployment_is_skipped_for_a_key_with_credits(pgw: Gateway, paying: str) -> None:
    paid = post(pgw, paying, "/v1/chat/completions", {"model": "half-priced", "messages": USER})
    assert paid.status_code == 200 and paid.json()["provider"] == "fake"
    master = post(pgw, MASTER_KEY, "/v1/chat/completions", {"model": "half-priced", "messages": USER})
    assert master.status_code == 200 and master.json()["provider"] == "claude"  # its first deployment


def test_route_explain_names_the_unknown_price(pgw: Gateway, paying: str) -> None:
    explain = post(pgw, paying, "/v1/route/explain", {"model": "half-priced", "messages": USER}).json()
    assert [c["deployment"] for c in explain["candidates"]] == ["fake/gpt-4o-mini"]
    assert [(r["deployment"], r["filter"]) for r in explain["removed"]] == [("claude/claude-text", "price_unknown")]


def test_auto_never_picks_an_unpriced_model_for_a_key_with_credits(pgw: Gateway) -> None:
    only_unpriced = create_key(pgw, permissions={"models": ["house", "claude-house"]})
    resp = post(pgw, only_unpriced, "/v1/chat/completions", {"model": "auto", "messages": USER})
    assert resp.status_code == 402 and resp.json()["error"]["code"] == "price_unknown", resp.text
    some_priced = create_key(pgw, permissions={"models": ["house", "house-priced"]})
    resp = post(pgw, some_priced, "/v1/chat/completions", {"model": "auto", "messages": USER})
    assert resp.status_code == 200 and resp.json()["model"] == "house-priced", resp.text


def test_models_show_where_each_price_came_from(pgw: Gateway) -> None:
    with pgw.http() as http:
        models = {m["id"]: m for m in http.get("/v1/models", params={"active_only": "false"}).json()["data"]}
        one = http.get("/v1/models/house-free").json()
    assert models["house"]["pricing"] is None
    assert models["house-free"]["pricing"] == {"prompt": 0.0, "completion": 0.0, "unit": "1k_tokens",
                                               "source": "config"}
    assert models["house-priced"]["pricing"]["source"] == "config"
    assert models["house-priced"]["pricing"]["prompt"] == pytest.approx(0.00015)
    assert one["pricing"]["source"] == "config" and one["retired"] is False


def capable(gw: Gateway, value: str) -> set[str]:
    with gw.http() as http:
        got = http.get("/v1/models", params={"capability": value, "active_only": "false"})
    assert got.status_code == 200, got.text
    return {m["id"] for m in got.json()["data"]}


def test_models_capability_filter_takes_the_docs_values(pgw: Gateway) -> None:
    assert capable(pgw, "embedding") == capable(pgw, "embeddings") == {"house-embed"}
    assert capable(pgw, "image") == capable(pgw, "vision") and "house-priced" in capable(pgw, "image")
    assert "house-free" not in capable(pgw, "image")
    assert "house" in capable(pgw, "completion") and "claude-house" not in capable(pgw, "completion")
    assert "house-embed" not in capable(pgw, "chat") and "house" in capable(pgw, "chat")
    assert "house" in capable(pgw, "function_calling") and "house" in capable(pgw, "json_mode")


@pytest.mark.parametrize("value", ["junk", "chat\x00", "x" * 6000, "", "Chat", "embeddings "])
def test_a_bad_capability_is_a_400_naming_it(pgw: Gateway, value: str) -> None:
    with pgw.http() as http:
        got = http.get("/v1/models", params={"capability": value})
    assert got.status_code == 400, got.text
    err = got.json()["error"]
    assert err["param"] == "capability" and len(err["message"]) < 300


@pytest.mark.parametrize("param", ["include_capabilities", "include_retired", "active_only"])
def test_boolean_params_are_validated(pgw: Gateway, param: str) -> None:
    with pgw.http() as http:
        got = http.get("/v1/models", params={param: "maybe"})
    assert got.status_code == 400 and got.json()["error"]["param"] == param


def test_include_capabilities_false_omits_them(pgw: Gateway) -> None:
    with pgw.http() as http:
        without = http.get("/v1/models", params={"include_capabilities": "false"}).json()["data"]
        default = http.get("/v1/models").json()["data"]
        one = http.get("/v1/models/house-priced", params={"include_capabilities": "false"}).json()
    assert without and all("capabilities" not in m for m in without)
    assert default and all(isinstance(m["capabilities"], dict) for m in default)
    assert "capabilities" not in one


# ---------------------------------------------------------------------------- zero-config auto
@pytest.fixture(scope="module")
def zgw(fake_upstream: FakeOpenAI, anthropic_fake: fa.FakeAnthropic,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """OpenAI and Anthropic enabled from the environment (fake upstreams), plus one config model
    that is cheaper than all of them but cannot call tools."""
    config = {"server": {"key_refresh_seconds": 0.2}, "models": [
        {"id": "cheap-no-tools", "deployments": [{"provider": "openai", "model": "gpt-4o-mini"}],
         "pricing": {"prompt": "0.001", "completion": "0.001"}, "capabilities": {"function_calling": False}}]}
    gw = Gateway(tmp_path_factory.mktemp("auto"), config, env={
        "OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": fake_upstream.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-fake", "ANTHROPIC_BASE_URL": anthropic_fake.url}).start()
    yield gw
    gw.stop()


def listed(gw: Gateway) -> list[dict[str, Any]]:
    with gw.http() as http:
        got = http.get("/v1/models", params={"active_only": "false"})
    assert got.status_code == 200, got.text
    return got.json()["data"]  # type: ignore[no-any-return]


def price(m: dict[str, Any]) -> Decimal:
    return Decimal(str(m["pricing"]["prompt"])) + Decimal(str(m["pricing"]["completion"]))


def cheapest(models: list[dict[str, Any]]) -> dict[str, Any]:
    """The first of the cheapest (catalog order breaks ties, as auto does)."""
    return min(models, key=price)


def chat_priced(gw: Gateway) -> list[dict[str, Any]]:
    return [m for m in listed(gw) if m["capabilities"]["chat"] and m["pricing"] is not None and not m["retired"]]


def test_auto_picks_the_cheapest_capable_model(zgw: Gateway) -> None:
    models = chat_priced(zgw)
    assert {m["provider"]["id"] for m in models} >= {"openai", "anthropic"}
    answer = post(zgw, MASTER_KEY, "/v1/chat/completions", {"model": "auto", "messages": USER})
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "cheap-no-tools" == cheapest(models)["id"]
    with_tools = post(zgw, MASTER_KEY, "/v1/chat/completions", {"model": "auto", "messages": USER, "tools": TOOLS})
    assert with_tools.status_code == 200, with_tools.text
    expected = cheapest([m for m in models if m["capabilities"]["function_calling"]])
    assert with_tools.json()["model"] == expected["id"] != "chatgpt-4o-latest"
    assert expected["pricing"]["source"] == "table"


def test_auto_honours_the_keys_allowed_models(zgw: Gateway) -> None:
    allowed = ["claude-3-5-haiku-latest", "gpt-4o"]
    key = create_key(zgw, permissions={"models": allowed})
    resp = post(zgw, key, "/v1/chat/completions", {"model": "auto", "messages": USER})
    assert resp.status_code == 200, resp.text
    models = [m for m in chat_priced(zgw) if m["id"] in allowed]
    assert resp.json()["model"] == cheapest(models)["id"]
    dearest = post(zgw, key, "/v1/chat/completions", {"model": "auto", "messages": USER},
                   **{"X-Routing-Strategy": "quality-optimized"})
    assert dearest.status_code == 200, dearest.text
    assert dearest.json()["model"] == max(models, key=price)["id"] != resp.json()["model"]


def test_auto_latency_optimized_picks_a_capable_model(zgw: Gateway) -> None:
    resp = post(zgw, MASTER_KEY, "/v1/chat/completions", {"model": "auto", "messages": USER, "tools": TOOLS},
                **{"X-Routing-Strategy": "latency-optimized"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] != "cheap-no-tools"


def test_the_operators_auto_model(make_gateway: Any, fake_upstream: FakeOpenAI) -> None:
    gw = make_gateway(None, env={"OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": fake_upstream.base_url,
                                 "PARROTROUTER_AUTO_MODEL": "gpt-4o"}).start()
    resp = post(gw, MASTER_KEY, "/v1/chat/completions", {"model": "auto", "messages": USER})
    assert resp.status_code == 200 and resp.json()["model"] == "gpt-4o", resp.text


@pytest.mark.parametrize(("value", "says"), [("no-such-model", "'no-such-model' is not a model"),
                                             ("auto", "cannot be 'auto' itself"),
                                             ("text-embedding-3-small", "is not a chat model")])
def test_an_unknown_auto_model_stops_the_start(make_gateway: Any, fake_upstream: FakeOpenAI, value: str,
                                               says: str) -> None:
    gw = make_gateway(None, env={"OPENAI_API_KEY": "sk-fake", "OPENAI_BASE_URL": fake_upstream.base_url,
                                 "PARROTROUTER_AUTO_MODEL": value})
    with pytest.raises(RuntimeError, match="gateway exited with 2"):
        gw.start()
    assert "auto_model: " in gw.output() and says in gw.output()


def test_a_model_the_key_may_not_use_looks_like_one_that_does_not_exist(zgw: Gateway) -> None:
    """GET /v1/models/{id} answers a model the key may not use exactly as a name the gateway does not
    know: a restricted key learns nothing of the other models (nor of the providers enabled)."""
    key = create_key(zgw, permissions={"models": ["gpt-4o"]})
    with httpx.Client(base_url=zgw.url, headers={"Authorization": f"Bearer {key}"}) as http:
        hidden = http.get("/v1/models/claude-3-5-haiku-latest")
        unknown = http.get("/v1/models/zz-no-such-model")
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["message"].replace("haiku-latest", "X") == \
        unknown.json()["error"]["message"].replace("zz-no-such-model", "claude-3-5-X")
