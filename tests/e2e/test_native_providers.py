"""Anthropic and Gemini through the gateway: golden wire fixtures served by fake providers over
real HTTP, the official openai SDK as the client, outgoing bodies checked against the vendors'
own SDK types, and streams that rebuild exactly the non-streaming answer."""

from __future__ import annotations

import json
import typing
from collections.abc import Iterator
from typing import Any

import anthropic.types as at
import openai
import pydantic
import pytest
from google.genai import types as gt

from tests.conftest import Gateway
from tests.e2e.answers import both, same_answer
from tests.fakes import anthropic_upstream as fa
from tests.fakes import gemini_upstream as fg

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                    "unit": {"type": ["string", "null"], "enum": ["celsius", "f"]}},
                   "required": ["city"], "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#"}}}
USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[fa.FakeAnthropic, fg.FakeGemini]]:
    a, g = fa.FakeAnthropic().start(), fg.FakeGemini().start()
    yield a, g  # type: ignore[misc]
    a.stop()
    g.stop()


@pytest.fixture(scope="module")
def gw(fakes: tuple[fa.FakeAnthropic, fg.FakeGemini], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    a, g = fakes
    models = [{"id": m, "deployments": [{"provider": "claude", "model": m}], "max_output_tokens": 1024}
              for m in [*fa.SCENARIOS, *fa.ERRORS, "claude-midstream"]]
    models += [{"id": m, "deployments": [{"provider": "gem", "model": m}]}
               for m in [*fg.SCENARIOS, *fg.ERRORS, "gemini-midstream"]]
    config = {"env_providers": False, "providers": [
        {"name": "claude", "type": "anthropic", "base_url": a.url, "api_key": {"$env": "FAKE_KEY"}},
        {"name": "gem", "type": "gemini", "base_url": g.url + "/v1beta", "api_key": {"$env": "FAKE_KEY"}}],
        "models": models}
    gateway = Gateway(tmp_path_factory.mktemp("native"), config, env={"FAKE_KEY": "vendor-secret"}).start()
    yield gateway
    gateway.stop()


# ---------------------------------------------------------------------------- SDK type checks
def check_anthropic_body(body: dict[str, Any]) -> None:
    """The outgoing body is a valid `MessageCreateParams` (no unknown top-level keys either)."""
    allowed = set(typing.get_type_hints(at.message_create_params.MessageCreateParamsNonStreaming)) | {"stream"}
    assert set(body) <= allowed, set(body) - allowed
    pydantic.TypeAdapter(at.MessageCreateParams).validate_python(body)
    for message in body["messages"]:
        pydantic.TypeAdapter(at.MessageParam).validate_python(message)
    for tool in body.get("tools", ()):
        pydantic.TypeAdapter(at.ToolParam).validate_python(tool)


def check_gemini_body(body: dict[str, Any]) -> None:
    """Every part of the body validates against google-genai's types (which forbid unknown fields)."""
    assert set(body) <= {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig"}
    for content in body["contents"]:
        gt.Content.model_validate(content)
    if "systemInstruction" in body:
        gt.Content.model_validate(body["systemInstruction"])
    if "generationConfig" in body:
        gt.GenerationConfig.model_validate(body["generationConfig"])
    for tool in body.get("tools", ()):
        gt.Tool.model_validate(tool)
    if "toolConfig" in body:
        gt.ToolConfig.model_validate(body["toolConfig"])


# ---------------------------------------------------------------------------- Anthropic
def test_anthropic_text_system_and_headers(gw: Gateway, fakes: Any) -> None:
    a, _ = fakes
    messages = [*USER, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again"},
                {"role": "user", "content": [{"type": "text", "text": "and again"}]}]
    plain, final = both(gw, "claude-text", messages=messages, stop=["END"], user="u-1", temperature=0.3)
    same_answer(plain, final)
    assert plain.choices[0].message.content == "Hello! How can I help you today?"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].model_extra["native_finish_reason"] == "end_turn"
    assert plain.usage.prompt_tokens == 12 and plain.usage.completion_tokens == 9
    body = a.requests[-2]
    check_anthropic_body(body)
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]  # same-role turns merged
    assert [b["text"] for b in body["messages"][2]["content"]] == ["Again", "and again"]
    assert body["max_tokens"] == 1024 and body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "u-1"}
    assert "temperature" not in body  # the current Messages API has no sampling temperature
    headers = a.headers[-1]
    assert headers["x-api-key"] == "vendor-secret" and headers["anthropic-version"] == "2023-06-01"


