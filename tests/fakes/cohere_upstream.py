"""A fake Cohere v2 Chat API (POST /v2/chat) speaking the documented wire format.

The model name picks the scenario. Golden scenarios serve answers and event streams transcribed
from Cohere's documentation (tests/data/cohere/: the Chat API's response structure, and the
tool-use streaming guide's tool-calling and response-generation streams, citations included);
the others stream the JSON answer they return, event by event (`event: <type>` + `data: <json>`,
as Cohere sends them), so stream and non-stream can be compared. Errors use Cohere's documented
body, `{"id": ..., "message": ...}`."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import cohere
import pydantic
from aiohttp import web
from cohere.v2.raw_client import RawV2Client

from .threaded import ThreadedServer

DATA = Path(__file__).resolve().parent.parent / "data" / "cohere"
GOLDEN = {"command-text": "chat", "command-tools": "tool_calls", "command-citations": "citations"}
GOLDEN_STREAMS = {"command-tools", "command-citations"}  # the documentation shows their streams too


def _usage(billed_in: int = 17, billed_out: int = 12, raw_in: int = 215, raw_out: int = 12,
           cached: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {"billed_units": {"input_tokens": billed_in, "output_tokens": billed_out},
                             "tokens": {"input_tokens": raw_in, "output_tokens": raw_out}}
    if cached is not None:
        usage["cached_tokens"] = cached
    return usage


def _text(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text}]


SCENARIOS: dict[str, dict[str, Any]] = {
    "command-max": {"message": {"content": _text("This answer was cut")}, "finish_reason": "MAX_TOKENS"},
    "command-stopseq": {"message": {"content": _text("One, two")}, "finish_reason": "STOP_SEQUENCE"},
    "command-json": {"message": {"content": _text('{"name": "Ada", "age": 36}')}, "finish_reason": "COMPLETE"},
    "command-cached": {"message": {"content": _text("Cached.")}, "finish_reason": "COMPLETE",
                       "usage": _usage(40, 3, 1200, 3, cached=1024)},
    "command-thinking": {"message": {"content": [{"type": "thinking", "thinking": "Six times seven is 42."},
                                                 {"type": "text", "text": "6 x 7 = 42."}]},
                         "finish_reason": "COMPLETE", "usage": _usage(20, 30, 300, 30)},
    "command-plan-text": {"message": {"tool_plan": "I will look it up.", "content": _text(" Found nothing to call."),
                                      "tool_calls": [{"id": "lookup_0x1", "type": "function", "function": {
                                          "name": "lookup", "arguments": "{}"}}]},
                          "finish_reason": "TOOL_CALL"},
    "command-error-finish": {"message": {"content": _text("Half an ans")}, "finish_reason": "ERROR"},
    "command-timeout-finish": {"message": {"content": _text("Too sl")}, "finish_reason": "TIMEOUT"},
}
ERRORS = {
    "command-400": (400, "invalid request: temperature must be between 0 and 1.0 inclusive."),
    "command-401": (401, "invalid api token"),
    "command-402": (402, "Please add or update your payment method at https://dashboard.cohere.com/billing?tab=payment "
                         "to continue"),
    "command-404": (404, "model 'command-404' not found, make sure the correct model ID was used and that you have "
                         "access to the model."),
    "command-422": (422, "invalid request: images are not supported by this model"),
    "command-429": (429, "You are past the per minute request limit, please wait and try again later."),
    "command-498": (498, "invalid api token"),
    "command-499": (499, "request cancelled"),
    "command-500": (500, "internal server error, this has been reported to our developers. id 4b7c-secret-host"),
    "command-503": (503, "service unavailable"),
}


def answer(model: str) -> dict[str, Any]:
    """The JSON answer of a scenario (a golden fixture, or built from SCENARIOS)."""
    if model in GOLDEN:
        return json.loads((DATA / f"{GOLDEN[model]}.json").read_text())  # type: ignore[no-any-return]
    spec = SCENARIOS.get(model, {"message": {"content": _text("Hello! How can I help you today?")},
                                 "finish_reason": "COMPLETE"})
    return {"id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4", "finish_reason": spec["finish_reason"],
            "message": {"role": "assistant", **spec["message"]}, "usage": spec.get("usage") or _usage()}


def _event(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


def _pieces(text: str, size: int = 6) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def events(model: str) -> list[bytes]:
    """The stream of a scenario: a golden one as documented, else built from its answer."""
    if model in GOLDEN_STREAMS:
        return [(block + "\n\n").encode() for block in
                (DATA / f"{GOLDEN[model]}.sse").read_text().split("\n\n") if block.strip()]
    resp = answer(model)
    msg = resp["message"]
    out = [_event({"type": "message-start", "id": resp["id"], "delta": {"message": {
        "role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})]
    for piece in _pieces(msg.get("tool_plan") or ""):
        out.append(_event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}}))
    for index, call in enumerate(msg.get("tool_calls") or ()):
        out.append(_event({"type": "tool-call-start", "index": index, "delta": {"message": {"tool_calls": {
            "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}}}}))
        for piece in _pieces(call["function"]["arguments"], 4):
            out.append(_event({"type": "tool-call-delta", "index": index, "delta": {"message": {"tool_calls": {
                "function": {"arguments": piece}}}}}))
        out.append(_event({"type": "tool-call-end", "index": index}))
    for index, item in enumerate(msg.get("content") or ()):
        kind = item["type"]
        out.append(_event({"type": "content-start", "index": index, "delta": {"message": {"content": {
            "type": kind, kind: ""}}}}))
        for piece in _pieces(item[kind]):
            out.append(_event({"type": "content-delta", "index": index, "delta": {"message": {"content": {
                kind: piece}}}, "logprobs": None}))
        out.append(_event({"type": "content-end", "index": index}))
    end: dict[str, Any] = {"finish_reason": resp["finish_reason"], "usage": resp["usage"]}
    if resp["finish_reason"] == "ERROR":
        end["error"] = "an internal error occurred on host gpu-17.internal"
    out.append(_event({"type": "message-end", "delta": end}))
    return out


class FakeCohere(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self.chat)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = str(body.get("model", ""))
        if model in ERRORS:
            status, text = ERRORS[model]
            return web.json_response({"id": "2a8f5d1e-9c1b-4f7e-8f0a-1d2c3b4a5e6f", "message": text}, status=status,
                                     headers={"Retry-After": "7"} if status == 429 else None)
        if not body.get("stream"):
            return web.json_response(answer(model))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for frame in events(model):
            await resp.write(frame)
        return resp


# ---------------------------------------------------------------------------- the SDK's request types
def _no_extras(value: Any, where: str) -> None:
    """The cohere SDK's models allow unknown keys (kept in `model_extra`): refuse them here."""
    if isinstance(value, pydantic.BaseModel):
        assert not value.model_extra, f"{where}: keys unknown to the cohere SDK: {sorted(value.model_extra)}"
        for name in type(value).model_fields:
            _no_extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _no_extras(item, f"{where}[{i}]")


