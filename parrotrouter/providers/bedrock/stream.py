"""ConverseStream: the binary event-stream framing, and its events as OpenAI chunks.

A stream (`application/vnd.amazon.eventstream`) is a run of binary messages — prelude with
lengths and a CRC32, typed headers, a JSON payload, a CRC32 of the whole — decoded here by
botocore's own decoder. Each message becomes a `ServerSentEvent` named by its `:event-type`
(messageStart, contentBlockStart, contentBlockDelta, contentBlockStop, messageStop, metadata) or,
for a modelled exception, its `:exception-type` (throttlingException, ...), with the payload as
`data`. Event names never end in "Exception"; exception names always do.
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.eventstream import EventStreamBuffer

from ...errors import FailureKind, UpstreamFailure
from ...upstream.client import MAX_EVENT_BYTES, ServerSentEvent
from ..base import json_object, malformed
from .converse import finish_of, stream_failure, usage_of

_MIN_MESSAGE = 16  # prelude (12 bytes) and message CRC (4)
BROKEN = ":malformed"  # the event a message that cannot be decoded becomes (the translator fails on it)
UNMODELLED = ":error"  # an `:message-type: error` message (data: its error code)


class EventStreamParser:
    """Incremental event-stream decoding, bounded: a message longer than `MAX_EVENT_BYTES` is
    refused from its prelude, before its bytes are buffered."""

    __slots__ = ("_decoder", "_pending")

    def __init__(self) -> None:
        self._decoder = EventStreamBuffer()
        self._pending = bytearray()

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        pending = self._pending
        pending += chunk
        events: list[ServerSentEvent] = []
        while len(pending) >= 4:
            total = int.from_bytes(pending[:4], "big")
            if total > MAX_EVENT_BYTES:
                raise UpstreamFailure("The upstream sent a stream event larger than the gateway accepts.",
                                      kind=FailureKind.STREAM_PROTOCOL)
            if total < _MIN_MESSAGE:
                raise malformed("event-stream message")
            if len(pending) < total:
                break
            # whole messages only, so botocore's buffer never grows by small reads
            self._decoder.add_data(bytes(pending[:total]))
            del pending[:total]
            try:
                events += [_event(m.headers, m.payload) for m in self._decoder]
            except Exception:  # a CRC mismatch, a bad or unknown header: botocore raises several kinds
                # The events before it still go out; the translator then fails the stream.
                events.append(ServerSentEvent(BROKEN, ""))
                self._pending = bytearray()
                return events
        return events

    def close(self) -> list[ServerSentEvent]:
        return []  # a message cut short is caught by the stream's missing end (the metadata event)


def _event(headers: dict[str, Any], payload: bytes) -> ServerSentEvent:
    kind = headers.get(":message-type")
    name = headers.get(":event-type") if kind == "event" else headers.get(":exception-type")
    if kind == "error" or not isinstance(name, str):  # an unmodelled error, or no type at all
        code = headers.get(":error-code")
        return ServerSentEvent(UNMODELLED, str(code)[:100] if code else "untyped message")
    try:
        return ServerSentEvent(name, payload.decode("utf-8"))
    except UnicodeDecodeError:
        return ServerSentEvent(BROKEN, "")


def _chunk(delta: dict[str, Any], finish: str | None = None, native: str | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    if native is not None:
        choice["native_finish_reason"] = native
    return {"object": "chat.completion.chunk", "choices": [choice]}


class ConverseStream:
    """ConverseStream events to OpenAI chunks. Text blocks start with their first delta; a tool
    call's block starts with its id and name (the first tool-call delta), its input then arrives
    as JSON fragments. The stream ends with `metadata` (the usage), after `messageStop`."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.done = False
        self.tools: dict[int, int] = {}  # contentBlockIndex -> tool call index

    def feed(self, event: ServerSentEvent) -> list[dict[str, Any]]:
        name = event.event or ""
        if name == BROKEN:
            raise malformed("event-stream message")
        if name == UNMODELLED:
            raise UpstreamFailure(f"The upstream stream failed ({event.data}).", kind=FailureKind.SERVER_ERROR)
        if name.endswith("Exception"):
            try:
                message = orjson.loads(event.data).get("message")
            except (orjson.JSONDecodeError, AttributeError):
                message = None
            raise stream_failure(name, message, self.provider)
        handler = self._HANDLERS.get(name)
        if handler is None:
            return []  # event types added after this adapter was written
        data = json_object(event.data, "stream event")
        return handler(self, data)

    def _message_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        return [_chunk({"role": "assistant", "content": ""})]

    def _block_start(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        use = (data.get("start") or {}).get("toolUse")
        if not use:
            return []
        index = self.tools[data["contentBlockIndex"]] = len(self.tools)
        return [_chunk({"tool_calls": [{"index": index, "id": use["toolUseId"], "type": "function",
                                        "function": {"name": use["name"], "arguments": ""}}]})]

    def _block_delta(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        delta = data.get("delta") or {}
        if "text" in delta:
            return [_chunk({"content": delta["text"] or ""})]
        if "toolUse" in delta:
            index = self.tools.get(data.get("contentBlockIndex", -1))
            if index is None:
                raise malformed("stream: tool input for a block that is not a tool call")
            return [_chunk({"tool_calls": [{"index": index,
                                            "function": {"arguments": delta["toolUse"].get("input") or ""}}]})]
        if text := (delta.get("reasoningContent") or {}).get("text"):
            return [_chunk({"reasoning": text})]
        return []

    def _message_stop(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        finish, native = finish_of(data.get("stopReason"))
        return [_chunk({}, finish, native)]

    def _metadata(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        self.done = True
        usage = usage_of(data.get("usage"))
        return [] if usage is None else [{"object": "chat.completion.chunk", "choices": [], "usage": usage}]

    _HANDLERS = {"messageStart": _message_start, "contentBlockStart": _block_start,
                 "contentBlockDelta": _block_delta, "messageStop": _message_stop, "metadata": _metadata}
