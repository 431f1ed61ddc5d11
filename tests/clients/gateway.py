"""The gateway the client tests talk to: every model served once by an Anthropic-format upstream
(tests/fakes/anthropic_upstream.py) and once by an OpenAI-format one (tests/fakes/openai_upstream.py,
Chat Completions); the agent model also by an upstream that speaks the Responses API natively, as
OpenAI does (tests/clients/recorder.py behind a provider named `openai`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.clients.recorder import Recorder
from tests.conftest import Gateway
from tests.fakes.anthropic_upstream import AGENT_MODEL, FakeAnthropic
from tests.fakes.openai_upstream import FakeOpenAI

# Gateway model id per upstream format: one tool round trip (tests/fakes/agent.py), and plain text.
AGENT = {"anthropic": "claude-agent", "openai": "gpt-agent", "responses": "gpt-agent-native"}
TEXT = {"anthropic": "claude-text", "openai": "gpt-4o-mini"}
# Model ids the clients know, which changes what they send: Codex offers more tools (apply_patch,
# tool_search, web_search), Claude Code asks for 128k output tokens.
CODEX_CATALOG_MODEL = "gpt-5.5"
CODEX_LITE_MODEL = "gpt-6.2-sol"  # Codex sends its tools as an `additional_tools` input item
CLAUDE_CATALOG_MODEL = "claude-opus-5-5"
CUT = {"anthropic": "claude-midstream", "openai": "fake-error-in-stream"}  # streams broken after some text
PRICING = {"prompt": "3", "completion": "15"}


def config(anthropic: FakeAnthropic, openai: FakeOpenAI, responses: Recorder) -> dict[str, Any]:
    def model(model_id: str, provider: str, upstream_model: str) -> dict[str, Any]:
        return {"id": model_id, "deployments": [{"provider": provider, "model": upstream_model}],
                "pricing": PRICING, "context_length": 200_000, "max_output_tokens": 64_000}

    return {"env_providers": False,
            "providers": [{"name": "claude", "type": "anthropic", "base_url": anthropic.url,
                           "api_key": {"$env": "FAKE_KEY"}},
                          {"name": "fake", "type": "openai", "base_url": openai.base_url,
                           "api_key": {"$env": "FAKE_KEY"}},
                          {"name": "openai", "type": "openai", "base_url": responses.url + "/v1",
                           "api_key": {"$env": "FAKE_KEY"}}],
            "models": [model(AGENT["anthropic"], "claude", AGENT_MODEL), model(AGENT["openai"], "fake", "agent"),
                       model(AGENT["responses"], "openai", "agent"), model(CODEX_CATALOG_MODEL, "fake", "agent"),
                       model(CLAUDE_CATALOG_MODEL, "fake", "agent"),
                       model(TEXT["anthropic"], "claude", "claude-text"),
                       model(TEXT["openai"], "fake", "gpt-4o-mini"),
                       model(CUT["anthropic"], "claude", CUT["anthropic"]),
                       model(CUT["openai"], "fake", CUT["openai"])]}


Upstream = FakeAnthropic | FakeOpenAI | Recorder


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, Upstream]]:
    started: dict[str, Upstream] = {"anthropic": FakeAnthropic().start(), "openai": FakeOpenAI().start(),
                                    "responses": Recorder().start()}
    yield started
    for upstream in started.values():
        upstream.stop()


@pytest.fixture(scope="module")
def gw(upstreams: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("clients"), config(**upstreams), env={"FAKE_KEY": "vendor-secret"})
    gateway.start()
    yield gateway
    gateway.stop()


def new_key(gw: Gateway) -> str:
    """A fresh key with credits, so a test can read exactly its own usage."""
    with gw.http() as http:
        created = http.post("/v1/keys", json={"name": "client", "credits": "5"})
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def usage(gw: Gateway, key: str, requests: int, timeout: float = 10) -> dict[str, Any]:
    """The key's usage this hour once the ledger holds `requests` requests (fails if it never does)."""
    deadline = time.time() + timeout
    while True:
        got = httpx.get(gw.url + "/v1/usage/current", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert got.status_code == 200, got.text
        out: dict[str, Any] = got.json()
        if out["requests"] >= requests or time.time() > deadline:
            assert out["requests"] == requests, out
            return out
        time.sleep(0.1)


def received(fake: Upstream, since: int) -> list[dict[str, Any]]:
    """The bodies the fake upstream received from request number `since` on."""
    return fake.requests[since:]
