"""Canonical answers and streams to Anthropic's wire format: golden fixtures, every event checked
against the anthropic SDK's own types, streams rebuilt by the SDK's accumulator into exactly the
message the JSON answer gives, native events relayed byte for byte, and the one error mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic.types as at
import orjson
import pydantic
import pytest
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event

from parrotrouter.api.messages.encode import anthropic_error, to_message
from parrotrouter.api.messages.stream import MessageStream
from parrotrouter.errors import (
    FailureKind,
    InsufficientCredits,
    InternalServerError,
    InvalidApiKey,
    InvalidRequest,
    ModelOverloaded,
    NoRoute,
    ParrotError,
    PermissionDenied,
    RateLimitExceeded,
    RequestTooLarge,
    ServiceUnavailable,
    UnsupportedModel,
    UpstreamFailure,
    UpstreamTimeout,
)
from parrotrouter.providers.anthropic.provider import NativeStream
from parrotrouter.serving.core import Done, Failed, Frames
from parrotrouter.upstream.client import SSEParser
from tests.fakes import anthropic_upstream as fa

DATA = Path(__file__).resolve().parents[2] / "data" / "anthropic_inbound"
ANSWERS = sorted((DATA / "answers").glob("*.chat.json"))
EVENT = pydantic.TypeAdapter(at.RawMessageStreamEvent)


def parse_sse(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each event, checking the framing Anthropic uses."""
    out = []
    for frame in data.decode().split("\n\n"):
        if not frame:
            continue
        name, body = frame.split("\n")
        assert name.startswith("event: ") and body.startswith("data: ")
        payload = json.loads(body[6:])
        assert payload["type"] == name[7:]
        out.append((name[7:], payload))
    return out


def accumulate(events: list[tuple[str, dict[str, Any]]], strict: bool = True) -> at.Message:
    """The message the anthropic SDK builds from these events (`messages.stream(...)`). `strict`:
    each event must validate against the SDK's types (the SDK itself only constructs them, so
    Anthropic's own thinking block starts, which lack the signature the type requires, pass)."""
    snapshot = None
    bufs: dict[int, bytes] = {}
    for name, payload in events:
        if name in ("ping", "error"):
            continue
        event = EVENT.validate_python(payload) if strict else construct_type(type_=at.RawMessageStreamEvent,
                                                                             value=payload)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    assert snapshot is not None
    return snapshot


@pytest.mark.parametrize("path", ANSWERS, ids=lambda p: p.name.split(".")[0])
def test_golden_answers(path: Path) -> None:
    message = to_message(json.loads(path.read_text()))
    assert message == json.loads(Path(str(path).replace(".chat.json", ".message.json")).read_text())
    at.Message.model_validate(message)


def run(stream: MessageStream, batches: list[list[dict[str, Any]]], usage: dict[str, Any] | None) -> bytes:
    return b"".join([stream.encode(Frames(batch)) for batch in batches]) + stream.encode(Done(usage))


def test_translated_stream_golden_and_rebuilt_by_the_sdk() -> None:
    fixture = json.loads((DATA / "streams" / "translated.chunks.json").read_text())
    stream = MessageStream(fixture["id"], fixture["model"], native=False, cost=lambda: orjson.Fragment(b"0"))
    data = run(stream, fixture["batches"], fixture["usage"])
    assert data.decode() == (DATA / "streams" / "translated.sse").read_text()
    events = parse_sse(data)
    assert [name for name, _ in events][:2] == ["message_start", "ping"]
    assert [name for name, _ in events][-2:] == ["message_delta", "message_stop"]
    rebuilt = accumulate(events).model_dump(exclude_none=True)
    answer = to_message(json.loads((DATA / "answers" / "translated.chat.json").read_text()))
    assert rebuilt == at.Message.model_validate(answer).model_dump(exclude_none=True)


