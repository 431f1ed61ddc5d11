"""Anthropic Messages answers and stream events as OpenAI chat objects: thinking as `reasoning`
with its signature in `reasoning_details` (so a client that sends the message back continues the
turn), cache reads and writes in `prompt_tokens_details`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ...errors import FailureKind, UpstreamFailure
from ...upstream.client import ServerSentEvent
from ..base import client_detail, malformed
from ..translate import dump_arguments

SIGNATURE_FORMAT = "anthropic-claude-v1"
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
          "model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter"}
ERROR_KINDS = {"rate_limit_error": FailureKind.RATE_LIMIT, "overloaded_error": FailureKind.MODEL_OVERLOADED,
               "api_error": FailureKind.SERVER_ERROR, "authentication_error": FailureKind.AUTH,
               "permission_error": FailureKind.AUTH, "not_found_error": FailureKind.NOT_FOUND,
               "invalid_request_error": FailureKind.BAD_REQUEST, "request_too_large": FailureKind.BAD_REQUEST}


def usage_of(usage: Any) -> dict[str, Any] | None:
    """Anthropic counts cache reads and writes apart from `input_tokens`; OpenAI's prompt_tokens
    includes them, with the cached part in `prompt_tokens_details`. None when the upstream
    reported no counts (an Anthropic-compatible server may not): the core counts them then."""
    if not isinstance(usage, Mapping):
        return None
    uncached, completion = _count(usage.get("input_tokens")), _count(usage.get("output_tokens"))
    if uncached is None or completion is None:
        return None
    read = _count(usage.get("cache_read_input_tokens")) or 0
    write = _count(usage.get("cache_creation_input_tokens")) or 0
    prompt = uncached + read + write
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write}}


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def finish_of(stop_reason: str | None) -> tuple[str, str | None]:
    return FINISH.get(stop_reason or "", "stop"), stop_reason


def from_anthropic(msg: Mapping[str, Any]) -> dict[str, Any]:
    text: list[str] = []
    reasoning: list[str] = []
    details: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in msg.get("content") or ():
        kind = block.get("type")
        if kind == "text":
            text.append(block.get("text") or "")
        elif kind == "tool_use":
            calls.append({"id": block["id"], "type": "function",
                          "function": {"name": block["name"], "arguments": dump_arguments(block.get("input"))}})
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            details.append({"type": "reasoning.text", "text": block.get("thinking") or "",
                            "signature": block.get("signature"), "format": SIGNATURE_FORMAT})
        elif kind == "redacted_thinking":
            details.append({"type": "reasoning.encrypted", "data": block.get("data"), "format": SIGNATURE_FORMAT})
    finish, native = finish_of(msg.get("stop_reason"))
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if details:
        message["reasoning"] = "".join(reasoning)
        message["reasoning_details"] = details
    out: dict[str, Any] = {"object": "chat.completion",
                           "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish,
                                        "native_finish_reason": native}]}
    if (usage := usage_of(msg.get("usage"))) is not None:
        out["usage"] = usage
    return out


def parse_event(event: ServerSentEvent) -> Any:
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError:
        raise malformed("stream event") from None


class AnthropicStream:
    """Messages stream events to OpenAI chunks. Tool calls: the first delta carries id and name,
    later ones argument fragments, indexed in order of appearance, as the OpenAI SDK expects."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.usage: dict[str, Any] = {}
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.details: dict[int, int] = {}  # content block index -> reasoning_details index

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        return self.translate(parse_event(event))

    def translate(self, data: Any) -> list[dict[str, Any]]:
        """The chunks of one parsed event."""
        kind = data.get("type") if isinstance(data, dict) else None
        handler = getattr(self, f"_on_{kind}", None)
        if handler is None:
            return []  # ping, and event types added after this adapter was written
        chunks: list[dict[str, Any]] = handler(data)
        return chunks

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if native is not None:
            choice["native_finish_reason"] = native
        return {"object": "chat.completion.chunk", "choices": [choice]}

    def _on_message_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.usage = dict((data.get("message") or {}).get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        block = data.get("content_block") or {}
        if block.get("type") == "tool_use":
            index = self.tools[data["index"]] = len(self.tools)
            return [self._chunk({"tool_calls": [{"index": index, "id": block["id"], "type": "function",
                                                 "function": {"name": block["name"], "arguments": ""}}]})]
        if block.get("type") == "text" and block.get("text"):
            return [self._chunk({"content": block["text"]})]
        if block.get("type") in ("thinking", "redacted_thinking"):
            # reasoning_details entries carry an index, so stream accumulators merge their pieces
            index = self.details[data["index"]] = len(self.details)
            if block["type"] == "redacted_thinking":
                return [self._chunk({"reasoning_details": [{"index": index, "type": "reasoning.encrypted",
                                                            "data": block.get("data"), "format": SIGNATURE_FORMAT}]})]
        return []

    def _on_content_block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text") or ""})]
        if kind == "input_json_delta":
            index = self.tools.get(data.get("index", -1))
            if index is None:
                raise malformed("stream: tool input for a block that is not a tool call")
            return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": delta.get("partial_json")
                                                                               or ""}}]})]
        if kind in ("thinking_delta", "signature_delta"):
            index = self.details.get(data.get("index", -1))
            if index is None:
                raise malformed("stream: thinking for a block that is not a thinking block")
            detail = {"index": index, "type": "reasoning.text", "format": SIGNATURE_FORMAT}
            if kind == "signature_delta":
                return [self._chunk({"reasoning_details": [{**detail, "signature": delta.get("signature")}]})]
            text = delta.get("thinking") or ""
            return [self._chunk({"reasoning": text, "reasoning_details": [{**detail, "text": text}]})]
        return []

    def _on_message_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
        stop = (data.get("delta") or {}).get("stop_reason")
        if stop is None:
            return []
        finish, native = finish_of(stop)
        return [self._chunk({}, finish, native)]

    def _on_message_stop(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.done = True
        chunk: dict[str, Any] = {"object": "chat.completion.chunk", "choices": []}
        if (usage := usage_of(self.usage)) is not None:
            chunk["usage"] = usage
        return [chunk]

    def _on_error(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        err = data.get("error") or {}
        kind = ERROR_KINDS.get(str(err.get("type")), FailureKind.SERVER_ERROR)
        status = 503 if kind is FailureKind.MODEL_OVERLOADED else 429 if kind is FailureKind.RATE_LIMIT else 500
        detail = client_detail(self.provider, status, err.get("message"), kind)
        raise UpstreamFailure(f"The provider '{self.provider}' failed mid-stream{detail}",
                              kind=kind, upstream_status=status)

