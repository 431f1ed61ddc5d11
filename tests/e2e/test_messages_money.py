"""The Messages API's money edges against the real gateway: what an Anthropic deployment bills for
a native body that the translated chat body does not show (reservations), and native streams cut
midway (billed for the prompt Anthropic reported when the stream started)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Gateway, fake_config
from tests.e2e.test_messages_api import CLAUDE, PRICE, USER, generation, sse_events
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import FakeOpenAI


@pytest.fixture(scope="module")
def claude() -> Iterator[fa.FakeAnthropic]:
    fake = fa.FakeAnthropic().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gw(claude: fa.FakeAnthropic, fake_upstream: FakeOpenAI,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("messages-money")
    config = fake_config(fake_upstream, database_url=f"sqlite:///{home / 'state.db'}", key_refresh_seconds=0.2)
    config["providers"].append({"name": "claude", "type": "anthropic", "base_url": claude.url,
                                "api_key": {"$env": "FAKE_ANTHROPIC_KEY"}})
    config["models"] += [{"id": m, "deployments": [{"provider": "claude", "model": m}], "pricing": PRICE,
                          "max_output_tokens": 8192} for m in CLAUDE]
    gateway = Gateway(home, config, env={"FAKE_UPSTREAM_KEY": "sk-upstream", "FAKE_ANTHROPIC_KEY": "vendor-secret"})
    yield gateway.start()
    gateway.stop()


def test_a_native_stream_cut_after_it_started_is_billed_for_the_prompt_anthropic_reported(gw: Gateway) -> None:
    """message_start carries the prompt's real size (cache reads and writes too); the client hangs
    up before message_stop: the row has those counts, not the gateway's estimate of 'Hi'."""
    with gw.http() as http, http.stream("POST", "/v1/messages", json={
            "model": "claude-paced-long", "max_tokens": 100, "messages": USER, "stream": True}) as resp:
        events = sse_events(resp, limit=5)  # message_start, ping, block start, 2 deltas
    assert events[0]["message"]["usage"]["input_tokens"] == 50_000
    row = generation(gw, events[0]["message"]["id"])
    assert row["ended_by"] == "client", row
    assert row["usage"]["prompt_tokens"] == 90_000, row  # input + cache reads + cache writes
    assert row["usage"]["completion_tokens"] >= 1
