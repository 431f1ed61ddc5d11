"""AWS Bedrock through the gateway: a fake bedrock-runtime over real HTTP serving the documented
Converse JSON and ConverseStream event-stream frames, checking every request's SigV4 signature;
the official openai SDK as the client; every outgoing body validated against botocore's own
service model; streams that rebuild exactly the non-streaming answer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.conftest import Gateway
from tests.e2e.answers import both, same_answer
from tests.fakes import bedrock_upstream as fb

PROFILE_ID = "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0"
TOOL = {"type": "function", "function": {
    "name": "top_song", "description": "Get the most popular song played on a radio station.",
    "parameters": {"type": "object", "properties": {"sign": {"type": "string", "description": "The call sign"}},
                   "required": ["sign"]}}}
USER = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the most popular song?"}]
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
SCENARIOS = [*fb.RESPONSES, *fb.ERRORS, *fb.STREAM_ERRORS]


def aws_env(home: Path, **extra: str) -> dict[str, str]:
    """Static test credentials, and a chain that can look nowhere else: no instance metadata,
    no shared files outside the test's own directory."""
    return {"AWS_ACCESS_KEY_ID": fb.ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": fb.SECRET_KEY,
            "AWS_SESSION_TOKEN": "test-session-token", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            **extra}


@pytest.fixture(scope="module")
def fake() -> Iterator[fb.FakeBedrock]:
    server = fb.FakeBedrock().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(fake: fb.FakeBedrock, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("bedrock")
    models = [{"id": f"br-{name}", "deployments": [{"provider": "aws", "model": f"fake.{name}-v1:0"}],
               "max_output_tokens": 1024} for name in SCENARIOS]
    models += [{"id": "br-profile", "deployments": [{"provider": "aws", "model": PROFILE_ID}]},
               {"id": "br-arn", "deployments": [{"provider": "aws", "model": ARN}]}]
    config = {"env_providers": False, "server": {"breaker_failure_threshold": 10_000},
              "providers": [{"name": "aws", "type": "bedrock", "base_url": fake.url,
                             "options": {"region": fb.REGION}}],
              "models": models}
    gateway = Gateway(home, config, env=aws_env(home)).start()
    yield gateway
    gateway.stop()


def last_two(fake: fb.FakeBedrock, model_id: str) -> None:
    """The non-stream and the stream request of `both`: valid Converse / ConverseStream inputs."""
    assert fake.paths[-2].endswith("/converse") and fake.paths[-1].endswith("/converse-stream")
    assert fake.models[-2:] == [model_id, model_id]
    fb.check_converse_body(fake.requests[-2], model_id, stream=False)
    fb.check_converse_body(fake.requests[-1], model_id, stream=True)


def test_text_system_inference_config_and_signature(gw: Gateway, fake: fb.FakeBedrock) -> None:
    messages = [*USER, {"role": "assistant", "content": "Which station?"}, {"role": "user", "content": "WZPZ"},
                {"role": "user", "content": [{"type": "text", "text": "please"}]}]
    plain, final = both(gw, "br-text", messages=messages, stop=["END"], temperature=0.3, top_p=0.9, max_tokens=200)
    same_answer(plain, final)
    assert plain.choices[0].message.content == "Why don't scientists trust atoms? Because they make up everything!"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.choices[0].model_extra["native_finish_reason"] == "end_turn"
    assert (plain.usage.prompt_tokens, plain.usage.completion_tokens, plain.usage.total_tokens) == (22, 16, 38)
    last_two(fake, "fake.text-v1:0")
    body = fake.requests[-1]
    assert body["system"] == [{"text": "Be brief."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][2]["content"] == [{"text": "WZPZ"}, {"text": "please"}]
    assert body["inferenceConfig"] == {"maxTokens": 200, "temperature": 0.3, "topP": 0.9, "stopSequences": ["END"]}
    headers = fake.headers[-1]  # the fake answered, so botocore's re-signing matched
    assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={fb.ACCESS_KEY}/")
    assert headers["Content-Type"] == "application/json"
    assert fake.tokens[-2:] == ["test-session-token"] * 2


@pytest.mark.parametrize(("model", "upstream", "path"), [
    ("br-profile", PROFILE_ID, "/model/us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"),
    ("br-arn", ARN, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
                    "us.anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse")])
def test_inference_profiles_and_arns_in_the_path(gw: Gateway, fake: fb.FakeBedrock, model: str, upstream: str,
                                                 path: str) -> None:
    plain, final = both(gw, model, messages=USER)
    same_answer(plain, final)
    assert fake.paths[-2] == path and fake.paths[-1] == path + "-stream"
    last_two(fake, upstream)


def test_images_as_bytes_and_urls_refused(gw: Gateway, fake: fb.FakeBedrock) -> None:
    client = gw.client()
    client.chat.completions.create(model="br-text", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}}]}])
    fb.check_converse_body(fake.requests[-1], "fake.text-v1:0", stream=False)
    assert fake.requests[-1]["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PNG.split(",", 1)[1]}}}
    sent = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="br-text", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}])
    assert info.value.param == "messages[0].content" and len(fake.requests) == sent


