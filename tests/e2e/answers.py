"""One answer asked for twice, plain and streamed, through the official SDK: the stream, as the
SDK accumulates it, must rebuild exactly the plain answer (the native-provider tests' check)."""

from __future__ import annotations

import json
from typing import Any

from openai.lib.streaming.chat import ChatCompletionStreamState

from tests.conftest import Gateway


def both(gw: Gateway, model: str, **kw: Any) -> tuple[Any, Any]:
    """The same request non-streamed and streamed; the SDK's accumulator rebuilds the latter."""
    client = gw.client()
    plain = client.chat.completions.create(model=model, **kw)
    state = ChatCompletionStreamState()  # what `client.chat.completions.stream()` accumulates with
    for chunk in client.chat.completions.create(model=model, stream=True, **kw):
        state.handle_chunk(chunk)
    return plain, state.current_completion_snapshot


def same_answer(plain: Any, final: Any, *, reasoning: bool = False) -> None:
    for a, b in zip(plain.choices, final.choices, strict=True):
        assert a.finish_reason == b.finish_reason
        assert (a.message.content or None) == (b.message.content or None)
        if reasoning:
            assert (a.message.model_extra or {}).get("reasoning") == (b.message.model_extra or {}).get("reasoning")
        calls_a = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in a.message.tool_calls or ()]
        calls_b = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in b.message.tool_calls or ()]
        assert calls_a == calls_b
