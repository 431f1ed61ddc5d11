"""The clients from npm, unchanged, as callers of the real gateway: the AI SDK (`ai` with the
`@ai-sdk/openai` default provider, i.e. the Responses API, its chat provider, and `@ai-sdk/anthropic`), Claude Code
(`claude -p`) and Codex (`codex exec`), each on a model served by an Anthropic-format upstream and on
one served by an OpenAI-format upstream. The pinned packages (tests/clients/node/package-lock.json)
are installed with `npm ci` when missing; without node and npm these tests fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.clients import launch
from tests.clients.gateway import (
    AGENT,
    CLAUDE_CATALOG_MODEL,
    CODEX_CATALOG_MODEL,
    CUT,
    TEXT,
    gw,
    new_key,
    received,
    upstreams,
    usage,
)
from tests.conftest import Gateway
from tests.fakes.anthropic_upstream import SCENARIOS
from tests.fakes.openai_upstream import ANSWER

__all__ = ["gw", "upstreams"]  # module fixtures
# The first test may install the clients (`npm ci`, minutes on a cold cache); each client run has
# its own time limit (tests/clients/launch.py).
pytestmark = pytest.mark.timeout(600)

FORMATS = ["anthropic", "openai"]  # of the upstream serving the model
# The AI SDK's providers: `openai(model)` (Responses), `openai.chat(model)`, `anthropic(model)` (Messages).
PROVIDERS = ["openai", "openai.chat", "anthropic"]
EXPECTED_TEXT = {"anthropic": SCENARIOS["claude-text"]["content"][0]["text"], "openai": ANSWER}
CAPTURED = Path(__file__).resolve().parent.parent / "data" / "clients"


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    launch.install()


def tool_output_seen(body: dict[str, Any]) -> str:
    """The tool results the upstream got back at the end of the conversation, in any wire format."""
    if "input" in body:  # responses
        return json.dumps([i for i in body["input"] if i.get("type") == "function_call_output"])
    last = body["messages"][-1]
    if last.get("role") == "tool":  # chat completions
        return str(last["content"])
    return json.dumps([b for b in last.get("content") or [] if isinstance(b, dict) and b.get("type") == "tool_result"])


def offered_tools(body: dict[str, Any]) -> set[str]:
    return {t.get("function", t).get("name") or t.get("type") for t in body.get("tools") or []}


def captured(name: str) -> dict[str, Any]:
    """The first request of a recorded client run (tests/data/clients/)."""
    body: dict[str, Any] = json.loads((CAPTURED / f"{name}.json").read_text())[0]["body"]
    return body


# ------------------------------------------------------------------ the AI SDK
@pytest.mark.parametrize("call", ["generate", "stream"])
@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_ai_sdk_text_and_usage(gw: Gateway, provider: str, upstream: str, call: str) -> None:
    key = new_key(gw)
    out = launch.ai_sdk({"provider": provider, "baseURL": gw.base_url, "apiKey": key, "model": TEXT[upstream],
                         "call": call})
    assert out["text"] == EXPECTED_TEXT[upstream]
    assert out["finishReason"] == "stop"
    if call == "stream":
        assert len(out["deltas"]) > 1 and not out["errors"], out
    billed = usage(gw, key, requests=1)
    assert out["usage"]["inputTokens"] == billed["tokens"]["prompt"] > 0
    assert out["usage"]["outputTokens"] == billed["tokens"]["completion"] > 0


@pytest.mark.parametrize("call", ["generate", "stream"])
@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_ai_sdk_tool_round_trip(gw: Gateway, upstreams: dict[str, Any], provider: str, upstream: str,
                                call: str) -> None:
    key = new_key(gw)
    since = len(upstreams[upstream].requests)
    out = launch.ai_sdk({"provider": provider, "baseURL": gw.base_url, "apiKey": key, "model": AGENT[upstream],
                         "call": call, "tool": True})
    assert out["toolCalls"] == [{"name": "get_weather", "input": {"city": "Paris"}}]
    assert out["toolResults"] == ["Sunny, 21 degrees in Paris"]
    assert out["text"] == "The tool said: Sunny, 21 degrees in Paris"
    assert out["steps"] == 2 and out["finishReason"] == "stop"
    first, second = received(upstreams[upstream], since)
    assert offered_tools(first) == {"get_weather"}
    assert "Sunny, 21 degrees in Paris" in tool_output_seen(second)
    billed = usage(gw, key, requests=2)
    assert out["usage"]["inputTokens"] == billed["tokens"]["prompt"]
    assert out["usage"]["outputTokens"] == billed["tokens"]["completion"]


@pytest.mark.parametrize("upstream", FORMATS)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_ai_sdk_sees_a_stream_cut_by_the_upstream_as_an_error(gw: Gateway, provider: str, upstream: str) -> None:
    key = new_key(gw)
    out = launch.ai_sdk({"provider": provider, "baseURL": gw.base_url, "apiKey": key, "model": CUT[upstream],
                         "call": "stream"})
    assert out["finishReason"] == "error" and out["errors"], out  # not a clean finish
    assert out["text"] and EXPECTED_TEXT[upstream].startswith(out["text"]), out  # what came before the cut
    usage(gw, key, requests=1)  # billed all the same


# ------------------------------------------------------------------ Claude Code
# The model on each upstream format, and one whose id Claude Code knows (it then asks for 128k tokens).
CLAUDE_MODELS = [(upstream, AGENT[upstream]) for upstream in FORMATS] + [("openai", CLAUDE_CATALOG_MODEL)]


@pytest.mark.parametrize(("upstream", "model"), CLAUDE_MODELS, ids=[m for _, m in CLAUDE_MODELS])
def test_claude_code_runs_a_tool_and_answers(gw: Gateway, upstreams: dict[str, Any], upstream: str, model: str,
                                             tmp_path: Path) -> None:
    key = new_key(gw)
    since = len(upstreams[upstream].requests)
    run = launch.claude(tmp_path, gw.url, key, model).check()
    assert launch.SECRET in run.stdout, run
    bodies = received(upstreams[upstream], since)
    assert len(bodies) == 2, [b.get("model") for b in bodies]
    assert "Bash" in offered_tools(bodies[0])
    assert launch.SECRET in tool_output_seen(bodies[1])
    if upstream == "anthropic":  # served natively: Claude Code's own fields reach Anthropic intact
        recorded = captured("claude_code_tool_round_trip")
        assert set(recorded) <= set(bodies[0]), set(recorded) - set(bodies[0])
        assert bodies[0]["thinking"] == recorded["thinking"]
        assert bodies[0]["context_management"] == recorded["context_management"]
    else:  # translated to chat: nothing only Anthropic takes is forwarded
        only_anthropic = {"thinking", "context_management", "output_config", "system", "metadata"}
        assert not only_anthropic & set(bodies[0]), sorted(bodies[0])
    usage(gw, key, requests=2)


# ------------------------------------------------------------------ Codex
# The model on each upstream format, and one whose id Codex knows (it then offers more tools).
CODEX_MODELS = [(upstream, AGENT[upstream]) for upstream in (*FORMATS, "responses")] + [("openai", CODEX_CATALOG_MODEL)]


@pytest.mark.parametrize(("upstream", "model"), CODEX_MODELS, ids=[m for _, m in CODEX_MODELS])
def test_codex_runs_a_tool_and_answers(gw: Gateway, upstreams: dict[str, Any], upstream: str, model: str,
                                       tmp_path: Path) -> None:
    key = new_key(gw)
    since = len(upstreams[upstream].requests)
    run = launch.codex(tmp_path, gw.base_url, key, model).check()
    assert launch.SECRET in run.stdout, run
    bodies = received(upstreams[upstream], since)
    assert len(bodies) == 2, [b.get("model") for b in bodies]
    assert "exec_command" in offered_tools(bodies[0])
    assert launch.SECRET in tool_output_seen(bodies[1])
    if upstream == "responses":  # served natively: Codex's own body reaches the upstream intact...
        recorded = captured("codex_tool_round_trip")
        assert set(recorded) <= set(bodies[0]), set(recorded) - set(bodies[0])
        # ...but for the hosted web search, billed per call, which the gateway never passes on (README)
        assert bodies[0]["tools"] == [t for t in recorded["tools"] if t["type"] != "web_search"]
        assert bodies[0]["client_metadata"].keys() == recorded["client_metadata"].keys()
    usage(gw, key, requests=2)
