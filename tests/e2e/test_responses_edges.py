"""OpenAI's Responses API through the real gateway, at its edges: streams cut by the upstream, the
client or shutdown (each billed), upstream errors, hostile input, the requests real clients send
(captured), the state store on PostgreSQL and in memory, Azure's native Responses API."""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import REPO, Gateway, fresh_pg_database
from tests.e2e.responses_world import anthropic_fake, create_key, gw, ledger_row, responses_config, sse_events
from tests.fakes import anthropic_upstream as fa
from tests.fakes.azure_upstream import FakeAzure
from tests.fakes.openai_upstream import FakeOpenAI

__all__ = ["anthropic_fake", "gw"]  # fixtures


# ---------------------------------------------------------------------------- failures and billing
def test_stream_cut_by_upstream_ends_failed_and_is_billed(gw: Gateway) -> None:
    events = list(gw.client().responses.create(model="fake-cut-3", input="Stream it", stream=True))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None
    row = ledger_row(gw, failed.id)
    assert row["ended_by"] == "upstream" and row["completion_tokens"] >= 3 and Decimal(row["cost"]) > 0


def test_native_stream_failed_mid_way(gw: Gateway) -> None:
    events = list(gw.client().responses.create(model="native-failed", input="Hi", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    row = ledger_row(gw, events[-1].response.id)
    assert row["ended_by"] == "upstream" and row["completion_tokens"] > 0


def test_client_hanging_up_is_billed(gw: Gateway) -> None:
    with httpx.Client(base_url=gw.url, headers={"Authorization": f"Bearer {gw.client().api_key}"}) as http, \
            http.stream("POST", "/v1/responses", json={"model": "fake-paced-slow", "input": "x", "stream": True}) as r:
        seen = ""
        for text in r.iter_text():
            seen += text
            if "response.output_text.delta" in seen:
                break
    rid = seen.split('"id":"', 1)[1].split('"', 1)[0]
    row = ledger_row(gw, rid)
    assert row["ended_by"] == "client" and row["completion_tokens"] >= 1 and row["prompt_tokens"] > 0


def test_error_before_the_stream_is_an_http_error(gw: Gateway) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        list(gw.client().responses.create(model="no-such-model", input="hi", stream=True))
    assert err.value.status_code == 400


HOSTILE: list[tuple[dict[str, Any], str | None]] = [
    ({"model": "gpt-4o-mini", "input": [{"role": "user", "content": "x"}] * 16_385}, "input"),
    ({"model": "gpt-4o-mini", "input": "a\x00b"}, "input[0].content[0].text"),
    ({"model": "gpt-4o-mini", "input": 5}, "input"),
    ({"model": "gpt-4o-mini"}, "input"),
    ({"model": "gpt-4o-mini", "input": [{"type": "message", "role": "user", "content": [{"type": "input_text"}]}]},
     "input[0].content[0].text"),
    ({"model": "gpt-4o-mini", "input": [7]}, "input[0]"),
    ({"model": "gpt-4o-mini", "input": "x", "tools": "all"}, "tools"),
    ({"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]},
     "tools[0]"),
    ({"model": "gpt-4o-mini", "input": "x", "max_output_tokens": -1}, "max_output_tokens"),
    ({"model": "gpt-4o-mini", "input": "x", "temperature": "hot"}, "temperature"),
    ({"model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_nope"}, "previous_response_id"),
    ({"model": "gpt-4o-mini", "input": "x", "previous_response_id": "r" * 5000}, "previous_response_id"),
    ({"model": "gpt-4o-mini", "input": "x", "background": True}, "background"),
    ({"model": "gpt-4o-mini", "input": "x", "conversation": "conv_1"}, "conversation"),
    ({"model": "gpt-4o-mini", "input": "x", "metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"model": "gpt-4o-mini", "input": "x", "include": ["x"] * 33}, "include"),
]


@pytest.mark.parametrize(("body", "param"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_a_4xx(gw: Gateway, body: dict[str, Any], param: str | None) -> None:
    with gw.http() as http:
        resp = http.post("/v1/responses", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and len(error["message"]) < 600


def test_hostile_nesting_and_ids(gw: Gateway) -> None:
    deep = "[" * 5000 + "]" * 5000
    with gw.http() as http:
        resp = http.post("/v1/responses", content=f'{{"model": "gpt-4o-mini", "input": {deep}}}',
                         headers={"Content-Type": "application/json"})
        assert resp.status_code == 400
        for depth in (300, 1000):  # within the JSON parser's limit, beyond what can be stored or sent on
            nested = "[" * depth + "]" * depth
            for body in (f'{{"model": "gpt-native", "input": [{{"type": "mcp_call", "a": {nested}}}]}}',
                         f'{{"model": "gpt-4o-mini", "input": "x", "tools": [{{"type": "function", "name": "f", '
                         f'"parameters": {{"a": {nested}}}}}]}}'):
                resp = http.post("/v1/responses", content=body, headers={"Content-Type": "application/json"})
                assert resp.status_code == 400 and "nested" in resp.json()["error"]["message"]
        assert http.get("/v1/responses/" + "r" * 2_000).status_code == 404
        assert http.get("/v1/responses/resp_%00x").status_code == 404
        assert http.delete("/v1/responses/resp_unknown").status_code == 404
        assert http.get("/v1/responses/resp_unknown/input_items").status_code == 404
        rid = http.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "x"}).json()["id"]
        assert http.get(f"/v1/responses/{rid}/input_items", params={"limit": 0}).status_code == 400
        assert http.get(f"/v1/responses/{rid}/input_items", params={"order": "up"}).status_code == 400


# ---------------------------------------------------------------------------- what real clients send
CLIENTS = REPO / "tests" / "data" / "responses_inbound" / "clients"
CAPTURED = [(name, i) for name in ("codex", "ai_sdk_generate", "ai_sdk_stream_tool", "langchain")
            for i in range(len(json.loads((CLIENTS / f"{name}.json").read_text())))]




@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-native"])
@pytest.mark.parametrize(("client", "turn"), CAPTURED)
def test_captured_client_requests(gw: Gateway, fake_upstream: FakeOpenAI, client: str, turn: int, model: str) -> None:
    body = {**json.loads((CLIENTS / f"{client}.json").read_text())[turn], "model": model}
    with gw.http() as http:
        resp = http.post("/v1/responses", json=body)
    assert resp.status_code == 200, resp.text
    if body.get("stream"):
        events = sse_events(resp.text)
        assert events[-1]["type"] == "response.completed" and events[-1]["response"]["usage"]["total_tokens"] > 0
        final = events[-1]["response"]
    else:
        final = resp.json()
    assert final["status"] == "completed" and final["output"]
    sent = fake_upstream.last(model)
    if client == "codex" and model == "gpt-4o-mini":  # translated: what chat can express of Codex's request
        names = [t["function"]["name"] for t in sent["tools"]]
        assert "exec_command" in names and "multi_agent_v1__spawn_agent" in names and len(names) == 12
        assert [m["role"] for m in sent["messages"][:4]] == ["system", "system", "user", "user"]
        assert "client_metadata" not in sent and "include" not in sent
    elif client == "codex":  # native: the client's body, only the model changed (and no per-call-billed tool)
        assert sent["client_metadata"] == body["client_metadata"]
        assert sent["tools"] == [t for t in body["tools"] if t["type"] != "web_search"] != body["tools"]
        assert sent["input"] == body["input"]


def test_state_on_postgresql(make_gateway: Any, fake_upstream: FakeOpenAI, anthropic_fake: fa.FakeAnthropic) -> None:
    url, drop = fresh_pg_database()
    try:
        gw: Gateway = make_gateway(responses_config(fake_upstream, anthropic_fake, database_url=url),
                                   env={"UP_KEY": "upstream-key"}).start()
        client, other = gw.client(create_key(gw)), gw.client(create_key(gw))
        first = client.responses.create(model="gpt-native", input="My name is Ada.")
        with client.responses.stream(model="claude-text", input="Name?", previous_response_id=first.id) as stream:
            second = stream.get_final_response()
        assert client.responses.retrieve(second.id).previous_response_id == first.id
        assert [i.type for i in client.responses.input_items.list(first.id).data] == ["message"]
        with pytest.raises(openai.NotFoundError):
            other.responses.retrieve(first.id)
        client.responses.delete(first.id)
        with pytest.raises(openai.BadRequestError):  # the conversation lost its start
            client.responses.create(model="gpt-4o-mini", input="x", previous_response_id=second.id)
        gw.stop()
    finally:
        drop()


def test_stateless_mode_keeps_responses_in_memory(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                  anthropic_fake: fa.FakeAnthropic) -> None:
    gw: Gateway = make_gateway(responses_config(fake_upstream, anthropic_fake, accounting=False),
                               env={"UP_KEY": "upstream-key"}).start()
    client = gw.client()
    first = client.responses.create(model="gpt-4o-mini", input="My name is Ada.")
    second = client.responses.create(model="claude-text", input="Name?", previous_response_id=first.id)
    assert client.responses.retrieve(second.id).output_text
    assert [i.content[0].text for i in client.responses.input_items.list(first.id).data] == ["My name is Ada."]


def test_azure_takes_responses_natively(make_gateway: Any) -> None:
    azure = FakeAzure().start()
    try:
        providers = [{"name": "az-v1", "type": "azure", "base_url": azure.url, "api_key": {"$env": "AZ_KEY"},
                      "options": {"surface": "v1"}},
                     {"name": "az-preview", "type": "azure", "base_url": azure.url, "api_key": {"$env": "AZ_KEY"},
                      "options": {"api_version": "2025-04-01-preview"}},
                     {"name": "az-old", "type": "azure", "base_url": azure.url, "api_key": {"$env": "AZ_KEY"},
                      "options": {"api_version": "2024-10-21"}}]
        models = [{"id": name, "deployments": [{"provider": name, "model": "gpt-4o"}]}
                  for name in ("az-v1", "az-preview", "az-old")]
        gw: Gateway = make_gateway({"env_providers": False, "providers": providers, "models": models},
                                   env={"AZ_KEY": "azure-key"}).start()
        client = gw.client()
        for model, path in (("az-v1", "/openai/v1/responses"), ("az-preview", "/openai/responses"),
                            ("az-old", "/openai/deployments/gpt-4o/chat/completions")):
            events = list(client.responses.create(model=model, input="Ahoy", stream=True))
            assert events[-1].type == "response.completed" and events[-1].response.output_text
            assert azure.paths[-1].split("?")[0] == path, model
    finally:
        azure.stop()


@pytest.mark.parametrize("stream", [False, True])
def test_native_upstream_error_is_an_http_error(gw: Gateway, stream: bool) -> None:
    with pytest.raises(openai.APIStatusError) as err:
        list(gw.client().responses.create(model="native-500", input="hi", stream=True)) if stream else \
            gw.client().responses.create(model="native-500", input="hi")
    assert err.value.status_code == 502 and "openai" in err.value.message


def test_a_stream_cut_by_shutdown_ends_failed_and_is_billed(make_gateway: Any, fake_upstream: FakeOpenAI,
                                                          anthropic_fake: fa.FakeAnthropic) -> None:
    gw: Gateway = make_gateway(responses_config(fake_upstream, anthropic_fake, shutdown_timeout=1.5),
                               env={"UP_KEY": "upstream-key"}).start()
    with gw.http() as http, http.stream("POST", "/v1/responses", json={
            "model": "fake-paced-slow", "input": "Count slowly.", "stream": True}) as resp:
        texts = resp.iter_text()
        seen = ""
        for text in texts:
            seen += text
            if "response.output_text.delta" in seen:
                break
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        seen += "".join(texts)
    events = sse_events(seen)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == "service_unavailable"
    assert gw.proc.wait(20) == 0
    row = ledger_row(gw, events[-1]["response"]["id"])
    assert row["ended_by"] == "shutdown" and row["completion_tokens"] >= 1 and row["cost"] > 0

