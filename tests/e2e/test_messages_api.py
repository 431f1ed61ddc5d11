"""The Anthropic Messages API, inbound, against the real gateway over HTTP with the official
`anthropic` SDK as the client: served natively by a fake Anthropic upstream (the body it receives
is the client's, only the model and credentials changed) and translated for a fake
OpenAI-compatible upstream; create, stream, tools round trips, count_tokens, Anthropic's error
shapes, the ledger (endpoint `messages`, usage, cost, cut streams billed), hostile input."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from tests.conftest import MASTER_KEY, Gateway, fake_config
from tests.e2e.test_money_paths import ledger_rows
from tests.fakes import anthropic_upstream as fa
from tests.fakes.openai_upstream import ANSWER, WORDS, FakeOpenAI

PRICE = {"prompt": "3", "completion": "15"}
CLAUDE = [*fa.SCENARIOS, *fa.ERRORS, "claude-midstream", "claude-nocount"]
USER = [{"role": "user", "content": "Hi"}]
WEATHER = {"name": "get_weather", "description": "Current weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def claude() -> Iterator[fa.FakeAnthropic]:
    fake = fa.FakeAnthropic().start()
    yield fake
    fake.stop()


def messages_gateway(home: Path, claude: fa.FakeAnthropic, fake_upstream: FakeOpenAI) -> Gateway:
    """A gateway (SQLite ledger) with the fake OpenAI models and the Claude models of `claude`."""
    config = fake_config(fake_upstream, database_url=f"sqlite:///{home / 'state.db'}", key_refresh_seconds=0.2)
    config["providers"].append({"name": "claude", "type": "anthropic", "base_url": claude.url,
                                "api_key": {"$env": "FAKE_ANTHROPIC_KEY"}})
    config["models"] += [{"id": m, "deployments": [{"provider": "claude", "model": m}], "pricing": PRICE,
                          "max_output_tokens": 8192} for m in CLAUDE]
    gateway = Gateway(home, config, env={"FAKE_UPSTREAM_KEY": "sk-upstream", "FAKE_ANTHROPIC_KEY": "vendor-secret"})
    gateway.database_url = config["server"]["database_url"]  # type: ignore[attr-defined]  # for ledger_rows
    return gateway


@pytest.fixture(scope="module")
def gw(claude: fa.FakeAnthropic, fake_upstream: FakeOpenAI,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = messages_gateway(tmp_path_factory.mktemp("messages"), claude, fake_upstream)
    yield gateway.start()
    gateway.stop()


Client = Callable[..., anthropic.Anthropic]


@pytest.fixture
def client(gw: Gateway) -> Iterator[Client]:
    """Anthropic SDK clients of the gateway (closed after the test)."""
    made: list[anthropic.Anthropic] = []

    def make(key: str = MASTER_KEY) -> anthropic.Anthropic:
        made.append(anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0))
        return made[-1]

    yield make
    for sdk in made:
        sdk.close()


def blocks(message: anthropic.types.Message) -> list[dict[str, Any]]:
    """Content blocks as plain dicts (the stream helper's parsed blocks compare equal to these)."""
    return [b.model_dump(exclude={"parsed_output"}, exclude_none=True) for b in message.content]


def generation(gw: Gateway, generation_id: str) -> dict[str, Any]:
    deadline = time.time() + 5
    while True:
        with gw.http() as http:
            resp = http.get("/v1/generation", params={"id": generation_id})
        if resp.status_code == 200 or time.time() > deadline:
            assert resp.status_code == 200, resp.text
            return resp.json()  # type: ignore[no-any-return]
        time.sleep(0.1)


def sse_events(resp: httpx.Response, limit: int | None = None) -> list[dict[str, Any]]:
    events = []
    for line in resp.iter_lines():
        if line.startswith("data: "):
            events.append(json.loads(line[6:]))
            if limit is not None and len(events) >= limit:
                break
    return events


# ---------------------------------------------------------------------------- native (Anthropic)
def test_native_request_reaches_anthropic_intact(client: Client, gw: Gateway, claude: fa.FakeAnthropic) -> None:
    """cache_control, thinking, output_config, unknown fields and betas: as the client sent them."""
    # temperature and top_k: older clients send them (this SDK no longer has them)
    extra = {"temperature": 1, "top_k": 5,
             "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
             "service_tier": "auto", "some_field_from_2027": {"nested": [1, {"x": None}]}}
    system = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    tools = [{**WEATHER, "cache_control": {"type": "ephemeral"}, "defer_loading": True},
             {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2}]
    message = client().messages.create(
        model="claude-cache", max_tokens=2048, system=system, messages=USER, tools=tools,  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 1024},
        output_config={"effort": "high"}, metadata={"user_id": "u-1"}, extra_body=extra,
        extra_headers={"anthropic-beta": "context-management-2025-06-27,effort-2025-11-24"})
    sent = claude.requests[-1]
    assert sent == {"model": "claude-cache", "max_tokens": 2048, "system": system, "messages": USER, "tools": tools,
                    "thinking": {"type": "enabled", "budget_tokens": 1024},
                    "output_config": {"effort": "high"}, "metadata": {"user_id": "u-1"}, **extra}
    headers = {k.lower(): v for k, v in claude.headers[-1].items()}
    assert headers["anthropic-beta"] == "context-management-2025-06-27,effort-2025-11-24"
    assert headers["x-api-key"] == "vendor-secret" and "authorization" not in headers
    assert message.id.startswith("msg_") and message.model == "claude-cache"
    assert message._request_id and message._request_id.startswith("req_")
    assert message.content[0].type == "text" and message.content[0].text == "Cached answer."
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens) == (5, 4, 100, 20)
    row = generation(gw, message.id)
    assert row["endpoint"] == "messages" and row["provider"] == "claude"
    # Anthropic counts cache reads and writes apart; the ledger's prompt tokens include them.
    assert row["usage"]["prompt_tokens"] == 125 and row["usage"]["completion_tokens"] == 4
    assert Decimal(str(row["cost"])) > 0


