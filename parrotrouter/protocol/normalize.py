"""Make whatever an upstream sent conform to OpenAI's published response schemas.

Applied to every response and stream chunk, from every provider, in one place: our id, created,
`model` (the public id that served), `provider`, required fields present, finish reasons in the
documented set (the provider's own value kept in `native_finish_reason`)."""

from __future__ import annotations

from typing import Any

FINISH_REASONS = frozenset({"stop", "length", "tool_calls", "content_filter", "function_call"})
_FINISH_ALIASES = {
    "eos": "stop", "end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
    "tool_use": "tool_calls", "tool_call": "tool_calls", "abort": "stop", "model_length": "length",
}


def finish_reason(value: Any) -> tuple[str | None, Any]:
    """(OpenAI finish reason, native value when it differed)."""
    if value is None or value in FINISH_REASONS:
        return value, None
    return _FINISH_ALIASES.get(str(value), "stop"), value


def usage_dict(usage: Any) -> dict[str, Any] | None:
    """An upstream's usage with its counts made counts; None when it has neither a prompt nor a
    completion count (`{}`, nulls): that is no report, and the tokens are counted instead."""
    if not isinstance(usage, dict) or not (is_count(usage.get("prompt_tokens"))
                                           or is_count(usage.get("completion_tokens"))):
        return None
    prompt = _int(usage.get("prompt_tokens"))
    completion = _int(usage.get("completion_tokens"))
    out = dict(usage)
    out["prompt_tokens"] = prompt
    out["completion_tokens"] = completion
    out["total_tokens"] = _int(usage.get("total_tokens")) or prompt + completion
    for key in ("prompt_tokens_details", "completion_tokens_details"):
        details = out.get(key)
        if key in out and not isinstance(details, dict):
            del out[key]
        elif details is not None:  # the counts the ledger prices must be counts
            out[key] = {k: _int(v) if k in _COUNTED_DETAILS else v for k, v in details.items()}
    return out


_COUNTED_DETAILS = frozenset({"cached_tokens", "cache_write_tokens", "reasoning_tokens", "audio_tokens",
                              "accepted_prediction_tokens", "rejected_prediction_tokens"})


def is_count(value: Any) -> bool:
    """Whether an upstream's token count is one: an int, not negative (not a bool, a float, a
    string, null)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _int(value: Any) -> int:
    """A token count as an upstream may send it; anything else (negative, a string, beyond 2**53) is 0."""
    return value if is_count(value) and value < 2**53 else 0


def _choice_common(choice: dict[str, Any], position: int) -> None:
    if not isinstance(choice.get("index"), int):
        choice["index"] = position
    reason, native = finish_reason(choice.get("finish_reason"))
    choice["finish_reason"] = reason
    if native is not None:
        choice.setdefault("native_finish_reason", native)
    if "logprobs" not in choice:
        choice["logprobs"] = None


def normalize_completion(obj: dict[str, Any], *, id: str, created: int, model: str, provider: str,
                         object_type: str = "chat.completion") -> dict[str, Any]:
    obj["id"] = id
    obj["object"] = object_type
    obj["created"] = created
    obj["model"] = model
    obj["provider"] = provider
    choices = obj.get("choices")
    if not isinstance(choices, list):
        choices = obj["choices"] = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            choices[i] = choice = {}
        _choice_common(choice, i)
        if choice["finish_reason"] is None:
            choice["finish_reason"] = "stop"
        if object_type == "chat.completion":
            message = choice.get("message")
            if not isinstance(message, dict):
                message = choice["message"] = {}
            message["role"] = "assistant"
            message.setdefault("content", None)
            message.setdefault("refusal", None)
            if not message.get("tool_calls"):
                message.pop("tool_calls", None)
        else:
            choice.setdefault("text", "")
    usage = usage_dict(obj.get("usage"))
    if usage is None:
        obj.pop("usage", None)
    else:
        obj["usage"] = usage
    return obj


def normalize_chunk(chunk: dict[str, Any], *, id: str, created: int, model: str, provider: str,
                    object_type: str = "chat.completion.chunk") -> dict[str, Any]:
    chunk["id"] = id
    chunk["object"] = object_type
    chunk["created"] = created
    chunk["model"] = model
    chunk["provider"] = provider
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        choices = chunk["choices"] = []
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            choices[i] = choice = {}
        _choice_common(choice, i)
        if object_type == "chat.completion.chunk":
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                choice["delta"] = {}
            elif delta.get("tool_calls") is None:
                delta.pop("tool_calls", None)
        else:
            choice.setdefault("text", "")
    return chunk


def plain_choice(chunk: dict[str, Any], object_type: str) -> dict[str, Any] | None:
    """The one choice of a chunk that `normalize_chunk` would change only in its id, object,
    created, model and provider (most chunks of an OpenAI-compatible stream), else None: the
    relay then stamps those five and skips the rest. Anything unusual (several choices, odd
    types, a finish reason to translate, a missing field) is None and takes `normalize_chunk`."""
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1:
        return None
    choice = choices[0]
    if type(choice) is not dict or type(choice.get("index")) is not int or "logprobs" not in choice \
            or "finish_reason" not in choice:
        return None
    reason = choice["finish_reason"]
    if reason is not None and (type(reason) is not str or reason not in FINISH_REASONS):
        return None
    if object_type == "chat.completion.chunk":
        delta = choice.get("delta")
        if type(delta) is not dict or "tool_calls" in delta:
            return None
    elif "text" not in choice:
        return None
    return choice
