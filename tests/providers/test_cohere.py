"""The Cohere adapter over a canned transport: request encoding (checked against the cohere
SDK's request types), answer and stream decoding from Cohere's documented examples, error
mapping by status, and hostile-but-valid inputs — no sockets."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from parrotrouter.catalog import Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import FailureKind, InvalidRequest, UpstreamFailure
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.providers.base import ChatCall
from parrotrouter.providers.cohere import PROVIDER, CohereAdapter, CohereStream, to_cohere
from parrotrouter.providers.http import HttpProvider
from parrotrouter.settings import Secret
from parrotrouter.upstream.client import ServerSentEvent
from tests.fakes.cohere_upstream import check_body
from tests.providers.canned import Canned, CannedTransport

DATA = Path(__file__).resolve().parent.parent / "data" / "cohere"
SPEC = ProviderSpec(name="co", type="cohere", display_name="Cohere", base_url="https://co.example/v2",
                    api_key=Secret("co-key"))
MODEL = ModelSpec(id="m", deployments=(Deployment("co", "command-r7b"),), max_output_tokens=None)
USER = [{"role": "user", "content": "hi"}]


def call(**fields: Any) -> ChatCall:
    raw = {"model": "m", "messages": USER, **fields}
    return ChatCall(msgspec.convert(raw, ChatCompletionRequest), raw, MODEL, MODEL.deployments[0])


def body_of(**fields: Any) -> dict[str, Any]:
    c = call(**fields)
    body = to_cohere(c.request, c.raw, c.deployment.upstream_model, None)
    check_body(body)
    return body


def provider(*answers: Canned) -> tuple[HttpProvider, CannedTransport]:
    transport = CannedTransport(*answers)
    spec = dataclasses.replace(SPEC)
    return HttpProvider(spec, CohereAdapter(spec), supports_completions=False, transport=transport), transport


def golden(name: str) -> bytes:
    return (DATA / name).read_bytes()


async def test_request_url_headers_and_minimal_body() -> None:
    prov, transport = provider(Canned(body=golden("chat.json")))
    out = await prov.chat(call())
    sent = transport.sent[0]
    assert sent.url == "https://co.example/v2/chat"  # a base URL ending in /v2 is not doubled
    assert sent.headers["Authorization"] == "Bearer co-key" and not sent.stream
    assert orjson.loads(sent.body) == {"model": "command-r7b-12-2024", "messages": USER}  # the table's dated id
    assert out["choices"][0]["message"]["content"] == "The Art of API Design: Crafting Elegant and Powerful Interfaces"
    assert out["usage"] == {"prompt_tokens": 17, "completion_tokens": 12, "total_tokens": 29,
                            "prompt_tokens_details": {"cached_tokens": 0}}


def test_no_base_url_means_cohere_itself() -> None:
    prov = PROVIDER.build(dataclasses.replace(SPEC, base_url=None))
    assert isinstance(prov, HttpProvider) and prov.spec.base_url == "https://api.cohere.com"
    assert prov.adapter.chat_request(call()).url == "https://api.cohere.com/v2/chat"  # type: ignore[attr-defined]


@pytest.mark.parametrize(("top_p", "p"), [(1.0, 0.99), (0.0, 0.01), (0.5, 0.5)])
def test_top_p_is_held_in_cohere_range(top_p: float, p: float) -> None:
    assert body_of(top_p=top_p)["p"] == p


def test_everything_translated_validates_against_the_sdk() -> None:
    messages = [{"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": [{"type": "text", "text": "Look"},
                                             {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
                {"role": "assistant", "content": None, "reasoning": "Need the weather.",
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "c1", "content": ""},
                {"role": "assistant", "content": "", "refusal": "I can't."},
                {"role": "assistant", "content": ""}]
    body = body_of(messages=messages, tools=[{"type": "function", "function": {"name": "w"}}], max_tokens=9,
                   stop="x", temperature=2.0, seed=-1, reasoning={"max_tokens": 5000}, stream=True)
    assert body["messages"][2] == {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
        "content": [{"type": "thinking", "thinking": "Need the weather."}]}
    assert body["messages"][4] == {"role": "assistant", "content": "I can't."}
    assert len(body["messages"]) == 5  # an empty assistant turn is left out
    assert body["tools"] == [{"type": "function", "function": {"name": "w", "parameters": {
        "type": "object", "properties": {}}}}]
    assert body["thinking"] == {"type": "enabled", "token_budget": 5000} and body["stop_sequences"] == ["x"]


@pytest.mark.parametrize(("fields", "param"), [
    ({"n": 3}, "n"), ({"top_logprobs": 2, "logprobs": True}, "logprobs"),
    ({"messages": [{"role": "function", "name": "f", "content": "1"}]}, "messages[0]"),
    ({"messages": [{"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}]},
     "messages[0].function_call"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {
        "name": "g", "input": "x"}}]}]}, "messages[0].tool_calls"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]}, "messages[0].content"),
    ({"tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": {
        "type": "allowed_tools", "allowed_tools": {"mode": "any", "tools": []}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "w"}}],
      "tool_choice": {"type": "custom", "custom": {"name": "w"}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": {
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"function": "w"}, 5]}}}, "tool_choice"),
    ({"messages": [{"role": "assistant", "content": ""}]}, "messages"),
    ({"reasoning_effort": "high", "reasoning": {"effort": "extreme"}}, "reasoning"),
    ({"reasoning": {"effort": ["high"]}}, "reasoning"),
    ({"tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": {
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": {"x": 1}}}]}}}, "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "w"}}], "tool_choice": {
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": ["w"]}}]}}}, "tool_choice"),
])
def test_refused_inputs(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        body_of(**fields)
    assert info.value.param == param


def _events(raw: bytes) -> list[ServerSentEvent]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line)
        if lines:
            out.append(ServerSentEvent(lines.get("event"), lines["data"]))
    return out


def test_documented_tool_call_stream() -> None:
    stream = CohereStream("co")
    chunks = [c for e in _events(golden("tool_calls.sse")) for c in stream.feed(e)]
    assert stream.done
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == "I will search for the weather in Madrid and Brasilia."
    calls = [t for d in deltas for t in d.get("tool_calls", ())]
    assert calls[0] == {"index": 0, "id": "get_weather_p1t92w7gfgq7", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(t) == {"index", "function"} for t in calls if "id" not in t)
    args = ["".join(t["function"]["arguments"] for t in calls if t["index"] == i) for i in (0, 1)]
    assert [orjson.loads(a) for a in args] == [{"location": "Madrid"}, {"location": "Brasilia"}]
    finish = chunks[-2]["choices"][0]
    assert (finish["finish_reason"], finish["native_finish_reason"]) == ("tool_calls", "TOOL_CALL")
    assert chunks[-1] == {"object": "chat.completion.chunk", "choices": [], "usage": {
        "prompt_tokens": 37, "completion_tokens": 28, "total_tokens": 65,
        "prompt_tokens_details": {"cached_tokens": 0}}}


@pytest.mark.parametrize("reads", [1, 7, 200])
async def test_documented_citation_stream_whatever_the_reads(reads: int) -> None:
    prov, transport = provider(Canned(body=golden("citations.sse"), reads=reads))
    batches = [b async for b in prov.chat_stream(call(stream=True))]
    chunks = [c for b in batches for c in b]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "It is currently 24°C in Madrid and 28°C in Brasilia."
    assert not any("citations" in str(c) for c in chunks)
    assert chunks[-1]["usage"]["prompt_tokens"] == 87
    assert transport.sent[0].headers["Accept"] == "text/event-stream"


def test_answer_decoding_of_documented_bodies() -> None:
    adapter = CohereAdapter(SPEC)
    tools = adapter.chat_response(golden("tool_calls.json"), call())
    message = tools["choices"][0]["message"]
    assert message["content"] == "I will search for the weather in Madrid and Brasilia."
    assert [c["id"] for c in message["tool_calls"]] == ["get_weather_p1t92w7gfgq7", "get_weather_ay6nmvjgp9vn"]
    assert tools["choices"][0]["finish_reason"] == "tool_calls"
    cited = adapter.chat_response(golden("citations.json"), call())
    assert set(cited["choices"][0]["message"]) == {"role", "content", "refusal"}


def test_usage_falls_back_to_tokens_without_billed_units() -> None:
    body = orjson.dumps({"id": "x", "finish_reason": "COMPLETE", "message": {"content": []},
                         "usage": {"tokens": {"input_tokens": 5.0, "output_tokens": 2}, "cached_tokens": 3}})
    out = CohereAdapter(SPEC).chat_response(body, call())
    assert out["usage"]["prompt_tokens"] == 5 and out["usage"]["completion_tokens"] == 2
    assert out["choices"][0]["message"]["content"] == ""


@pytest.mark.parametrize("usage", [None, {}, {"billed_units": {}}, {"tokens": None}, "lots"])
def test_an_answer_without_counts_has_no_usage_so_the_gateway_counts_it(usage: Any) -> None:
    """Zero tokens reported would be free service: no usage at all makes the gateway count."""
    answer: dict[str, Any] = {"id": "x", "finish_reason": "COMPLETE", "message": {"content": [{"type": "text",
                                                                                              "text": "hi"}]}}
    if usage is not None:
        answer["usage"] = usage
    assert "usage" not in CohereAdapter(SPEC).chat_response(orjson.dumps(answer), call())
    end = {"type": "message-end", "delta": {"finish_reason": "COMPLETE", **({"usage": usage} if usage else {})}}
    stream = CohereStream("cohere")
    chunks = stream.feed(ServerSentEvent("message-end", orjson.dumps(end).decode()))
    assert stream.done and [c for c in chunks if "usage" in c] == []


def test_a_streamed_tool_call_start_without_arguments_adds_none() -> None:
    stream = CohereStream("cohere")
    start = {"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {
        "id": "c1", "type": "function", "function": {"name": "f", "arguments": None}}}}}
    [first] = stream.feed(ServerSentEvent("tool-call-start", orjson.dumps(start).decode()))
    assert first["choices"][0]["delta"]["tool_calls"][0]["function"] == {"name": "f", "arguments": ""}


@pytest.mark.parametrize(("status", "kind"), [
    (400, FailureKind.BAD_REQUEST), (401, FailureKind.AUTH), (402, FailureKind.AUTH), (404, FailureKind.NOT_FOUND),
    (422, FailureKind.BAD_REQUEST), (429, FailureKind.RATE_LIMIT), (498, FailureKind.AUTH),
    (499, FailureKind.SERVER_ERROR), (500, FailureKind.SERVER_ERROR), (501, FailureKind.SERVER_ERROR),
    (503, FailureKind.MODEL_OVERLOADED), (504, FailureKind.TIMEOUT), (418, FailureKind.BAD_REQUEST)])
async def test_error_mapping_by_status(status: int, kind: FailureKind) -> None:
    body = orjson.dumps({"id": "e1", "message": "invalid api token co-key-leak"})
    prov, _ = provider(Canned(status=status, body=body, headers={"Retry-After": "3"}))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(call())
    assert info.value.kind is kind and info.value.upstream_status == status
    assert info.value.retry_after == 3
    if kind in (FailureKind.AUTH, FailureKind.NOT_FOUND) or status >= 500:  # not the caller's to read
        assert "co-key-leak" not in info.value.message


async def test_an_error_body_that_is_not_json() -> None:
    prov, _ = provider(Canned(status=502, body=b"<html>bad gateway</html>"))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(call())
    assert info.value.kind is FailureKind.SERVER_ERROR


@pytest.mark.parametrize(("finish", "kind"), [("ERROR", FailureKind.SERVER_ERROR), ("TIMEOUT", FailureKind.TIMEOUT)])
async def test_error_and_timeout_finishes_fail(finish: str, kind: FailureKind) -> None:
    answer = orjson.dumps({"id": "x", "finish_reason": finish, "message": {"content": [{"type": "text", "text": "a"}]}})
    prov, _ = provider(Canned(body=answer))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(call())
    assert info.value.kind is kind
    stream = (b'event: message-start\ndata: {"type":"message-start","id":"x"}\n\n'
              b'event: content-delta\ndata: {"type":"content-delta","index":0,"delta":{"message":{"content":'
              b'{"text":"Hal"}}}}\n\n'
              b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"' + finish.encode() +
              b'","error":"boom on host-9"}}\n\n')
    prov, _ = provider(Canned(body=stream))
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamFailure) as info:
        async for batch in prov.chat_stream(call(stream=True)):
            got += batch
    assert info.value.kind is kind
    assert any(c["choices"][0]["delta"].get("content") == "Hal" for c in got)


@pytest.mark.parametrize("stream", [
    b'data: {"type":"message-start"}\n\ndata: [DONE]\n\n',  # no message-end
    b'data: {"type":"message-start"}\n\ndata: {"type":"tool-call-delta","index":4,"delta":{}}\n\n',
    b'data: {"type":"message-start"}\n\ndata: {"type":"tool-call-start","index":0,"delta":{"message":'
    b'{"tool_calls":{"type":"function"}}}}\n\n',
    b"data: not json\n\n", b"data: [1, 2]\n\n"])
async def test_malformed_streams_are_stream_protocol_failures(stream: bytes) -> None:
    prov, _ = provider(Canned(body=stream))
    with pytest.raises(UpstreamFailure) as info:
        [b async for b in prov.chat_stream(call(stream=True))]
    assert info.value.kind is FailureKind.STREAM_PROTOCOL


async def test_an_error_body_inside_a_stream() -> None:
    prov, _ = provider(Canned(body=b'data: {"type":"message-start"}\n\ndata: {"message":"streaming error"}\n\n'))
    with pytest.raises(UpstreamFailure) as info:
        [b async for b in prov.chat_stream(call(stream=True))]
    assert info.value.kind is FailureKind.SERVER_ERROR


@pytest.mark.parametrize("body", [b"nope", b"[]", b'{"id": "x"}', b'{"message": {"tool_calls": [{"id": 5}]}}'])
async def test_malformed_answers(body: bytes) -> None:
    prov, _ = provider(Canned(body=body))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(call())
    assert info.value.kind is FailureKind.STREAM_PROTOCOL


def test_unknown_and_citation_events_pass_nothing_on() -> None:
    stream = CohereStream("co")
    for kind in ("citation-start", "citation-end", "content-end", "tool-call-end", "debug", "something-new"):
        assert stream.feed(ServerSentEvent(kind, orjson.dumps({"type": kind, "index": 0}).decode())) == []
    assert not stream.done


def test_declaration() -> None:
    assert PROVIDER.name == "cohere" and PROVIDER.endpoints == frozenset({"chat", "embeddings"})
    preset = PROVIDER.presets[0]
    assert preset.key_envs == ("CO_API_KEY", "COHERE_API_KEY") and preset.base_url_env == "CO_API_URL"
    assert ("command-a-03-2025", "command-a") in preset.model_aliases