def test_tools_round_trip(gw: Gateway, fake: fb.FakeBedrock) -> None:
    plain, final = both(gw, "br-tools", messages=USER, tools=[TOOL], tool_choice="required")
    same_answer(plain, final)
    msg = plain.choices[0].message
    assert plain.choices[0].finish_reason == "tool_calls" and msg.content is None
    call = msg.tool_calls[0]
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song", {"sign": "WZPZ"})
    last_two(fake, "fake.tools-v1:0")
    assert fake.requests[-1]["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "top_song", "description": "Get the most popular song played on a radio station.",
        "inputSchema": {"json": TOOL["function"]["parameters"]}}}], "toolChoice": {"any": {}}}
    follow = [*USER, msg.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": call.id, "content": "Elemental Hotel by 8 Storey Hike"}]
    plain, final = both(gw, "br-text", messages=follow, tools=[TOOL],
                        tool_choice={"type": "function", "function": {"name": "top_song"}})
    same_answer(plain, final)
    last_two(fake, "fake.text-v1:0")
    body = fake.requests[-1]
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": call.id, "name": "top_song", "input": {"sign": "WZPZ"}}}]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": call.id, "content": [{"text": "Elemental Hotel by 8 Storey Hike"}]}}]}
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "top_song"}}
    gw.client().chat.completions.create(model="br-text", messages=USER, tools=[TOOL], tool_choice="none")
    assert "toolConfig" not in fake.requests[-1]


def test_parallel_tool_calls_stream(gw: Gateway, fake: fb.FakeBedrock) -> None:
    plain, final = both(gw, "br-parallel", messages=USER, tools=[TOOL])
    same_answer(plain, final)
    assert plain.choices[0].message.content == "I'll look up both stations."
    assert [json.loads(c.function.arguments)["sign"] for c in final.choices[0].message.tool_calls] == ["WZPZ", "WKRP"]
    last_two(fake, "fake.parallel-v1:0")


@pytest.mark.parametrize(("model", "finish", "native"), [
    ("br-max", "length", "max_tokens"), ("br-stopseq", "stop", "stop_sequence"),
    ("br-guardrail", "content_filter", "guardrail_intervened"), ("br-filtered", "content_filter", "content_filtered"),
    ("br-tools", "tool_calls", "tool_use")])
def test_finish_reasons(gw: Gateway, model: str, finish: str, native: str) -> None:
    plain, final = both(gw, model, messages=USER)
    same_answer(plain, final)
    assert plain.choices[0].finish_reason == finish
    assert plain.choices[0].model_extra["native_finish_reason"] == native