def _validate(annotation: Any, value: Any, where: str) -> None:
    _no_extras(pydantic.TypeAdapter(annotation).validate_python(value), where)


def check_body(body: dict[str, Any]) -> None:
    """The outgoing body is what the official cohere SDK's `v2.chat` / `v2.chat_stream` would send:
    no top-level key it lacks, and every part valid against its typed request classes."""
    allowed = set(inspect.signature(RawV2Client.chat_stream).parameters) - {"self", "request_options"} | {"stream"}
    assert set(body) <= allowed, f"keys the cohere SDK does not send: {sorted(set(body) - allowed)}"
    assert isinstance(body["model"], str) and body["model"]
    assert isinstance(body["messages"], list) and body["messages"]
    for i, message in enumerate(body["messages"]):
        _validate(cohere.ChatMessageV2, message, f"messages[{i}]")
    for i, tool in enumerate(body.get("tools", ())):
        _validate(cohere.ToolV2, tool, f"tools[{i}]")
        assert isinstance(tool["function"]["parameters"], dict)
    if "response_format" in body:
        _validate(cohere.ResponseFormatV2, body["response_format"], "response_format")
    if "thinking" in body:
        _validate(cohere.Thinking, body["thinking"], "thinking")
        assert body["thinking"]["type"] in ("enabled", "disabled")
    assert body.get("tool_choice", "NONE") in ("REQUIRED", "NONE")  # V2ChatRequestToolChoice's values
    for name, kind, low, high in (("max_tokens", int, 1, None), ("k", int, 0, 500), ("p", float, 0.01, 0.99),
                                  ("temperature", float, 0.0, None), ("frequency_penalty", float, 0.0, 1.0),
                                  ("presence_penalty", float, 0.0, 1.0), ("seed", int, None, None)):
        if name in body:  # the ranges the SDK's docstrings give
            value = body[name]
            assert isinstance(value, kind) or (kind is float and isinstance(value, int)), (name, value)
            assert (low is None or value >= low) and (high is None or value <= high), (name, value)
    for name in ("stream", "strict_tools"):
        assert isinstance(body.get(name, False), bool)
    stops = body.get("stop_sequences", [])
    assert isinstance(stops, list) and len(stops) <= 5 and all(isinstance(s, str) for s in stops)