def test_anthropic_images(gw: Gateway, fakes: Any) -> None:
    a, _ = fakes
    gw.client().chat.completions.create(model="claude-text", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    body = a.requests[-1]
    check_anthropic_body(body)
    blocks = body["messages"][0]["content"]
    assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png", "data": PNG.split(",", 1)[1]}
    assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


def test_anthropic_tools_round_trip(gw: Gateway, fakes: Any) -> None:
    a, _ = fakes
    plain, final = both(gw, "claude-tools", messages=USER, tools=[WEATHER], tool_choice="required",
                        parallel_tool_calls=False)
    same_answer(plain, final)
    msg = plain.choices[0].message
    assert plain.choices[0].finish_reason == "tool_calls" and msg.content == "Let me check the weather."
    call = msg.tool_calls[0]
    assert call.id == "toolu_01A09q90qw90lq917835lq9" and json.loads(call.function.arguments) == {
        "city": "Paris", "unit": "celsius"}
    body = a.requests[-1]
    check_anthropic_body(body)
    assert body["tools"][0]["input_schema"]["properties"]["city"] == {"type": "string"}
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    follow = [*USER, msg.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"}]
    gw.client().chat.completions.create(model="claude-text", messages=follow, tools=[WEATHER],
                                        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    body = a.requests[-1]
    check_anthropic_body(body)
    assistant, result = body["messages"][1], body["messages"][2]
    assert assistant["content"][1] == {"type": "tool_use", "id": call.id, "name": "get_weather",
                                       "input": {"city": "Paris", "unit": "celsius"}}
    assert result == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id,
                                                   "content": "21 C, sunny"}]}
    assert body["tool_choice"] == {"type": "tool", "name": "get_weather"}


def test_anthropic_parallel_tools_group_results(gw: Gateway, fakes: Any) -> None:
    a, _ = fakes
    plain, final = both(gw, "claude-parallel", messages=USER, tools=[WEATHER])
    same_answer(plain, final)
    calls = plain.choices[0].message.tool_calls
    assert [c.id for c in calls] == ["toolu_01Paris", "toolu_02Tokyo"]
    follow = [*USER, plain.choices[0].message.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": "toolu_01Paris", "content": "21"},
              {"role": "tool", "tool_call_id": "toolu_02Tokyo", "content": "60"}]
    gw.client().chat.completions.create(model="claude-text", messages=follow, tools=[WEATHER])
    body = a.requests[-1]
    check_anthropic_body(body)
    assert [b["tool_use_id"] for b in body["messages"][2]["content"]] == ["toolu_01Paris", "toolu_02Tokyo"]
    assert len(body["messages"]) == 3


def test_anthropic_thinking_keeps_its_signature(gw: Gateway, fakes: Any) -> None:
    a, _ = fakes
    plain, final = both(gw, "claude-thinking", messages=USER, reasoning_effort="low")
    same_answer(plain, final)
    extra = plain.choices[0].message.model_extra or {}
    assert extra["reasoning"] == "The user asks for 6 x 7. That is 42."
    assert extra["reasoning_details"][0]["signature"] == "EqQBCgIYAhIM1gbcDa9GJwZA"
    body = a.requests[-1]
    check_anthropic_body(body)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048} and body["max_tokens"] > 2048
    follow = [*USER, plain.choices[0].message.model_dump(exclude_none=True), {"role": "user", "content": "Why?"}]
    gw.client().chat.completions.create(model="claude-text", messages=follow)
    sent = a.requests[-1]["messages"][1]["content"][0]
    assert sent == {"type": "thinking", "thinking": "The user asks for 6 x 7. That is 42.",
                    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}


