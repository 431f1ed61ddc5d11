"""Anthropic Messages requests to the canonical chat request: golden wire fixtures (request in,
chat body and canonical request out), the bodies real clients send (Claude Code, the AI SDK,
LangChain, captured on loopback), every chat body a valid OpenAI request, and the bounds."""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import msgspec
import pydantic
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.chat import completion_create_params as ccp

from parrotrouter.api.messages.decode import to_chat
from parrotrouter.api.messages.protocol import CountTokensRequest, MessagesRequest
from parrotrouter.errors import InvalidRequest
from parrotrouter.protocol.validation import convert

DATA = Path(__file__).resolve().parents[2] / "data" / "anthropic_inbound"
REQUESTS = sorted(p for p in (DATA / "requests").glob("*.json") if not p.name.endswith(".chat.json"))
CLIENTS = sorted((DATA / "clients").glob("*.json"))
CHAT_FIELDS = set(typing.get_type_hints(ccp.CompletionCreateParamsBase)) | {"stream"}


def check_openai_body(body: dict[str, Any]) -> None:
    """A body the OpenAI SDK's own request types accept, with no field they do not know."""
    assert set(body) <= CHAT_FIELDS, set(body) - CHAT_FIELDS
    pydantic.TypeAdapter(ccp.CompletionCreateParamsBase).validate_python(body)
    for message in body["messages"]:
        pydantic.TypeAdapter(ChatCompletionMessageParam).validate_python(message)
        assert "reasoning_details" not in message


def decode(raw: dict[str, Any], cap: int | None = None) -> Any:
    return to_chat(convert(raw, MessagesRequest), cap)


@pytest.mark.parametrize("path", REQUESTS, ids=lambda p: p.stem)
def test_golden_requests(path: Path) -> None:
    translated = decode(json.loads(path.read_text()))
    expected = json.loads(path.with_suffix(".chat.json").read_text())
    assert translated.raw == expected["raw"]
    assert msgspec.to_builtins(translated.canonical) == expected["canonical"]
    check_openai_body(translated.raw)


@pytest.mark.parametrize("path", CLIENTS, ids=lambda p: p.stem)
def test_what_real_clients_send_decodes(path: Path) -> None:
    for sent in json.loads(path.read_text()):
        body = sent["body"]
        translated = decode(body)
        check_openai_body(translated.raw)
        assert translated.raw["model"] == body["model"]
        assert translated.raw["max_completion_tokens"] == body["max_tokens"]
        calls = [c["id"] for m in translated.raw["messages"] for c in m.get("tool_calls", ())]
        results = [m["tool_call_id"] for m in translated.raw["messages"] if m["role"] == "tool"]
        assert calls == results  # every tool_use answered by its tool_result, in order


def test_claude_code_body_keeps_what_only_anthropic_takes_out_of_the_chat_body() -> None:
    first = json.loads((DATA / "clients" / "claude_code_tool_round_trip.json").read_text())[0]["body"]
    raw = decode(first).raw
    keys = set()
    todo: list[Any] = [raw]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            keys |= set(item)
            todo += item.values()
        elif isinstance(item, list):
            todo += item
    assert not keys & {"cache_control", "defer_loading", "context_management", "thinking", "budget_tokens"}
    assert raw["user"] == first["metadata"]["user_id"]
    assert len(raw["tools"]) == len([t for t in first["tools"] if t.get("type") in (None, "custom")])


def test_max_tokens_capped_to_the_model_for_other_models() -> None:
    body = {"model": "m", "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]}
    assert decode(body, 16384).raw["max_completion_tokens"] == 16384
    assert decode(body, None).raw["max_completion_tokens"] == 64000
    assert decode({**body, "max_tokens": 10}, 16384).raw["max_completion_tokens"] == 10


def test_count_tokens_body_has_no_generation_fields() -> None:
    translated = to_chat(convert({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, CountTokensRequest))
    assert translated.raw == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


USER = [{"role": "user", "content": "hi"}]
BASE = {"model": "m", "max_tokens": 10, "messages": USER}


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("change", "param"), [
    ({"max_tokens": None}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 10**20}, "max_tokens"),
    ({"max_tokens": "12"}, "max_tokens"),
    ({"messages": []}, "messages"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [7]}]}, "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]},
     "messages[0].content[0].source.media_type"),
    ({"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": deep(100)}]}]}, "messages[0].content[0].input"),
    ({"tools": [{"name": "f", "input_schema": deep(100)}]}, "tools[0].input_schema"),
    ({"tools": [{"name": "f"}]}, "tools[0].input_schema"),
    ({"tools": [{"name": f"t{i}", "input_schema": {}} for i in range(129)]}, "tools"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    ({"temperature": 1.5}, "temperature"),
    ({"top_p": -1}, "top_p"),
    ({"stop_sequences": ["x"] * 17}, "stop_sequences"),
    ({"stop_sequences": ["x" * 2000]}, "stop_sequences[0]"),
    ({"metadata": {"user_id": "a\u0000b"}}, "metadata.user_id"),
    ({"metadata": {"user_id": "u" * 300}}, "metadata.user_id"),
    ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
    ({"thinking": {"type": "enabled", "budget_tokens": -5}}, "thinking.budget_tokens"),
    ({"model": ""}, "model"),
    ({"model": "m" * 300}, "model"),
    ({"output_config": {"format": {"type": "json_schema", "schema": deep(100)}}}, "output_config.format.schema"),
    ({"messages": [{"role": "user", "content": [{"type": "x" * 200}]}]}, "messages[0].content[0].type"),
])
def test_bad_values_are_400s_naming_the_param(change: dict[str, Any], param: str) -> None:
    body = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(InvalidRequest) as caught:
        decode(body)
    assert caught.value.param == param, caught.value.message
    assert len(caught.value.message) < 400


def test_unknown_block_and_tool_types_are_left_to_anthropic() -> None:
    body = {**BASE, "messages": [{"role": "user", "content": [
        {"type": "container_upload", "file_id": "f"}, {"type": "text", "text": "hi"}]}],
        "tools": [{"type": "bash_20250124", "name": "bash"}], "thinking": {"type": "between_tools"}}
    raw = decode(body).raw
    assert raw["messages"] == [{"role": "user", "content": "hi"}] and "tools" not in raw
