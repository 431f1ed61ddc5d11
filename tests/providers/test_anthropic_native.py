"""The Anthropic provider taking Messages API bodies natively (NativeCall), over an injected
transport: what goes upstream (the client's body, only model and credentials changed; its
version and beta headers, merged with the operator's), what comes back (the OpenAI view the core
bills, with the upstream's own message and events attached), count_tokens."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from parrotrouter.catalog import Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import InvalidRequest
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.providers.anthropic import AnthropicAdapter, AnthropicProvider
from parrotrouter.providers.base import ChatCall, NativeCall
from parrotrouter.settings import Secret
from tests.fakes import anthropic_upstream as fa
from tests.providers.canned import Canned, CannedTransport

SPEC = ProviderSpec(name="claude", type="anthropic", display_name="Claude", base_url="https://api.example/v1",
                    api_key=Secret("sk-ant-test"), headers={"anthropic-beta": "operator-beta", "x-team": "t1"})
MODEL = ModelSpec(id="claude", deployments=(Deployment("claude", "claude-sonnet-upstream"),))
BODY = {"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
        "system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
        "future_field": {"a": 1}, "models": ["fallback"], "provider": {"order": ["x"]}}


def native_call(body: dict[str, Any] = BODY, headers: dict[str, str] | None = None) -> NativeCall:
    chat = {"model": "claude", "messages": [{"role": "user", "content": "hi"}], "stream": bool(body.get("stream"))}
    return NativeCall("anthropic.messages", body,
                      ChatCall(msgspec.convert(chat, ChatCompletionRequest), chat, MODEL, MODEL.deployments[0]),
                      headers if headers is not None else {"anthropic-version": "2026-10-21",
                                                           "anthropic-beta": "client-beta"})


def provider(*answers: Canned) -> tuple[AnthropicProvider, CannedTransport]:
    transport = CannedTransport(*answers)
    return AnthropicProvider(SPEC, AnthropicAdapter(SPEC), transport), transport


async def test_the_clients_body_goes_upstream_with_only_model_and_credentials_changed() -> None:
    prov, transport = provider(Canned(body=orjson.dumps(fa.message("claude-cache"))))
    answer = await prov.native(native_call())
    sent = transport.sent[0]
    assert sent.url == "https://api.example/v1/messages"
    gateway_fields = {"models", "provider"}  # routing fields of ours, never an upstream's
    assert orjson.loads(sent.body) == {**{k: v for k, v in BODY.items() if k not in gateway_fields},
                                       "model": "claude-sonnet-upstream"}
    assert sent.headers["x-api-key"] == "sk-ant-test" and sent.headers["anthropic-version"] == "2026-10-21"
    assert sent.headers["anthropic-beta"] == "client-beta,operator-beta" and sent.headers["x-team"] == "t1"
    assert answer["native"] == fa.message("claude-cache")
    assert answer["usage"]["prompt_tokens"] == 125 and answer["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 100, "cache_write_tokens": 20}


async def test_without_client_headers_the_gateways_version_and_the_operators_betas_go() -> None:
    prov, transport = provider(Canned(body=orjson.dumps(fa.message("claude-text"))))
    await prov.native(native_call(headers={}))
    headers = transport.sent[0].headers
    assert headers["anthropic-version"] == "2023-06-01" and headers["anthropic-beta"] == "operator-beta"


async def test_native_stream_chunks_carry_every_event_in_order() -> None:
    upstream = b"".join(fa.events("claude-tools"))
    prov, _ = provider(Canned(body=upstream, reads=5))
    batches = [batch async for batch in prov.native_stream(native_call({**BODY, "stream": True}))]
    chunks = [c for batch in batches for c in batch]
    events = [e for c in chunks for e in c.get("native", ())]
    assert events == [orjson.loads(e.split(b"data: ", 1)[1]) for e in fa.events("claude-tools")]
    calls = [tc for c in chunks for ch in c.get("choices", ()) for tc in ch["delta"].get("tool_calls", ())]
    assert calls[0]["function"]["name"] == "get_weather"
    assert chunks[-1]["usage"]["completion_tokens"] == 30


async def test_count_tokens_and_unencodable_bodies() -> None:
    prov, transport = provider(Canned(body=b'{"input_tokens": 77}'))
    assert await prov.count_tokens(native_call()) == 77
    assert transport.sent[0].url == "https://api.example/v1/messages/count_tokens" and not transport.sent[0].stream
    deep: dict[str, Any] = {}
    for _ in range(300):
        deep = {"a": deep}
    with pytest.raises(InvalidRequest):
        await prov.native(native_call({**BODY, "future_field": deep}))
