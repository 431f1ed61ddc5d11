"""Model ids as users write them, per-endpoint models and one model served by several providers,
with zero configuration, over real sockets: fake OpenAI, Azure, Anthropic and Bedrock upstreams,
the official openai SDK as the client.

- a text completion model (`gpt-3.5-turbo-instruct`) is served on /v1/completions and refused,
  naming /v1/completions, on chat, Responses, Messages and count_tokens;
- `claude-3-opus-20240229` (the Anthropic docs' id) reaches Anthropic by that id, billed at
  Claude 3 Opus's table prices; `claude-3-opus` is that model too, not the newest Opus;
- a model two enabled providers serve (OpenAI and Azure; Anthropic and Bedrock) fails over
  from the one that is down to the other, and `X-Provider` pins either.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Gateway
from tests.e2e.test_bedrock_provider import aws_env
from tests.fakes import azure_upstream as fz
from tests.fakes import bedrock_upstream as fb
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]

# Bound but never listening: connecting is refused (a provider that is down).
_DEAD = socket.socket()
_DEAD.bind(("127.0.0.1", 0))
DEAD_URL = f"http://127.0.0.1:{_DEAD.getsockname()[1]}"


@pytest.fixture(scope="module", autouse=True)
def _close_dead_port() -> Iterator[None]:
    yield
    _DEAD.close()


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


def _error(resp: httpx.Response) -> dict[str, Any]:
    err = resp.json()["error"]
    assert isinstance(err, dict)
    return err


# ---------------------------------------------------------------------------- per-endpoint models
def test_completion_model_serves_completions_only(make_gateway: Any, openai_fake: FakeOpenAI) -> None:
    gateway: Gateway = make_gateway(None, env={"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": openai_fake.base_url})
    gateway.start()
    client = gateway.client()
    listed = client.models.retrieve("gpt-3.5-turbo-instruct").model_extra or {}
    assert listed["capabilities"]["chat"] is False and listed["capabilities"]["completion"] is True
    answer = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    assert answer.choices[0].text and answer.model == "gpt-3.5-turbo-instruct"
    assert openai_fake.requests[-1]["model"] == "gpt-3.5-turbo-instruct"
    streamed = list(client.completions.create(model="davinci-002", prompt="x", stream=True))
    assert "".join(c.choices[0].text for c in streamed if c.choices)
    before = len(openai_fake.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-3.5-turbo-instruct", messages=USER)  # type: ignore[arg-type]
    assert info.value.param == "model" and "/v1/completions" in info.value.message
    assert info.value.type == "invalid_request_error"
    with gateway.http() as http:
        for path, body in [
                ("/v1/responses", {"model": "babbage-002", "input": "hi"}),
                ("/v1/messages", {"model": "gpt-3.5-turbo-instruct", "max_tokens": 10, "messages": USER}),
                ("/v1/messages/count_tokens", {"model": "gpt-3.5-turbo-instruct", "messages": USER})]:
            resp = http.post(path, json=body)
            assert resp.status_code == 400, (path, resp.text)
            assert "/v1/completions" in resp.text, (path, resp.text)
    assert len(openai_fake.requests) == before  # nothing went upstream


def test_a_chat_only_model_is_refused_on_completions(make_gateway: Any, openai_fake: FakeOpenAI) -> None:
    config = {"env_providers": False,
              "providers": [{"name": "up", "type": "openai", "base_url": openai_fake.base_url}],
              "models": [{"id": "chatty", "deployments": [{"provider": "up", "model": "gpt-4o-mini"}],
                          "pricing": {"prompt": "1", "completion": "1"},
                          "capabilities": {"chat": True, "completion": False}},
                         {"id": "both-ways", "deployments": [{"provider": "up", "model": "gpt-4o-mini"}],
                          "pricing": {"prompt": "1", "completion": "1"}}]}
    gateway: Gateway = make_gateway(config)
    gateway.start()
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="chatty", prompt="x")
    assert info.value.param == "model" and "/v1/chat/completions" in info.value.message
    # a self-hosted OpenAI-compatible server (a config-file provider) serves completions for its models
    assert client.completions.create(model="both-ways", prompt="x").choices[0].text


# ---------------------------------------------------------------------------- ids as users write them
def test_dated_docs_id_reaches_anthropic_at_claude_3_opus_prices(make_gateway: Any,
                                                                 anthropic_fake: FakeAnthropic) -> None:
    gateway: Gateway = make_gateway(None, env={"ANTHROPIC_API_KEY": "ak", "ANTHROPIC_BASE_URL": anthropic_fake.url})
    gateway.start()
    with gateway.http() as http:
        created = http.post("/v1/keys", json={"name": "names", "credits": "50"})
    assert created.status_code == 201, created.text
    client = gateway.client(created.json()["key"])
    for name in ("claude-3-opus-20240229", "claude-3-opus"):
        answer = client.chat.completions.create(model=name, messages=USER, max_tokens=100)  # type: ignore[arg-type]
        assert anthropic_fake.requests[-1]["model"] == "claude-3-opus-20240229"
        assert answer.model == "claude-3-opus-20240229"
        usage = answer.usage
        assert usage is not None and usage.model_extra is not None
        # Claude 3 Opus: $15 / $75 per million tokens (not a newer Opus's price)
        expected = (Decimal(usage.prompt_tokens) * 15 + Decimal(usage.completion_tokens) * 75) / 1_000_000
        assert Decimal(str(usage.model_extra["cost"])) == expected
    # a dated id the catalog does not list, resolved through the price table: sent as written
    answer = client.chat.completions.create(model="claude-3-7-sonnet-20250219", messages=USER, max_tokens=100)  # type: ignore[arg-type]
    assert anthropic_fake.requests[-1]["model"] == "claude-3-7-sonnet-20250219"
    assert answer.model == "claude-3-7-sonnet-20250219"
    # OpenRouter's spelling of an Anthropic model: Anthropic's own id is sent
    answer = client.chat.completions.create(model="anthropic/claude-sonnet-4.5", messages=USER, max_tokens=100)  # type: ignore[arg-type]
    assert anthropic_fake.requests[-1]["model"] == "claude-sonnet-4-5" and answer.model == "claude-sonnet-4-5"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude-3-opus-19990101-nonsense\x00", messages=USER)  # type: ignore[arg-type]
    assert info.value.code == "unsupported_model"


# ---------------------------------------------------------------------------- one model, many providers
def _served_by(gateway: Gateway, model: str, **kw: Any) -> tuple[str, list[str]]:
    with gateway.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": model, "messages": USER, **kw.pop("body", {})},
                         headers=kw.pop("headers", {}))
    assert resp.status_code == 200, resp.text
    attempts = [a.split(";")[0] for a in resp.headers.get("x-parrotrouter-attempts", "").split(", ") if a]
    return str(resp.json()["provider"]), attempts


def test_openai_and_azure_serve_one_model_with_failover(make_gateway: Any) -> None:
    azure = fz.FakeAzure().start()
    try:
        env = {"OPENAI_API_KEY": "sk-up", "OPENAI_BASE_URL": DEAD_URL + "/v1",
               "AZURE_OPENAI_API_KEY": azure.api_key, "AZURE_OPENAI_ENDPOINT": azure.url,
               "OPENAI_API_VERSION": "2024-10-21", "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o"}
        gateway: Gateway = make_gateway(None, env=env)
        gateway.start()
        listed = [m for m in gateway.client().models.list() if m.id == "gpt-4o"]
        assert len(listed) == 1
        # OpenAI first by the caller's order; it is down: Azure answers
        provider, attempts = _served_by(gateway, "gpt-4o", body={"provider": {"order": ["openai", "azure"]}})
        assert provider == "azure" and len(attempts) == 2, attempts
        assert azure.paths[-1].startswith("/openai/deployments/gpt-4o/chat/completions")
        assert _served_by(gateway, "gpt-4o", headers={"X-Provider": "azure"})[0] == "azure"
        with gateway.http() as http:  # pinned to the provider that is down: no failover to the other
            resp = http.post("/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": USER})
        assert resp.status_code >= 500
    finally:
        azure.stop()


def test_anthropic_and_bedrock_serve_one_model_with_failover(make_gateway: Any, tmp_path: Path) -> None:
    bedrock = fb.FakeBedrock().start()
    try:
        env = aws_env(tmp_path, AWS_REGION=fb.REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME=bedrock.url,
                      ANTHROPIC_API_KEY="ak", ANTHROPIC_BASE_URL=DEAD_URL)
        gateway: Gateway = make_gateway(None, env=env)
        gateway.start()
        model = gateway.client().models.retrieve("claude-sonnet-4-5")
        assert model.owned_by == "anthropic"
        provider, attempts = _served_by(gateway, "claude-sonnet-4-5",
                                        body={"provider": {"order": ["anthropic", "bedrock"]}})
        assert provider == "bedrock" and len(attempts) == 2, attempts
        assert bedrock.models[-1] == "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
        # Bedrock's own ids name its deployment of the model
        for name in ("global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                     "us.anthropic.claude-sonnet-4-5-20250929-v1:0"):
            assert _served_by(gateway, name)[0] == "bedrock"
            assert bedrock.models[-1] == name
    finally:
        bedrock.stop()


# ---------------------------------------------------------------------------- names a client makes up
def test_made_up_names_do_not_grow_metrics_without_bound(make_gateway: Any) -> None:
    """`claude-3-5-sonnet-<a made-up snapshot number>` matches a price-table clause, so it resolves (and is sent to
    Anthropic as written, which refuses it): each made-up name must not become a metrics series of
    its own for ever. Names the catalog lists keep their label; beyond a bound, the others are `other`."""
    from parrotrouter.observe.metrics import MAX_UNLISTED_MODELS

    gateway: Gateway = make_gateway(None, env={"ANTHROPIC_API_KEY": "ak", "ANTHROPIC_BASE_URL": DEAD_URL})
    gateway.start()
    with gateway.http() as http:
        for i in range(MAX_UNLISTED_MODELS + 40):
            made_up = http.post("/v1/chat/completions", json={"model": f"claude-3-5-sonnet-{99000000 + i}",
                                                              "messages": USER},
                                headers={"X-Max-Retries": "0"})
            assert made_up.status_code == 502, made_up.text  # served: the upstream (down) was tried
        listed = http.post("/v1/chat/completions", json={"model": "claude-3-5-haiku-latest", "messages": USER})
        assert listed.status_code == 502, listed.text
        metrics = http.get("/metrics").text
    labels = set(re.findall(r'model="([^"]+)"', metrics))
    assert len({name for name in labels if name.startswith("claude-3-5-sonnet-99")}) <= MAX_UNLISTED_MODELS
    assert "other" in labels and "claude-3-5-haiku-latest" in labels  # listed: its own
