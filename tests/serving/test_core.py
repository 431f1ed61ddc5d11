"""The serving core in process, with scripted providers: answers, failover, streams billed however
they end, permissions — without HTTP."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from parrotrouter.accounting.usage import DiscardingSink, UsageRecord
from parrotrouter.auth.permissions import Policy
from parrotrouter.auth.principal import MASTER, Principal
from parrotrouter.errors import FailureKind, PermissionDenied, UpstreamFailure
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.routing.policy import DEFAULT
from parrotrouter.serving.context import LogRequest, RequestContext
from parrotrouter.serving.core import Done, Failed, Frames, answer, open_stream
from parrotrouter.serving.request import GenerationRequest
from parrotrouter.state import AppState
from tests.serving.world import Scripted, words, world

USER = [{"role": "user", "content": "Say hello"}]


def request(**fields: Any) -> GenerationRequest:
    raw = {"model": "m", "messages": USER, **fields}
    return GenerationRequest.decode(msgspec.convert(raw, ChatCompletionRequest), raw, 100)


def records(state: AppState) -> list[UsageRecord]:
    assert isinstance(state.usage, DiscardingSink)
    return state.usage.records


async def test_an_answer_is_normalised_and_recorded() -> None:
    state = world({"m": [Scripted("a")]})
    ctx = RequestContext(MASTER)
    out = await answer(state, ctx, request(), DEFAULT)
    assert out["object"] == "chat.completion" and out["model"] == "m" and out["provider"] == "a"
    [rec] = records(state)
    assert rec.id == out["id"] and rec.prompt_tokens == 5 and rec.cost > 0
    assert ctx.headers["X-ParrotRouter-Attempts"] == "a/m;status=200"


async def test_a_failing_deployment_fails_over() -> None:
    broken = Scripted("a", [UpstreamFailure("down", kind=FailureKind.SERVER_ERROR)])
    state = world({"m": [broken, Scripted("b")]})
    ctx = RequestContext(MASTER)
    out = await answer(state, ctx, request(), DEFAULT)
    assert out["provider"] == "b"
    assert ctx.headers["X-ParrotRouter-Attempts"] == "a/m;status=502;error=server_error, b/m;status=200"


async def test_a_client_error_is_not_retried() -> None:
    state = world({"m": [Scripted("a", [UpstreamFailure("bad", kind=FailureKind.BAD_REQUEST)]), Scripted("b")]})
    with pytest.raises(Exception) as info:
        await answer(state, RequestContext(MASTER), request(), DEFAULT)
    assert getattr(info.value, "status", None) == 400
    assert records(state)[0].status == 400


async def test_a_stream_relayed_to_its_end() -> None:
    state = world({"m": [Scripted("a", [words("Hel", "lo", usage=True)])]})
    stream = await open_stream(state, RequestContext(MASTER), request(stream=True, stream_options={
        "include_usage": True}), DEFAULT)
    events = [e async for e in stream.events()]
    await stream.finish()
    frames = [c for e in events if isinstance(e, Frames) for c in e.chunks]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in frames) == "Hello"
    assert isinstance(events[-1], Done) and events[-1].usage is not None
    [rec] = records(state)
    assert rec.ended_by is None and rec.completion_tokens == 2 and rec.status == 200


async def test_a_stream_the_client_leaves_is_billed_for_what_was_relayed() -> None:
    provider = Scripted("a", [words("One", " two", " three", " four")])
    state = world({"m": [provider]})
    stream = await open_stream(state, RequestContext(MASTER), request(stream=True), DEFAULT)
    events = stream.events()
    first = await anext(events)
    assert isinstance(first, Frames)
    await stream.finish()  # the client hung up after the first chunk
    [rec] = records(state)
    assert rec.ended_by == "client" and rec.status == 499
    assert rec.prompt_tokens > 0 and rec.completion_tokens >= 1 and rec.cost > 0
    assert provider.closed_streams == 1  # the upstream was closed


async def test_a_stream_that_fails_after_content_ends_with_an_error_frame() -> None:
    batches: list[Any] = words("Hi")[:1]
    failing = Scripted("a")

    async def broken(call: Any) -> Any:  # a stream that raises after its first batch
        yield batches[0]
        raise UpstreamFailure("boom", kind=FailureKind.SERVER_ERROR)

    failing.chat_stream = broken  # type: ignore[method-assign]
    state = world({"m": [failing]})
    stream = await open_stream(state, RequestContext(MASTER), request(stream=True), DEFAULT)
    events = [e async for e in stream.events()]
    await stream.finish()
    assert isinstance(events[-1], Failed) and events[-1].frame["choices"][0]["finish_reason"] == "error"
    [rec] = records(state)
    assert rec.ended_by == "upstream" and rec.completion_tokens >= 1


async def test_a_key_cannot_reach_a_model_it_may_not_use() -> None:
    state = world({"m": [Scripted("a")], "other": [Scripted("b")]})
    key = Principal("key_1", "k", policy=Policy.from_json({"models": ["other"]}, {}))
    with pytest.raises(PermissionDenied):
        await answer(state, RequestContext(key), request(), DEFAULT)
    assert records(state)[0].status == 403
    assert not state.providers["a"].calls  # type: ignore[attr-defined]


async def test_a_kept_answer_is_cut_when_captured() -> None:
    """A stored answer waits on its record for the ledger: cut at capture as the request is (one
    character past `content_max_bytes`: the store cuts it to bytes and flags it), never kept whole."""
    state = world({"m": [Scripted("a")]}, content_max_bytes="5")
    ctx = RequestContext(MASTER)
    ctx.logging = LogRequest(level="debug", keep_response=True)
    await answer(state, ctx, request(), DEFAULT)
    [rec] = records(state)
    assert rec.content is not None and rec.content.request is None
    assert rec.content.response is not None and len(rec.content.response) == 6