def test_native_stream_is_anthropics_own(client: Client, gw: Gateway) -> None:
    """The events are the upstream's, in order (our id and model name in message_start), and the
    SDK's stream helper rebuilds the same message the JSON answer gives."""
    body = {"model": "claude-thinking", "max_tokens": 100, "messages": USER, "stream": True}
    with gw.http() as http, http.stream("POST", "/v1/messages", json=body) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    upstream = [json.loads(e.split(b"data: ", 1)[1]) for e in fa.events("claude-thinking")]
    assert events[0]["message"]["id"].startswith("msg_")
    upstream[0]["message"].update(id=events[0]["message"]["id"], model="claude-thinking")
    delta = next(e for e in upstream if e["type"] == "message_delta")  # our cost beside Anthropic's counts
    delta["usage"]["cost"] = float(Decimal(generation(gw, events[0]["message"]["id"])["cost"]))
    assert events == upstream
    sdk = client()
    with sdk.messages.stream(model="claude-thinking", max_tokens=100, messages=USER) as stream:
        final = stream.get_final_message()
    plain = sdk.messages.create(model="claude-thinking", max_tokens=100, messages=USER)
    assert blocks(final) == blocks(plain) and final.stop_reason == plain.stop_reason == "end_turn"
    assert final.content[0].type == "thinking" and final.content[0].signature == "EqQBCgIYAhIM1gbcDa9GJwZA"