@pytest.mark.parametrize("model", ["claude-text", "claude-tools", "claude-thinking", "claude-parallel", "claude-cache"])
def test_native_events_are_relayed_as_anthropic_sent_them(model: str) -> None:
    """The provider's translator (what the core bills) carries each upstream event; the encoder
    writes them back unchanged but for our id and model name, and the cost in message_delta's
    usage (an extra field, which the SDK keeps)."""
    parser, translator = SSEParser(), NativeStream("claude")
    upstream = b"".join(fa.events(model))
    batches = [translator.feed(event) for event in parser.feed(upstream)]
    assert translator.done
    stream = MessageStream("msg_ours", "public-model", native=True, cost=lambda: orjson.Fragment(b"0.000123"))
    out = run(stream, batches, None)
    sent = parse_sse(upstream)
    relayed = parse_sse(out)
    sent[0][1]["message"].update(id="msg_ours", model="public-model")
    delta = next(data for kind, data in sent if kind == "message_delta")
    delta["usage"]["cost"] = 0.000123
    assert relayed == sent
    # the message_delta chunk carries the final usage, so the core knows the cost before relaying it
    counted = next(b[0]["usage"] for b in batches if b and b[0].get("native", [{}])[0].get("type") == "message_delta")
    assert counted["completion_tokens"] == fa.message(model)["usage"]["output_tokens"]
    rebuilt = accumulate(relayed, strict=False)
    assert [b.model_dump(exclude={"parsed_output"}, exclude_none=True) for b in rebuilt.content] == [
        b.model_dump(exclude_none=True) for b in at.Message.model_validate(fa.message(model)).content]
    usage = fa.message(model)["usage"]
    assert (rebuilt.usage.cache_read_input_tokens, rebuilt.usage.cache_creation_input_tokens) == (
        usage["cache_read_input_tokens"], usage["cache_creation_input_tokens"])


