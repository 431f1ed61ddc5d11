"""A fake Anthropic Messages API speaking the documented wire format (JSON and SSE events).

The model name picks the scenario; streams are generated from the same message the JSON answer
returns, event by event, so stream and non-stream can be compared. `claude-paced` (and
`claude-paced-long`) stream one event every 0.2 s (for clients that hang up midway);
`claude-thinks` answers after 1.5 s (a client may hang up first). Every request body, path and header set is recorded;
`/v1/messages/count_tokens` answers `COUNT_TOKENS` (a number no tokenizer would give for a short
prompt, so a test knows who counted), but 404 for `claude-nocount`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from . import agent
from .threaded import ThreadedServer


def _usage(input_tokens: int = 12, output_tokens: int = 9, read: int = 0, write: int = 0) -> dict[str, int]:
    return {"input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write}


SCENARIOS: dict[str, dict[str, Any]] = {
    "claude-text": {"content": [{"type": "text", "text": "Hello! How can I help you today?"}],
                    "stop_reason": "end_turn", "usage": _usage()},
    "claude-cache": {"content": [{"type": "text", "text": "Cached answer."}], "stop_reason": "end_turn",
                     "usage": _usage(5, 4, read=100, write=20)},
    "claude-tools": {"content": [{"type": "text", "text": "Let me check the weather."},
                                 {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                                  "input": {"city": "Paris", "unit": "celsius"}}],
                     "stop_reason": "tool_use", "usage": _usage(40, 30)},
    "claude-parallel": {"content": [
        {"type": "tool_use", "id": "toolu_01Paris", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02Tokyo", "name": "get_weather", "input": {"city": "Tokyo", "unit": "f"}}],
        "stop_reason": "tool_use", "usage": _usage(40, 50)},
    "claude-thinking": {"content": [
        {"type": "thinking", "thinking": "The user asks for 6 x 7. That is 42.",
         "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
        {"type": "text", "text": "6 x 7 = 42."}], "stop_reason": "end_turn", "usage": _usage(20, 40)},
    "claude-json": {"content": [{"type": "text", "text": '{"name": "Ada", "age": 36}'}], "stop_reason": "end_turn",
                    "usage": _usage()},
    "claude-max": {"content": [{"type": "text", "text": "This answer was cut"}], "stop_reason": "max_tokens",
                   "usage": _usage()},
    "claude-refusal": {"content": [{"type": "text", "text": "I can't help with that."}], "stop_reason": "refusal",
                       "usage": _usage()},
    "claude-paced": {"content": [{"type": "text", "text": "One two three four five six seven eight nine ten eleven "
                                                          "twelve thirteen fourteen fifteen sixteen."}],
                     "stop_reason": "end_turn", "usage": _usage(10, 20)},
    # a long prompt (most of it cached), paced: a client that hangs up midway saw its real size
    "claude-paced-long": {"content": [{"type": "text", "text": "One two three four five six seven eight nine ten."}],
                          "stop_reason": "end_turn", "usage": _usage(50_000, 20, read=30_000, write=10_000)},
    # an Anthropic-compatible server that reports no usage
    "claude-nousage": {"content": [{"type": "text", "text": "An answer nobody counted for us."}],
                       "stop_reason": "end_turn", "usage": None},
    # an answer this gateway cannot read (a tool_use block without its id): JSON only
    "claude-odd": {"content": [{"type": "tool_use", "name": "get_weather", "input": {}}], "stop_reason": "tool_use",
                   "usage": _usage()},
    "claude-thinks": {"content": [{"type": "text", "text": "After a long thought: yes."}], "stop_reason": "end_turn",
                      "usage": _usage()},
    "claude-stopseq": {"content": [{"type": "text", "text": "One, two"}], "stop_reason": "stop_sequence",
                       "stop_sequence": "three", "usage": _usage()},
}
ERRORS = {
    "claude-429": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit",
                   {"retry-after": "13"}),
    "claude-529": (529, "overloaded_error", "Overloaded", {}),
    "claude-401": (401, "authentication_error", "invalid x-api-key", {}),
    "claude-400": (400, "invalid_request_error", "messages: text content blocks must be non-empty", {}),
    "claude-500": (500, "api_error", "Internal server error", {}),
}


def message(model: str) -> dict[str, Any]:
    spec = SCENARIOS.get(model, SCENARIOS["claude-text"])
    return {"id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": model,
            "content": spec["content"], "stop_reason": spec["stop_reason"],
            "stop_sequence": spec.get("stop_sequence"), "usage": spec["usage"]}


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def _pieces(text: str, size: int = 7) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def events(model: str, error_midway: bool = False) -> list[bytes]:
    return message_events(message(model if not error_midway else "claude-text"), error_midway)


def message_events(msg: dict[str, Any], error_midway: bool = False) -> list[bytes]:
    """The stream of events that builds `msg`."""
    usage = msg["usage"]
    start = {**msg, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**usage, "output_tokens": 1} if usage else None}
    out = [_event("message_start", {"message": start}), _event("ping", {})]
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            out.append(_event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}}))
            for piece in _pieces(block["text"]):
                out.append(_event("content_block_delta", {"index": index,
                                                          "delta": {"type": "text_delta", "text": piece}}))
                if error_midway:
                    out.append(_event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}))
                    return out
        elif block["type"] == "tool_use":
            out.append(_event("content_block_start", {"index": index, "content_block": {
                "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}}))
            for piece in _pieces(json.dumps(block["input"]), 9):
                out.append(_event("content_block_delta", {"index": index, "delta": {
                    "type": "input_json_delta", "partial_json": piece}}))
        elif block["type"] == "thinking":
            out.append(_event("content_block_start", {"index": index, "content_block": {
                "type": "thinking", "thinking": ""}}))
            for piece in _pieces(block["thinking"]):
                out.append(_event("content_block_delta", {"index": index, "delta": {
                    "type": "thinking_delta", "thinking": piece}}))
            out.append(_event("content_block_delta", {"index": index, "delta": {
                "type": "signature_delta", "signature": block["signature"]}}))
        out.append(_event("content_block_stop", {"index": index}))
    out.append(_event("message_delta", {"delta": {"stop_reason": msg["stop_reason"],
                                                  "stop_sequence": msg["stop_sequence"]},
                                        "usage": usage}))  # cumulative, input included, as Anthropic sends it
    out.append(_event("message_stop", {}))
    return out


AGENT_MODEL = "claude-agent"  # one tool round trip for the coding clients (tests/fakes/agent.py)
COUNT_TOKENS = 4321


class FakeAnthropic(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body.get("model", "")
        if model in ERRORS:
            status, kind, text, headers = ERRORS[model]
            return web.json_response({"type": "error", "error": {"type": kind, "message": text}}, status=status,
                                     headers=headers)
        if model == "claude-nocount":  # as an Anthropic-compatible server without the endpoint
            return web.json_response({"type": "error", "error": {"type": "not_found_error", "message": "Not found"}},
                                     status=404)
        return web.json_response({"input_tokens": COUNT_TOKENS})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body.get("model", "")
        if model == AGENT_MODEL:
            return await self._agent(request, body)
        if model in ERRORS:
            status, kind, text, headers = ERRORS[model]
            return web.json_response({"type": "error", "error": {"type": kind, "message": text}}, status=status,
                                     headers=headers)
        if model == "claude-thinks":  # a long time to the first byte (a big prompt, a long thought)
            await asyncio.sleep(1.5)
        if not body.get("stream"):
            return web.json_response(message(model))
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in events(model if model != "claude-midstream" else "claude-text",
                            error_midway=model == "claude-midstream"):
            await resp.write(chunk)
            if model.startswith("claude-paced"):
                await asyncio.sleep(0.2)
        return resp

    async def _agent(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        content, stop = agent.anthropic_turn(body)
        msg = {**message("claude-text"), "model": body["model"], "content": content, "stop_reason": stop}
        if not body.get("stream"):
            return web.json_response(msg)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in message_events(msg):
            await resp.write(chunk)
        return resp
