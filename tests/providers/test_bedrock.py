"""The Bedrock provider over a canned transport: request encoding (checked against botocore's
service model, signature checked by signing again), response and event-stream decoding, error
mapping, credentials (the chain, refresh off the loop, none), zero-config — no sockets."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import botocore.serialize
import botocore.session
import msgspec
import orjson
import pytest
from botocore.credentials import Credentials, RefreshableCredentials

from parrotrouter.catalog import Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import FailureKind, InvalidRequest, UpstreamFailure
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.providers.base import ChatCall
from parrotrouter.providers.bedrock import PROVIDER, from_env
from parrotrouter.providers.bedrock.converse import tool_use_id
from parrotrouter.providers.bedrock.provider import BedrockProvider, chain_resolver
from parrotrouter.providers.bedrock.stream import ConverseStream, EventStreamParser
from parrotrouter.settings import Secret
from parrotrouter.upstream.client import ServerSentEvent, UpstreamRequest, UpstreamResponse
from tests.fakes import bedrock_upstream as fb
from tests.providers.canned import Canned, CannedTransport

PROFILE_ID = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6"
ENDPOINT = "https://bedrock-runtime.us-east-1.amazonaws.com"
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
SERVICE = botocore.session.get_session().get_service_model("bedrock-runtime")
TOOL = {"type": "function", "function": {"name": "top_song", "description": "Most popular song on a station",
                                         "parameters": {"type": "object", "properties": {"sign": {"type": "string"}},
                                                        "required": ["sign"]}}}


def spec(**kw: Any) -> ProviderSpec:
    return ProviderSpec(**{"name": "aws", "type": "bedrock", "display_name": "AWS Bedrock",
                           "options": {"region": "us-east-1"}, **kw})


def static(token: str | None = "session-token") -> Callable[[], tuple[Any, str | None]]:
    return lambda: (Credentials(fb.ACCESS_KEY, fb.SECRET_KEY, token), None)


def call(model: str = PROFILE_ID, max_output: int | None = None, **fields: Any) -> ChatCall:
    raw = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    m = ModelSpec(id="m", deployments=(Deployment("aws", model),), max_output_tokens=max_output)
    return ChatCall(msgspec.convert(raw, ChatCompletionRequest), raw, m, m.deployments[0])


async def started(*answers: Canned, resolve: Callable[[], tuple[Any, str | None]] | None = None,
                  **kw: Any) -> tuple[BedrockProvider, CannedTransport]:
    transport = CannedTransport(*answers)
    provider = BedrockProvider(spec(**kw), transport=transport, resolve=resolve or static())
    await provider.start()
    return provider, transport


def sent_body(transport: CannedTransport, n: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(transport.sent[n].body)
    return body


def stream_body(resp: dict[str, Any], fail: tuple[str, str] | None = None) -> bytes:
    return b"".join(fb.frames(resp, fail))


# ---------------------------------------------------------------------------- requests
@pytest.mark.parametrize(("model", "path"), [
    (PROFILE_ID, "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"),
    (ARN, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fa1b2c3d4e5f6"
          "/converse"),
    ("meta.llama3 70b?x=1#y", "/model/meta.llama3%2070b%3Fx%3D1%23y/converse")])
async def test_url_encoding_and_signature(model: str, path: str) -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])))
    await provider.chat(call(model))
    sent = transport.sent[0]
    assert sent.url == ENDPOINT + path and sent.encoded_url
    serialised = botocore.serialize.create_serializer("rest-json").serialize_to_request(
        {"modelId": model, "messages": []}, SERVICE.operation_model("Converse"))
    assert serialised["url_path"] == path  # the path botocore itself would send
    headers = dict(sent.headers)
    assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fb.ACCESS_KEY}/")
    assert "/us-east-1/bedrock/aws4_request" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "session-token" and headers["X-Amz-Date"].endswith("Z")
    assert fb.signature_problem(sent.url, headers, sent.body) is None
    tampered = sent.body.replace(b"hi", b"ho")
    assert fb.signature_problem(sent.url, headers, tampered) is not None
    fb.check_converse_body(sent_body(transport), model, stream=False)


async def test_a_wrong_secret_does_not_verify() -> None:
    wrong = lambda: (Credentials(fb.ACCESS_KEY, "not-the-secret"), None)  # noqa: E731
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])), resolve=wrong)
    await provider.chat(call())
    sent = transport.sent[0]
    problem = fb.signature_problem(sent.url, sent.headers, sent.body)
    assert problem is not None and problem[0] == "InvalidSignatureException"


async def test_request_translation() -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])))
    messages = [{"role": "system", "content": "Be brief."}, {"role": "developer", "content": ""},
                {"role": "user", "content": "Hi"}, {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"}, {"type": "text", "text": ""},
                    {"type": "image_url", "image_url": {"url": PNG}}]},
                {"role": "assistant", "content": "It is a pixel."}, {"role": "user", "content": "Thanks"}]
    await provider.chat(call(max_output=512, messages=messages, temperature=0.5, top_p=0.9, stop=["END", ""],
                             seed=3, user="u-1"))
    body = sent_body(transport)
    fb.check_converse_body(body, PROFILE_ID, stream=False)
    assert body["system"] == [{"text": "Be brief."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == [
        {"text": "Hi"}, {"text": "What is this?"},
        {"image": {"format": "png", "source": {"bytes": PNG.split(",", 1)[1]}}}]
    assert body["inferenceConfig"] == {"maxTokens": 512, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
    assert set(body) == {"messages", "system", "inferenceConfig"}


@pytest.mark.parametrize(("choice", "expected"), [
    (None, None), ("auto", {"auto": {}}), ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "top_song"}}, {"tool": {"name": "top_song"}})])
async def test_tools_and_tool_choice(choice: Any, expected: dict[str, Any] | None) -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])))
    extra = {"tool_choice": choice} if choice is not None else {}
    await provider.chat(call(tools=[TOOL], **extra))
    body = sent_body(transport)
    fb.check_converse_body(body, PROFILE_ID, stream=False)
    assert body["toolConfig"]["tools"] == [{"toolSpec": {
        "name": "top_song", "description": "Most popular song on a station",
        "inputSchema": {"json": TOOL["function"]["parameters"]}}}]
    assert body["toolConfig"].get("toolChoice") == expected


async def test_tool_choice_none_leaves_the_tools_out() -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])))
    await provider.chat(call(tools=[TOOL], tool_choice="none"))
    assert "toolConfig" not in sent_body(transport)


async def test_tool_history_and_odd_call_ids() -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])))
    odd = "call/with spaces & more" * 4
    messages = [{"role": "user", "content": "Top songs?"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "tooluse_1", "type": "function", "function": {"name": "top_song",
                                                                         "arguments": '{"sign": "WZPZ"}'}},
                    {"id": odd, "type": "function", "function": {"name": "top_song", "arguments": ""}}]},
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "Elemental Hotel"},
                {"role": "tool", "tool_call_id": odd, "content": [{"type": "text", "text": ""}]},
                {"role": "user", "content": "And now?"}]
    await provider.chat(call(messages=messages, tools=[TOOL]))
    body = sent_body(transport)
    fb.check_converse_body(body, PROFILE_ID, stream=False)
    assistant, results = body["messages"][1], body["messages"][2]
    assert assistant["content"] == [
        {"toolUse": {"toolUseId": "tooluse_1", "name": "top_song", "input": {"sign": "WZPZ"}}},
        {"toolUse": {"toolUseId": tool_use_id(odd), "name": "top_song", "input": {}}}]
    assert results == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "Elemental Hotel"}]}},
        {"toolResult": {"toolUseId": tool_use_id(odd), "content": []}}, {"text": "And now?"}]}
    assert tool_use_id(odd) != odd and len(tool_use_id(odd)) <= 64


async def test_response_format_is_structured_output() -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["json"])))
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    await provider.chat(call(response_format={"type": "json_schema", "json_schema": {"name": "person",
                                                                                     "schema": schema}}))
    body = sent_body(transport)
    fb.check_converse_body(body, PROFILE_ID, stream=False)
    fmt = body["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema" and fmt["structure"]["jsonSchema"]["name"] == "person"
    assert orjson.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema


@pytest.mark.parametrize(("fields", "param"), [
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "https://example.com/cat.png"}}]}]},
     "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "data:image/tiff;base64,AAAA"}}]}]},
     "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio",
                                                 "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
     "messages[0].content"),
    ({"messages": [{"role": "system", "content": "only a system message"}]}, "messages"),
    ({"messages": [{"role": "user", "content": ""}]}, "messages"),
    ({"messages": [{"role": "function", "name": "f", "content": "x"}]}, "messages[0]"),
    ({"temperature": 1.5}, "temperature"),
    ({"n": 3}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"reasoning_effort": "high"}, "reasoning_effort"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
    ({"functions": [{"name": "f"}]}, "functions"),
    ({"tools": [TOOL], "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}}, "tool_choice"),
])
async def test_unsupported_input_is_a_400_naming_the_param(fields: dict[str, Any], param: str) -> None:
    provider, transport = await started()
    with pytest.raises(InvalidRequest) as info:
        await provider.chat(call(**fields))
    assert info.value.param == param and not transport.sent


# ---------------------------------------------------------------------------- responses
@pytest.mark.parametrize(("scenario", "finish"), [
    ("text", "stop"), ("tools", "tool_calls"), ("max", "length"), ("stopseq", "stop"),
    ("guardrail", "content_filter"), ("filtered", "content_filter")])
async def test_response_and_stream_decoding(scenario: str, finish: str) -> None:
    resp = fb.RESPONSES[scenario]
    provider, _ = await started(Canned(body=orjson.dumps(resp)), Canned(body=stream_body(resp), reads=7))
    plain = await provider.chat(call())
    choice = plain["choices"][0]
    assert choice["finish_reason"] == finish and choice["native_finish_reason"] == resp["stopReason"]
    usage = resp["usage"]
    assert plain["usage"]["prompt_tokens"] == usage["inputTokens"]
    assert plain["usage"]["total_tokens"] == usage["totalTokens"]
    chunks = [c async for batch in provider.chat_stream(call(stream=True)) for c in batch]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == (choice["message"]["content"] or "")
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == [finish] and chunks[-1]["usage"] == plain["usage"]


async def test_tool_calls_stream_as_openai_deltas() -> None:
    resp = fb.RESPONSES["parallel"]
    provider, _ = await started(Canned(body=orjson.dumps(resp)), Canned(body=stream_body(resp), reads=13))
    plain = await provider.chat(call())
    calls = plain["choices"][0]["message"]["tool_calls"]
    assert [(c["id"], orjson.loads(c["function"]["arguments"])) for c in calls] == [
        ("tooluse_WZPZ0000000000000000", {"sign": "WZPZ"}), ("tooluse_WKRP0000000000000000", {"sign": "WKRP"})]
    rebuilt: dict[int, dict[str, Any]] = {}
    async for batch in provider.chat_stream(call(stream=True)):
        for chunk in batch:
            for delta in (chunk["choices"][0]["delta"].get("tool_calls") or []) if chunk["choices"] else []:
                entry = rebuilt.setdefault(delta["index"], {"id": delta.get("id"), "args": ""})
                if "id" in delta:
                    assert delta["type"] == "function" and delta["function"]["name"] == "top_song"
                entry["args"] += delta["function"]["arguments"]
    assert [(e["id"], orjson.loads(e["args"])) for e in rebuilt.values()] == [
        (c["id"], orjson.loads(c["function"]["arguments"])) for c in calls]


async def test_cache_usage_and_reasoning() -> None:
    provider, _ = await started(Canned(body=orjson.dumps(fb.RESPONSES["cache"])),
                                Canned(body=orjson.dumps(fb.RESPONSES["reasoning"])),
                                Canned(body=stream_body(fb.RESPONSES["reasoning"]), reads=4))
    usage = (await provider.chat(call()))["usage"]
    assert usage["prompt_tokens"] == 1524 and usage["completion_tokens"] == 5 and usage["total_tokens"] == 1529
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1500, "cache_write_tokens": 20}
    message = (await provider.chat(call()))["choices"][0]["message"]
    assert message["reasoning"] == "6 x 7 is 42." and message["content"] == "42."
    chunks = [c async for batch in provider.chat_stream(call(stream=True)) for c in batch if c["choices"]]
    assert "".join(c["choices"][0]["delta"].get("reasoning") or "" for c in chunks) == "6 x 7 is 42."


@pytest.mark.parametrize(("name", "kind", "status"), [
    ("throttlingException", FailureKind.RATE_LIMIT, 429),
    ("modelStreamErrorException", FailureKind.SERVER_ERROR, 424),
    ("validationException", FailureKind.BAD_REQUEST, 400),
    ("serviceUnavailableException", FailureKind.MODEL_OVERLOADED, 503),
    ("internalServerException", FailureKind.SERVER_ERROR, 500),
    ("someFutureException", FailureKind.SERVER_ERROR, 500)])
async def test_exception_events_mid_stream(name: str, kind: FailureKind, status: int) -> None:
    provider, _ = await started(Canned(body=stream_body(fb.RESPONSES["text"], (name, "went wrong")), reads=3))
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamFailure) as info:
        async for batch in provider.chat_stream(call(stream=True)):
            got += batch
    assert got and info.value.kind is kind and info.value.upstream_status == status
    assert "mid-stream" in info.value.message


async def test_unknown_events_are_skipped_and_a_stream_needs_its_metadata() -> None:
    frames = fb.frames(fb.RESPONSES["text"])
    body = frames[0] + fb.event("someNewEvent", {"x": 1}) + b"".join(frames[1:])
    provider, _ = await started(Canned(body=body), Canned(body=b"".join(frames[:-1])))
    chunks = [c async for batch in provider.chat_stream(call(stream=True)) for c in batch]
    assert chunks[-1]["usage"]["total_tokens"] == 38
    with pytest.raises(UpstreamFailure) as info:
        [b async for b in provider.chat_stream(call(stream=True))]
    assert info.value.kind is FailureKind.STREAM_PROTOCOL


async def test_closing_a_stream_releases_the_upstream_at_once() -> None:
    class Tracking(CannedTransport):
        released = 0

        @contextlib.asynccontextmanager
        async def open(self, request: UpstreamRequest) -> AsyncIterator[UpstreamResponse]:
            async with super().open(request) as response:
                try:
                    yield response
                finally:
                    self.released += 1

    transport = Tracking(Canned(body=stream_body(fb.RESPONSES["text"]), reads=20))
    provider = BedrockProvider(spec(), transport=transport, resolve=static())
    await provider.start()
    batches = provider.chat_stream(call(stream=True))
    assert await anext(batches)
    assert transport.released == 0
    await batches.aclose()  # type: ignore[attr-defined]
    assert transport.released == 1


def _framed(raw_headers: bytes, payload: bytes) -> bytes:
    """A message with the given header bytes and correct CRCs (what botocore checks first)."""
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = prelude + struct.pack(">I", binascii.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", binascii.crc32(message))


def _fails(events: list[ServerSentEvent], kind: FailureKind) -> None:
    translator = ConverseStream("bedrock")
    with pytest.raises(UpstreamFailure) as info:
        for e in events:
            translator.feed(e)
    assert info.value.kind is kind


def test_event_stream_parser_checks_crcs_and_bounds() -> None:
    message = fb.event("messageStart", {"role": "assistant"})
    parser = EventStreamParser()
    assert [(e.event, orjson.loads(e.data)["role"]) for e in parser.feed(message[:5]) + parser.feed(message[5:])] == [
        ("messageStart", "assistant")]
    unknown_header_type = _framed(bytes([5]) + b":name" + bytes([42]) + b"\0\0", b"{}")
    undecodable_name = _framed(bytes([2]) + b"\xff\xfe" + b"\x07\x00\x01x", b"{}")
    cut_header = _framed(bytes([9]) + b":event", b"")
    for bad in (message[:-1] + bytes([message[-1] ^ 1]),  # message CRC
                message[:9] + bytes([message[9] ^ 1]) + message[10:],  # prelude CRC
                unknown_header_type, undecodable_name, cut_header):
        # what came before in the same read goes out; the bad message fails the stream after it
        events = EventStreamParser().feed(message + bad)
        assert events[0].event == "messageStart" and len(events) == 2
        _fails(events, FailureKind.STREAM_PROTOCOL)
    with pytest.raises(UpstreamFailure) as info:  # shorter than a prelude
        EventStreamParser().feed((8).to_bytes(4, "big") + b"\0" * 12)
    assert info.value.kind is FailureKind.STREAM_PROTOCOL
    with pytest.raises(UpstreamFailure):  # refused from the prelude, before buffering 2 GB
        EventStreamParser().feed((2**31).to_bytes(4, "big") + b"\0" * 8)
    error = fb.frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b"")
    _fails(EventStreamParser().feed(error), FailureKind.SERVER_ERROR)


async def test_a_broken_message_mid_stream_is_a_malformed_answer_after_what_came_before() -> None:
    body = (fb.event("messageStart", {"role": "assistant"})
            + fb.event("contentBlockDelta", {"delta": {"text": "Hal"}, "contentBlockIndex": 0})
            + _framed(bytes([5]) + b":name" + bytes([42]) + b"\0\0", b"{}"))
    prov, _ = await started(Canned(body=body, headers={"Content-Type": "application/vnd.amazon.eventstream"}))
    got: list[dict[str, Any]] = []
    with pytest.raises(UpstreamFailure) as info:
        async for batch in prov.chat_stream(call(stream=True)):
            got += batch
    assert info.value.kind is FailureKind.STREAM_PROTOCOL
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") == "Hal" for c in got)


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("status", "headers", "body", "kind"), [
    (429, {"x-amzn-ErrorType": "ThrottlingException:" + fb.NAMESPACE}, {"message": "slow down"},
     FailureKind.RATE_LIMIT),
    (403, {"x-amzn-ErrorType": "AccessDeniedException"}, {"message": "no access"}, FailureKind.AUTH),
    (403, {}, {"__type": "com.amazon.coral.service#ExpiredTokenException", "message": "x"}, FailureKind.AUTH),
    (404, {}, {"Message": "Could not resolve the model"}, FailureKind.NOT_FOUND),
    (400, {"x-amzn-ErrorType": "ValidationException"}, {"message": "too long"}, FailureKind.BAD_REQUEST),
    (408, {"x-amzn-ErrorType": "ModelTimeoutException"}, {"message": "timed out"}, FailureKind.TIMEOUT),
    (429, {"x-amzn-ErrorType": "ModelNotReadyException"}, {"message": "warming"}, FailureKind.MODEL_OVERLOADED),
    (424, {"x-amzn-ErrorType": "ModelErrorException"}, {"message": "model failed"}, FailureKind.SERVER_ERROR),
    (503, {"x-amzn-ErrorType": "ServiceUnavailableException"}, {}, FailureKind.MODEL_OVERLOADED),
    (500, {}, None, FailureKind.SERVER_ERROR),
])
async def test_error_mapping(status: int, headers: dict[str, str], body: Any, kind: FailureKind) -> None:
    raw = orjson.dumps(body) if body is not None else b"<html>gateway</html>"
    provider, _ = await started(Canned(status=status, body=raw, headers=headers))
    with pytest.raises(UpstreamFailure) as info:
        await provider.chat(call())
    assert info.value.kind is kind and info.value.upstream_status == status


async def test_a_malformed_answer_is_a_stream_protocol_failure() -> None:
    provider, _ = await started(Canned(body=b'{"output": {}}'), Canned(body=b"[]"))
    for _ in range(2):
        with pytest.raises(UpstreamFailure) as info:
            await provider.chat(call())
        assert info.value.kind is FailureKind.STREAM_PROTOCOL


# ---------------------------------------------------------------------------- credentials
async def test_temporary_credentials_are_refreshed_off_the_loop() -> None:
    loop_thread = threading.get_ident()
    refreshed: list[int] = []
    now = datetime.datetime.now(datetime.UTC)

    def refresh() -> dict[str, str]:
        refreshed.append(threading.get_ident())
        n = len(refreshed)
        # the chain's first two fetches (resolving, freezing at start) expire in 5 minutes, inside
        # botocore's mandatory window; the third (before the first request) in an hour
        expiry = now + datetime.timedelta(minutes=5 if n <= 2 else 60)
        return {"access_key": fb.ACCESS_KEY, "secret_key": fb.SECRET_KEY, "token": f"token-{n}",
                "expiry_time": expiry.isoformat()}

    def resolve() -> tuple[Any, str | None]:
        return RefreshableCredentials.create_from_metadata(refresh(), refresh, "test"), None

    body = orjson.dumps(fb.RESPONSES["text"])
    provider, transport = await started(Canned(body=body), Canned(body=body), resolve=resolve)
    assert provider.ready() and len(refreshed) == 2
    await provider.chat(call())
    await provider.chat(call())
    assert len(refreshed) == 3 and loop_thread not in refreshed
    assert [dict(s.headers)["X-Amz-Security-Token"] for s in transport.sent] == ["token-3", "token-3"]
    for sent in transport.sent:
        assert fb.signature_problem(sent.url, sent.headers, sent.body) is None


async def test_without_credentials_a_request_is_an_auth_failure() -> None:
    provider, transport = await started(resolve=lambda: (None, None))
    assert not provider.ready()
    with pytest.raises(UpstreamFailure) as info:
        await provider.chat(call())
    assert info.value.kind is FailureKind.AUTH and not transport.sent


async def test_the_chain_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", fb.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", fb.SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    credentials, region = await asyncio.to_thread(chain_resolver(None))
    frozen = credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.token, region) == (fb.ACCESS_KEY, "env-token", "eu-west-3")
    transport = CannedTransport(Canned(body=orjson.dumps(fb.RESPONSES["text"])))
    provider = BedrockProvider(spec(options={}), transport=transport)
    await provider.start()
    await provider.chat(call())
    assert transport.sent[0].url.startswith("https://bedrock-runtime.eu-west-3.amazonaws.com/model/")
    assert "/eu-west-3/bedrock/aws4_request" in dict(transport.sent[0].headers)["Authorization"]


async def test_a_bedrock_api_key_is_a_bearer_token() -> None:
    provider, transport = await started(Canned(body=orjson.dumps(fb.RESPONSES["text"])),
                                        resolve=lambda: pytest.fail("no chain with an API key"),
                                        api_key=Secret(fb.API_KEY), base_url="https://vpce.example")
    await provider.chat(call())
    sent = transport.sent[0]
    assert dict(sent.headers)["Authorization"] == f"Bearer {fb.API_KEY}"
    assert sent.url.startswith("https://vpce.example/model/")


# ---------------------------------------------------------------------------- zero-config
KEYS = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s"}


@pytest.mark.parametrize(("env", "enabled"), [
    ({**KEYS, "AWS_REGION": "us-west-2"}, True),
    ({**KEYS, "AWS_DEFAULT_REGION": "eu-central-1"}, True),
    ({"AWS_PROFILE": "dev", "AWS_REGION": "us-east-1"}, True),
    ({"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/r",
      "AWS_REGION": "us-east-1"}, True),
    ({"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x", "AWS_REGION": "us-east-1"}, True),
    ({"AWS_BEARER_TOKEN_BEDROCK": "key", "AWS_REGION": "us-east-1"}, True),
    (KEYS, False),  # no region
    ({"AWS_ACCESS_KEY_ID": "AKIA", "AWS_REGION": "us-east-1"}, False),  # half a key pair
    ({"AWS_REGION": "us-east-1"}, False),  # an instance role needs a configured provider
    ({**KEYS, "AWS_REGION": "evil.example.com/x"}, False),
])
def test_zero_config_from_the_environment(env: dict[str, str], enabled: bool) -> None:
    specs = from_env(env)
    assert bool(specs) is enabled
    if specs:
        (found,) = specs
        assert found.name == "bedrock" and found.type == "bedrock"
        assert found.options["region"] == env.get("AWS_REGION", env.get("AWS_DEFAULT_REGION"))
        assert (found.api_key is not None) is ("AWS_BEARER_TOKEN_BEDROCK" in env)


def test_options_schema() -> None:
    assert PROVIDER.parse_options({"region": "ap-southeast-2", "profile": "prod"}) == {
        "region": "ap-southeast-2", "profile": "prod"}
    for bad in ({"region": "us-east-1.evil.com"}, {"regoin": "us-east-1"}):
        with pytest.raises(ValueError):
            PROVIDER.parse_options(bad)
    assert base64.b64decode(PNG.split(",", 1)[1])  # the fixture image is real base64


def test_botocore_is_imported_only_when_a_bedrock_provider_is_built() -> None:
    """The registry loads every provider type at start: Bedrock's must not bring botocore with
    it (start-up time, memory) until a Bedrock provider is built."""
    code = textwrap.dedent("""
        import sys
        from parrotrouter.config.loader import load_config
        from parrotrouter.providers.http import build_provider
        env = {"AWS_ACCESS_KEY_ID": "AKIA", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1"}
        catalog = load_config(None, env, local_models=False).catalog
        print("bedrock" in catalog.providers, "botocore" in sys.modules)
        build_provider(catalog.providers["bedrock"])
        print("botocore" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["True", "False", "True"]


@pytest.mark.parametrize("usage", [None, {}, {"totalTokens": 9}, "lots"])
def test_an_answer_without_counts_has_no_usage_so_the_gateway_counts_it(usage: Any) -> None:
    """Zero tokens reported would be free service: no usage at all makes the gateway count."""
    from parrotrouter.providers.bedrock.converse import usage_of

    assert usage_of(usage) is None
    stream = ConverseStream("bedrock")
    assert stream.feed(ServerSentEvent("metadata", orjson.dumps({"usage": usage}).decode())) == []
    assert stream.done
    assert usage_of({"inputTokens": "9", "outputTokens": 2})["prompt_tokens"] == 0  # not a count: not trusted
