"""OpenAI's Responses API through the real gateway, with the official `openai` SDK as the caller:
translated to chat for chat-only upstreams (the fake OpenAI chat API, the fake Anthropic API) and
passed through natively to a provider that speaks Responses (the `openai` provider, here the fake
OpenAI upstream's /v1/responses): create, stream, tools, conversation state across providers,
retrieve, delete, input items, ownership, reasoning, structured output."""

from __future__ import annotations

import openai
import pydantic
import pytest

from tests.conftest import Gateway
from tests.e2e.responses_world import WEATHER, anthropic_fake, create_key, gw, ledger_row
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import ANSWER, FakeOpenAI

__all__ = ["anthropic_fake", "gw"]  # fixtures


# ---------------------------------------------------------------------------- translated and native
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
    with gw.http() as http:  # the generation endpoint finds it by the response's id
        assert http.get("/v1/generation", params={"id": resp.id}).json()["endpoint"] == "responses"


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
