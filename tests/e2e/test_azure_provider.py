"""Azure OpenAI through the gateway: a fake Azure resource over real HTTP (checking api-version and
credentials as Azure does), the official openai SDK as the client, every outgoing body validated
against the SDK's request types, the URL, headers and body compared with what the SDK's own
`AzureOpenAI` client sends, streams that rebuild the non-streaming answer, Azure's content filter
mapped to our codes, and zero config from the SDK's environment variables."""

from __future__ import annotations

import json
import time
import typing
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest
from openai.types import completion_create_params
from openai.types.chat import completion_create_params as chat_params

from tests.conftest import Gateway
from tests.e2e.answers import both, same_answer
from tests.fakes import azure_upstream as fa

USER = [{"role": "system", "content": "you are a helpful assistant that talks like a pirate"},
        {"role": "user", "content": "can you tell me how to care for a parrot?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                   "required": ["city"]}}}
PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
       "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
VERSION = "2024-10-21"
CHAT_SCENARIOS = [*fa.SCENARIOS, *fa.ERRORS, "midstream", "no-such-deployment"]


@pytest.fixture(scope="module")
def fake() -> Iterator[fa.FakeAzure]:
    server = fa.FakeAzure().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(fake: fa.FakeAzure, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    providers = [
        {"name": "az", "type": "azure", "base_url": fake.url, "api_key": {"$env": "AZ_KEY"},
         "options": {"api_version": VERSION}},
        {"name": "az-entra", "type": "azure", "base_url": fake.url + "/", "api_key": {"$env": "AZ_TOKEN"},
         "options": {"auth": "entra_id"}},
        {"name": "az-v1", "type": "azure", "base_url": fake.url + "/openai/v1", "api_key": {"$env": "AZ_TOKEN"},
         "options": {"surface": "v1", "auth": "entra_id"}},
        {"name": "az-badkey", "type": "azure", "base_url": fake.url, "api_key": {"$env": "AZ_BAD_KEY"}},
        {"name": "az-oldver", "type": "azure", "base_url": fake.url, "api_key": {"$env": "AZ_KEY"},
         "options": {"api_version": "2023-03-15-preview"}},
    ]
    models: list[dict[str, Any]] = [{"id": m, "deployments": [{"provider": "az", "model": m}],
                                     "pricing": {"prompt": "2.5", "completion": "10", "unit": "1m_tokens"}}
                                    for m in CHAT_SCENARIOS]
    models += [{"id": f"{p}-gpt-4o", "deployments": [{"provider": p, "model": "gpt-4o"}]}
               for p in ("az-entra", "az-v1", "az-badkey", "az-oldver")]
    models += [{"id": "instruct", "deployments": [{"provider": "az", "model": fa.INSTRUCT}],
                "capabilities": {"completion": True}},
               # a filtered prompt is the request's fault: the second deployment is never tried
               {"id": "filtered-twice", "deployments": [{"provider": "az", "model": "filtered-prompt"},
                                                        {"provider": "az-v1", "model": "gpt-4o"}],
                "strategy": "priority"}]
    config = {"env_providers": False, "server": {"breaker_failure_threshold": 10_000},
              "providers": providers, "models": models}
    env = {"AZ_KEY": fake.api_key, "AZ_TOKEN": fake.ad_token, "AZ_BAD_KEY": "not-the-key"}
    gateway = Gateway(tmp_path_factory.mktemp("azure"), config, env=env).start()
    yield gateway
    gateway.stop()


# ---------------------------------------------------------------------------- checks
def check_chat_body(body: dict[str, Any]) -> None:
    """The outgoing body is a valid `CompletionCreateParams` with no keys the SDK does not know."""
    allowed = set(typing.get_type_hints(chat_params.CompletionCreateParamsBase)) | {"stream"}
    assert set(body) <= allowed, set(body) - allowed
    pydantic.TypeAdapter(chat_params.CompletionCreateParams).validate_python(body)


def check_completion_body(body: dict[str, Any]) -> None:
    allowed = set(typing.get_type_hints(completion_create_params.CompletionCreateParamsBase)) | {"stream"}
    assert set(body) <= allowed, set(body) - allowed
    pydantic.TypeAdapter(completion_create_params.CompletionCreateParams).validate_python(body)


def no_filter_annotations(answer: Any) -> None:
    assert "prompt_filter_results" not in (answer.model_extra or {})
    for choice in answer.choices:
        assert "content_filter_results" not in (choice.model_extra or {})


def sent_by_sdk(fake: fa.FakeAzure, call: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    """What the SDK's own client sends for a call (run against the fake): path, headers, body."""
    before = len(fake.requests)
    result = call()
    if isinstance(result, openai.Stream):
        list(result)
    assert len(fake.requests) == before + 1
    return fake.paths[-1], fake.headers[-1], fake.requests[-1]


def azure_sdk(fake: fa.FakeAzure, **kw: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(azure_endpoint=fake.url, max_retries=0, **kw)


def generation(gw: Gateway, generation_id: str) -> dict[str, Any]:
    deadline = time.time() + 5
    while True:
        with gw.http() as http:
            resp = http.get("/v1/generation", params={"id": generation_id})
        if resp.status_code == 200 or time.time() > deadline:
            assert resp.status_code == 200, resp.text
            return resp.json()  # type: ignore[no-any-return]
        time.sleep(0.1)


# ---------------------------------------------------------------------------- answers
def test_text_request_as_the_azure_sdk_sends_it(gw: Gateway, fake: fa.FakeAzure) -> None:
    params: dict[str, Any] = {"messages": USER, "temperature": 0.3, "max_tokens": 100, "stop": ["END"], "user": "u-1"}
    plain, final = both(gw, "gpt-4o", **params)
    same_answer(plain, final)
    no_filter_annotations(plain)
    assert plain.choices[0].message.content == fa.SCENARIOS["gpt-4o"]["content"]
    assert plain.choices[0].finish_reason == "stop" and plain.model == "gpt-4o"
    assert plain.usage.prompt_tokens == 33 and plain.usage.completion_tokens == 12
    ours = [(fake.paths[i], fake.headers[i], fake.requests[i]) for i in (-2, -1)]
    for _, _, body in ours:
        check_chat_body(body)
    with azure_sdk(fake, api_key=fake.api_key, api_version=VERSION) as sdk:
        theirs = [sent_by_sdk(fake, lambda: sdk.chat.completions.create(model="gpt-4o", **params)),
                  sent_by_sdk(fake, lambda: sdk.chat.completions.create(
                      model="gpt-4o", stream=True, stream_options={"include_usage": True}, **params))]
    for (path, headers, body), (sdk_path, sdk_headers, sdk_body) in zip(ours, theirs, strict=True):
        assert path == sdk_path == f"/openai/deployments/gpt-4o/chat/completions?api-version={VERSION}"
        assert headers["api-key"] == sdk_headers["api-key"] == fake.api_key
        assert "Authorization" not in headers and "Authorization" not in sdk_headers
        assert headers["Content-Type"] == sdk_headers["Content-Type"] == "application/json"
        assert body == sdk_body


def test_images_and_cached_usage(gw: Gateway, fake: fa.FakeAzure) -> None:
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": PNG}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}]
    resp = gw.client().chat.completions.create(model="gpt-4o-cached", messages=[{"role": "user", "content": content}])
    check_chat_body(fake.requests[-1])
    assert fake.requests[-1]["messages"][0]["content"] == content  # passed through as sent
    assert resp.usage.prompt_tokens == 2048 and resp.usage.prompt_tokens_details.cached_tokens == 1920
    row = generation(gw, resp.id)
    assert row["provider"] == "az" and row["deployment"] == "az/gpt-4o-cached"
    assert row["usage"] == {"prompt_tokens": 2048, "completion_tokens": 4, "total_tokens": 2052,
                            "cached_tokens": 1920, "reasoning_tokens": 0}
    assert float(row["cost"]) > 0
    chunks = list(gw.client().chat.completions.create(model="gpt-4o-cached", messages=USER, stream=True,
                                                      stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == 2048 and chunks[-1].usage.prompt_tokens_details.cached_tokens == 1920
    assert all(c.id == chunks[0].id for c in chunks)  # Azure's id-less chunks did not reach the client


def test_tools_round_trip(gw: Gateway, fake: fa.FakeAzure) -> None:
    plain, final = both(gw, "gpt-4o-tools", messages=USER, tools=[WEATHER], tool_choice="required",
                        parallel_tool_calls=False)
    same_answer(plain, final)
    call = plain.choices[0].message.tool_calls[0]
    assert plain.choices[0].finish_reason == "tool_calls"
    assert (call.id, call.function.name) == (fa.WEATHER_CALL["id"], "get_weather")
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    body = fake.requests[-1]
    check_chat_body(body)
    assert body["tools"] == [WEATHER] and body["tool_choice"] == "required" and body["parallel_tool_calls"] is False
    follow = [*USER, plain.choices[0].message.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"}]
    gw.client().chat.completions.create(model="gpt-4o", messages=follow, tools=[WEATHER])
    body = fake.requests[-1]
    check_chat_body(body)
    assert body["messages"][2]["tool_calls"][0]["id"] == call.id
    assert body["messages"][3] == {"role": "tool", "tool_call_id": call.id, "content": "21 C, sunny"}


def test_entra_id_and_the_v1_api(gw: Gateway, fake: fa.FakeAzure) -> None:
    plain, final = both(gw, "az-entra-gpt-4o", messages=USER)
    same_answer(plain, final)
    path, headers, body = fake.paths[-2], fake.headers[-2], fake.requests[-2]
    check_chat_body(body)
    with azure_sdk(fake, azure_ad_token=fake.ad_token, api_version=VERSION) as sdk:
        sdk_path, sdk_headers, sdk_body = sent_by_sdk(
            fake, lambda: sdk.chat.completions.create(model="gpt-4o", messages=USER))
    assert path == sdk_path and headers["Authorization"] == sdk_headers["Authorization"] == f"Bearer {fake.ad_token}"
    assert "api-key" not in headers and body == sdk_body
    # the v1 API: no api-version, the deployment in the body; Microsoft's documented client for it
    # is the plain `OpenAI` one with the token as its key
    plain, final = both(gw, "az-v1-gpt-4o", messages=USER, max_completion_tokens=50)
    same_answer(plain, final)
    assert plain.choices[0].message.content == fa.SCENARIOS["gpt-4o"]["content"]
    path, headers, body = fake.paths[-2], fake.headers[-2], fake.requests[-2]
    check_chat_body(body)
    with openai.OpenAI(base_url=fake.url + "/openai/v1/", api_key=fake.ad_token, max_retries=0) as sdk:
        sdk_path, sdk_headers, sdk_body = sent_by_sdk(fake, lambda: sdk.chat.completions.create(
            model="gpt-4o", messages=USER, max_completion_tokens=50))
    assert path == sdk_path == "/openai/v1/chat/completions"
    assert headers["Authorization"] == sdk_headers["Authorization"] and body == sdk_body


def test_completions_on_a_deployment(gw: Gateway, fake: fa.FakeAzure) -> None:
    client = gw.client()
    resp = client.completions.create(model="instruct", prompt=["tell me a joke about mango"], max_tokens=32, n=1)
    assert resp.choices[0].text == fa.INSTRUCT_TEXT and resp.usage.total_tokens == 26
    assert "prompt_filter_results" not in (resp.model_extra or {})
    path, body = fake.paths[-1], fake.requests[-1]
    check_completion_body(body)
    with azure_sdk(fake, api_key=fake.api_key, api_version=VERSION) as sdk:
        sdk_path, _, sdk_body = sent_by_sdk(fake, lambda: sdk.completions.create(
            model=fa.INSTRUCT, prompt=["tell me a joke about mango"], max_tokens=32, n=1))
    assert path == sdk_path and body == sdk_body
    text = "".join(c.choices[0].text for c in client.completions.create(
        model="instruct", prompt="tell me a joke about mango", stream=True) if c.choices)
    assert text == fa.INSTRUCT_TEXT
    check_completion_body(fake.requests[-1])


# ---------------------------------------------------------------------------- content filter
def test_a_filtered_prompt_is_a_content_filter_error(gw: Gateway, fake: fa.FakeAzure) -> None:
    client = gw.client()
    for stream in (False, True):
        before = len(fake.requests)
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="filtered-twice", messages=USER, stream=stream)
        assert info.value.status_code == 400 and info.value.code == "content_filter"
        assert "content management policy" in info.value.message and "fwlink" not in info.value.message
        assert len(fake.requests) == before + 1  # neither retried nor failed over
        assert fake.paths[-1].startswith("/openai/deployments/filtered-prompt/")


def test_an_answer_the_filter_cut_keeps_its_finish_reason(gw: Gateway) -> None:
    plain, final = both(gw, "filtered-output", messages=USER)
    same_answer(plain, final)
    no_filter_annotations(plain)
    assert plain.choices[0].finish_reason == "content_filter"
    assert plain.choices[0].message.content == "Hey Jude, don't make it bad"
    row = generation(gw, plain.id)
    assert row["finish_reason"] == "content_filter" and row["status"] == 200


def test_filter_annotations_are_dropped_from_streams(gw: Gateway) -> None:
    with gw.http() as http:
        resp = http.post("/v1/chat/completions", json={"model": "gpt-4o-citation", "messages": USER, "stream": True})
    frames = [line.removeprefix("data: ") for line in resp.text.splitlines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    assert chunks and all(c["object"] == "chat.completion.chunk" and c["choices"] for c in chunks)
    assert "content_filter" not in resp.text and "prompt_filter_results" not in resp.text
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "def parrot(): return 'squawk'"


# ---------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("model", "exc", "status", "code"), [
    ("rate-limited", openai.RateLimitError, 429, "rate_limit_exceeded"),
    ("context", openai.BadRequestError, 400, "context_length_exceeded"),
    ("server-error", openai.APIStatusError, 502, "upstream_error"),
    ("busy", openai.APIStatusError, 503, "model_overloaded"),
    ("no-such-deployment", openai.APIStatusError, 502, "upstream_error"),
    ("az-badkey-gpt-4o", openai.APIStatusError, 502, "upstream_error"),
    ("az-oldver-gpt-4o", openai.BadRequestError, 400, "invalid_request")])
def test_errors(gw: Gateway, fake: fa.FakeAzure, model: str, exc: type, status: int, code: str) -> None:
    with pytest.raises(exc) as info:
        gw.client().chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status and info.value.body["code"] == code
    assert fake.api_key not in str(info.value.body) and "not-the-key" not in str(info.value.body)
    if status == 429:
        assert info.value.response.headers["retry-after"] == "7"
    if model == "az-oldver-gpt-4o":
        assert fake.paths[-1].endswith("?api-version=2023-03-15-preview")


def test_error_mid_stream(gw: Gateway) -> None:
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in gw.client().chat.completions.create(model="midstream", messages=USER, stream=True):
            got.append(chunk)
    assert got and info.value.body["code"] == "upstream_error"


def test_data_sources_are_refused(gw: Gateway, fake: fa.FakeAzure) -> None:
    before = len(fake.requests)
    with pytest.raises(openai.BadRequestError) as info:
        gw.client().chat.completions.create(model="gpt-4o", messages=USER, extra_body={"data_sources": [
            {"type": "azure_search", "parameters": {"endpoint": "https://x.search.windows.net", "index_name": "i",
                                                     "authentication": {"type": "system_assigned_managed_identity"}}}]})
    assert info.value.param == "data_sources" and len(fake.requests) == before


# ---------------------------------------------------------------------------- zero config
def test_zero_config_from_the_sdk_environment(make_gateway: Any, fake: fa.FakeAzure) -> None:
    env = {"AZURE_OPENAI_API_KEY": fake.api_key, "AZURE_OPENAI_ENDPOINT": fake.url + "/",
           "OPENAI_API_VERSION": "2024-06-01", "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o, pirate-chat=gpt-4o-mini"}
    gateway: Gateway = make_gateway(None, env=env)
    gateway.start()
    client = gateway.client()
    listed = {m.id: m for m in client.models.list()}
    assert {"gpt-4o", "pirate-chat"} <= set(listed) and listed["pirate-chat"].owned_by == "azure"
    prices = {name: listed[name].model_extra["pricing"]["prompt"] for name in ("pirate-chat", "gpt-4o")}
    assert 0 < prices["pirate-chat"] < prices["gpt-4o"]  # priced as gpt-4o-mini
    for name in ("pirate-chat", "azure/pirate-chat", "gpt-4o"):
        resp = client.chat.completions.create(model=name, messages=USER)
        assert resp.choices[0].message.content
    assert fake.paths[-1] == "/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01"
    assert fake.paths[-2] == "/openai/deployments/pirate-chat/chat/completions?api-version=2024-06-01"
    assert fake.headers[-1]["api-key"] == fake.api_key
    # 2024-06-01 refuses stream_options: not sent, and the gateway counts the stream's tokens itself
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True,
                                                 stream_options={"include_usage": True}))
    assert "stream_options" not in fake.requests[-1] and fake.requests[-1]["stream"] is True
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with pytest.raises(openai.BadRequestError) as info:  # not a deployment it was told of
        client.chat.completions.create(model="azure/gpt-4o-mini", messages=USER)
    assert info.value.code == "unsupported_model"


def test_zero_config_prefers_the_entra_id_token(make_gateway: Any, fake: fa.FakeAzure) -> None:
    env = {"AZURE_OPENAI_API_KEY": "a-stale-key", "AZURE_OPENAI_AD_TOKEN": fake.ad_token,
           "AZURE_OPENAI_ENDPOINT": fake.url, "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o-tools"}
    gateway: Gateway = make_gateway(None, env=env)
    gateway.start()
    resp = gateway.client().chat.completions.create(model="gpt-4o-tools", messages=USER, tools=[WEATHER])
    assert resp.choices[0].finish_reason == "tool_calls"
    assert fake.headers[-1]["Authorization"] == f"Bearer {fake.ad_token}" and "api-key" not in fake.headers[-1]
    assert fake.paths[-1].endswith(f"?api-version={VERSION}")  # the GA default without OPENAI_API_VERSION