def test_native_tools_round_trip_with_thinking_signature(client: Client, gw: Gateway,
                                                         claude: fa.FakeAnthropic) -> None:
    sdk = client()
    first = sdk.messages.create(model="claude-tools", max_tokens=200, messages=USER, tools=[WEATHER])  # type: ignore[list-item]
    call = next(b for b in first.content if b.type == "tool_use")
    assert first.stop_reason == "tool_use" and call.input == {"city": "Paris", "unit": "celsius"}
    thinking = {"type": "thinking", "thinking": "Paris it is.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"}
    history = [*USER, {"role": "assistant", "content": [thinking, *[b.model_dump(exclude_none=True)
                                                                    for b in first.content]]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C",
                                             "cache_control": {"type": "ephemeral"}}]}]
    second = sdk.messages.create(model="claude-text", max_tokens=200, messages=history, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert second.content[0].type == "text"
    assert claude.requests[-1]["messages"] == json.loads(json.dumps(history))


# ---------------------------------------------------------------------------- translated (OpenAI)
def test_translated_create_and_stream(client: Client, gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    sdk = client()
    plain = sdk.messages.create(model="gpt-4o-mini", max_tokens=20000, system="Be brief.", messages=USER,
                                metadata={"user_id": "u-7"}, extra_body={"top_k": 3, "temperature": 0.2})
    assert plain.content[0].type == "text" and plain.content[0].text == ANSWER
    assert plain.stop_reason == "end_turn" and plain.usage.output_tokens == 12
    sent = fake_upstream.last("gpt-4o-mini")
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent["max_completion_tokens"] == 16384  # the model's limit, not the 20000 asked
    assert sent["user"] == "u-7" and sent["temperature"] == 0.2 and "top_k" not in sent
    with sdk.messages.stream(model="gpt-4o-mini", max_tokens=100, messages=USER) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == ANSWER and blocks(final) == blocks(plain)
    assert final.usage.output_tokens == len(WORDS) and final.usage.input_tokens > 0
    row = generation(gw, final.id)
    assert row["endpoint"] == "messages" and row["streamed"] and row["usage"]["completion_tokens"] == len(WORDS)


def test_translated_tools_round_trip(client: Client, gw: Gateway, fake_upstream: FakeOpenAI) -> None:
    sdk = client()
    with sdk.messages.stream(model="fake-tools", max_tokens=100, messages=USER, tools=[WEATHER],  # type: ignore[list-item]
                             tool_choice={"type": "any", "disable_parallel_tool_use": True}) as stream:
        first = stream.get_final_message()
    call = first.content[-1]
    assert first.stop_reason == "tool_use" and call.type == "tool_use"
    assert call.name == "get_weather" and call.input == {"city": "Paris", "unit": "celsius"}
    sent = fake_upstream.last("fake-tools")
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    history = [*USER, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18 C"}]}]
    second = sdk.messages.create(model="fake-tools", max_tokens=100, messages=history, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert second.content[0].type == "text" and second.content[0].text == ANSWER
    messages = fake_upstream.last("fake-tools")["messages"]
    assert messages[1]["tool_calls"][0]["id"] == call.id
    assert messages[2] == {"role": "tool", "tool_call_id": call.id, "content": "18 C"}


CAPTURES = sorted((Path(__file__).resolve().parents[1] / "data" / "anthropic_inbound" / "clients").glob("*.json"))
FORWARDED = ("anthropic-version", "anthropic-beta")


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.stem)
def test_what_real_clients_send_is_served(gw: Gateway, claude: fa.FakeAnthropic, fake_upstream: FakeOpenAI,
                                          path: Path) -> None:
    """Claude Code's, the AI SDK's and LangChain's own requests (captured on loopback), replayed with
    their headers: Anthropic gets each exactly as sent (only the model changed), and an OpenAI model
    serves it translated."""
    for sent in json.loads(path.read_text()):
        headers = {k: v for k, v in sent["headers"].items() if k.lower() in FORWARDED or (k.lower().startswith("x-")
                   and k.lower() != "x-api-key")}
        headers["Authorization"] = f"Bearer {MASTER_KEY}"
        with httpx.Client(base_url=gw.url, timeout=30, headers=headers) as http:
            for model in ("claude-text", "gpt-4o-mini"):
                body = {**sent["body"], "model": model}
                resp = http.post(sent["path"], json=body)
                assert resp.status_code == 200, resp.text
                if body.get("stream"):
                    names = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
                    assert names[0] == "message_start" and names[-1] == "message_stop", names
                else:
                    assert resp.json()["type"] == "message"
                if model == "claude-text":
                    assert claude.requests[-1] == body
                    received = {k.lower(): v for k, v in claude.headers[-1].items()}
                    assert all(received[k] == v for k, v in sent["headers"].items() if k.lower() in FORWARDED)
                else:
                    assert fake_upstream.last("gpt-4o-mini")["messages"][-1]["role"] in ("user", "tool")


# ---------------------------------------------------------------------------- count_tokens
def test_count_tokens(client: Client, gw: Gateway, claude: fa.FakeAnthropic) -> None:
    sdk = client()
    native = sdk.messages.with_raw_response.count_tokens(
        model="claude-text", messages=USER,
        system=[{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
        extra_headers={"anthropic-beta": "token-counting-2024-11-01"})
    assert native.parse().input_tokens == fa.COUNT_TOKENS and "x-parrotrouter-estimate" not in native.headers
    assert claude.paths[-1] == "/v1/messages/count_tokens"
    assert claude.requests[-1]["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert claude.headers[-1]["anthropic-beta"] == "token-counting-2024-11-01"
    estimate = sdk.messages.with_raw_response.count_tokens(model="gpt-4o-mini", messages=USER, tools=[WEATHER])  # type: ignore[list-item]
    assert estimate.headers["x-parrotrouter-estimate"] == "true"
    assert 10 < estimate.parse().input_tokens < 200
    fallback = sdk.messages.with_raw_response.count_tokens(model="claude-nocount", messages=USER)
    assert fallback.headers["x-parrotrouter-estimate"] == "true" and 0 < fallback.parse().input_tokens < 100
    with pytest.raises(anthropic.RateLimitError):  # other upstream failures are the client's to see
        sdk.messages.count_tokens(model="claude-429", messages=USER)  # type: ignore[arg-type]
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.messages.count_tokens(model="no-such-model", messages=USER)  # type: ignore[arg-type]
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


# ---------------------------------------------------------------------------- errors
def error_of(resp: httpx.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error" and set(body["error"]) == {"type", "message"}
    return resp.status_code, body["error"]["type"]


def test_error_shapes(client: Client, gw: Gateway) -> None:
    with pytest.raises(anthropic.AuthenticationError) as auth:
        client("pr-not-a-key").messages.create(model="claude-text", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert auth.value.status_code == 401 and auth.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert auth.value.request_id and auth.value.request_id.startswith("req_")
    with pytest.raises(anthropic.BadRequestError) as bad:
        client().messages.create(model="claude-text", max_tokens=0, messages=USER)  # type: ignore[arg-type]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.NotFoundError):
        client().messages.create(model="claude-nope", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError) as refused:  # the upstream's own 400, passed on
        client().messages.create(model="claude-400", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert "text content blocks must be non-empty" in refused.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.RateLimitError) as limited:
        client().messages.create(model="claude-429", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client().messages.create(model="claude-529", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert overloaded.value.status_code == 529 and overloaded.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        assert error_of(http.post("/v1/messages", json={})) == (401, "authentication_error")
        keyed = {"x-api-key": MASTER_KEY}
        ok = http.post("/v1/messages?beta=true", headers=keyed, json={"model": "claude-text", "max_tokens": 5,
                                                                       "messages": USER})
        assert ok.status_code == 200 and ok.json()["type"] == "message"
        assert http.get("/v1/models", headers=keyed).status_code == 200  # x-api-key works on every route
        assert http.get("/v1/models", headers={"x-api-key": "pr-wrong"}).status_code == 401
        assert error_of(http.get("/v1/messages", headers=keyed)) == (405, "invalid_request_error")
        assert error_of(http.post("/v1/messages/nope", headers=keyed, json={})) == (404, "not_found_error")
        assert error_of(http.post("/v1/messages", headers=keyed, content=b"{not json")) == (
            400, "invalid_request_error")
        big = b'{"model": "x", "max_tokens": 1, "messages": [{"role": "user", "content": "%s"}]}' % (b"a" * (11 << 20))
        assert error_of(http.post("/v1/messages", headers=keyed, content=big)) == (413, "request_too_large")


def test_model_permissions_apply(client: Client, gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "mini only", "credits": "1", "permissions": {
            "models": ["gpt-4o-mini"]}})
    assert resp.status_code == 201, resp.text
    time.sleep(0.5)
    sdk = client(resp.json()["key"])
    assert sdk.messages.create(model="gpt-4o-mini", max_tokens=10, messages=USER).content[0].type == "text"
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        sdk.messages.create(model="claude-text", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert denied.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(anthropic.PermissionDeniedError):
        sdk.messages.count_tokens(model="claude-text", messages=USER)  # type: ignore[arg-type]
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "no tools", "credits": "1",
                                           "permissions": {"features": ["chat", "streaming"]}})
    time.sleep(0.5)
    no_tools = client(resp.json()["key"])
    assert no_tools.messages.create(model="claude-text", max_tokens=10, messages=USER).content
    for tools in ([WEATHER], [{"type": "web_fetch_20250910", "name": "web_fetch"}]):  # server tools are tools
        with pytest.raises(anthropic.PermissionDeniedError):
            no_tools.messages.create(model="claude-text", max_tokens=10, messages=USER, tools=tools)  # type: ignore[arg-type]


def test_feature_permissions_see_what_only_anthropic_reads(client: Client, gw: Gateway) -> None:
    """An image Anthropic takes from its Files API and MCP servers Anthropic calls are not in the
    translated body: a key without 'vision' or 'tools' is refused them all the same."""
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "chat only", "credits": "1", "permissions": {"features": ["chat"]}})
    time.sleep(0.5)
    sdk = client(resp.json()["key"])
    image = {"type": "image", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}}
    mcp = {"mcp_servers": [{"type": "url", "url": "https://mcp.example.com/sse", "name": "example"}]}
    for messages, extra in (([{"role": "user", "content": [image, {"type": "text", "text": "What is it?"}]}], {}),
                            ([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                                            "content": [image]}]}], {}),
                            (USER, mcp)):
        with pytest.raises(anthropic.PermissionDeniedError):
            sdk.messages.create(model="claude-text", max_tokens=10, messages=messages, extra_body=extra)  # type: ignore[arg-type]


def test_a_conversation_only_anthropic_can_read_goes_to_anthropic_only(gw: Gateway, claude: fa.FakeAnthropic) -> None:
    """A user turn of a Files API image alone has no chat translation: Anthropic gets it as sent,
    a translated model (asked for, or a fallback) is refused instead of answering an empty turn."""
    messages = [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "file_01"}}]}]
    with gw.http() as http:
        ok = http.post("/v1/messages", json={"model": "claude-text", "max_tokens": 10, "messages": messages})
        assert ok.status_code == 200 and ok.json()["type"] == "message", ok.text
        assert claude.requests[-1]["messages"] == messages
        counted = http.post("/v1/messages/count_tokens", json={"model": "claude-text", "messages": messages})
        assert counted.json() == {"input_tokens": fa.COUNT_TOKENS}
        for body in ({"model": "gpt-4o-mini"}, {"model": "claude-text", "models": ["claude-text", "gpt-4o-mini"]}):
            refused = http.post("/v1/messages", json={**body, "max_tokens": 10, "messages": messages})
            assert error_of(refused) == (400, "invalid_request_error"), refused.text
            assert "gpt-4o-mini" in refused.json()["error"]["message"]


