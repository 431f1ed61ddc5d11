"""Cohere v2 Chat answers and stream events to OpenAI objects (pure).

Text, `tool_plan` (as content, before the calls), thinking as `reasoning`, tool calls; finish
reasons COMPLETE/STOP_SEQUENCE -> stop, MAX_TOKENS -> length, TOOL_CALL -> tool_calls, while
ERROR and TIMEOUT are failures (the answer is not complete). Usage is what Cohere bills,
`usage.billed_units` (its raw `tokens` only when no billed units came). Citations are dropped:
they point into tool outputs and documents by Cohere's own ids, which OpenAI's url annotations
cannot carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import FailureKind, UpstreamFailure
from ...upstream.client import ServerSentEvent
from ..base import client_detail, json_object, malformed
from ..translate import dump_arguments

FINISH = {"COMPLETE": "stop", "STOP_SEQUENCE": "stop", "MAX_TOKENS": "length", "TOOL_CALL": "tool_calls"}
FAILED_FINISH = {"ERROR": (FailureKind.SERVER_ERROR, 500), "TIMEOUT": (FailureKind.TIMEOUT, 504)}


def _count(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 2**53:
        return round(value)
    return 0


def usage_of(usage: Any) -> dict[str, Any] | None:
    """What Cohere bills (`billed_units`); its raw `tokens` only when it sent no billed units.
    Cohere does not bill cache hits apart, so none of the billed tokens is reported as cached.
    None when it sent no counts at all: the gateway then counts the tokens itself (never free)."""
    usage = usage if isinstance(usage, dict) else {}
    billed = usage.get("billed_units")
    counts = billed if isinstance(billed, dict) and billed else usage.get("tokens")
    if not isinstance(counts, dict) or not ({"input_tokens", "output_tokens"} & counts.keys()):
        return None
    prompt, completion = _count(counts.get("input_tokens")), _count(counts.get("output_tokens"))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0}}


def _failed(provider: str, finish: Any, error: Any) -> UpstreamFailure | None:
    """A generation Cohere ended with ERROR or TIMEOUT: a failure, not a complete answer."""
    if finish not in FAILED_FINISH:
        return None
    kind, status = FAILED_FINISH[finish]
    detail = client_detail(provider, status, error, kind)
    return UpstreamFailure(f"The provider '{provider}' ended the generation with {finish}{detail}",
                           kind=kind, upstream_status=status)


def _tool_call(call: Any, streamed: bool = False) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(call.get("id"), str):
        raise malformed("tool call")
    arguments = fn.get("arguments")
    if not isinstance(arguments, str):  # a stream's start without arguments: its deltas bring them all
        arguments = "" if streamed else dump_arguments(arguments)
    return {"id": call["id"], "type": "function",
            "function": {"name": str(fn.get("name") or ""), "arguments": arguments}}


def from_cohere(resp: Mapping[str, Any], provider: str) -> dict[str, Any]:
    if (failure := _failed(provider, resp.get("finish_reason"), None)) is not None:
        raise failure
    msg = resp.get("message")
    msg = msg if isinstance(msg, dict) else {}
    text = [msg["tool_plan"]] if isinstance(msg.get("tool_plan"), str) else []
    thoughts: list[str] = []
    for item in msg.get("content") or ():
        if isinstance(item, dict) and item.get("type") == "text":
            text.append(str(item.get("text") or ""))
        elif isinstance(item, dict) and item.get("type") == "thinking":
            thoughts.append(str(item.get("thinking") or ""))
    calls = [_tool_call(c) for c in msg.get("tool_calls") or ()]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(text) if text or not calls else None,
                               "refusal": None}
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning"] = "".join(thoughts)
    native = resp.get("finish_reason")
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH.get(str(native), "stop"),
              "native_finish_reason": native}
    out: dict[str, Any] = {"object": "chat.completion", "choices": [choice]}
    if (usage := usage_of(resp.get("usage"))) is not None:
        out["usage"] = usage
    return out


class CohereStream:
    """v2 stream events to OpenAI chunks. Tool calls: `tool-call-start` gives the first delta
    (index, id, type, name), each `tool-call-delta` an argument fragment; `message-end` the
    finish and the usage."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.tools: dict[int, int] = {}  # Cohere's tool call index -> ours, in order of appearance

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        data = json_object(event.data, "stream event")
        kind = data.get("type")
        if kind is None and isinstance(data.get("message"), str):  # an error body instead of an event
            raise UpstreamFailure(f"The provider '{self.provider}' failed mid-stream"
                                  f"{client_detail(self.provider, 500, data['message'], FailureKind.SERVER_ERROR)}",
                                  kind=FailureKind.SERVER_ERROR, upstream_status=500)
        handler = self._HANDLERS.get(str(kind))
        delta = data.get("delta")
        message = delta.get("message") if isinstance(delta, dict) else None
        return handler(self, data, message if isinstance(message, dict) else {}) if handler else []

    @staticmethod
    def _chunk(delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        if native is not None:
            choice["native_finish_reason"] = native
        return {"object": "chat.completion.chunk", "choices": [choice]}

    def _start(self, data: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def _content(self, data: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        content = message.get("content")
        content = content if isinstance(content, dict) else {}
        delta: dict[str, Any] = {}
        if isinstance(content.get("text"), str) and content["text"]:
            delta["content"] = content["text"]
        if isinstance(content.get("thinking"), str) and content["thinking"]:
            delta["reasoning"] = content["thinking"]
        return [self._chunk(delta)] if delta else []

    def _plan(self, data: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        plan = message.get("tool_plan")
        return [self._chunk({"content": plan})] if isinstance(plan, str) and plan else []

    def _call_start(self, data: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        call = _tool_call(message.get("tool_calls"), streamed=True)
        index = self.tools[data.get("index", len(self.tools))] = len(self.tools)
        return [self._chunk({"tool_calls": [{"index": index, **call}]})]

    def _call_delta(self, data: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        index = self.tools.get(data.get("index", -1))
        calls = message.get("tool_calls")
        fn = calls.get("function") if isinstance(calls, dict) else None
        if index is None or not isinstance(fn, dict):
            raise malformed("stream: tool arguments for no started tool call")
        arguments = fn.get("arguments")
        if not isinstance(arguments, str) or not arguments:
            return []
        return [self._chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]})]

    def _end(self, data: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        native = delta.get("finish_reason")
        if (failure := _failed(self.provider, native, delta.get("error"))) is not None:
            raise failure
        self.done = True
        chunks = [self._chunk({}, FINISH.get(str(native), "stop"), native if isinstance(native, str) else None)]
        if (usage := usage_of(delta.get("usage"))) is not None:
            chunks.append({"object": "chat.completion.chunk", "choices": [], "usage": usage})
        return chunks

    # citation-start/-end, content-end, tool-call-end, debug and newer event types carry nothing we pass on
    _HANDLERS = {"message-start": _start, "content-start": _content, "content-delta": _content,
                 "tool-plan-delta": _plan, "tool-call-start": _call_start, "tool-call-delta": _call_delta,
                 "message-end": _end}
