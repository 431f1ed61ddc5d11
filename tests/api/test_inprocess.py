"""The HTTP layer in process (aiohttp's test client) over scripted providers: JSON and SSE
encoding, the error envelope, the context's headers — the API is decode, call the core, encode."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from parrotrouter.api.app import create_app
from parrotrouter.errors import FailureKind, UpstreamFailure
from tests.serving.world import Scripted, world

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    busy = [UpstreamFailure("busy", kind=FailureKind.RATE_LIMIT, retry_after=30) for _ in range(3)]
    state = world({"m": [Scripted("a", busy), Scripted("b")]})
    async with TestClient(TestServer(create_app(state))) as http:
        yield http


async def test_json_answer_and_attempts_header(client: TestClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 200
    body = await resp.json()
    assert body["provider"] == "b"
    assert resp.headers["X-ParrotRouter-Attempts"].startswith("a/m;status=429")


async def test_sse_encoding(client: TestClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True,
                                                           "stream_options": {"include_usage": True}})
    assert resp.headers["Content-Type"] == "text/event-stream"
    text = await resp.text()
    assert text.endswith("data: [DONE]\n\n")
    chunks = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1


async def test_errors_in_the_envelope(client: TestClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "nope", "messages": USER})
    assert resp.status == 400
    assert set((await resp.json())["error"]) == {"message", "type", "code", "param", "status"}
