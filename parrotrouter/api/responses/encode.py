"""The canonical chat answer as a Responses `response` object: output items `reasoning` (the
model's reasoning text as a summary), `message` (output_text with `annotations: []`, or a
refusal), `function_call` and `custom_tool_call`; usage in the Responses names; `status`
completed, or incomplete with the reason (max_output_tokens, content_filter)."""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..native_usage import with_cost
from . import protocol as p

_GENERATION_PREFIXES = ("chatcmpl-", "resp_")


@dataclasses.dataclass(frozen=True, slots=True)
class ToolNames:
    """How the function names a chat model sees map back to the request's tools: custom tools
    (their calls are `custom_tool_call` items) and functions of a `namespace` tool."""

    custom: frozenset[str] = frozenset()
    namespaced: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)  # -> (namespace, name)


def chat_name(namespace: str, name: str) -> str:
    """The chat function name of a namespace's function (chat names allow no dots)."""
    return f"{namespace}__{name}"


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{os.urandom(16).hex()}"


def response_id(generation_id: str) -> str:
    """The response's id: the ledger's generation id, in the Responses API's `resp_` form."""
    for prefix in _GENERATION_PREFIXES:
        if generation_id.startswith(prefix):
            return "resp_" + generation_id[len(prefix):]
    return "resp_" + generation_id


def usage_of(chat: Any) -> dict[str, Any] | None:
    """Chat usage (prompt/completion tokens and their details) in the Responses names."""
    if not isinstance(chat, dict):
        return None
    prompt, completion = _count(chat.get("prompt_tokens")), _count(chat.get("completion_tokens"))
    prompt_details = chat.get("prompt_tokens_details")
    completion_details = chat.get("completion_tokens_details")
    if not isinstance(prompt_details, dict):
        prompt_details = {}
    reasoning = _count(completion_details.get("reasoning_tokens")) if isinstance(completion_details, dict) else 0
    out = {"input_tokens": prompt,
           "input_tokens_details": {"cached_tokens": _count(prompt_details.get("cached_tokens")),
                                    "cache_write_tokens": _count(prompt_details.get("cache_write_tokens"))},
           "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
           "total_tokens": _count(chat.get("total_tokens")) or prompt + completion}
    if "cost" in chat:  # ours (the serving core's), as the ledger row has it
        out["cost"] = chat["cost"]
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def shell(request: p.ResponsesRequest, rid: str, model: str, created_at: int | None = None) -> dict[str, Any]:
    """The response object before any output: what the request asked for, echoed as OpenAI does."""
    text = request.text
    fmt = msgspec_builtins(text.format) if text is not None and text.format is not None else {"type": "text"}
    reasoning = request.reasoning
    return {
        "id": rid, "object": "response", "created_at": created_at or int(time.time()), "status": "in_progress",
        "background": False, "error": None, "incomplete_details": None, "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens, "max_tool_calls": request.max_tool_calls,
        "model": model, "output": [],
        "parallel_tool_calls": True if request.parallel_tool_calls is None else request.parallel_tool_calls,
        "previous_response_id": request.previous_response_id, "prompt_cache_key": request.prompt_cache_key,
        "reasoning": {"effort": reasoning.effort if reasoning else None,
                      "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None},
        "safety_identifier": request.safety_identifier, "service_tier": request.service_tier or "default",
        "store": request.store is not False, "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": {"format": fmt, "verbosity": (text.verbosity if text else None) or "medium"},
        "tool_choice": "auto" if request.tool_choice is None else request.tool_choice,
        "tools": request.tools or [], "top_logprobs": request.top_logprobs or 0,
        "top_p": 1.0 if request.top_p is None else request.top_p, "truncation": request.truncation or "disabled",
        "usage": None, "user": request.user, "metadata": request.metadata or {},
    }


def msgspec_builtins(value: Any) -> Any:
    import msgspec

    return msgspec.to_builtins(value)


def status_of(finish: str | None) -> tuple[str, dict[str, Any] | None]:
    """(status, incomplete_details) for a chat finish reason."""
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def message_item(text: str | None, refusal: str | None, item_id: str | None = None,
                 status: str = "completed") -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": item_id or new_item_id("msg"), "status": status, "role": "assistant",
            "content": content}