def test_cache_usage_and_reasoning(gw: Gateway) -> None:
    client = gw.client()
    plain = client.chat.completions.create(model="br-cache", messages=USER)
    assert plain.usage.prompt_tokens == 1524 and plain.usage.prompt_tokens_details.cached_tokens == 1500
    chunks = list(client.chat.completions.create(model="br-cache", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == 1524 and chunks[-1].usage.completion_tokens == 5
    plain, final = both(gw, "br-reasoning", messages=USER)
    same_answer(plain, final)
    assert plain.choices[0].message.content == "42."
    assert plain.choices[0].message.model_extra["reasoning"] == "6 x 7 is 42."


def test_json_schema_is_structured_output(gw: Gateway, fake: fb.FakeBedrock) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}
    plain, final = both(gw, "br-json", messages=USER,
                        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    same_answer(plain, final)
    assert json.loads(plain.choices[0].message.content) == {"name": "Ada", "age": 36}
    last_two(fake, "fake.json-v1:0")
    fmt = fake.requests[-1]["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema" and json.loads(fmt["structure"]["jsonSchema"]["schema"]) == schema


@pytest.mark.parametrize(("model", "status", "code"), [
    ("br-throttled", 429, "rate_limit_exceeded"), ("br-denied", 502, "upstream_error"),
    ("br-notfound", 502, "upstream_error"), ("br-invalid", 400, "invalid_request"),
    ("br-timeout", 504, "timeout"), ("br-unavailable", 503, "model_overloaded"),
    ("br-internal", 502, "upstream_error"), ("br-notready", 503, "model_overloaded")])
def test_errors(gw: Gateway, model: str, status: int, code: str) -> None:
    with pytest.raises(openai.APIStatusError) as info:
        gw.client().chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status and info.value.body["code"] == code
    assert fb.SECRET_KEY not in str(info.value.body) and fb.ACCESS_KEY not in str(info.value.body)
    if model == "br-invalid":  # a client error passes the upstream's words on
        assert "max_tokens" in info.value.body["message"]


@pytest.mark.parametrize(("model", "code"), [
    ("br-midthrottle", "rate_limit_exceeded"), ("br-midmodel", "upstream_error"),
    ("br-midinvalid", "invalid_request"), ("br-midunavailable", "model_overloaded"),
    ("br-midinternal", "upstream_error")])
def test_exception_events_mid_stream(gw: Gateway, model: str, code: str) -> None:
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gw.client().chat.completions.create(model=model, messages=USER, stream=True):
            got.append(chunk)
    assert got and info.value.body["code"] == code


def test_usage_is_recorded(gw: Gateway) -> None:
    resp = gw.client().chat.completions.create(model="br-cache", messages=USER, user="usage-probe")
    with gw.http() as http:
        generation = http.get("/v1/generation", params={"id": resp.id}).json()
    assert generation["provider"] == "aws" and generation["user"] == "usage-probe"
    assert (generation["usage"]["prompt_tokens"], generation["usage"]["completion_tokens"]) == (1524, 5)


def test_zero_config_from_the_environment(make_gateway: Any, fake: fb.FakeBedrock, tmp_path: Path) -> None:
    env = aws_env(tmp_path, AWS_REGION=fb.REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME=fake.url)
    gateway: Gateway = make_gateway(None, env=env)
    gateway.start()
    client = gateway.client()
    listed = [m for m in client.models.list() if m.owned_by == "bedrock"]
    assert listed, "the environment enables Bedrock with the price table's models"
    model = next(m.id for m in listed if m.id.startswith("global.anthropic.claude-"))
    plain, final = both(gateway, model, messages=USER)
    same_answer(plain, final)
    assert plain.choices[0].message.content.startswith("Why don't scientists")
    last_two(fake, model)
    assert fake.tokens[-1] == "test-session-token"
    assert (client.models.retrieve(model).model_extra or {})["pricing"]["prompt"] > 0
