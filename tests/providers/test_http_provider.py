"""`HttpProvider` with the OpenAI adapter over an injected transport: request encoding, response
and stream decoding, error mapping, and a malformed answer — no sockets."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from parrotrouter.catalog import Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import FailureKind, InvalidRequest, UpstreamFailure
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.providers.base import ChatCall
from parrotrouter.providers.http import HttpProvider
from parrotrouter.providers.openai_compat import OpenAIAdapter
from parrotrouter.settings import Secret
from parrotrouter.upstream.client import SSEParser
from tests.providers.canned import Canned, CannedTransport

SPEC = ProviderSpec(name="up", type="openai", display_name="up", base_url="https://up.example/v1",
                    api_key=Secret("sk-test"), drop_params=frozenset({"store"}))
MODEL = ModelSpec(id="m", deployments=(Deployment("up", "upstream-m"),))


def call(**fields: Any) -> ChatCall:
    raw = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatCall(msgspec.convert(raw, ChatCompletionRequest), raw, MODEL, MODEL.deployments[0])


def provider(*answers: Canned) -> tuple[HttpProvider, CannedTransport]:
    transport = CannedTransport(*answers)
    return HttpProvider(SPEC, OpenAIAdapter(SPEC), supports_completions=True, transport=transport), transport


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + b"\n\n"


async def test_request_encoding_and_answer() -> None:
    answer = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "yo"},
                                      "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    prov, transport = provider(Canned(body=orjson.dumps(answer)))
    out = await prov.chat(call(store=True, foo="passed through"))
    sent = transport.sent[0]
    body = orjson.loads(sent.body)
    assert sent.url == "https://up.example/v1/chat/completions" and sent.headers["Authorization"] == "Bearer sk-test"
    assert body["model"] == "upstream-m" and body["foo"] == "passed through" and "store" not in body
    assert out["choices"][0]["message"]["content"] == "yo"


@pytest.mark.parametrize("reads", [1, 3, 50])
async def test_stream_decoding_whatever_the_reads(reads: int) -> None:
    body = chunk({"role": "assistant", "content": ""}) + chunk({"content": "Hel"}) + chunk({"content": "lo"}) + \
        chunk({}, "stop") + b"data: [DONE]\n\n"
    prov, transport = provider(Canned(body=body, reads=reads))
    batches = [b async for b in prov.chat_stream(call(stream=True))]
    text = "".join(c["choices"][0]["delta"].get("content", "") for batch in batches for c in batch)
    assert text == "Hello"
    assert orjson.loads(transport.sent[0].body)["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("status", "error", "kind"), [
    (429, {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}, FailureKind.RATE_LIMIT),
    (400, {"message": "too long", "code": "context_length_exceeded"}, FailureKind.CONTEXT_LENGTH_EXCEEDED),
    (401, {"message": "Incorrect API key provided: sk-abc***", "code": "invalid_api_key"}, FailureKind.AUTH),
    (503, {"message": "overloaded"}, FailureKind.MODEL_OVERLOADED),
])
async def test_error_mapping(status: int, error: dict[str, Any], kind: FailureKind) -> None:
    prov, _ = provider(Canned(status=status, body=orjson.dumps({"error": error}), headers={"Retry-After": "2"}))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(call())
    assert info.value.kind is kind
    assert "sk-abc" not in info.value.message


@pytest.mark.parametrize("body", [b"not json", b"[1]", b'{"choices": 5}'])
async def test_a_malformed_answer_is_a_stream_protocol_failure(body: bytes) -> None:
    prov, _ = provider(Canned(body=body))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(call())
    assert info.value.kind is FailureKind.STREAM_PROTOCOL


async def test_a_stream_without_its_end_marker_fails() -> None:
    prov, _ = provider(Canned(body=chunk({"content": "cut"})))
    with pytest.raises(UpstreamFailure) as info:
        [b async for b in prov.chat_stream(call(stream=True))]
    assert info.value.kind is FailureKind.STREAM_PROTOCOL


def test_sse_parser_bounds_an_endless_event() -> None:
    parser = SSEParser()
    with pytest.raises(UpstreamFailure):
        for _ in range(20):
            parser.feed(b"data: " + b"x" * 2**20)


def test_sse_parser_joins_split_crlf_and_multiline_data() -> None:
    parser = SSEParser()
    events = parser.feed(b"event: a\r") + parser.feed(b"\ndata: 1\r\ndata: 2\r\n\r\n: comment\n\n")
    assert [(e.event, e.data) for e in events] == [("a", "1\n2")]


async def test_a_request_the_adapter_cannot_encode_is_a_400_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    """An odd value an adapter's translation did not foresee: a 400 naming the provider (and the
    traceback in the log), never an unhandled exception."""
    class Clumsy(OpenAIAdapter):
        def chat_request(self, call: ChatCall) -> Any:
            return {}[call.request.model]  # KeyError

    transport = CannedTransport()
    prov = HttpProvider(SPEC, Clumsy(SPEC), supports_completions=True, transport=transport)
    with pytest.raises(InvalidRequest) as info:
        await prov.chat(call())
    assert "'up'" in info.value.message and transport.sent == []
    with pytest.raises(InvalidRequest):
        prov.chat_stream(call(stream=True))
    assert "could not encode" in caplog.text
