"""The Responses API codec against golden wire fixtures (tests/data/responses_inbound/): requests
decoded to chat bodies, chat answers encoded to response objects, chat chunks to typed events.
Every output is also validated with the official `openai` SDK's own types.

Regenerate the golden files after an intended change: `UPDATE_GOLDEN=1 python -m pytest
tests/unit/test_responses_codec.py`, then review the diff."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pydantic
import pytest
from openai.types.chat import completion_create_params
from openai.types.responses import Response, ResponseStreamEvent

from parrotrouter.api.responses import encode
from parrotrouter.api.responses.decode import check_request, decode
from parrotrouter.api.responses.events import StreamEncoder, frame
from parrotrouter.api.responses.native import upstream_body
from parrotrouter.api.responses.protocol import ResponsesRequest
from parrotrouter.errors import InvalidRequest
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.protocol.validation import convert

DATA = Path(__file__).resolve().parents[1] / "data" / "responses_inbound"
UPDATE = bool(os.environ.get("UPDATE_GOLDEN"))
_IDS = re.compile(r"\b(msg|fc|rs|ctc|call)_[0-9a-f]{32}\b")
EVENTS = pydantic.TypeAdapter(ResponseStreamEvent)
CHAT_PARAMS = pydantic.TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming)


def stable(value: Any) -> Any:
    """`value` with generated item ids numbered by first appearance, and times fixed."""
    text = json.dumps(value)
    seen: dict[str, str] = {}
    text = _IDS.sub(lambda m: seen.setdefault(m.group(0), f"{m.group(1)}_<{len(seen) + 1}>"), text)
    out = json.loads(text)
    return _fix_times(out)


def _fix_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: 0 if k == "created_at" else _fix_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_times(v) for v in value]
    return value


def golden(path: Path, actual: Any) -> None:
    actual = stable(actual)
    if UPDATE:
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    assert path.exists(), f"{path} missing: run with UPDATE_GOLDEN=1"
    assert actual == json.loads(path.read_text())


def request_of(raw: dict[str, Any]) -> ResponsesRequest:
    request = convert(raw, ResponsesRequest)
    check_request(request)
    return request


# ---------------------------------------------------------------------------- decode
@pytest.mark.parametrize("case", ["basic", "items", "tools"])
def test_decode_golden(case: str) -> None:
    raw = json.loads((DATA / "decode" / f"{case}.request.json").read_text())
    decoded = decode(request_of(raw), [])
    golden(DATA / "decode" / f"{case}.chat.json", decoded.chat)
    convert(decoded.chat, ChatCompletionRequest)  # the canonical request takes it
    body = {k: v for k, v in decoded.chat.items() if k not in ("stream", "stream_options")}
    CHAT_PARAMS.validate_python(body)  # and it is a valid OpenAI chat body
    assert decoded.native_only is None


def test_decode_history_comes_first_and_skips_instructions_of_the_past() -> None:
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi, I am Ada."}]},
               {"type": "message", "role": "assistant", "id": "msg_x", "status": "completed",
                "content": [{"type": "output_text", "text": "Hello Ada.", "annotations": [], "logprobs": []}]},
               {"type": "web_search_call", "id": "ws_1", "status": "completed"}]
    decoded = decode(request_of({"model": "m", "input": "Name?", "instructions": "Be brief."}), history)
    assert decoded.chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi, I am Ada."}]},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": [{"type": "text", "text": "Name?"}]}]
    assert decoded.native_only is None  # an earlier model's hosted tool calls are not sent on


@pytest.mark.parametrize(("raw", "reason"), [
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
    ({"input": "x", "tools": [{"type": "mcp", "server_label": "x", "server_url": "https://x.example"}]}, "mcp"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]}, "file_id"),
])
def test_what_only_native_serving_takes(raw: dict[str, Any], reason: str) -> None:
    decoded = decode(request_of({"model": "m", **raw}), [])
    assert decoded.native_only is not None and reason in decoded.native_only


@pytest.mark.parametrize(("raw", "param"), [
    ({"input": "x", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools[0]"),
    ({"input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "code_interpreter"}]}, "tools[1]"),
    ({"input": "x", "tools": [{"type": "image_generation"}]}, "tools[0]"),
    ({"input": "x", "tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
])
def test_tools_the_provider_bills_per_call_are_refused(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        decode(request_of({"model": "m", **raw}), [])
    assert refused.value.param == param and "per call" in refused.value.message


def test_web_search_never_reaches_a_native_upstream() -> None:
    body = upstream_body({"model": "m", "input": "x", "tools": [{"type": "web_search"}, {"type": "function",
                                                                                         "name": "f"}]}, [], [])
    assert body["tools"] == [{"type": "function", "name": "f"}]


@pytest.mark.parametrize(("raw", "param"), [
    ({"input": [{"type": "function_call", "call_id": "", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"type": "message", "role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]},
     "input"),
    ({"input": "x", "tools": [{"type": "custom"}]}, "tools[0].name"),
    ({"input": "x", "tools": [{"type": "function", "name": "f"}] * 129}, "tools"),
    ({"input": "x", "tool_choice": {"type": "function"}}, "tool_choice.name"),
    ({"input": []}, "input"),
])
def test_decode_refuses_by_param(raw: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        decode(request_of({"model": "m", **raw}), [])
    assert err.value.param == param


def test_upstream_body_writes_the_conversation_out() -> None:
    history = [{"type": "message", "id": "msg_a", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
               {"type": "reasoning", "id": "rs_a", "summary": []},
               {"type": "reasoning", "id": "rs_b", "summary": [], "encrypted_content": "gAAA"},
               {"type": "reasoning", "id": "rs_c", "summary": [],  # Claude's, from a translated turn
                "encrypted_content": encode.pack_details([{"type": "reasoning.text", "signature": "x"}])},
               {"type": "function_call", "id": "fc_a", "call_id": "c", "name": "f", "arguments": "{}"}]
    items = [{"type": "function_call_output", "call_id": "c", "output": "ok"}]
    body = upstream_body({"model": "m", "input": items, "previous_response_id": "resp_1", "store": True,
                          "include": ["message.output_text.logprobs"]}, history, items)
    assert "previous_response_id" not in body and body["store"] is False
    assert body["include"] == ["message.output_text.logprobs", "reasoning.encrypted_content"]
    assert [i.get("id") for i in body["input"]] == [None, "rs_b", None, None]


# ---------------------------------------------------------------------------- encode
TOOLS = encode.ToolNames(frozenset({"apply_patch"}), {"multi_agent_v1__spawn_agent": ("multi_agent_v1", "spawn_agent")})


@pytest.mark.parametrize("case", ["tools", "length"])
def test_encode_golden(case: str) -> None:
    answer = json.loads((DATA / "encode" / f"{case}.chat.json").read_text())
    request = request_of({"model": "gpt-4o-mini", "input": "x", "max_output_tokens": 3})
    response = encode.from_chat(answer, request, TOOLS)
    golden(DATA / "encode" / f"{case}.response.json", response)
    parsed = Response.model_validate(response)
    assert parsed.id == "resp_" + answer["id"].removeprefix("chatcmpl-")
    if case == "length":
        assert parsed.status == "incomplete" and parsed.incomplete_details is not None
        assert parsed.incomplete_details.reason == "max_output_tokens" and parsed.output_text == "Once upon a"
    else:
        assert [item.type for item in parsed.output] == ["reasoning", "message", "function_call", "custom_tool_call",
                                                         "function_call"]
        assert parsed.usage is not None and parsed.usage.input_tokens_details.cached_tokens == 100


# ---------------------------------------------------------------------------- stream
def run_stream(encoder: StreamEncoder, batches: list[list[dict[str, Any]]],
               usage: dict[str, Any] | None) -> list[dict[str, Any]]:
    events = []
    for batch in batches:
        events += encoder.chunks(batch)
    return events + encoder.done(usage)


def check_order(events: list[dict[str, Any]]) -> None:
    """Sequence numbers from 0; every item added before its deltas and done after them, in order."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events[:2]] == ["response.created", "response.in_progress"]
    open_items: set[int] = set()
    done_items: list[int] = []
    for event in events[2:-1]:
        index = event.get("output_index")
        if event["type"] == "response.output_item.added":
            assert index not in open_items and not open_items, "one item at a time"
            open_items.add(index)
        elif event["type"] == "response.output_item.done":
            open_items.remove(index)
            done_items.append(index)
        else:
            assert index in open_items, event["type"]
    assert not open_items and done_items == list(range(len(done_items)))
    for event in events:
        EVENTS.validate_python(event)
        assert frame(event).startswith(f"event: {event['type']}\ndata: ".encode())


