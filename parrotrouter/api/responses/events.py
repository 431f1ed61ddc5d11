"""Chat stream chunks as the Responses API's typed Server-Sent Events, in OpenAI's order, each with
its `sequence_number`: response.created, response.in_progress, then per output item
output_item.added, its parts and deltas, output_item.done; at the end response.completed (or
response.incomplete); a stream that fails after it started ends with `error` and
response.failed. Native streams (the upstream speaks Responses) are relayed event by event,
renumbered and under our response id."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson

from ..native_usage import with_cost
from . import encode
from . import protocol as p

Event = dict[str, Any]
_LIFECYCLE = ("response.created", "response.in_progress", "response.completed", "response.incomplete",
              "response.failed", "response.queued")


def frame(event: Event) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclasses.dataclass(slots=True)
class _Open:
    """The output item being streamed."""

    kind: str  # reasoning | message | call
    index: int  # its output_index
    id: str
    text: str = ""  # reasoning or output text so far (a call: its arguments)
    refusal: str = ""
    chat_index: int = -1  # a call: its index among the chunk's tool calls
    call_id: str = ""
    name: str = ""
    details: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)  # reasoning state by index


class StreamEncoder:
    """Per-stream state: the events so far, the output items, the final response."""

    def __init__(self, request: p.ResponsesRequest, rid: str, model: str, tools: encode.ToolNames,
                 cost: Callable[[], orjson.Fragment] | None = None) -> None:
        self.tools = tools
        self.cost = cost  # the request's cost so far (a native stream's final response carries it)
        self.seq = 0
        self.response = encode.shell(request, rid, model)
        self.output: list[dict[str, Any]] = []
        self.open: _Open | None = None
        self.finish: str | None = None
        self.final: dict[str, Any] | None = None  # the response once it ended (to store)
        self.started = False
        self._native_keep = {"id": rid, "model": model, "created_at": self.response["created_at"],
                             "previous_response_id": request.previous_response_id, "store": request.store is not False}

    def _event(self, kind: str, **fields: Any) -> Event:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def _snapshot(self) -> dict[str, Any]:
        return {**self.response, "output": list(self.output)}

    def start(self) -> list[Event]:
        """response.created and response.in_progress, once, before the first item (a native stream
        sends its own)."""
        if self.started:
            return []
        self.started = True
        return [self._event("response.created", response=self._snapshot()),
                self._event("response.in_progress", response=self._snapshot())]

    # ------------------------------------------------------------------ translated chunks
    def chunks(self, chunks: list[dict[str, Any]]) -> list[Event]:
        events: list[Event] = []
        for chunk in chunks:
            native = chunk.get("native")
            if isinstance(native, list):
                events += self.native(native)
                continue
            events += self.start()
            for choice in chunk.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue  # a Responses request asks for one answer
                events += self._delta(choice.get("delta") or {})
                if choice.get("finish_reason") is not None:
                    self.finish = choice["finish_reason"]
        return events

    def _delta(self, delta: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        reasoning = delta.get("reasoning") or delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            events += self._text("reasoning", reasoning)
        details = delta.get("reasoning_details")
        if isinstance(details, list) and details:
            events += self._details(details)
        content, refusal = delta.get("content"), delta.get("refusal")
        if isinstance(content, str) and content:
            events += self._text("message", content)
        if isinstance(refusal, str) and refusal:
            events += self._text("refusal", refusal)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                events += self._call(call)
        return events

    def _text(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        item_kind = "reasoning" if kind == "reasoning" else "message"
        current = self.open
        if current is None or current.kind != item_kind:
            events += self.close()
            current = self._open_item(item_kind, events)
        if kind == "reasoning":
            current.text += text
            events.append(self._event("response.reasoning_summary_text.delta", item_id=current.id,
                                      output_index=current.index, summary_index=0, delta=text))
        elif kind == "refusal":
            if not current.refusal:
                events.append(self._part_event("response.content_part.added", current, "refusal", ""))
            current.refusal += text
            events.append(self._event("response.refusal.delta", item_id=current.id, output_index=current.index,
                                      content_index=self._refusal_index(current), delta=text))
        else:
            if not current.text:
                events.append(self._part_event("response.content_part.added", current, "output_text", ""))
            current.text += text
            events.append(self._event("response.output_text.delta", item_id=current.id, output_index=current.index,
                                      content_index=0, delta=text, logprobs=[]))
        return events

    def _details(self, details: list[Any]) -> list[Event]:
        """Pieces of the reasoning state (merged by their `index`, as chat stream clients do),
        kept for the reasoning item's `encrypted_content`."""
        events: list[Event] = []
        current = self.open
        if current is None or current.kind != "reasoning":
            events += self.close()
            current = self._open_item("reasoning", events)
        for piece in details:
            if not isinstance(piece, dict):
                continue
            index = piece.get("index")
            if not isinstance(index, int):
                index = len(current.details)
            merged = current.details.setdefault(index, {})
            for key, value in piece.items():
                if key == "text" and isinstance(value, str):
                    merged["text"] = str(merged.get("text") or "") + value
                elif key != "index":
                    merged[key] = value
        return events

    @staticmethod
    def _refusal_index(current: _Open) -> int:
        return 1 if current.text else 0

    def _part_event(self, kind: str, current: _Open, part: str, text: str) -> Event:
        index = 0 if part == "output_text" else self._refusal_index(current)
        body = {"type": "output_text", "text": text, "annotations": [], "logprobs": []} \
            if part == "output_text" else {"type": "refusal", "refusal": text}
        return self._event(kind, item_id=current.id, output_index=current.index, content_index=index, part=body)

    def _open_item(self, kind: str, events: list[Event], **call: Any) -> _Open:
        index = len(self.output)
        if kind == "reasoning":
            current = _Open(kind, index, encode.new_item_id("rs"))
            item = encode.reasoning_item("", current.id)
        elif kind == "message":
            current = _Open(kind, index, encode.new_item_id("msg"))
            item = encode.message_item(None, None, current.id, status="in_progress")
        else:
            custom = call["name"] in self.tools.custom
            current = _Open(kind, index, encode.new_item_id("ctc" if custom else "fc"), **call)
            item = encode.call_item(current.call_id, current.name, "", self.tools, current.id, "in_progress")
        self.open = current
        events.append(self._event("response.output_item.added", output_index=index, item=item))
        if kind == "reasoning":
            events.append(self._event("response.reasoning_summary_part.added", item_id=current.id,
                                      output_index=index, summary_index=0, part={"type": "summary_text", "text": ""}))
        return current

    def _call(self, call: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        fn = call.get("function")
        if not isinstance(fn, dict):
            fn = {}
        chat_index = call.get("index") if isinstance(call.get("index"), int) else 0
        current = self.open
        if current is None or current.kind != "call" or current.chat_index != chat_index:
            events += self.close()
            current = self._open_item("call", events, chat_index=chat_index,
                                      call_id=str(call.get("id") or encode.new_item_id("call")),
                                      name=str(fn.get("name") or ""))
        elif isinstance(fn.get("name"), str) and fn["name"] not in current.name:
            current.name += fn["name"]
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            current.text += arguments
            if current.name not in self.tools.custom:  # a custom tool's input is known once complete
                events.append(self._event("response.function_call_arguments.delta", item_id=current.id,
                                          output_index=current.index, delta=arguments))
        return events

    def close(self) -> list[Event]:
        """End the open item (if any): its done events, and keep it in the output."""
        current, self.open = self.open, None
        if current is None:
            return []
        events: list[Event] = []
        ids = {"item_id": current.id, "output_index": current.index}
        item = self._item(current, "completed")
        if current.kind == "reasoning":
            part = {"type": "summary_text", "text": current.text}
            events += [self._event("response.reasoning_summary_text.done", **ids, summary_index=0, text=current.text),
                       self._event("response.reasoning_summary_part.done", **ids, summary_index=0, part=part)]
        elif current.kind == "message":
            events += self._close_message(current)
        elif item["type"] == "custom_tool_call":
            if item["input"]:
                events.append(self._event("response.custom_tool_call_input.delta", **ids, delta=item["input"]))
            events.append(self._event("response.custom_tool_call_input.done", **ids, input=item["input"]))
        else:
            events.append(self._event("response.function_call_arguments.done", **ids, name=current.name,
                                      arguments=current.text))
        self.output.append(item)
        events.append(self._event("response.output_item.done", output_index=current.index, item=item))
        return events

    def _item(self, current: _Open, status: str) -> dict[str, Any]:
        if current.kind == "reasoning":
            details = [current.details[i] for i in sorted(current.details)]
            return encode.reasoning_item(current.text, current.id, details)
        if current.kind == "message":
            return encode.message_item(current.text, current.refusal, current.id, status)
        return encode.call_item(current.call_id, current.name, current.text, self.tools, current.id, status)

    def _close_message(self, current: _Open) -> list[Event]:
        events: list[Event] = []
        ids = {"item_id": current.id, "output_index": current.index}
        if current.text:
            events += [self._event("response.output_text.done", **ids, content_index=0, text=current.text, logprobs=[]),
                       self._part_event("response.content_part.done", current, "output_text", current.text)]
        if current.refusal:
            index = self._refusal_index(current)
            events += [self._event("response.refusal.done", **ids, content_index=index, refusal=current.refusal),
                       self._part_event("response.content_part.done", current, "refusal", current.refusal)]
        return events

    def done(self, usage: dict[str, Any] | None) -> list[Event]:
        """The stream ran to its end: response.completed (or .incomplete), with the usage (a
        native stream sent its own)."""
        if self.final is not None:
            return []
        events = [*self.start(), *self.close()]
        final = self._snapshot()
        final["status"], final["incomplete_details"] = encode.status_of(self.finish)
        final["usage"] = encode.usage_of(usage)
        self.final = final
        kind = "response.completed" if final["status"] == "completed" else "response.incomplete"
        return [*events, self._event(kind, response=final)]

    def failed(self, error: dict[str, Any]) -> list[Event]:
        """The stream failed after it started: `error`, then response.failed (no further events)."""
        code = str(error.get("code") or "server_error")
        message = str(error.get("message") or "The stream failed.")
        events = self.start()  # nothing was sent yet (a stream that failed before its first event)
        if self.open is not None:  # the open item, as far as it got, in the output (no done events)
            self.output.append(self._item(self.open, "incomplete"))
            self.open = None
        final = self._snapshot()
        # The response's error code is one of OpenAI's few; the `error` event carries ours.
        response_code = "rate_limit_exceeded" if code == "rate_limit_exceeded" else "server_error"
        final["status"], final["error"] = "failed", {"code": response_code, "message": message}
        self.final = final
        return [*events, self._event("error", code=code, message=message, param=error.get("param")),
                self._event("response.failed", response=final)]

    # ------------------------------------------------------------------ native events
    def native(self, upstream: list[Any]) -> list[Event]:
        """Events of an upstream that speaks Responses, as they came: renumbered, our id and model."""
        events: list[Event] = []
        for event in upstream:
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                continue
            self.started = True
            out = {**event, "sequence_number": self.seq}
            self.seq += 1
            if out["type"] in _LIFECYCLE and isinstance(out.get("response"), dict):
                out["response"] = {**out["response"], **self._native_keep}
                if out["type"] in ("response.completed", "response.incomplete", "response.failed"):
                    # Its usage is final. Without one, it stays without: the core counts the tokens
                    # only after this terminal event (the ledger row has them and the cost).
                    if self.cost is not None and out["type"] != "response.failed":
                        out["response"] = with_cost(out["response"], self.cost())
                    self.final = out["response"]
            elif out["type"] == "response.output_item.done" and isinstance(out.get("item"), dict):
                self.output.append(out["item"])
            events.append(out)
        return events
