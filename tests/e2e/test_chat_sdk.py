"""The official openai SDK, sync and async, against the real gateway and a fake upstream."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import Gateway
from tests.fakes.openai_upstream import ANSWER, FakeOpenAI

USER = [{"role": "user", "content": "Say hello"}]


def test_plain_chat(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    resp = gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=USER, temperature=0.7, max_tokens=150)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-") and resp.id != "chatcmpl-upstream"
    assert resp.model == "gpt-4o-mini"
    assert resp.choices[0].message.content == ANSWER
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.completion_tokens == 12
    assert resp.model_extra is not None and resp.model_extra["provider"] == "fake"
    sent = fake_upstream.last("gpt-4o-mini")
    assert sent["temperature"] == 0.7 and sent["max_tokens"] == 150
    assert fake_upstream.headers[-1]["Authorization"] == "Bearer sk-upstream-secret"


def test_ids_are_unique(gateway: Gateway) -> None:
    client = gateway.client()
    ids = {client.chat.completions.create(model="gpt-4o-mini", messages=USER).id for _ in range(5)}
    assert len(ids) == 5


def test_alias_and_provider_prefix_resolve(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    client = gateway.client()
    for name in ("mini", "fake/gpt-4o-mini"):
        resp = client.chat.completions.create(model=name, messages=USER)
        assert resp.model == "gpt-4o-mini"
        assert fake_upstream.last()["model"] == "gpt-4o-mini"


def test_multi_turn_and_unknown_fields_pass_through(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": [{"type": "text", "text": "And again?"}]},
    ]
    gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=messages, extra_body={"vendor_knob": {"x": 1}, "top_k": 5})
    sent = fake_upstream.last("gpt-4o-mini")
    assert sent["messages"] == messages
    assert sent["vendor_knob"] == {"x": 1} and sent["top_k"] == 5


def test_tools_round_trip(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    client = gateway.client()
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    messages: list[dict] = [{"role": "user", "content": "Weather in Paris?"}]
    first = client.chat.completions.create(model="fake-tools", messages=messages, tools=tools)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "call_abc123" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21}'}]
    second = client.chat.completions.create(model="fake-tools", messages=messages, tools=tools)
    assert second.choices[0].message.content == ANSWER
    sent = fake_upstream.last("fake-tools")
    assert sent["messages"][1]["tool_calls"][0]["id"] == "call_abc123"
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": "call_abc123", "content": '{"temp": 21}'}
    assert sent["tools"] == tools


def test_streamed_tool_calls_accumulate(gateway: Gateway) -> None:
    client = gateway.client()
    with client.chat.completions.stream(model="fake-tools", messages=USER, tools=[{
            "type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.id == "call_abc123"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert final.choices[0].finish_reason == "tool_calls"


def test_stream_without_usage(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    chunks = list(gateway.client().chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == ANSWER
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None and c.choices for c in chunks)
    assert len({c.id for c in chunks}) == 1
    # the upstream was asked for usage anyway
    assert fake_upstream.last("gpt-4o-mini")["stream_options"] == {"include_usage": True}


def test_stream_with_usage(gateway: Gateway) -> None:
    chunks = list(gateway.client().chat.completions.create(
        model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == 11 and last.usage.total_tokens == last.usage.prompt_tokens + 11
    assert chunks[-2].choices[0].finish_reason == "stop"


def test_stream_usage_when_upstream_reports_none(gateway: Gateway) -> None:
    chunks = list(gateway.client().chat.completions.create(
        model="fake-no-usage", messages=USER, stream=True, stream_options={"include_usage": True}))
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0


def test_n_two(gateway: Gateway) -> None:
    client = gateway.client()
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=USER, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, n=2, stream=True))
    texts = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: ANSWER, 1: ANSWER}


def test_models_list_and_retrieve(gateway: Gateway) -> None:
    client = gateway.client()
    models = client.models.list()
    ids = [m.id for m in models.data]
    assert "gpt-4o-mini" in ids
    model = client.models.retrieve("gpt-4o-mini")
    assert model.id == "gpt-4o-mini" and model.object == "model"
    extra = model.model_extra or {}
    assert extra["pricing"] == {"prompt": 0.00015, "completion": 0.0006, "unit": "1k_tokens", "source": "config"}
    assert extra["provider"]["id"] == "fake"
    assert extra["context_length"] == 128000 and extra["max_tokens"] == 16384
    assert extra["capabilities"]["vision"] is True
    assert client.models.retrieve("fake/gpt-4o-mini").id == "gpt-4o-mini"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_text_completions_pass_through(gateway: Gateway, fake_upstream: FakeOpenAI) -> None:
    client = gateway.client()
    resp = client.completions.create(model="gpt-4o-mini", prompt="Once upon", max_tokens=5, n=2)
    assert resp.object == "text_completion" and resp.id.startswith("cmpl-")
    assert [c.index for c in resp.choices] == [0, 1]
    assert resp.model == "gpt-4o-mini" and resp.usage is not None
    text = "".join(c.choices[0].text for c in client.completions.create(
        model="gpt-4o-mini", prompt="Once upon", stream=True) if c.choices)
    assert text == "Hello from the"


@pytest.mark.parametrize(("model", "exc", "status"), [
    ("fake-429", openai.RateLimitError, 429),
    ("fake-500", openai.APIStatusError, 502),
    ("fake-503", openai.APIStatusError, 503),
    ("fake-401", openai.APIStatusError, 502),
    ("fake-400-context", openai.BadRequestError, 400),
    ("fake-stall", openai.APIStatusError, 504),
    ("no-such-model", openai.BadRequestError, 400),
])
def test_failures_raise_the_right_sdk_exception(gateway: Gateway, model: str, exc: type, status: int) -> None:
    with pytest.raises(exc) as info:
        gateway.client().chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status
    body = info.value.body
    assert isinstance(body, dict) and body["status"] == status
    assert "sk-upstream" not in str(body) and "cret" not in body["message"]


def test_upstream_429_retry_after_is_passed_on(gateway: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        gateway.client().chat.completions.create(model="fake-429", messages=USER)
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"


def test_context_length_code(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="fake-400-context", messages=USER)
    assert info.value.code == "context_length_exceeded"


def test_unknown_model_points_to_models(gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        gateway.client().chat.completions.create(model="gpt-nonexistent", messages=USER)
    assert info.value.code == "unsupported_model" and info.value.param == "model"
    assert "gpt-nonexistent" in info.value.message and "/v1/models" in info.value.message


@pytest.mark.parametrize("model", ["fake-429", "fake-500", "fake-stall", "fake-401"])
def test_stream_failures_before_first_chunk_are_http_errors(gateway: Gateway, model: str) -> None:
    with pytest.raises(openai.APIStatusError):
        list(gateway.client().chat.completions.create(model=model, messages=USER, stream=True))


@pytest.mark.parametrize("model", ["fake-cut-3", "fake-malformed", "fake-error-in-stream", "fake-stall-after-2"])
def test_stream_failing_midway_ends_with_error_frame(gateway: Gateway, model: str) -> None:
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gateway.client().chat.completions.create(model=model, messages=USER, stream=True):
            received.append(chunk)
    assert received, "some chunks arrive before the failure"
    assert info.value.body is not None
    assert info.value.body["code"] in ("upstream_error", "timeout", "model_overloaded")


async def test_async_client_chat_and_stream(gateway: Gateway) -> None:
    async with gateway.async_client() as client:
        resp = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
        assert resp.choices[0].message.content == ANSWER
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True,
                                                      stream_options={"include_usage": True})
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            usage = chunk.usage or usage
        assert text == ANSWER and usage is not None
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="fake-429", messages=USER)
        models = await client.models.list()
        assert any(m.id == "gpt-4o-mini" for m in models.data)