def test_a_stream_failing_after_it_started_ends_with_an_error_event() -> None:
    stream = MessageStream("msg_1", "m", native=False, cost=lambda: orjson.Fragment(b"0"))
    frames = stream.encode(Frames([{"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}]))
    err = UpstreamFailure("The provider failed mid-stream.", kind=FailureKind.MODEL_OVERLOADED).to_client_error()
    frame = {"id": "msg_1", "choices": [{"index": 0, "finish_reason": "error", "delta": {}}], **err.envelope()}
    events = parse_sse(frames + stream.encode(Failed(frame)))
    assert [name for name, _ in events] == ["message_start", "ping", "content_block_start", "content_block_delta",
                                            "error"]
    assert events[-1][1] == {"type": "error", "error": {"type": "overloaded_error",
                                                        "message": "The provider failed mid-stream."}}
    assert parse_sse(stream.shutdown(ServiceUnavailable("The server is shutting down.").envelope()))[0][1][
        "error"]["type"] == "overloaded_error"


def test_an_empty_translated_stream_is_still_a_whole_message() -> None:
    events = parse_sse(run(MessageStream("msg_1", "m", native=False, cost=lambda: orjson.Fragment(b"0")), [], None))
    assert [name for name, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert accumulate(events).stop_reason == "end_turn"


@pytest.mark.parametrize(("err", "status", "kind"), [
    (InvalidRequest("bad"), 400, "invalid_request_error"),
    (InvalidApiKey("bad key"), 401, "authentication_error"),
    (InsufficientCredits("no money"), 402, "billing_error"),
    (PermissionDenied("no"), 403, "permission_error"),
    (NoRoute("none"), 404, "not_found_error"),
    (UnsupportedModel("unknown model"), 404, "not_found_error"),
    (RequestTooLarge("big"), 413, "request_too_large"),
    (RateLimitExceeded("slow down"), 429, "rate_limit_error"),
    (UpstreamFailure("429 upstream", kind=FailureKind.RATE_LIMIT), 429, "rate_limit_error"),
    (InternalServerError("oops"), 500, "api_error"),
    (UpstreamFailure("upstream failed"), 502, "api_error"),
    (ServiceUnavailable("shutting down"), 503, "overloaded_error"),
    (ModelOverloaded("busy"), 529, "overloaded_error"),
    (UpstreamFailure("busy upstream", kind=FailureKind.MODEL_OVERLOADED), 529, "overloaded_error"),
    (UpstreamTimeout("slow upstream"), 504, "timeout_error"),
])
def test_one_error_mapping(err: ParrotError, status: int, kind: str) -> None:
    assert anthropic_error(err) == (status, {"type": "error", "error": {"type": kind, "message": err.message}})


def test_reasoning_details_of_translating_providers_become_signed_thinking() -> None:
    """Bedrock's and Gemini's translations carry thinking signatures in `reasoning_details`: the
    client gets them back as `signature_delta` and `redacted_thinking`, so it can send them again."""
    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    stream = MessageStream("msg_1", "m", native=False, cost=lambda: orjson.Fragment(b"0"))
    detail = {"index": 0, "type": "reasoning.text", "format": "anthropic-claude-v1"}
    batches = [[chunk({"reasoning": "Think", "reasoning_details": [{**detail, "text": "Think"}]})],
               [chunk({"reasoning_details": [{**detail, "signature": "c2ln"}]})],
               [chunk({"reasoning_details": [{"index": 1, "type": "reasoning.encrypted", "data": "ZW5j"}]})],
               [chunk({"content": "Done."}, "stop")]]
    message = accumulate(parse_sse(run(stream, batches, None)))
    assert [b.model_dump(exclude_none=True, exclude={"parsed_output"}) for b in message.content] == [
        {"type": "thinking", "thinking": "Think", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "ZW5j"}, {"type": "text", "text": "Done."}]
    answer = {"id": "msg_1", "model": "m", "choices": [{"finish_reason": "stop", "message": {
        "content": "Done.", "reasoning": "Think", "reasoning_details": [
            {**detail, "text": "Think", "signature": "c2ln"}, {"type": "reasoning.encrypted", "data": "ZW5j"}]}}]}
    assert to_message(answer)["content"] == [
        {"type": "thinking", "thinking": "Think", "signature": "c2ln"},
        {"type": "redacted_thinking", "data": "ZW5j"}, {"type": "text", "text": "Done."}]


def test_an_odd_upstream_answer_is_still_a_message() -> None:
    """OpenAI-compatible upstreams' JSON passes through the core unchecked in its details."""
    answer = {"id": "msg_1", "model": "m", "choices": [{"finish_reason": "weird", "message": {
        "content": [{"type": "text", "text": "a"}, "junk"], "tool_calls": ["junk", {"function": "junk"},
                                                                          {"id": 5, "function": {"name": "f",
                                                                                                 "arguments": "[1]"}}],
        "reasoning_details": ["junk"]}}], "usage": {"prompt_tokens": -3, "completion_tokens": "many"}}
    message = to_message(answer)
    assert message["content"] == [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "5", "name": "f",
                                                                  "input": {}}]
    assert message["stop_reason"] == "end_turn" and message["usage"]["input_tokens"] == 0
    at.Message.model_validate(message)


def test_odd_stream_chunks_do_not_break_the_stream() -> None:
    stream = MessageStream("msg_1", "m", native=False, cost=lambda: orjson.Fragment(b"0"))
    odd: list[dict[str, Any]] = [
        {"choices": 5}, {"choices": [{"index": 0, "delta": "text", "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": 7, "reasoning_details": "x", "content": 3},
                      "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": ["junk", {"index": "0", "function": "f"}]},
                      "finish_reason": None}]},
        {"choices": [{"index": 1, "delta": {"content": "other choice"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}]}]
    events = parse_sse(run(stream, [odd], {"usage": {"prompt_tokens": 1, "completion_tokens": 1}}))
    message = accumulate(events)
    assert [b.type for b in message.content] == ["tool_use", "text"] and message.content[-1].text == "ok"  # type: ignore[union-attr]
