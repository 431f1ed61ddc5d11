"""A recording model server on loopback: it logs every request a client sends (method, path, headers
without secrets, body) and answers plausibly in the Anthropic Messages or OpenAI Responses format,
with one shell-tool round trip (tests/fakes/agent.py). Used to capture what the real clients send
(tests/clients/capture.py writes tests/data/clients/); the gateway is not involved."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes import agent
from tests.fakes.threaded import ThreadedServer

SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "proxy-authorization"}


def _sse(kind: str | None, data: dict[str, Any]) -> bytes:
    head = f"event: {kind}\n" if kind else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


# ------------------------------------------------------------------ Anthropic Messages
def _anthropic_result(messages: list[dict[str, Any]]) -> str | None:
    last = messages[-1] if messages else {}
    for block in last.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content")
            if isinstance(content, list):
                return "".join(part.get("text", "") for part in content if isinstance(part, dict))
            return str(content or "")
    return None


def anthropic_message(body: dict[str, Any]) -> dict[str, Any]:
    result = _anthropic_result(body.get("messages") or [])
    call = agent.tool_call([t.get("name", "") for t in body.get("tools") or []])
    if result is None and call is not None:
        content: list[dict[str, Any]] = [{"type": "tool_use", "id": "toolu_01Rec", "name": call[0],
                                          "input": call[1]}]
        stop = "tool_use"
    else:
        content = [{"type": "text", "text": agent.final_text(result) if result is not None else "Hello."}]
        stop = "end_turn"
    return {"id": "msg_01Rec", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 30, "output_tokens": 10, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}}


def anthropic_events(msg: dict[str, Any]) -> list[bytes]:
    start = {**msg, "content": [], "stop_reason": None, "usage": {**msg["usage"], "output_tokens": 1}}
    out = [_sse("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            out.append(_sse("content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": {"type": "text", "text": ""}}))
            out.append(_sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                                    "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            out.append(_sse("content_block_start", {"type": "content_block_start", "index": index,
                                                    "content_block": {**block, "input": {}}}))
            out.append(_sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(_sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"],
                                                                         "stop_sequence": None},
                                      "usage": {"output_tokens": msg["usage"]["output_tokens"]}}))
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return out


# ------------------------------------------------------------------ OpenAI Responses
def _responses_result(items: Any) -> str | None:
    if not isinstance(items, list) or not items:
        return None
    last = items[-1]
    if isinstance(last, dict) and last.get("type") in ("function_call_output", "custom_tool_call_output"):
        output = last.get("output")
        if isinstance(output, list):
            return "".join(part.get("text", "") for part in output if isinstance(part, dict))
        return str(output or "")
    return None


def responses_output(body: dict[str, Any]) -> list[dict[str, Any]]:
    result = _responses_result(body.get("input"))
    call = agent.tool_call([t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)])
    if result is None and call is not None:
        return [{"type": "function_call", "id": "fc_01Rec", "call_id": "call_01Rec", "name": call[0],
                 "arguments": json.dumps(call[1]), "status": "completed"}]
    text = agent.final_text(result) if result is not None else "Hello."
    return [{"type": "message", "id": "msg_01Rec", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": text, "annotations": []}]}]


def response_object(body: dict[str, Any], output: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": "resp_01Rec", "object": "response", "created_at": 1765000000, "status": status,
            "model": body.get("model"), "output": output if status == "completed" else [],
            "usage": {"input_tokens": 30, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 10,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 40}
            if status == "completed" else None}


def responses_events(body: dict[str, Any], output: list[dict[str, Any]]) -> list[bytes]:
    seq = iter(range(1000))
    out: list[bytes] = []

    def emit(kind: str, **data: Any) -> None:
        out.append(_sse(kind, {"type": kind, "sequence_number": next(seq), **data}))

    emit("response.created", response=response_object(body, output, "in_progress"))
    emit("response.in_progress", response=response_object(body, output, "in_progress"))
    for index, item in enumerate(output):
        if item["type"] == "function_call":
            emit("response.output_item.added", output_index=index, item={**item, "arguments": "",
                                                                           "status": "in_progress"})
            emit("response.function_call_arguments.delta", output_index=index, item_id=item["id"],
                 delta=item["arguments"])
            emit("response.function_call_arguments.done", output_index=index, item_id=item["id"],
                 arguments=item["arguments"])
        else:
            text = item["content"][0]["text"]
            emit("response.output_item.added", output_index=index, item={**item, "content": [],
                                                                           "status": "in_progress"})
            part = {"type": "output_text", "text": "", "annotations": []}
            emit("response.content_part.added", output_index=index, item_id=item["id"], content_index=0, part=part)
            emit("response.output_text.delta", output_index=index, item_id=item["id"], content_index=0, delta=text)
            emit("response.output_text.done", output_index=index, item_id=item["id"], content_index=0, text=text)
            emit("response.content_part.done", output_index=index, item_id=item["id"], content_index=0,
                 part={**part, "text": text})
        emit("response.output_item.done", output_index=index, item=item)
    emit("response.completed", response=response_object(body, output, "completed"))
    return out


# ------------------------------------------------------------------ the server
class Recorder(ThreadedServer):
    """Every request, in order, as `{"method", "path", "headers", "body"}`."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): ("<secret>" if k.lower() in SECRET_HEADERS else v) for k, v in request.headers.items()}
        self.log.append({"method": request.method, "path": request.path_qs, "headers": headers, "body": body})
        path = request.path
        if request.method == "POST" and path.endswith("/messages/count_tokens"):
            return web.json_response({"input_tokens": 42})
        if request.method == "POST" and path.endswith("/messages") and isinstance(body, dict):
            msg = anthropic_message(body)
            return await self._answer(request, body, msg, anthropic_events(msg))
        if request.method == "POST" and path.endswith("/responses") and isinstance(body, dict):
            output = responses_output(body)
            return await self._answer(request, body, response_object(body, output, "completed"),
                                      responses_events(body, output))
        if request.method == "GET" and path.endswith("/models"):
            return web.json_response({"object": "list", "data": []})
        return web.json_response({"error": {"message": f"no route {request.method} {path}"}}, status=404)

    async def _answer(self, request: web.Request, body: dict[str, Any], whole: dict[str, Any],
                      events: list[bytes]) -> web.StreamResponse:
        if not body.get("stream"):
            return web.json_response(whole)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for event in events:
            await resp.write(event)
        return resp