HOSTILE = [
    {"model": "claude-text", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {"model": "claude-text", "max_tokens": 10, "messages": USER, "metadata": {"user_id": "a\u0000b"}},
    {"model": "claude-text\u0000", "max_tokens": 10, "messages": USER},
    {"model": "claude-text", "max_tokens": 10, "messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": json.loads("{\"a\":" * 200 + "1" + "}" * 200)}]}]},
    {"model": "claude-text", "max_tokens": 10**30, "messages": USER},
    {"model": "claude-text", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}] * 100_001},
    {"model": ["claude-text"], "max_tokens": 10, "messages": USER},
    {"model": "claude-text", "max_tokens": 10, "messages": USER, "tools": [{"name": "x" * 10_000, "input_schema": {}}]},
    {"model": "claude-text", "max_tokens": 10, "messages": USER, "thinking": {"type": "enabled", "budget_tokens": 1.5}},
    # fields the gateway does not know go to Anthropic re-encoded: bounded too
    {"model": "claude-text", "max_tokens": 10, "messages": USER, "future": json.loads('{"a":' * 300 + "1" + "}" * 300)},
    {"model": "gpt-4o-mini", "max_tokens": 10, "messages": USER, "stream": True,
     "future": json.loads('{"a":' * 300 + "1" + "}" * 300)},
]
HOSTILE_IDS = ["missing-text", "nul-user", "nul-model", "deep-input", "huge-max-tokens", "too-many-messages",
               "model-type", "long-tool-name", "float-budget", "deep-unknown-field", "deep-unknown-field-translated"]
