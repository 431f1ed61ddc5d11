#!/usr/bin/env python3
"""A fast OpenAI-compatible mock upstream (aiohttp + uvloop) with fixed bodies.

Used by bench/run.py when the anchor benchmark's nginx mock is not available.
    python bench/mock_upstream.py --port 18000
"""

from __future__ import annotations

import argparse
import json

from aiohttp import web

ANSWER = ("1. Route each model name to an ordered list of deployments; try the primary, then fall back on "
          "429 or 5xx after one retry with jittered backoff. 2. Timeouts: connect 2 s, first byte 30 s.")
WORDS = ANSWER.split(" ")
CHAT = json.dumps({
    "id": "chatcmpl-mock", "object": "chat.completion", "created": 1732550400, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": " ".join(WORDS)}, "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 236, "completion_tokens": 118, "total_tokens": 354}}).encode()


def _chunk(delta: dict, finish: str | None = None) -> bytes:
    return b"data: " + json.dumps({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1732550400, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}).encode() + b"\n\n"


STREAM = (_chunk({"role": "assistant", "content": ""})
          + b"".join(_chunk({"content": (" " if i else "") + w}) for i, w in enumerate(WORDS))
          + _chunk({}, "stop") + b"data: [DONE]\n\n")


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    if b'"stream": true' in body or b'"stream":true' in body:
        return web.Response(body=STREAM, content_type="text/event-stream")
    return web.Response(body=CHAT, content_type="application/json")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18000)
    args = parser.parse_args()
    import uvloop

    uvloop.install()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
