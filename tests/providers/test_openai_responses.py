"""The Responses API spoken natively (providers/openai_responses.py): which providers take it, the
chat-shaped view the serving core accounts with, and the stream translator — against the fake
upstream's own wire bodies (tests/fakes/openai_responses.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from parrotrouter.catalog import ProviderSpec
from parrotrouter.errors import UpstreamFailure
from parrotrouter.providers.azure import AzureAdapter
from parrotrouter.providers.http import build_provider
from parrotrouter.providers.openai_responses import DIALECT, ResponsesStream, chat_view
from parrotrouter.settings import Secret
from parrotrouter.upstream.client import ServerSentEvent
from tests.fakes import openai_responses as fake


def spec(name: str, base_url: str, type_: str = "openai", **options: Any) -> ProviderSpec:
    return ProviderSpec(name=name, type=type_, display_name=name, base_url=base_url, api_key=Secret("k"),
                        options=options)


@pytest.mark.parametrize(("provider", "native"), [
    (spec("openai", "http://127.0.0.1:9/v1"), True),  # the openai preset's provider, wherever it points
    (spec("work", "https://api.openai.com/v1"), True),
    (spec("groq", "https://api.groq.com/openai/v1"), False),
    (spec("vllm", "http://10.0.0.5:8000/v1"), False),
    (spec("az", "https://r.openai.azure.com", "azure", surface="v1"), True),
    (spec("az", "https://r.openai.azure.com", "azure", api_version="2025-04-01-preview"), True),
    (spec("az", "https://r.openai.azure.com", "azure", api_version="2024-10-21"), False),
])
def test_which_providers_take_responses(provider: ProviderSpec, native: bool) -> None:
    assert (DIALECT in build_provider(provider).native_dialects) is native


def test_azure_responses_urls() -> None:
    v1 = AzureAdapter(spec("az", "https://r.openai.azure.com/openai/v1", "azure", surface="v1"))
    preview = AzureAdapter(spec("az", "https://r.openai.azure.com", "azure", api_version="2025-04-01-preview"))
    assert v1.responses_url("gpt-4o") == "https://r.openai.azure.com/openai/v1/responses"
    assert preview.responses_url("gpt-4o") == \
        "https://r.openai.azure.com/openai/responses?api-version=2025-04-01-preview"


def test_chat_view_of_a_response() -> None:
    body = {"model": "gpt-x-tools", "input": "Weather?"}
    response = fake.response_object(body)
    view = chat_view(response)
    assert view["native"] is response and view["choices"][0]["finish_reason"] == "tool_calls"
    call = view["choices"][0]["message"]["tool_calls"][0]
    assert call["id"] == "call_up123" and call["function"]["arguments"] == '{"city": "Paris", "unit": "celsius"}'
    assert view["usage"]["prompt_tokens"] == response["usage"]["input_tokens"]
    assert view["usage"]["completion_tokens"] == response["usage"]["output_tokens"]
    incomplete = {**fake.response_object({"model": "m", "input": "x"}), "status": "incomplete",
                  "incomplete_details": {"reason": "max_output_tokens"}}
    assert chat_view(incomplete)["choices"][0]["finish_reason"] == "length"
    assert chat_view(incomplete)["choices"][0]["message"]["content"] == fake.ANSWER


def events_of(body: dict[str, Any]) -> list[ServerSentEvent]:
    out = []
    for seq, event in enumerate(fake._events(body)):
        out.append(ServerSentEvent(data=orjson.dumps({**event, "sequence_number": seq}).decode(),
                                   event=event["type"]))
    return out


def test_stream_translator_keeps_every_event_and_counts_text() -> None:
    stream = ResponsesStream("openai")
    events = events_of({"model": "m", "input": "Hi"})
    chunks = [chunk for event in events for chunk in stream.feed(event)]
    assert stream.done and len(chunks) == len(events)
    assert [c["native"][0]["type"] for c in chunks] == [e.event for e in events]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == fake.ANSWER
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["completion_tokens"] == 11


def test_stream_translator_fails_on_failed_and_error_events() -> None:
    stream = ResponsesStream("openai")
    with pytest.raises(UpstreamFailure):
        for event in events_of({"model": "m-failed", "input": "Hi"}):
            stream.feed(event)
    with pytest.raises(UpstreamFailure):
        ResponsesStream("openai").feed(ServerSentEvent(data='{"type": "error", "code": "server_error"}',
                                                       event="error"))
