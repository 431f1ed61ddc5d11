"""Cohere v2 Chat through the gateway: golden wire fixtures from Cohere's documentation served by
a fake Cohere over real HTTP, the official openai SDK as the client, every outgoing body checked
against the official cohere SDK's request types, streams that rebuild exactly the non-streaming
answer, errors, usage in the ledger, and zero-config from the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.e2e.answers import both, same_answer
from tests.fakes import cohere_upstream as fc

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "gets the weather of a given location",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
USER = [{"role": "system", "content": "You respond concisely."}, {"role": "user", "content": "Hi"}]
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def fake() -> Iterator[fc.FakeCohere]:
    server = fc.FakeCohere().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(fake: fc.FakeCohere, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    names = [*fc.GOLDEN, *fc.SCENARIOS, *fc.ERRORS, "command-a-03-2025"]
    models = [{"id": m, "deployments": [{"provider": "cohere", "model": m}], "max_output_tokens": 1024} for m in names]
    config = {"env_providers": False, "server": {"breaker_failure_threshold": 10_000},
              "providers": [{"name": "cohere", "type": "cohere", "base_url": fake.url,
                             "api_key": {"$env": "FAKE_KEY"}}],
              "models": models}
    gateway = Gateway(tmp_path_factory.mktemp("cohere"), config, env={"FAKE_KEY": "co-secret"}).start()
    yield gateway
    gateway.stop()


def sent(fake: fc.FakeCohere, back: int = 1) -> dict[str, Any]:
    body = fake.requests[-back]
    fc.check_body(body)
    return body


def test_text_parameters_and_headers(gw: Gateway, fake: fc.FakeCohere) -> None:
    messages = [*USER, {"role": "assistant", "content": "Hello."}, {"role": "developer", "content": "Be kind."},
                {"role": "user", "content": [{"type": "text", "text": "Again"}]}]
    plain, final = both(gw, "command-text", messages=messages, stop=["END"], temperature=0.3, top_p=1.0, seed=7,
                        frequency_penalty=0.5, presence_penalty=0.25, user="u-1", extra_body={"top_k": 40})
    same_answer(plain, final, reasoning=True)
    assert plain.choices[0].message.content == "The Art of API Design: Crafting Elegant and Powerful Interfaces"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].model_extra["native_finish_reason"] == "COMPLETE"
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (17, 12)  # billed_units, not tokens
    for back in (2, 1):
        body = sent(fake, back)
        assert body["messages"] == [
            {"role": "system", "content": "You respond concisely."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "system", "content": "Be kind."},
            {"role": "user", "content": [{"type": "text", "text": "Again"}]}]
        assert body["stop_sequences"] == ["END"] and body["max_tokens"] == 1024 and body["seed"] == 7
        assert body["temperature"] == 0.3 and body["p"] == 0.99 and body["k"] == 40  # p held in Cohere's range
        assert body["frequency_penalty"] == 0.5 and body["presence_penalty"] == 0.25
        assert "user" not in body and fake.paths[-back] == "/v2/chat"
        assert fake.headers[-back]["Authorization"] == "Bearer co-secret"
    assert fake.requests[-1]["stream"] is True and "stream" not in fake.requests[-2]
    assert fake.headers[-1]["Accept"] == "text/event-stream"


def test_images_by_data_and_web_url(gw: Gateway, fake: fc.FakeCohere) -> None:
    gw.client().chat.completions.create(model="command-text", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}], max_tokens=50)
    body = sent(fake)
    assert body["messages"][0]["content"][1:] == [
        {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    assert body["max_tokens"] == 50


def test_documented_tool_calls_and_their_results(gw: Gateway, fake: fc.FakeCohere) -> None:
    question = [{"role": "user", "content": "What's the weather in Madrid and Brasilia?"}]
    plain, final = both(gw, "command-tools", messages=question, tools=[WEATHER, TIME], tool_choice="required")
    same_answer(plain, final, reasoning=True)  # the documented stream rebuilds the documented answer
    choice = plain.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.model_extra["native_finish_reason"] == "TOOL_CALL"
    assert choice.message.content == "I will search for the weather in Madrid and Brasilia."  # the tool plan
    calls = choice.message.tool_calls
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather_p1t92w7gfgq7", {"location": "Madrid"}), ("get_weather_ay6nmvjgp9vn", {"location": "Brasilia"})]
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (37, 28)
    body = sent(fake)
    assert body["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": "gets the weather of a given location",
        "parameters": WEATHER["function"]["parameters"]}}  # type: ignore[index]
    assert body["tool_choice"] == "REQUIRED" and len(body["tools"]) == 2
    follow = [*question, choice.message.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temperature": {"madrid": "24°C"}}'},
              {"role": "tool", "tool_call_id": calls[1].id, "content": [{"type": "text", "text": "28°C"}]}]
    gw.client().chat.completions.create(model="command-citations", messages=follow, tools=[WEATHER, TIME],
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    body = sent(fake)
    assert body["messages"][1] == {"role": "assistant", "tool_plan": choice.message.content, "tool_calls": [
        {"id": c.id, "type": "function", "function": {"name": "get_weather", "arguments": json.dumps(
            json.loads(c.function.arguments), separators=(",", ":"))}} for c in calls]}
    assert body["messages"][2:] == [
        {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temperature": {"madrid": "24°C"}}'},
        {"role": "tool", "tool_call_id": calls[1].id, "content": "28°C"}]
    # a named tool choice: only that tool is offered, and the model must call one
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"] and body["tool_choice"] == "REQUIRED"


def test_allowed_tools_and_none(gw: Gateway, fake: fc.FakeCohere) -> None:
    client = gw.client()
    client.chat.completions.create(model="command-text", messages=USER, tools=[WEATHER, TIME], tool_choice={
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": "get_time"}}]}})
    body = sent(fake)
    assert [t["function"]["name"] for t in body["tools"]] == ["get_time"] and "tool_choice" not in body
    client.chat.completions.create(model="command-text", messages=USER, tools=[
        {**WEATHER, "function": {**WEATHER["function"], "strict": True}}], tool_choice="none")  # type: ignore[dict-item]
    body = sent(fake)
    assert body["tool_choice"] == "NONE" and body["strict_tools"] is True


def test_documented_citations_are_dropped(gw: Gateway) -> None:
    plain, final = both(gw, "command-citations", messages=USER)
    same_answer(plain, final, reasoning=True)
    message = plain.choices[0].message
    assert message.content == "It is currently 24°C in Madrid and 28°C in Brasilia."
    assert "citations" not in (message.model_extra or {}) and not getattr(message, "annotations", None)
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens) == (87, 19)


def test_plan_and_text_with_a_call(gw: Gateway) -> None:
    plain, final = both(gw, "command-plan-text", messages=USER, tools=[WEATHER])
    same_answer(plain, final, reasoning=True)
    assert plain.choices[0].message.content == "I will look it up. Found nothing to call."
    assert plain.choices[0].message.tool_calls[0].function.arguments == "{}"


def test_thinking(gw: Gateway, fake: fc.FakeCohere) -> None:
    plain, final = both(gw, "command-thinking", messages=USER, reasoning_effort="low")
    same_answer(plain, final, reasoning=True)
    assert plain.choices[0].message.content == "6 x 7 = 42."
    assert plain.choices[0].message.model_extra["reasoning"] == "Six times seven is 42."
    assert sent(fake)["thinking"] == {"type": "enabled", "token_budget": 2048}
    follow = [*USER, plain.choices[0].message.model_dump(exclude_none=True), {"role": "user", "content": "Why?"}]
    gw.client().chat.completions.create(model="command-text", messages=follow, reasoning_effort="none")
    body = sent(fake)
    assert body["thinking"] == {"type": "disabled"}
    assert body["messages"][2]["content"] == [{"type": "thinking", "thinking": "Six times seven is 42."},
                                              {"type": "text", "text": "6 x 7 = 42."}]


def test_json_schema_and_json_object(gw: Gateway, fake: fc.FakeCohere) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    plain, final = both(gw, "command-json", messages=USER,
                        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    same_answer(plain, final, reasoning=True)
    assert json.loads(plain.choices[0].message.content) == {"name": "Ada", "age": 36}
    assert sent(fake)["response_format"] == {"type": "json_object", "json_schema": schema}
    gw.client().chat.completions.create(model="command-json", messages=USER, response_format={"type": "json_object"})
    assert sent(fake)["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(("model", "finish", "native"), [
    ("command-max", "length", "MAX_TOKENS"), ("command-stopseq", "stop", "STOP_SEQUENCE"),
    ("command-tools", "tool_calls", "TOOL_CALL"), ("command-text", "stop", "COMPLETE")])
def test_finish_reasons(gw: Gateway, model: str, finish: str, native: str) -> None:
    plain, final = both(gw, model, messages=USER)
    same_answer(plain, final, reasoning=True)
    assert plain.choices[0].finish_reason == finish
    assert plain.choices[0].model_extra["native_finish_reason"] == native


@pytest.mark.parametrize(("model", "status", "code"), [("command-error-finish", 502, "upstream_error"),
                                                       ("command-timeout-finish", 504, "timeout")])
def test_an_unfinished_generation_is_a_failure(gw: Gateway, model: str, status: int, code: str) -> None:
    client = gw.client()
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status and info.value.body["code"] == code
    got = []
    with pytest.raises(openai.APIError) as mid:  # streamed: the text so far, then the error frame
        for chunk in client.chat.completions.create(model=model, messages=USER, stream=True):
            got.append(chunk)
    assert "".join(c.choices[0].delta.content or "" for c in got if c.choices)
    assert mid.value.body["code"] == code and "gpu-17" not in json.dumps(mid.value.body)


@pytest.mark.parametrize(("model", "exc", "status", "code"), [
    ("command-400", openai.BadRequestError, 400, "invalid_request"),
    ("command-422", openai.BadRequestError, 400, "invalid_request"),
    ("command-401", openai.APIStatusError, 502, "upstream_error"),
    ("command-402", openai.APIStatusError, 502, "upstream_error"),
    ("command-498", openai.APIStatusError, 502, "upstream_error"),
    ("command-404", openai.APIStatusError, 502, "upstream_error"),
    ("command-429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("command-499", openai.APIStatusError, 502, "upstream_error"),
    ("command-500", openai.APIStatusError, 502, "upstream_error"),
    ("command-503", openai.APIStatusError, 503, "model_overloaded")])
def test_errors(gw: Gateway, model: str, exc: type, status: int, code: str) -> None:
    for stream in (False, True):
        with pytest.raises(exc) as info:
            list(gw.client().chat.completions.create(model=model, messages=USER, stream=True)) if stream else \
                gw.client().chat.completions.create(model=model, messages=USER)
        assert info.value.status_code == status and info.value.body["code"] == code
        text = json.dumps(info.value.body)
        assert "co-secret" not in text and "secret-host" not in text and "dashboard" not in text
    if status == 400:
        assert "invalid request" in info.value.body["message"]  # the caller's own mistake is explained
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"n": 2}, "n"), ({"logprobs": True}, "logprobs"), ({"logit_bias": {"12": 5}}, "logit_bias"),
    ({"presence_penalty": -0.5}, "presence_penalty"), ({"frequency_penalty": 1.5}, "frequency_penalty"),
    ({"extra_body": {"top_k": 501}}, "top_k"), ({"extra_body": {"top_k": "40"}}, "top_k"),
    ({"tools": [WEATHER], "parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"tools": [WEATHER], "response_format": {"type": "json_object"}}, "response_format"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [{"type": "custom", "custom": {"name": "grammar"}}]}, "tools[0]"),
    ({"functions": [{"name": "f", "parameters": {}}]}, "functions"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {
        "data": "AAAA", "format": "wav"}}]}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,!!!notbase64"}}]}]}, "messages"),
    ({"messages": [*USER, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "f", "arguments": "{not json"}}]}]}, "messages"),
])
def test_unsupported_features_are_400s_naming_the_param(gw: Gateway, fake: fc.FakeCohere, kwargs: dict[str, Any],
                                                          param: str) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as info:
        gw.client().chat.completions.create(model="command-text", **{"messages": USER, **kwargs})
    assert info.value.param == param
    assert len(fake.requests) == before  # refused before anything was sent


def test_no_text_completions(gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError):
        gw.client().completions.create(model="command-text", prompt="x")


def test_usage_is_billed_from_billed_units(gw: Gateway, fake: fc.FakeCohere) -> None:
    client = gw.client()
    resp = client.chat.completions.create(model="command-a-03-2025", messages=USER)
    assert fake.requests[-1]["model"] == "command-a-03-2025"
    with gw.http() as http:
        generation = http.get("/v1/generation", params={"id": resp.id}).json()
    assert generation["provider"] == "cohere" and generation["usage"]["prompt_tokens"] == 17
    assert generation["usage"]["completion_tokens"] == 12
    # Command A at genai-prices' Cohere table: $2.50 / $10 per million tokens
    assert Decimal(str(generation["cost"])) == (17 * Decimal("2.5") + 12 * Decimal(10)) / 10**6
    chunks = list(client.chat.completions.create(model="command-cached", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (40, 3)  # not the raw 1200 / 3 tokens
    details = usage.prompt_tokens_details  # Cohere bills no cache hits apart: nothing is cached
    assert details is None or not details.cached_tokens


@pytest.mark.parametrize("key_env", ["CO_API_KEY", "COHERE_API_KEY"])
def test_zero_config_from_environment(make_gateway: Any, fake: fc.FakeCohere, key_env: str) -> None:
    gateway: Gateway = make_gateway(None, env={key_env: "ck-" + key_env, "CO_API_URL": fake.url})
    gateway.start()
    client = gateway.client()
    models = {m.id: m for m in client.models.list()}
    ids = set(models)
    assert {"command-a", "command-r", "command-r-plus", "command-r7b"} <= ids
    assert not any(i.startswith(("command-light", "c4ai")) for i in ids)
    embedders = [m.model_extra or {} for i, m in models.items() if i.startswith("embed")]
    assert embedders and all(e["capabilities"]["embeddings"] and not e["capabilities"]["chat"]
                             and e["endpoints"] == ["/v1/embeddings"] for e in embedders)
    for name, upstream in [("command-a", "command-a-03-2025"), ("command-r7b-12-2024", "command-r7b-12-2024"),
                           ("cohere/command-r-plus", "command-r-plus-08-2024")]:
        resp = client.chat.completions.create(model=name, messages=USER)
        assert resp.choices[0].message.content and resp.usage.prompt_tokens == 17
        assert fake.requests[-1]["model"] == upstream
        fc.check_body(fake.requests[-1])
    assert fake.headers[-1]["Authorization"] == "Bearer ck-" + key_env
    command_a = client.models.retrieve("command-a")
    assert (command_a.model_extra or {})["pricing"]["prompt"] > 0