# count_tokens takes neither max_tokens nor metadata: those cases are create's only
CASES = [pytest.param("/v1/messages", body, id=f"create-{name}") for name, body in zip(HOSTILE_IDS, HOSTILE,
                                                                                        strict=True)]
CASES += [pytest.param("/v1/messages/count_tokens", body, id=f"count-{name}")
          for name, body in zip(HOSTILE_IDS, HOSTILE, strict=True) if name not in ("nul-user", "huge-max-tokens")]


@pytest.mark.parametrize(("path", "body"), CASES)
def test_hostile_input_is_a_4xx_in_anthropics_shape(gw: Gateway, path: str, body: dict[str, Any]) -> None:
    with gw.http() as http:
        resp = http.post(path, json=body)
    status, kind = error_of(resp)
    assert 400 <= status < 500 and kind in ("invalid_request_error", "not_found_error"), resp.text
    assert len(resp.content) < 2000


# ---------------------------------------------------------------------------- streams billed however they end
def test_cut_and_failed_streams_are_billed(client: Client, gw: Gateway) -> None:
    with gw.http() as http:
        for model in ("claude-paced", "fake-paced-slow"):
            with http.stream("POST", "/v1/messages", json={"model": model, "max_tokens": 100, "messages": USER,
                                                           "stream": True}) as resp:
                events = sse_events(resp, limit=6)  # message_start, ping, a block start, 3 deltas
            row = generation(gw, events[0]["message"]["id"])
            assert row["ended_by"] == "client" and row["status"] == 499, (model, row)
            assert row["usage"]["completion_tokens"] >= 1 and row["usage"]["prompt_tokens"] > 0
            assert Decimal(str(row["cost"])) > 0
        for model in ("claude-midstream", "fake-error-in-stream"):
            with http.stream("POST", "/v1/messages", json={"model": model, "max_tokens": 100, "messages": USER,
                                                           "stream": True}) as resp:
                events = sse_events(resp)
            # both upstreams said they were overloaded, as Anthropic says it
            assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "overloaded_error"
            assert not any(e["type"] == "message_stop" for e in events)
            row = generation(gw, events[0]["message"]["id"])
            assert row["ended_by"] == "upstream" and row["usage"]["completion_tokens"] >= 1, (model, row)
            assert Decimal(str(row["cost"])) > 0
    with pytest.raises(anthropic.APIStatusError), client().messages.stream(
            model="claude-midstream", max_tokens=10, messages=USER) as stream:
        stream.get_final_message()


