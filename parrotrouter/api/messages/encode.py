"""The canonical chat answer as an Anthropic `Message`, and our errors in Anthropic's shape.

An Anthropic deployment's own message (the native path) is returned as it came, with our id, the
public model name and our `cost` in its usage (our counts, when it has no usage); any other answer
is translated: reasoning as `thinking` blocks, text, tool calls as `tool_use` blocks, the finish
reason as `stop_reason`, usage counted as Anthropic does (`input_tokens` without the cache reads
and writes, which have fields of their own)."""

from __future__ import annotations

from typing import Any

import orjson

from ...errors import ModelOverloaded, ParrotError, UnsupportedModel, UpstreamFailure
from ..native_usage import with_cost

STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
                          "model_context_window_exceeded"})
_STOP_OF_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                   "content_filter": "refusal"}

# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors).
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                500: "api_error", 504: "timeout_error", 529: "overloaded_error", 503: "overloaded_error"}


def stop_reason(choice: dict[str, Any]) -> str:
    native = choice.get("native_finish_reason")
    if isinstance(native, str) and native in STOP_REASONS:
        return native
    return _STOP_OF_FINISH.get(str(choice.get("finish_reason")), "end_turn")


def usage(chat_usage: dict[str, Any] | None) -> dict[str, Any]:
    """Anthropic's usage: cache reads and writes apart from `input_tokens`; our `cost` beside them."""
    chat_usage = chat_usage or {}
    details = chat_usage.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    read = _count(details.get("cached_tokens"))
    write = _count(details.get("cache_write_tokens"))
    prompt = _count(chat_usage.get("prompt_tokens"))
    out: dict[str, Any] = {"input_tokens": max(0, prompt - read - write),
                           "output_tokens": _count(chat_usage.get("completion_tokens")),
                           "cache_creation_input_tokens": write, "cache_read_input_tokens": read}
    if "cost" in chat_usage:
        out["cost"] = chat_usage["cost"]
    return out


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def to_message(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer of the serving core as the Message the client gets."""
    native = answer.get("native")
    if isinstance(native, dict):
        return with_cost({**native, "id": answer["id"], "model": answer["model"]}, answer.get("usage"), usage)
    choice: dict[str, Any] = answer["choices"][0] if answer.get("choices") else {"finish_reason": "stop"}
    message: dict[str, Any] = choice.get("message") or {}
    return {"id": answer["id"], "type": "message", "role": "assistant", "model": answer["model"],
            "content": content_blocks(message), "stop_reason": stop_reason(choice), "stop_sequence": None,
            "usage": usage(answer.get("usage"))}


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = thinking_blocks(message)
    text = message.get("content")
    if isinstance(text, list):  # content parts (some upstreams answer so)
        text = "".join(p.get("text") or "" for p in text if isinstance(p, dict))
    if isinstance(text, str) and text:
        blocks.append({"type": "text", "text": text})
    elif not isinstance(text, str) and message.get("refusal"):
        blocks.append({"type": "text", "text": str(message["refusal"])})
    for call in listed(message.get("tool_calls")):  # an upstream's own JSON: checked, never trusted
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            blocks.append({"type": "tool_use", "id": str(call.get("id") or ""), "name": str(fn.get("name") or ""),
                           "input": tool_input(fn.get("arguments"))})
    return blocks


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    details = [d for d in listed(message.get("reasoning_details")) if isinstance(d, dict)]
    blocks: list[dict[str, Any]] = []
    for detail in details:
        if detail.get("type") == "reasoning.text":
            blocks.append({"type": "thinking", "thinking": detail.get("text") or "",
                           "signature": detail.get("signature") or ""})
        elif detail.get("type") == "reasoning.encrypted" and detail.get("data"):
            blocks.append({"type": "redacted_thinking", "data": detail["data"]})
    if not blocks:
        reasoning = message.get("reasoning") or message.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    return blocks


def listed(value: Any) -> list[Any]:
    """An upstream's list, or none (the JSON an OpenAI-compatible upstream sends is not checked)."""
    return value if isinstance(value, list) else []


def tool_input(arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's `input` is (`{}` when not one)."""
    if isinstance(arguments, dict):
        return arguments
    if not isinstance(arguments, str) or not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------- errors
def error_type(status: int) -> str:
    if status in _ERROR_TYPES:
        return _ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


def anthropic_error(err: ParrotError) -> tuple[int, dict[str, Any]]:
    """The one conversion of our errors to Anthropic's: (HTTP status, body). An upstream that is
    overloaded is a 529 `overloaded_error`, as Anthropic says it."""
    if isinstance(err, UpstreamFailure):
        err = err.to_client_error()
    if isinstance(err, UnsupportedModel):  # Anthropic: an unknown model is not found
        return 404, error_body(404, err.message)
    status = 529 if isinstance(err, ModelOverloaded) else err.status
    return status, error_body(status, err.message)


def frame_error(frame: dict[str, Any]) -> dict[str, Any]:
    """The error event's body for the error frame a failed stream ends with (its envelope)."""
    err = frame.get("error")
    err = err if isinstance(err, dict) else {}
    status = err["status"] if isinstance(err.get("status"), int) else 500
    if err.get("code") == ModelOverloaded.code:
        status = 529
    return error_body(status, str(err.get("message") or "The stream failed."))


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": message}}