def test_anthropic_json_schema_uses_structured_output(gw: Gateway, fakes: Any) -> None:
    a, _ = fakes
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    plain, final = both(gw, "claude-json", messages=USER,
                        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    same_answer(plain, final)
    assert json.loads(plain.choices[0].message.content) == {"name": "Ada", "age": 36}
    body = a.requests[-1]
    check_anthropic_body(body)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


@pytest.mark.parametrize(("model", "finish", "native"), [
    ("claude-max", "length", "max_tokens"), ("claude-refusal", "content_filter", "refusal"),
    ("claude-stopseq", "stop", "stop_sequence"), ("claude-tools", "tool_calls", "tool_use")])
def test_anthropic_finish_reasons(gw: Gateway, model: str, finish: str, native: str) -> None:
    plain, final = both(gw, model, messages=USER)
    same_answer(plain, final)
    assert plain.choices[0].finish_reason == finish
    assert plain.choices[0].model_extra["native_finish_reason"] == native


def test_anthropic_cache_usage(gw: Gateway) -> None:
    plain = gw.client().chat.completions.create(model="claude-cache", messages=USER)
    assert plain.usage.prompt_tokens == 125 and plain.usage.prompt_tokens_details.cached_tokens == 100
    chunks = list(gw.client().chat.completions.create(model="claude-cache", messages=USER, stream=True,
                                                      stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == 125 and chunks[-1].usage.completion_tokens == 4


@pytest.mark.parametrize(("model", "exc", "status", "code"), [
    ("claude-429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("claude-529", openai.APIStatusError, 503, "model_overloaded"),
    ("claude-401", openai.APIStatusError, 502, "upstream_error"),
    ("claude-400", openai.BadRequestError, 400, "invalid_request"),
    ("claude-500", openai.APIStatusError, 502, "upstream_error")])
def test_anthropic_errors(gw: Gateway, model: str, exc: type, status: int, code: str) -> None:
    with pytest.raises(exc) as info:
        gw.client().chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status and info.value.body["code"] == code
    assert "vendor-secret" not in str(info.value.body)
    if status == 429:
        assert info.value.response.headers["retry-after"] == "13"


def test_anthropic_error_event_mid_stream(gw: Gateway) -> None:
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gw.client().chat.completions.create(model="claude-midstream", messages=USER, stream=True):
            got.append(chunk)
    assert got and info.value.body["code"] == "model_overloaded"


# ---------------------------------------------------------------------------- Gemini
def test_gemini_text_config_and_headers(gw: Gateway, fakes: Any) -> None:
    _, g = fakes
    plain, final = both(gw, "gemini-text", messages=[*USER, {"role": "assistant", "content": "Hi."},
                                                     {"role": "user", "content": "Again"}],
                        temperature=0.4, top_p=0.9, max_tokens=200, stop=["END"], seed=7, presence_penalty=0.5)
    same_answer(plain, final)
    assert plain.choices[0].message.content == "Hello there! How can I help?"
    body = g.requests[-1]
    check_gemini_body(body)
    assert g.paths[-1].endswith(":streamGenerateContent?alt=sse") and g.paths[-2].endswith(":generateContent")
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {"temperature": 0.4, "topP": 0.9, "seed": 7, "presencePenalty": 0.5,
                                        "maxOutputTokens": 200, "stopSequences": ["END"]}
    assert g.headers[-1]["x-goog-api-key"] == "vendor-secret"


def test_gemini_images_n_and_json(gw: Gateway, fakes: Any) -> None:
    _, g = fakes
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "additionalProperties": False}
    plain, final = both(gw, "gemini-json", n=2, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Who?"}, {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}})
    same_answer(plain, final)
    assert [c.index for c in plain.choices] == [0, 1]
    assert json.loads(plain.choices[1].message.content) == {"name": "Ada", "age": 36}
    body = g.requests[-1]
    check_gemini_body(body)
    parts = body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG.split(",", 1)[1]}}
    assert parts[2] == {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/a.png"}}
    config = body["generationConfig"]
    assert config["candidateCount"] == 2 and config["responseMimeType"] == "application/json"
    assert "additionalProperties" not in config["responseSchema"]


def test_gemini_tools_ids_and_thought_signatures(gw: Gateway, fakes: Any) -> None:
    _, g = fakes
    plain, final = both(gw, "gemini-parallel", messages=USER, tools=[WEATHER],
                        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    same_answer(plain, final)  # the same synthesised ids in both
    calls = plain.choices[0].message.tool_calls
    assert plain.choices[0].finish_reason == "tool_calls" and len({c.id for c in calls}) == 2
    assert calls[0].model_extra["extra_content"]["google"]["thought_signature"] == fg.SIGNATURE
    body = g.requests[-1]
    check_gemini_body(body)
    params = body["tools"][0]["functionDeclarations"][0]["parameters"]
    assert "$schema" not in params and "additionalProperties" not in params
    assert params["properties"]["unit"] == {"type": "string", "nullable": True, "enum": ["celsius", "f"]}
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}
    for keep_extra in (True, False):  # clients that drop the signature still get it sent back
        message = plain.choices[0].message.model_dump(exclude_none=True)
        if not keep_extra:
            for call in message["tool_calls"]:
                call.pop("extra_content", None)
        follow = [*USER, message, {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temp": 21}'},
                  {"role": "tool", "tool_call_id": calls[1].id, "content": "sunny"}]
        gw.client().chat.completions.create(model="gemini-text", messages=follow, tools=[WEATHER])
        body = g.requests[-1]
        check_gemini_body(body)
        model_turn, results = body["contents"][1], body["contents"][2]
        assert model_turn["parts"][0]["thoughtSignature"] == fg.SIGNATURE
        assert model_turn["parts"][0]["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}
        assert results["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                                    {"functionResponse": {"name": "get_weather", "response": {"result": "sunny"}}}]


def test_gemini_thoughts_and_usage(gw: Gateway) -> None:
    plain, final = both(gw, "gemini-thinking", messages=USER, reasoning_effort="high")
    same_answer(plain, final)
    assert plain.choices[0].message.content == "6 x 7 = 42."
    assert plain.choices[0].message.model_extra["reasoning"] == "Six times seven is forty-two."
    assert plain.usage.completion_tokens == 33 and plain.usage.completion_tokens_details.reasoning_tokens == 25
    cached = gw.client().chat.completions.create(model="gemini-cache", messages=USER)
    assert cached.usage.prompt_tokens == 120 and cached.usage.prompt_tokens_details.cached_tokens == 100


@pytest.mark.parametrize(("model", "finish", "native"), [
    ("gemini-max", "length", "MAX_TOKENS"), ("gemini-safety", "content_filter", "SAFETY"),
    ("gemini-malformed-call", "stop", "MALFORMED_FUNCTION_CALL")])
def test_gemini_finish_reasons(gw: Gateway, model: str, finish: str, native: str) -> None:
    plain, final = both(gw, model, messages=USER)
    same_answer(plain, final)
    assert plain.choices[0].finish_reason == finish
    assert plain.choices[0].model_extra["native_finish_reason"] == native


@pytest.mark.parametrize(("model", "exc", "status", "code"), [
    ("gemini-429", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("gemini-503", openai.APIStatusError, 503, "model_overloaded"),
    ("gemini-400", openai.BadRequestError, 400, "invalid_request"),
    ("gemini-403", openai.APIStatusError, 502, "upstream_error")])
def test_gemini_errors(gw: Gateway, model: str, exc: type, status: int, code: str) -> None:
    with pytest.raises(exc) as info:
        gw.client().chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status and info.value.body["code"] == code


def test_gemini_error_mid_stream(gw: Gateway) -> None:
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gw.client().chat.completions.create(model="gemini-midstream", messages=USER, stream=True):
            got.append(chunk)
    assert got and info.value.body["code"] == "model_overloaded"


def test_unsupported_features_are_clear_400s(gw: Gateway) -> None:
    client = gw.client()
    for kwargs, param in [({"model": "claude-text", "n": 2}, "n"),
                          ({"model": "claude-text", "logprobs": True}, "logprobs"),
                          ({"model": "gemini-text", "logprobs": True}, "logprobs")]:
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(messages=USER, **kwargs)
        assert info.value.param == param
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="claude-text", prompt="x")


def test_zero_config_from_environment(make_gateway: Any, fakes: Any) -> None:
    a, g = fakes
    gateway: Gateway = make_gateway(None, env={"ANTHROPIC_API_KEY": "ak", "ANTHROPIC_BASE_URL": a.url,
                                               "GEMINI_API_KEY": "gk", "GEMINI_BASE_URL": g.url + "/v1beta"})
    gateway.start()
    client = gateway.client()
    ids = {m.id for m in client.models.list()}
    assert {"claude-3-5-haiku-latest", "claude-sonnet-4-5", "gemini-2.5-pro"} <= ids
    assert "gemini-2.0-flash" not in ids  # retired (the price table's deprecation): listed on request only
    assert "gemini-2.0-flash" in {m.id for m in client.models.list(extra_query={"include_retired": "true"})}
    before = len(a.requests)
    for name in ("claude-3-opus", "gemini-pro", "anthropic/claude-sonnet-4-5", "gemini/gemini-2.0-flash"):
        resp = client.chat.completions.create(model=name, messages=USER)
        assert resp.choices[0].message.content
    assert a.headers[-1]["x-api-key"] == "ak" and g.headers[-1]["x-goog-api-key"] == "gk"
    # a fixed alias: `claude-3-opus` is Claude 3 Opus (sent upstream by its dated id), not the newest Opus
    assert a.requests[before]["model"] == "claude-3-opus-20240229"
    opus = client.models.retrieve("claude-3-opus")
    extra = opus.model_extra or {}
    assert opus.id == "claude-3-opus-20240229" and "claude-3-opus" in extra["aliases"]
    assert extra["pricing"]["prompt"] == 0.015
