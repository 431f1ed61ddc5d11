"""Property test: the relay's fast path for plain chunks (serving/relay.py, `plain_choice` in
protocol/normalize.py) sends the same bytes and bills the same as the slow path (`normalize_chunk`
for every chunk), whatever an upstream sends — or it declines and the slow path runs (hypothesis)."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parrotrouter.accounting.usage import UsageRecord
from parrotrouter.api.generate import encode
from parrotrouter.protocol.normalize import plain_choice
from parrotrouter.providers.openai_compat import OpenAIStream
from parrotrouter.serving import relay as relay_module
from parrotrouter.serving.core import Frames
from parrotrouter.serving.relay import Relay
from parrotrouter.serving.request import SHAPES, Kind
from parrotrouter.upstream.client import SSEParser

# hostile text: every code point but surrogates (NUL, controls, quotes, backslashes, emoji, RTL marks)
hostile = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
text = st.one_of(st.sampled_from(["", " ", "Hello", "\u00e9", "\x00", '"\\/', "\n\n", "data: x"]), hostile)
number = st.one_of(st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False))
scalar = st.one_of(st.none(), st.booleans(), number, text)
json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                          max_leaves=5)
REASONS = ["stop", "length", "tool_calls", "content_filter", "function_call", "end_turn", "eos", "weird"]
finish = st.one_of(st.none(), st.sampled_from(REASONS)) | st.sampled_from(REASONS) | json_value
ABSENT = object()


@st.composite
def _maybe(draw: Any, strategy: st.SearchStrategy[Any]) -> Any:
    """Mostly the usual value, sometimes absent or something else (any JSON value)."""
    odds = draw(st.integers(0, 9))
    return draw(strategy) if odds < 8 else ABSENT if odds == 8 else draw(json_value)


@st.composite
def objects(draw: Any, fields: dict[str, st.SearchStrategy[Any]], rare: frozenset[str] | set[str] = frozenset()
            ) -> dict[str, Any]:
    """An object with `fields` (each maybe absent or odd; the `rare` ones mostly absent) and maybe
    extra ones, in any order."""
    items = [(k, v) for k, s in fields.items()
             if (k not in rare or draw(st.integers(0, 3)) == 0) and (v := draw(_maybe(s))) is not ABSENT]
    if draw(st.integers(0, 3)) == 0:
        items += draw(st.lists(st.tuples(text, json_value), max_size=2))
    if draw(st.booleans()):
        items = draw(st.permutations(items))
    return dict(items)


delta = objects({"role": st.sampled_from(["assistant", "user"]), "content": st.one_of(text, st.none()),
                 "tool_calls": st.one_of(st.none(), st.just([{"index": 0, "function": {"arguments": "{}"}}])),
                 "refusal": text, "reasoning_content": text}, rare={"tool_calls", "refusal", "reasoning_content"})
chat_choice = objects({"index": st.integers(0, 2), "delta": delta, "logprobs": st.none(), "finish_reason": finish})
text_choice = objects({"index": st.integers(0, 2), "text": text, "logprobs": st.none(), "finish_reason": finish})
usage = objects({"prompt_tokens": st.integers(0, 2**60), "completion_tokens": st.integers(0, 2**60),
                 "total_tokens": st.integers(0, 2**60)})


def chunks(choice: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return objects({"id": text, "object": st.just("chat.completion.chunk"), "created": number, "model": text,
                    "system_fingerprint": text, "provider": text, "usage": st.one_of(st.none(), usage),
                    "choices": _maybe(st.one_of(st.lists(choice, min_size=1, max_size=1),
                                                st.lists(_maybe(choice).filter(lambda c: c is not ABSENT),
                                                         min_size=1, max_size=3)))})


def relayed(kind: Kind, events: list[bytes], fast: bool) -> tuple[Any, ...]:
    """What a stream of these upstream events gives: the bytes sent, and what is billed."""
    record = UsageRecord(id="chatcmpl-0123", endpoint="chat.completions", requested_model="m", created_at=1.5e9)
    relay = Relay(SHAPES[kind], "public/model", "prov", record)
    parser, stream = SSEParser(), OpenAIStream("prov")
    sent: list[bytes] = []
    try:
        with mock.patch.object(relay_module, "plain_choice", plain_choice if fast else lambda *_: None):
            for event in parser.feed(b"".join(events)):
                out = relay.chunks(stream.feed(event))
                if out:
                    sent.append(encode(Frames(out)))
    except Exception as exc:  # both paths must fail alike
        sent.append(type(exc).__name__.encode())
    return (sent, relay.texts, record.finish_reason, record.usage_reported, record.prompt_tokens,
            record.completion_tokens, relay.roles_sent)


def wire(obj: Any, style: int) -> bytes:
    """An upstream's JSON: compact, spaced, ASCII-escaped or not (the relay re-encodes all alike)."""
    if style == 0:
        return b"data: " + orjson.dumps(obj) + b"\n\n"
    return b"data: " + json.dumps(obj, ensure_ascii=style == 1).encode() + b"\n\n"


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["chat", "completions"]), data=st.data())
def test_fast_path_sends_and_bills_what_the_slow_path_does(kind: Kind, data: Any) -> None:
    choice = chat_choice if kind == "chat" else text_choice
    stream = data.draw(st.lists(chunks(choice), min_size=1, max_size=4))
    style = data.draw(st.integers(0, 2))
    try:
        events = [wire(chunk, style) for chunk in stream]
    except (TypeError, OverflowError):  # beyond what JSON can say (orjson: integers over 64 bits)
        events = [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in stream]
    assert relayed(kind, events, fast=True) == relayed(kind, events, fast=False)