def test_a_stream_cut_by_shutdown_ends_with_an_error_event_and_is_billed(make_gateway: Any,
                                                                         fake_upstream: FakeOpenAI,
                                                                         tmp_path: Path) -> None:
    config = fake_config(fake_upstream, database_url=f"sqlite:///{tmp_path / 'state.db'}", shutdown_timeout=1.5)
    gw: Gateway = make_gateway(config, env={"FAKE_UPSTREAM_KEY": "k"}).start()
    with gw.http() as http, http.stream("POST", "/v1/messages", json={
            "model": "fake-paced-slow", "max_tokens": 100, "messages": USER, "stream": True}) as resp:
        lines = resp.iter_lines()
        first = json.loads(next(line for line in lines if line.startswith("data: "))[6:])
        assert gw.proc is not None
        gw.proc.send_signal(signal.SIGTERM)
        rest = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert rest[-1]["type"] == "error" and rest[-1]["error"]["type"] == "overloaded_error"
    assert not any(e["type"] == "message_stop" for e in rest)
    assert gw.proc.wait(20) == 0
    gw.database_url = config["server"]["database_url"]  # type: ignore[attr-defined]
    row = next(r for r in asyncio.run(ledger_rows(gw)) if r.id == first["message"]["id"])
    assert row.ended_by == "shutdown" and row.endpoint == "messages"
    assert 1 <= row.completion_tokens < len(WORDS) and row.prompt_tokens > 0 and row.cost > 0


def test_count_tokens_takes_from_the_request_limits(client: Client, gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/keys", json={"name": "two a minute", "credits": "1",
                                           "permissions": {"max_requests_per_minute": 2}})
    time.sleep(0.5)
    sdk = client(resp.json()["key"])
    sdk.messages.count_tokens(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    sdk.messages.create(model="gpt-4o-mini", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    with pytest.raises(anthropic.RateLimitError) as limited:
        sdk.messages.count_tokens(model="gpt-4o-mini", messages=USER)  # type: ignore[arg-type]
    assert limited.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert int(limited.value.response.headers["retry-after"]) >= 1
