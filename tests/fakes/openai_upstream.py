"""A fake OpenAI-compatible upstream, served over real HTTP on loopback in a background thread.

The upstream model name selects the behaviour, so one gateway config can reach every scenario:
`ok` (default), `tools`, `n`, `429`, `500`, `503`, `401`, `400-context`, `400-leaky`, `stall`,
`slow-first-byte`, `cut-N` (stream cut after N chunks, no [DONE]), `malformed`, `error-in-stream`,
`hostile-tools` (junk tool call deltas), `echo`
(the answer repeats the last message's text: JSON and streams),
`stall-after-N`, `no-usage`, `empty-usage` and `null-usage` (a usage without counts: `{}`, nulls),
`paced`, `paced-slow` (0.4 s a word), `hold` (answers after 4 s, so
that concurrent requests overlap). A model name ending in `+greedy` (e.g. `gpt-4o+greedy`) answers
after 2 s and bills the most a real upstream could (see `_greedy_usage`).
Every request body is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from . import agent
from .threaded import ThreadedServer

ANSWER = "Hello from the fake upstream. It has several words in it."
WORDS = ["Hello", " from", " the", " fake", " upstream.", " It", " has", " several", " words", " in", " it."]


# Usage objects that report nothing: the gateway counts the tokens itself.
ODD_USAGE: dict[str, dict[str, Any]] = {
    "empty-usage": {},
    "null-usage": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
}


def _usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", [])) or 1
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}


def _greedy_usage(body: dict[str, Any]) -> dict[str, Any]:
    """The most an upstream bills for this request, by the vendors' own published recipes rather
    than the gateway's: OpenAI's message counting (3 tokens a message, the role, the content, the
    name plus 1, tool calls and call ids), tool, function and schema definitions, Anthropic's
    tool-use system prompt (346 tokens); every answer at its output cap, plus a thinking budget
    (`reasoning.max_tokens`) on top of it, as Anthropic bills thinking."""
    from parrotrouter.tokens import count_text

    def count(value: Any) -> int:
        return count_text(value if isinstance(value, str) else orjson.dumps(value).decode(), "gpt-4o")

    if "messages" in body:
        prompt = 3
        for m in body["messages"]:
            content = m.get("content")
            parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content or []]
            prompt += 3 + count(m["role"]) + sum(count(p) for p in parts)
            if m.get("name"):
                prompt += 1 + count(m["name"])
            for field in ("tool_calls", "tool_call_id"):
                if m.get(field):
                    prompt += count(m[field])
        prompt += sum(count(body[k]) for k in ("tools", "functions", "response_format") if body.get(k))
        if body.get("tools") or body.get("functions"):
            prompt += 346
        answers = body.get("n") or 1
        cap = body.get("max_completion_tokens") or body.get("max_tokens")
        thinking = (body.get("reasoning") or {}).get("max_tokens") or 0
    else:
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        prompt = sum(count(p) for p in prompts)
        answers = len(prompts) * max(body.get("n") or 1, body.get("best_of") or 1)
        cap = body.get("max_tokens")
        thinking = 0
    assert isinstance(cap, int), "a greedy upstream needs max_tokens to know its worst case"
    completion = answers * (cap + thinking)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def echoed(body: dict[str, Any]) -> str:
    """The `echo` scenario's answer: the last message's text, repeated."""
    content = (body.get("messages") or [{}])[-1].get("content")
    parts = [content] if isinstance(content, str) else [p.get("text", "") for p in content or [] if isinstance(p, dict)]
    return "You said: " + " ".join(parts)


def _words(text: str) -> list[str]:
    first, *rest = text.split(" ")
    return [first, *(" " + w for w in rest)]


def _chunk(model: str, delta: dict[str, Any] | None, finish: str | None = None, index: int = 0,
           usage: dict[str, Any] | None = None) -> bytes:
    obj: dict[str, Any] = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": 1,
                           "model": model, "system_fingerprint": "fp_fake",
                           "choices": [] if delta is None else
                           [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + orjson.dumps(obj) + b"\n\n"


# A 400 that says what is wrong with the request, and more than a client should read.
LEAKY_MESSAGE = ("Invalid 'temperature': must be at most 2. Request rejected for organization org-abc123 using key "
                 "sk-proj-abc1****wxyz; see /srv/app/keys.py on 10.20.30.40 (contact ops@corp.example.com).")

TOOL_CALLS = [
    {"id": "call_abc123", "type": "function",
     "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}},
]


class FakeOpenAI(ThreadedServer):
    def __init__(self, keepalive_timeout: float = 75.0) -> None:
        super().__init__(keepalive_timeout=keepalive_timeout)
        self.disconnects = 0
        self.calls: dict[str, int] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/responses", self.responses)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def last(self, model: str | None = None) -> dict[str, Any]:
        for body in reversed(self.requests):
            if model is None or body.get("model") == model:
                return body
        raise AssertionError(f"no request for {model}")

    # ------------------------------------------------------------------ handlers
    async def responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API, natively (tests/fakes/openai_responses.py)."""
        from .openai_responses import serve

        return await serve(request, await self.record(request))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        prompt = body.get("prompt")
        if str(body.get("model")).endswith("+greedy"):
            await asyncio.sleep(2)
            return web.json_response({
                "id": "cmpl-up", "object": "text_completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "text": "greedy", "logprobs": None, "finish_reason": "length"}],
                "usage": _greedy_usage(body)})
        if body.get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i, word in enumerate(WORDS[:3]):
                finish = "length" if i == 2 else None
                obj = {"id": "cmpl-up", "object": "text_completion", "created": 1, "model": body["model"],
                       "choices": [{"index": 0, "text": word, "logprobs": None, "finish_reason": finish}]}
                await resp.write(b"data: " + orjson.dumps(obj) + b"\n\n")
            usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
            await resp.write(b"data: " + orjson.dumps({"id": "cmpl-up", "object": "text_completion", "created": 1,
                                                       "model": body["model"], "choices": [], "usage": usage})
                             + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp
        n = body.get("n") or 1
        return web.json_response({
            "id": "cmpl-up", "object": "text_completion", "created": 1, "model": body["model"],
            "choices": [{"index": i, "text": f" completion of {prompt!r}", "logprobs": None,
                         "finish_reason": "stop"} for i in range(n)],
            "usage": {"prompt_tokens": 2, "completion_tokens": 4 * n, "total_tokens": 2 + 4 * n}})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        scenario = str(body.get("model", "ok")).split("/")[-1]
        if scenario.startswith("fake-"):
            scenario = scenario[5:]
        self.calls[scenario] = self.calls.get(scenario, 0) + 1
        if scenario == "agent":  # one tool round trip for the coding clients (tests/fakes/agent.py)
            return await self._agent(request, body)
        if scenario == "flaky" and self.calls[scenario] % 2 == 1:  # every other call: 429, retry in 1 s
            return web.json_response({"error": {"message": "Slow down", "type": "requests",
                                                "code": "rate_limit_exceeded"}}, status=429,
                                     headers={"Retry-After": "1"})
        status_errors = {
            "429": (429, {"message": "Rate limit reached for requests", "type": "requests",
                          "code": "rate_limit_exceeded"}, {"Retry-After": "7"}),
            "429-short": (429, {"message": "Rate limit reached for requests", "type": "requests",
                                "code": "rate_limit_exceeded"}, {"Retry-After": "1"}),
            "500": (500, {"message": "The server had an error", "type": "server_error", "code": None}, {}),
            "503": (503, {"message": "The engine is currently overloaded", "type": "server_error",
                          "code": None}, {}),
            "401": (401, {"message": "Incorrect API key provided: sk-upstr*****cret.", "type":
                          "invalid_request_error", "code": "invalid_api_key"}, {}),
            "400-context": (400, {"message": "This model's maximum context length is 10 tokens.",
                                  "type": "invalid_request_error", "code": "context_length_exceeded",
                                  "param": "messages"}, {}),
            "400-leaky": (400, {"message": LEAKY_MESSAGE, "type": "invalid_request_error", "code": None,
                                "param": "temperature"}, {}),
        }
        if scenario in status_errors:
            status, err, headers = status_errors[scenario]
            return web.json_response({"error": err}, status=status, headers=headers)
        if scenario == "slow-first-byte":
            await asyncio.sleep(3)
        if scenario == "slow":
            await asyncio.sleep(1.5)
        if scenario == "hold":
            await asyncio.sleep(4)
        if scenario.endswith("+greedy"):
            await asyncio.sleep(2)
            out = self._completion(body, scenario)
            out["usage"] = _greedy_usage(body)
            return web.json_response(out)
        if scenario == "stall":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.disconnects += 1
                raise
        if body.get("stream"):
            return await self._stream(request, body, scenario)
        return web.json_response(self._completion(body, scenario))

    def _completion(self, body: dict[str, Any], scenario: str) -> dict[str, Any]:
        n = body.get("n") or 1
        if scenario == "tools" and not any(m.get("role") == "tool" for m in body["messages"]):
            message: dict[str, Any] = {"role": "assistant", "content": None, "tool_calls": TOOL_CALLS}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": echoed(body) if scenario == "echo" else ANSWER}
            finish = "stop"
        out: dict[str, Any] = {
            "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1, "model": body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [{"index": i, "message": dict(message), "logprobs": None, "finish_reason": finish}
                        for i in range(n)],
        }
        if scenario != "no-usage":
            out["usage"] = ODD_USAGE[scenario] if scenario in ODD_USAGE else _usage(body, 12 * n)
        return out

    async def _stream(self, request: web.Request, body: dict[str, Any], scenario: str) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            async for frame in self._frames(body, scenario):
                if frame is None:  # cut the connection without finishing the response
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                await resp.write(frame)
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnects += 1
            raise
        return resp

    async def _frames(self, body: dict[str, Any], scenario: str) -> AsyncIterator[bytes | None]:
        model = body["model"]
        n = body.get("n") or 1
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        cut = int(scenario[4:]) if scenario.startswith("cut-") else None
        stall_after = int(scenario[12:]) if scenario.startswith("stall-after-") else None
        if scenario == "error-first":  # an error event before any content, in a 200 stream
            yield _chunk(model, {"role": "assistant", "content": ""})
            yield b'data: {"error": {"message": "upstream busy", "type": "server_error", "code": 503}}\n\n'
            return
        if scenario == "stall-first":  # headers and a role chunk, then nothing
            yield _chunk(model, {"role": "assistant", "content": ""})
            await asyncio.sleep(3600)
        if scenario == "malformed-first":
            yield b"data: {broken\n\n"
            return
        if scenario == "cut-0":
            yield _chunk(model, {"role": "assistant", "content": ""})
            yield None
            return
        if scenario == "error-in-stream":
            yield _chunk(model, {"role": "assistant", "content": ""})
            yield _chunk(model, {"content": "Hello"})
            yield (b'data: {"error": {"message": "Upstream overloaded mid-stream", "type": "server_error", '
                   b'"code": 503}}\n\n')
            return
        sent = 0
        if scenario == "hostile-tools":  # tool call deltas no real upstream sends: a huge index, junk
            yield _chunk(model, {"role": "assistant", "content": "Hi", "tool_calls": [
                {"index": 10**12, "id": "call_far", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"index": -5, "function": {"name": 7, "arguments": ["x"]}}, "junk", {"index": "0"}]})
            yield _chunk(model, {"content": 5, "tool_calls": "abc"})
            yield _chunk(model, {"content": " there"}, "stop")
        elif scenario == "tools":
            yield _chunk(model, {"role": "assistant", "content": None, "tool_calls": [
                {"index": 0, "id": "call_abc123", "type": "function",
                 "function": {"name": "get_weather", "arguments": ""}}]})
            for piece in ['{"city": ', '"Paris", ', '"unit": "celsius"}']:
                yield _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            yield _chunk(model, {}, "tool_calls")
        else:
            for i in range(n):
                yield _chunk(model, {"role": "assistant", "content": ""}, index=i)
            for word in (_words(echoed(body)) if scenario == "echo" else WORDS):
                for i in range(n):
                    if cut is not None and sent >= cut:
                        yield None
                        return
                    if stall_after is not None and sent >= stall_after:
                        await asyncio.sleep(3600)
                    if scenario == "malformed" and sent == 3:
                        yield b"data: {not json\n\n"
                    yield _chunk(model, {"content": word}, index=i)
                    sent += 1
                    if scenario == "paced":
                        await asyncio.sleep(0.05)
                    elif scenario == "paced-slow":
                        await asyncio.sleep(0.4)
            for i in range(n):
                yield _chunk(model, {}, "stop", index=i)
        if include_usage and scenario != "no-usage":
            usage = ODD_USAGE[scenario] if scenario in ODD_USAGE else _usage(body, len(WORDS) * n)
            yield _chunk(model, None, usage=usage)
        yield b"data: [DONE]\n\n"

    async def _agent(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        message, finish = agent.chat_turn(body)
        usage = _usage(body, 12)
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        model = body["model"]
        await resp.write(_chunk(model, {"role": "assistant", "content": ""}))
        for index, call in enumerate(message.get("tool_calls") or []):
            await resp.write(_chunk(model, {"tool_calls": [{"index": index, **call, "function": {
                "name": call["function"]["name"], "arguments": ""}}]}))
            await resp.write(_chunk(model, {"tool_calls": [{"index": index, "function": {
                "arguments": call["function"]["arguments"]}}]}))
        if message.get("content"):
            await resp.write(_chunk(model, {"content": message["content"]}))
        await resp.write(_chunk(model, {}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(_chunk(model, None, usage=usage))
        await resp.write(b"data: [DONE]\n\n")
        return resp


if __name__ == "__main__":  # manual use: python -m tests.fakes.openai_upstream
    fake = FakeOpenAI()
    fake.start()
    print(fake.base_url)
    while True:
        time.sleep(3600)
