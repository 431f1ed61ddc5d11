"""LangChain as a caller of the real gateway: `ChatAnthropic` (Messages API) and
`ChatOpenAI(use_responses_api=True)` (Responses API) — invoke, stream and tools, on a model served by
an Anthropic-format upstream and on one served by an OpenAI-format upstream; the tokens LangChain
reports are the tokens the ledger billed."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tests.clients.gateway import AGENT, TEXT, gw, new_key, received, upstreams, usage
from tests.conftest import Gateway
from tests.fakes.anthropic_upstream import SCENARIOS
from tests.fakes.openai_upstream import ANSWER

__all__ = ["gw", "upstreams"]  # module fixtures

FORMATS = ["anthropic", "openai"]
EXPECTED_TEXT = {"anthropic": SCENARIOS["claude-text"]["content"][0]["text"], "openai": ANSWER}
WEATHER = {"name": "get_weather", "description": "Current weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def chat_model(kind: str, gw: Gateway, key: str, model: str) -> BaseChatModel:
    if kind == "ChatAnthropic":  # the Anthropic API root, without /v1, as the anthropic SDK takes it
        return ChatAnthropic(model_name=model, base_url=gw.url, api_key=SecretStr(key), max_retries=0,
                             timeout=30, stop=None)
    return ChatOpenAI(model=model, base_url=gw.base_url, api_key=SecretStr(key), use_responses_api=True,
                      max_retries=0, timeout=30)


def text_of(message: AIMessage | AIMessageChunk) -> str:
    return str(message.text)


def billed_like(message: AIMessage | AIMessageChunk, billed: dict[str, Any]) -> None:
    assert message.usage_metadata is not None
    assert message.usage_metadata["input_tokens"] == billed["tokens"]["prompt"] > 0
    assert message.usage_metadata["output_tokens"] == billed["tokens"]["completion"] > 0


KINDS = ["ChatAnthropic", "ChatOpenAI"]


@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_invoke(gw: Gateway, kind: str, upstream: str) -> None:
    key = new_key(gw)
    answer = chat_model(kind, gw, key, TEXT[upstream]).invoke("Say hello")
    assert isinstance(answer, AIMessage)
    assert text_of(answer) == EXPECTED_TEXT[upstream]
    billed_like(answer, usage(gw, key, requests=1))


@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_stream(gw: Gateway, kind: str, upstream: str) -> None:
    key = new_key(gw)
    chunks = list(chat_model(kind, gw, key, TEXT[upstream]).stream("Say hello"))
    assert sum(1 for c in chunks if text_of(c)) > 1
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert text_of(whole) == EXPECTED_TEXT[upstream]
    billed_like(whole, usage(gw, key, requests=1))


@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_tool_binding_round_trip(gw: Gateway, upstreams: dict[str, Any], kind: str, upstream: str) -> None:
    key = new_key(gw)
    since = len(upstreams[upstream].requests)
    model = chat_model(kind, gw, key, AGENT[upstream]).bind_tools([WEATHER])
    asked = HumanMessage("What is the weather in Paris?")
    call = model.invoke([asked])
    assert isinstance(call, AIMessage)
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [("get_weather", {"city": "Paris"})]
    result = ToolMessage("Sunny, 21 degrees", tool_call_id=call.tool_calls[0]["id"])
    final = model.invoke([asked, call, result])
    assert text_of(final) == "The tool said: Sunny, 21 degrees"
    first, second = received(upstreams[upstream], since)
    assert "get_weather" in str(first.get("tools"))
    assert "Sunny, 21 degrees" in str(second["messages"][-1])
    usage(gw, key, requests=2)