def test_plain_chunks_take_the_fast_path() -> None:
    """An OpenAI stream's ordinary chunks (the role, content, the finish) need only our stamp."""
    base = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "fp"}
    for choice in ({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None},
                   {"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None},
                   {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}):
        assert plain_choice({**base, "choices": [choice]}, "chat.completion.chunk") is choice
    odd = [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None},  # no logprobs: added
           {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "end_turn"},  # translated
           {"index": 0, "delta": {"tool_calls": None}, "logprobs": None, "finish_reason": None},
           {"index": True, "delta": {}, "logprobs": None, "finish_reason": None}]
    for choice in odd:
        assert plain_choice({**base, "choices": [choice]}, "chat.completion.chunk") is None
    assert plain_choice({**base, "choices": [odd[0], odd[0]]}, "chat.completion.chunk") is None


def test_a_stream_relayed_through_the_fast_path() -> None:
    """The frames and the billing of an ordinary stream, pinned (role added once, usage taken, the
    usage-only chunk not relayed)."""
    def chunk(**fields: Any) -> bytes:
        return b"data: " + orjson.dumps({"id": "up", "object": "chat.completion.chunk", "created": 7, "model": "u",
                                         **fields}) + b"\n\n"

    events = [chunk(choices=[{"index": 0, "delta": {"content": "Hé"}, "logprobs": None, "finish_reason": None}]),
              chunk(choices=[{"index": 0, "delta": {"content": "\x00"}, "logprobs": None, "finish_reason": "stop"}]),
              chunk(choices=[], usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
              b"data: [DONE]\n\n"]
    sent, texts, finish, reported, prompt, completion, _ = relayed("chat", events, fast=True)
    assert sent == [
        b'data: {"id":"chatcmpl-0123","object":"chat.completion.chunk","created":1500000000,"model":"public/model",'
        b'"choices":[{"index":0,"delta":{"content":"H\xc3\xa9","role":"assistant"},"logprobs":null,'
        b'"finish_reason":null}],"provider":"prov"}\n\n',
        b'data: {"id":"chatcmpl-0123","object":"chat.completion.chunk","created":1500000000,"model":"public/model",'
        b'"choices":[{"index":0,"delta":{"content":"\\u0000"},"logprobs":null,"finish_reason":"stop"}],'
        b'"provider":"prov"}\n\n']
    assert (texts, finish, reported, prompt, completion) == (["Hé", "\x00"], "stop", True, 3, 2)
