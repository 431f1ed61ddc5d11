"""OpenAI's Responses API through the real gateway, with the official `openai` SDK as the caller:
translated to chat for chat-only upstreams (the fake OpenAI chat API, the fake Anthropic API) and
passed through natively to a provider that speaks Responses (the `openai` provider, here the fake
OpenAI upstream's /v1/responses). Conversation state, ownership, the ledger, hostile input."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import openai
import pydantic
import pytest

from tests.conftest import REPO, Gateway, fresh_pg_database
from tests.fakes import anthropic_upstream as fa
from tests.fakes.azure_upstream import FakeAzure
from tests.fakes.openai_upstream import ANSWER, FakeOpenAI

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


def create_key(gw: Gateway, credits: str = "5") -> str:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "responses-test", "credits": credits})
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
    generation = "chatcmpl-" + response_id.removeprefix("resp_")
    deadline = time.time() + timeout
    while True:
        with sqlite3.connect(gw.home / "parrotrouter.db") as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM usage WHERE id = ?", (generation,)).fetchone()
        if row is not None or time.time() > deadline:
            assert row is not None, f"no ledger row for {response_id}"
            return row
        time.sleep(0.05)


# ---------------------------------------------------------------------------- translated to chat
def test_create_translated(gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    client = gw.client()
    resp = client.responses.create(model="gpt-4o-mini", input="Say hello", instructions="Be brief.",
                                   max_output_tokens=64, temperature=0.5, metadata={"run": "1"})
    assert resp.id.startswith("resp_") and resp.object == "response" and resp.status == "completed"
    assert resp.output_text == ANSWER and resp.model == "gpt-4o-mini"
    assert resp.output[0].type == "message" and resp.output[0].content[0].annotations == []
    assert resp.usage is not None and resp.usage.total_tokens == resp.usage.input_tokens + resp.usage.output_tokens
    assert resp.instructions == "Be brief." and resp.metadata == {"run": "1"} and resp.max_output_tokens == 64
    sent = fake_upstream.last("gpt-4o-mini")
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]
    assert sent["max_completion_tokens"] == 64 and sent["temperature"] == 0.5 and "metadata" not in sent
    row = ledger_row(gw, resp.id)
    assert row["endpoint"] == "responses" and row["prompt_tokens"] == resp.usage.input_tokens
    assert row["completion_tokens"] == resp.usage.output_tokens and row["cost"] > 0 and row["status"] == 200


def test_stream_helper_and_create_stream(gw: Gateway) -> None:
    client = gw.client()
    with client.responses.stream(model="gpt-4o-mini", input="Stream it") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert final.output_text == ANSWER and final.usage is not None and final.usage.output_tokens == 11
    events = list(client.responses.create(model="gpt-4o-mini", input="Stream it", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == ANSWER
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.output_text == ANSWER
    assert ledger_row(gw, completed.response.id)["streamed"] == 1


@pytest.mark.parametrize("model", ["fake-tools", "native-tools"])
def test_function_tool_round_trip(gw: Gateway, fake_upstream: FakeOpenAI, model: str) -> None:
    client = gw.client()
    first = client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.status == "completed"
    assert call.arguments == '{"city": "Paris", "unit": "celsius"}'
    second = client.responses.create(model=model, previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 21}'}])
    assert second.output_text == ANSWER and second.previous_response_id == first.id
    sent = fake_upstream.last(model)
    if model == "fake-tools":  # translated: the call and its output as chat messages
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.call_id
        assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id, "content": '{"temperature": 21}'}
    else:  # native: the stored conversation written out as input items, nothing stored upstream
        assert "previous_response_id" not in sent and sent["store"] is False
        assert [i["type"] for i in sent["input"]] == ["message", "function_call", "function_call_output"]
    with client.responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
    assert final.output[0].type == "function_call" and final.output[0].arguments == call.arguments


def test_native_passthrough(gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    client = gw.client()
    resp = client.responses.create(model="gpt-native", input="Hi", text={"verbosity": "low"}, store=False)
    sent = fake_upstream.last("gpt-native")
    assert sent["input"] == "Hi" and sent["text"] == {"verbosity": "low"} and sent["store"] is False
    assert resp.id.startswith("resp_") and not resp.id.startswith("resp_up") and resp.output_text == ANSWER
    with pytest.raises(openai.BadRequestError):  # store: false keeps nothing
        client.responses.create(model="gpt-native", input="again", previous_response_id=resp.id)
    events = list(client.responses.create(model="gpt-native", input="Hi", stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    assert {e.response.id for e in events if hasattr(e, "response")} == {events[0].response.id}
    assert events[-1].response.output_text == ANSWER
    row = ledger_row(gw, events[-1].response.id)
    assert row["endpoint"] == "responses" and row["provider"] == "openai" and row["completion_tokens"] == 11


def test_conversation_across_providers(gw: Gateway, anthropic_fake: fa.FakeAnthropic) -> None:
    client = gw.client()
    first = client.responses.create(model="gpt-native", input="My name is Ada.")
    second = client.responses.create(model="claude-text", input="What is my name?", previous_response_id=first.id)
    body = anthropic_fake.requests[-1]
    texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"] for m in body["messages"]]
    assert texts == ["My name is Ada.", ANSWER, "What is my name?"]
    third = client.responses.create(model="gpt-4o-mini", input="Thanks", previous_response_id=second.id)
    assert third.output_text == ANSWER
    items = client.responses.input_items.list(second.id)
    assert [i.type for i in items.data] == ["message"] and items.data[0].content[0].text == "What is my name?"


def test_retrieve_delete_and_ownership(gw: Gateway) -> None:
    mine, other = gw.client(create_key(gw)), gw.client(create_key(gw))
    resp = mine.responses.create(model="gpt-4o-mini", input=[
        {"role": "user", "content": "one"}, {"type": "message", "role": "user",
                                             "content": [{"type": "input_text", "text": "two"}]}])
    assert mine.responses.retrieve(resp.id).output_text == ANSWER
    listed = mine.responses.input_items.list(resp.id, order="asc")
    assert [i.content[0].text for i in listed.data] == ["one", "two"]
    assert [i.content[0].text for i in mine.responses.input_items.list(resp.id).data] == ["two", "one"]
    for call in (lambda: other.responses.retrieve(resp.id), lambda: other.responses.input_items.list(resp.id),
                 lambda: other.responses.delete(resp.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    with pytest.raises(openai.BadRequestError):
        other.responses.create(model="gpt-4o-mini", input="hi", previous_response_id=resp.id)
    mine.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        mine.responses.retrieve(resp.id)


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
    ({"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, None),
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


def sse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            data = json.loads(lines["data"])
            assert lines["event"] == data["type"]
            events.append(data)
    return events


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
    elif client == "codex":  # native: the client's body, only the model changed
        assert sent["client_metadata"] == body["client_metadata"] and sent["tools"] == body["tools"]
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


def test_reasoning_of_a_translated_model(gw: Gateway) -> None:
    client = gw.client()
    resp = client.responses.create(model="claude-thinking", input="Think first.", reasoning={"effort": "low"})
    assert [item.type for item in resp.output][:1] == ["reasoning"]
    assert resp.output[0].summary[0].text and resp.output_text
    with client.responses.stream(model="claude-thinking", input="Think first.", reasoning={"effort": "low"}) as s:
        kinds = [event.type for event in s]
        final = s.get_final_response()
    assert kinds.index("response.reasoning_summary_part.added") < kinds.index("response.reasoning_summary_text.delta")
    assert kinds.index("response.reasoning_summary_text.done") < kinds.index("response.output_text.delta")
    assert final.output[0].summary[0].text == resp.output[0].summary[0].text


@pytest.mark.parametrize("stream", [False, True])
def test_thinking_signatures_come_back_to_claude(gw: Gateway, anthropic_fake: fa.FakeAnthropic, stream: bool) -> None:
    """Claude's thinking state rides in the reasoning item's opaque encrypted_content, so the next
    turn (previous_response_id, or a client sending the items back) gives Claude its signature."""
    client = gw.client()
    if stream:
        with client.responses.stream(model="claude-thinking", input="6 x 7?", reasoning={"effort": "low"}) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model="claude-thinking", input="6 x 7?", reasoning={"effort": "low"})
    assert first.output[0].type == "reasoning" and first.output[0].encrypted_content
    client.responses.create(model="claude-thinking", input="And 6 x 8?", previous_response_id=first.id,
                            reasoning={"effort": "low"})
    assistant = anthropic_fake.requests[-1]["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["content"][0] == {"type": "thinking", "thinking": "The user asks for 6 x 7. That is 42.",
                                       "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}


def test_incomplete_at_the_output_limit(gw: Gateway) -> None:
    client = gw.client()
    resp = client.responses.create(model="claude-max", input="Tell a long story.", max_output_tokens=20)
    assert resp.status == "incomplete" and resp.incomplete_details is not None
    assert resp.incomplete_details.reason == "max_output_tokens" and resp.output_text
    events = list(client.responses.create(model="claude-max", input="Tell a long story.", stream=True))
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"
    assert events[-1].response.usage is not None and events[-1].response.usage.output_tokens > 0


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


def test_request_id_is_kept_and_recorded(gw: Gateway) -> None:
    raw = gw.client().responses.with_raw_response.create(model="gpt-4o-mini", input="hi",
                                                        extra_headers={"X-Request-Id": "my-trace-41"})
    assert raw.headers["x-request-id"] == "my-trace-41" and raw.request_id == "my-trace-41"
    assert ledger_row(gw, raw.parse().id)["request_id"] == "my-trace-41"


def test_custom_tool_round_trip_on_a_chat_model(gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    """A freeform tool (as Codex's apply_patch) is a function taking one string for a chat model;
    its call comes back as a custom_tool_call with the raw input."""
    client = gw.client()
    tool = {"type": "custom", "name": "get_weather", "description": "Weather, as free text."}
    first = client.responses.create(model="fake-tools", input="Weather in Paris?", tools=[tool])
    call = first.output[0]
    assert call.type == "custom_tool_call" and call.name == "get_weather"
    assert call.input == '{"city": "Paris", "unit": "celsius"}'  # the model did not wrap it in {"input": ...}
    sent = fake_upstream.last("fake-tools")["tools"][0]["function"]
    assert sent["name"] == "get_weather" and sent["parameters"]["required"] == ["input"]
    second = client.responses.create(model="fake-tools", tools=[tool], previous_response_id=first.id, input=[
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "Sunny"}])
    assert second.output_text == ANSWER
    assert fake_upstream.last("fake-tools")["messages"][-1] == {"role": "tool", "tool_call_id": call.call_id,
                                                                 "content": "Sunny"}
    with client.responses.stream(model="fake-tools", input="Weather?", tools=[tool]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.custom_tool_call_input.done" in kinds and final.output[0].type == "custom_tool_call"


class Person(pydantic.BaseModel):
    name: str
    age: int


def test_structured_output_through_claude(gw: Gateway, anthropic_fake: fa.FakeAnthropic) -> None:
    parsed = gw.client().responses.parse(model="claude-json", input="Who?", text_format=Person)
    assert parsed.output_parsed == Person(name="Ada", age=36)
    schema = anthropic_fake.requests[-1]["output_config"]["format"]["schema"]
    assert schema["required"] == ["name", "age"]  # the SDK's schema of Person, through text.format


def test_models_say_which_speak_responses_natively(gw: Gateway) -> None:
    with gw.http() as http:
        models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert models["gpt-native"]["native_apis"] == ["openai.responses"]
    assert models["gpt-4o-mini"]["native_apis"] == []  # an OpenAI-compatible server: translated
    assert "/v1/responses" in models["gpt-4o-mini"]["endpoints"]