def test_stream_golden_and_order() -> None:
    batches = json.loads((DATA / "stream" / "mixed.chunks.json").read_text())
    encoder = StreamEncoder(request_of({"model": "m", "input": "x", "stream": True}), "resp_1", "m", TOOLS)
    events = run_stream(encoder, batches, {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16})
    golden(DATA / "stream" / "mixed.events.json", events)
    check_order(events)
    final = Response.model_validate(events[-1]["response"])
    assert events[-1]["type"] == "response.completed" and final.output_text == "Hello."
    assert [i.type for i in final.output] == ["reasoning", "message", "function_call", "custom_tool_call"]
    assert encoder.final is events[-1]["response"]


def test_stream_failure_after_start_ends_with_failed() -> None:
    encoder = StreamEncoder(request_of({"model": "m", "input": "x", "stream": True}), "resp_1", "m", TOOLS)
    events = encoder.chunks([{"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]}])
    events += encoder.failed({"message": "The provider failed.", "code": "upstream_error", "param": None})
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None and failed.error.message == "The provider failed."
    assert failed.output[0].type == "message" and failed.output[0].status == "incomplete"
    for event in events:
        EVENTS.validate_python(event)


def test_stream_failing_before_any_event_still_starts() -> None:
    encoder = StreamEncoder(request_of({"model": "m", "input": "x", "stream": True}), "resp_1", "m", TOOLS)
    kinds = [e["type"] for e in encoder.failed({"message": "cut", "code": "service_unavailable"})]
    assert kinds == ["response.created", "response.in_progress", "error", "response.failed"]


def test_native_events_are_renumbered_under_our_id() -> None:
    encoder = StreamEncoder(request_of({"model": "m", "input": "x", "stream": True}), "resp_ours", "m", TOOLS)
    upstream = [{"type": "response.created", "sequence_number": 0, "response": {"id": "resp_up", "model": "gpt-x"}},
                {"type": "response.output_text.delta", "sequence_number": 5, "item_id": "msg_up", "delta": "Hi"},
                {"type": "response.completed", "sequence_number": 9,
                 "response": {"id": "resp_up", "model": "gpt-x", "status": "completed", "output": []}}]
    events = encoder.chunks([{"choices": [], "native": upstream[:2]},
                             {"choices": [{"index": 0, "delta": {}}], "native": upstream[2:]}])
    assert [e["sequence_number"] for e in events] == [0, 1, 2]
    assert events[0]["response"]["id"] == events[2]["response"]["id"] == "resp_ours"
    assert events[1]["item_id"] == "msg_up" and encoder.done(None) == []
    assert encoder.final is not None and encoder.final["model"] == "m"
