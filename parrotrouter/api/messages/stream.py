"""Chat chunks as Anthropic's stream events (`event: <type>` / `data: <json>`).

An Anthropic deployment's own events (the native path, carried on the chunks as `native`) are
relayed as they came, with our message id and the public model name in `message_start`. Any
other stream is translated: `message_start`, a `ping`, one content block at a time (`thinking`
with `thinking_delta`/`signature_delta`, `text` with `text_delta`, `tool_use` with
`input_json_delta`), `message_delta` with the stop reason and the usage, `message_stop`. A stream
that fails after it started ends with an `error` event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ...serving.core import Done, Frames, StreamEvent
from ..native_usage import with_cost
from .encode import frame_error, listed, stop_reason, usage

Event = dict[str, Any]


def sse(kind: str, data: Event) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessageStream:
    """One stream's state: the open content block, the tool calls' blocks, the stop reason."""

    def __init__(self, message_id: str, model: str, native: bool, cost: Callable[[], orjson.Fragment]) -> None:
        self.message_id = message_id
        self.model = model
        self.native = native
        self.cost = cost  # the request's cost so far (a native `message_delta` carries it)
        self.started = False
        self.index = -1  # the open block (-1: none)
        self.kind: str | None = None  # its type
        self.blocks = 0
        self.tools: dict[int, int] = {}  # chat tool call index -> block index
        self.stop: str | None = None

    # ------------------------------------------------------------------ what the core yields
    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, Frames):
            return self.frames(event.chunks)
        if isinstance(event, Done):
            return self.done(event.usage)
        return self.failed(event.frame)

    def shutdown(self, frame: Event) -> bytes:
        return self.failed(frame)

    async def ending(self) -> None:
        return None

    def frames(self, chunks: list[Event]) -> bytes:
        out: list[bytes] = []
        for chunk in chunks:
            if self.native:
                out += [self._native(event) for event in listed(chunk.get("native")) if isinstance(event, dict)]
                continue
            if not self.started:
                out += self._start()
            for choice in listed(chunk.get("choices")):
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    out += self._delta(delta)
                if choice.get("finish_reason") is not None:
                    self.stop = stop_reason(choice)
        return b"".join(out)

    def done(self, usage_chunk: Event | None) -> bytes:
        if self.native:  # the upstream's message_delta and message_stop went out already
            return b""
        out = [] if self.started else self._start()
        out += self._close()
        counts = usage(usage_chunk.get("usage") if usage_chunk else None)
        out.append(sse("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": self.stop or "end_turn", "stop_sequence": None}, "usage": counts}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def failed(self, frame: Event) -> bytes:
        return sse("error", frame_error(frame))

    # ------------------------------------------------------------------ native events
    def _native(self, event: Event) -> bytes:
        kind = str(event.get("type") or "")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            event = {**event, "message": {**event["message"], "id": self.message_id, "model": self.model}}
        elif kind == "message_delta":  # its usage is final (the core observed it before this event);
            # without one it stays without: the core counts only after the stream (the ledger has the cost)
            event = with_cost(event, self.cost())
        return sse(kind, event)

    # ------------------------------------------------------------------ translated events
    def _start(self) -> list[bytes]:
        self.started = True
        message: Event = {"id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}}
        return [sse("message_start", {"type": "message_start", "message": message}), sse("ping", {"type": "ping"})]

    def _close(self) -> list[bytes]:
        if self.kind is None:
            return []
        index, self.kind = self.index, None
        return [sse("content_block_stop", {"type": "content_block_stop", "index": index})]

    def _open(self, block: Event) -> list[bytes]:
        out = self._close()
        self.index, self.kind = self.blocks, str(block["type"])
        self.blocks += 1
        out.append(sse("content_block_start", {"type": "content_block_start", "index": self.index,
                                               "content_block": block}))
        return out

    def _delta_event(self, index: int, delta: Event) -> bytes:
        return sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})

    def _delta(self, delta: Event) -> list[bytes]:
        out = self._thinking(delta)
        content = delta.get("content")
        if isinstance(content, str) and content:
            if self.kind != "text":
                out += self._open({"type": "text", "text": ""})
            out.append(self._delta_event(self.index, {"type": "text_delta", "text": content}))
        for call in listed(delta.get("tool_calls")):
            if isinstance(call, dict):
                out += self._tool_call(call)
        return out

    def _thinking(self, delta: Event) -> list[bytes]:
        out: list[bytes] = []
        text = delta.get("reasoning") or delta.get("reasoning_content")
        if isinstance(text, str) and text:
            if self.kind != "thinking":
                out += self._open({"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._delta_event(self.index, {"type": "thinking_delta", "thinking": text}))
        for detail in listed(delta.get("reasoning_details")):
            if not isinstance(detail, dict):
                continue
            if isinstance(detail.get("signature"), str) and detail["signature"]:
                if self.kind != "thinking":
                    out += self._open({"type": "thinking", "thinking": "", "signature": ""})
                out.append(self._delta_event(self.index, {"type": "signature_delta", "signature": detail["signature"]}))
            elif detail.get("type") == "reasoning.encrypted" and isinstance(detail.get("data"), str):
                out += self._open({"type": "redacted_thinking", "data": detail["data"]})
                out += self._close()
        return out

    def _tool_call(self, call: Event) -> list[bytes]:
        out: list[bytes] = []
        position: int = call["index"] if isinstance(call.get("index"), int) else 0
        fn: Event = call["function"] if isinstance(call.get("function"), dict) else {}
        if position not in self.tools:
            call_id = call.get("id") if isinstance(call.get("id"), str) else f"toolu_{self.message_id}_{position}"
            out += self._open({"type": "tool_use", "id": call_id, "name": str(fn.get("name") or ""), "input": {}})
            self.tools[position] = self.index
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            out.append(self._delta_event(self.tools[position], {"type": "input_json_delta", "partial_json": arguments}))
        return out