def reasoning_item(text: str, item_id: str | None = None, details: list[Any] | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": item_id or new_item_id("rs"),
                            "summary": [{"type": "summary_text", "text": text}] if text else []}
    if details:
        item["encrypted_content"] = pack_details(details)
    return item


# A model's reasoning state (Claude's thinking signatures: chat `reasoning_details`) travels in the
# reasoning item's opaque `encrypted_content`, so a conversation continued through the Responses
# API gives it back to the model as chat clients do.
_DETAILS_PREFIX = "parrotrouter.reasoning_details:"


def pack_details(details: list[Any]) -> str:
    return _DETAILS_PREFIX + base64.urlsafe_b64encode(orjson.dumps(details)).decode()


def unpack_details(content: str | None) -> list[dict[str, Any]] | None:
    """Reasoning details packed by `pack_details` (anything else, e.g. OpenAI's own encrypted
    reasoning, or a value that is not a list of objects: None)."""
    if not content or not content.startswith(_DETAILS_PREFIX):
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(content[len(_DETAILS_PREFIX):]))
    except (ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        return None
    return value


def call_item(call_id: str, name: str, arguments: str, tools: ToolNames, item_id: str | None = None,
              status: str = "completed") -> dict[str, Any]:
    """A function call, or a custom tool's call (its `input` unwrapped, see `decode`)."""
    if name in tools.custom:
        return {"type": "custom_tool_call", "id": item_id or new_item_id("ctc"), "status": status,
                "call_id": call_id, "name": name, "input": custom_input(arguments)}
    item = {"type": "function_call", "id": item_id or new_item_id("fc"), "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}
    if name in tools.namespaced:
        item["namespace"], item["name"] = tools.namespaced[name]
    return item


def custom_input(arguments: str) -> str:
    """A custom tool's raw input from the `{"input": ...}` arguments a chat model wrote."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return arguments
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return arguments


def output_of(message: dict[str, Any], tools: ToolNames) -> list[dict[str, Any]]:
    """The output items of a chat answer's message."""
    items: list[dict[str, Any]] = []
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    details = message.get("reasoning_details")
    details = details if isinstance(details, list) else None
    if (isinstance(reasoning, str) and reasoning) or details:
        items.append(reasoning_item(reasoning if isinstance(reasoning, str) else "", details=details))
    text, refusal = message.get("content"), message.get("refusal")
    if isinstance(text, list):  # content parts (some upstreams): their texts
        text = "".join(str(part.get("text") or "") for part in text if isinstance(part, dict))
    if (isinstance(text, str) and text) or (isinstance(refusal, str) and refusal):
        items.append(message_item(text if isinstance(text, str) else None,
                                  refusal if isinstance(refusal, str) else None))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            items.append(call_item(str(call.get("id") or new_item_id("call")), str(fn.get("name") or ""),
                                   str(fn.get("arguments") or ""), tools))
    return items


def from_chat(answer: dict[str, Any], request: p.ResponsesRequest, tools: ToolNames) -> dict[str, Any]:
    """The response object for a (normalised) chat.completion answer."""
    response = shell(request, response_id(str(answer["id"])), str(answer["model"]), int(answer["created"]))
    choices = answer.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}
    response["output"] = output_of(message, tools)
    response["status"], response["incomplete_details"] = status_of(choice.get("finish_reason"))
    response["usage"] = usage_of(answer.get("usage"))
    return response


def from_native(answer: dict[str, Any], rid: str, model: str, request: p.ResponsesRequest) -> dict[str, Any]:
    """The upstream's own response object (native passthrough), under our id and model name."""
    native = answer["native"]
    assert isinstance(native, dict)
    return with_cost({**native, "id": rid, "model": model, "created_at": int(answer["created"]),
                      "previous_response_id": request.previous_response_id, "store": request.store is not False},
                     answer.get("usage"), usage_of)
