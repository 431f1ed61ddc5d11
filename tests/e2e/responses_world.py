"""Shared by the Responses API e2e modules: the gateway (the fake OpenAI upstream as a chat-only
provider `fake` and as the Responses-native provider `openai`, the fake Anthropic API as `claude`),
keys, ledger rows and SSE parsing."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import FakeOpenAI

WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def anthropic_fake() -> Iterator[fa.FakeAnthropic]:
    fake = fa.FakeAnthropic().start()
    yield fake
    fake.stop()


def responses_config(openai_fake: FakeOpenAI, anthropic_fake: fa.FakeAnthropic, **server: Any) -> dict[str, Any]:
    price = {"prompt": "0.15", "completion": "0.60"}
    chat = [{"id": m, "deployments": [{"provider": "fake", "model": m}], "pricing": price}
            for m in ("gpt-4o-mini", "fake-tools", "fake-cut-3", "fake-paced-slow", "fake-error-first")]
    native = [{"id": m, "deployments": [{"provider": "openai", "model": m}], "pricing": price}
              for m in ("gpt-native", "native-tools", "native-failed", "native-500")]
    claude = [{"id": m, "deployments": [{"provider": "claude", "model": m}], "max_output_tokens": 1024,
               "pricing": price} for m in ("claude-text", "claude-thinking", "claude-max", "claude-json")]
    timeouts = {"connect": 2, "first_token": 3, "idle": 3, "total": 20}
    return {"server": {"breaker_failure_threshold": 10_000, "ledger_flush_seconds": 0.05, **server},
            "env_providers": False, "models": chat + native + claude, "providers": [
                {"name": "fake", "type": "openai", "base_url": openai_fake.base_url, "api_key": {"$env": "UP_KEY"},
                 "timeouts": timeouts},
                {"name": "openai", "type": "openai", "base_url": openai_fake.base_url, "api_key": {"$env": "UP_KEY"},
                 "timeouts": timeouts},
                {"name": "claude", "type": "anthropic", "base_url": anthropic_fake.url, "api_key": {"$env": "UP_KEY"}}]}


@pytest.fixture(scope="module")
def gw(fake_upstream: FakeOpenAI, anthropic_fake: fa.FakeAnthropic,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("responses"), responses_config(fake_upstream, anthropic_fake),
                      env={"UP_KEY": "upstream-key"}).start()
    yield gateway
    gateway.stop()


def create_key(gw: Gateway, credits: str = "5", permissions: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"name": "responses-test", "credits": credits}
    if permissions is not None:
        body["permissions"] = permissions
    with gw.http() as http:
        resp = http.post("/v1/keys", json=body)
    assert resp.status_code == 201, resp.text
    key = str(resp.json()["key"])
    deadline = time.time() + 10
    while time.time() < deadline:  # the key cache refreshes every second
        with gw.http(key) as http:
            if http.get("/v1/models").status_code == 200:
                return key
        time.sleep(0.1)
    raise AssertionError("the new key never worked")


def ledger_row(gw: Gateway, response_id: str, timeout: float = 5.0) -> sqlite3.Row:
    generation = response_id  # the ledger row has the response's own id
    deadline = time.time() + timeout
    while True:
        with sqlite3.connect(gw.home / "parrotrouter.db") as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM usage WHERE id = ?", (generation,)).fetchone()
        if row is not None or time.time() > deadline:
            assert row is not None, f"no ledger row for {response_id}"
            return row
        time.sleep(0.05)



def sse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert lines["event"] == data["type"]
            events.append(data)
    return events
