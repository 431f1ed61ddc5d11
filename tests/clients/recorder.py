"""A recording model server on loopback: it logs every request a client sends (method, path, headers
without secrets, body) and answers plausibly in the Anthropic Messages or OpenAI Responses format,
with one tool round trip (tests/fakes/agent.py). It captures what the real clients send
(tests/clients/capture.py writes tests/data/clients/), and in the client tests it is the upstream
that speaks the Responses API natively, as OpenAI does."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes import agent
from tests.fakes import anthropic_upstream as fa
from tests.fakes.threaded import ThreadedServer

SECRET_HEADERS = {"authorization", "x-api-key", "cookie", "proxy-authorization"}


def _sse(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


# ------------------------------------------------------------------ OpenAI Responses
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
        self.requests.append(body if isinstance(body, dict) else {})
        path = request.path
        if request.method == "POST" and path.endswith("/messages/count_tokens"):
            return web.json_response({"input_tokens": 42})
        if request.method == "POST" and path.endswith("/messages") and isinstance(body, dict):
            content, stop = agent.anthropic_turn(body)
            msg = {**fa.message("claude-text"), "model": body.get("model"), "content": content, "stop_reason": stop}
            return await self._answer(request, body, msg, fa.message_events(msg))
        if request.method == "POST" and path.endswith("/responses") and isinstance(body, dict):
            output = agent.responses_turn(body)
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
