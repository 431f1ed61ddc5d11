"""Property tests: message lists with tools survive OpenAI -> provider -> OpenAI with roles, order,
tool ids and arguments intact (hypothesis)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.providers.anthropic import from_anthropic, to_anthropic
from parrotrouter.providers.gemini import GeminiTranslator, from_gemini

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
json_value = st.recursive(st.none() | st.booleans() | st.integers(-1000, 1000) | text,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                          max_leaves=6)
arguments = st.dictionaries(st.sampled_from(["city", "unit", "days", "q"]), json_value, max_size=3)


@st.composite
def conversations(draw: Any) -> list[dict[str, Any]]:
    """user, then turns of: assistant text and/or tool calls (answered by tool messages), user text."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": draw(text)}]
    counter = 0
    for _ in range(draw(st.integers(1, 4))):
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            counter += 1
            calls.append({"id": f"call_{counter}", "type": "function",
                          "function": {"name": draw(st.sampled_from(["get_weather", "search"])),
                                       "arguments": json.dumps(draw(arguments))}})
        content = draw(st.none() | text) if calls else draw(text)
        assistant: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            assistant["tool_calls"] = calls
        messages.append(assistant)
        for call in calls:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": draw(text)})
        messages.append({"role": "user", "content": draw(text)})
    return messages


def openai_events(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for m in messages:
        if m["role"] == "user":
            out.append(("user", "text", m["content"]))
        elif m["role"] == "assistant":
            if m.get("content"):
                out.append(("assistant", "text", m["content"]))
            for c in m.get("tool_calls", ()):
                args = json.loads(c["function"]["arguments"])
                out.append(("assistant", "call", c["id"], c["function"]["name"], args))
        else:
            out.append(("user", "result", m["tool_call_id"], m["content"]))
    return out


def request_of(messages: list[dict[str, Any]]) -> ChatCompletionRequest:
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("get_weather", "search")]
    return msgspec.convert({"model": "m", "messages": messages, "tools": tools}, ChatCompletionRequest)


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_anthropic_request_keeps_roles_order_ids_and_arguments(messages: list[dict[str, Any]]) -> None:
    body = to_anthropic(request_of(messages), "claude", 1024)
    roles = [t["role"] for t in body["messages"]]
    assert all(a != b for a, b in itertools.pairwise(roles))  # alternating, as the API requires
    events: list[tuple[Any, ...]] = []
    for turn in body["messages"]:
        for block in turn["content"]:
            if block["type"] == "text":
                events.append((turn["role"], "text", block["text"]))
            elif block["type"] == "tool_use":
                events.append((turn["role"], "call", block["id"], block["name"], block["input"]))
            else:
                events.append((turn["role"], "result", block["tool_use_id"], block["content"]))
    assert events == openai_events(messages)


@settings(max_examples=150, deadline=None)
@given(conversations())
def test_gemini_request_keeps_roles_order_names_and_arguments(messages: list[dict[str, Any]]) -> None:
    contents = GeminiTranslator({}).contents(request_of(messages))
    roles = [c["role"] for c in contents]
    assert all(a != b for a, b in itertools.pairwise(roles))
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls", ())}
    expected = []
    for event in openai_events(messages):
        if event[1] == "call":
            expected.append(("model", "call", event[3], event[4]))
        elif event[1] == "result":
            expected.append(("user", "result", names[event[2]]))
        else:
            expected.append(("model" if event[0] == "assistant" else "user", "text", event[2]))
    got = []
    for content in contents:
        for part in content["parts"]:
            if "text" in part:
                got.append((content["role"], "text", part["text"]))
            elif "functionCall" in part:
                got.append((content["role"], "call", part["functionCall"]["name"], part["functionCall"]["args"]))
            else:
                got.append((content["role"], "result", part["functionResponse"]["name"]))
    assert got == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["get_weather", "search"]), arguments), min_size=1, max_size=4), text)
def test_provider_tool_calls_come_back_with_ids_and_arguments(calls: list[tuple[str, dict[str, Any]]],
                                                              preface: str) -> None:
    blocks = [{"type": "text", "text": preface}] + [
        {"type": "tool_use", "id": f"toolu_{i}", "name": n, "input": a} for i, (n, a) in enumerate(calls)]
    msg = from_anthropic({"type": "message", "content": blocks, "stop_reason": "tool_use", "usage": {}})
    got = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
           for c in msg["choices"][0]["message"]["tool_calls"]]
    assert got == [(f"toolu_{i}", n, a) for i, (n, a) in enumerate(calls)]
    parts = [{"functionCall": {"name": n, "args": a}} for n, a in calls]
    resp = from_gemini({"responseId": "r", "candidates": [{"content": {"role": "model", "parts": parts},
                                                          "finishReason": "STOP"}]}, {})
    tool_calls = resp["choices"][0]["message"]["tool_calls"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in tool_calls] == calls
    assert len({c["id"] for c in tool_calls}) == len(calls)
