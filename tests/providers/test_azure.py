"""The Azure OpenAI adapter without sockets: addressing and credentials, request encoding, answers
and streams without the content filter's annotations, error mapping, and the zero-config
environment as the openai SDK's `AzureOpenAI` reads it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
import yaml

from parrotrouter.catalog import Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import ConfigError, ContentFiltered, FailureKind, InvalidRequest, UpstreamFailure
from parrotrouter.pricing import lookup_pricing
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.protocol.completions import CompletionRequest
from parrotrouter.providers import azure
from parrotrouter.providers.base import ChatCall, CompletionCall
from parrotrouter.providers.http import HttpProvider
from parrotrouter.settings import Secret
from tests.fakes import azure_upstream as fake
from tests.providers.canned import Canned, CannedTransport

ENDPOINT = "https://parrot.openai.azure.com"


def spec(options: dict[str, Any] | None = None, base_url: str = ENDPOINT, **kw: Any) -> ProviderSpec:
    return ProviderSpec(name="az", type="azure", display_name="Azure", base_url=base_url,
                        api_key=Secret("azure-key"), options=azure.PROVIDER.parse_options(options or {}), **kw)


def chat(deployment: str = "gpt-4o", **fields: Any) -> ChatCall:
    model = ModelSpec(id="m", deployments=(Deployment("az", deployment),))
    raw = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatCall(msgspec.convert(raw, ChatCompletionRequest), raw, model, model.deployments[0])


def completion(**fields: Any) -> CompletionCall:
    model = ModelSpec(id="m", deployments=(Deployment("az", fake.INSTRUCT),))
    raw = {"model": "m", "prompt": "tell me a joke about mango", **fields}
    return CompletionCall(msgspec.convert(raw, CompletionRequest), raw, model, model.deployments[0])


def provider(*answers: Canned, options: dict[str, Any] | None = None) -> tuple[HttpProvider, CannedTransport]:
    transport = CannedTransport(*answers)
    s = spec(options)
    return HttpProvider(s, azure.AzureAdapter(s), supports_completions=True, transport=transport), transport


# ---------------------------------------------------------------------- addressing
@pytest.mark.parametrize(("options", "base_url", "url"), [
    ({}, ENDPOINT, f"{ENDPOINT}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"),
    ({"api_version": "2025-04-01-preview"}, ENDPOINT + "/",
     f"{ENDPOINT}/openai/deployments/gpt-4o/chat/completions?api-version=2025-04-01-preview"),
    ({}, ENDPOINT + "/openai/", f"{ENDPOINT}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"),
    ({"surface": "v1"}, ENDPOINT, f"{ENDPOINT}/openai/v1/chat/completions"),
    ({"surface": "v1"}, ENDPOINT + "/openai/v1", f"{ENDPOINT}/openai/v1/chat/completions"),
    ({"surface": "v1", "api_version": "preview"}, ENDPOINT,
     f"{ENDPOINT}/openai/v1/chat/completions?api-version=preview"),
])
def test_urls(options: dict[str, Any], base_url: str, url: str) -> None:
    assert azure.AzureAdapter(spec(options, base_url)).chat_request(chat()).url == url


def test_a_deployment_name_is_one_path_segment() -> None:
    sent = azure.AzureAdapter(spec()).chat_request(chat("a b/../c?x=1#"))
    segment = "a%20b%2F..%2Fc%3Fx%3D1%23"
    assert sent.url == f"{ENDPOINT}/openai/deployments/{segment}/chat/completions?api-version=2024-10-21"
    assert orjson.loads(sent.body)["model"] == "a b/../c?x=1#"


@pytest.mark.parametrize(("options", "auth"), [
    ({}, ("api-key", "azure-key")), ({"auth": "entra_id"}, ("Authorization", "Bearer azure-key")),
    ({"surface": "v1", "auth": "entra_id"}, ("Authorization", "Bearer azure-key")),
    ({"surface": "v1"}, ("api-key", "azure-key"))])
def test_credentials(options: dict[str, Any], auth: tuple[str, str]) -> None:
    headers = azure.AzureAdapter(spec(options, headers={"X-Team": "search"})).chat_request(chat()).headers
    assert headers[auth[0]] == auth[1] and headers["X-Team"] == "search"
    other = "Authorization" if auth[0] == "api-key" else "api-key"
    assert other not in headers and headers["Content-Type"] == "application/json"


def test_options_are_checked() -> None:
    for bad in ({"surface": "v2"}, {"auth": "password"}, {"api_version": "2024-10-21&x=1"}, {"region": "eu"}):
        with pytest.raises(ValueError):
            azure.PROVIDER.parse_options(bad)


# ---------------------------------------------------------------------- requests and answers
async def test_request_body_and_answer_without_filter_annotations() -> None:
    prov, transport = provider(Canned(body=orjson.dumps(fake.chat_completion("gpt-4o-citation"))))
    out = await prov.chat(chat("gpt-4o-citation", temperature=0.2, provider={"sort": "price"}, user="u"))
    body = orjson.loads(transport.sent[0].body)
    assert body == {"model": "gpt-4o-citation", "messages": [{"role": "user", "content": "hi"}],
                    "temperature": 0.2, "user": "u"}
    assert "prompt_filter_results" not in out and "content_filter_results" not in out["choices"][0]
    assert out["choices"][0]["message"]["content"] == "def parrot(): return 'squawk'"
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 0


async def test_completions_on_a_deployment() -> None:
    prov, transport = provider(Canned(body=orjson.dumps(fake.text_completion(2))))
    out = await prov.completion(completion(max_tokens=32))
    sent = transport.sent[0]
    assert sent.url == f"{ENDPOINT}/openai/deployments/{fake.INSTRUCT}/completions?api-version=2024-10-21"
    assert orjson.loads(sent.body) == {"model": fake.INSTRUCT, "prompt": "tell me a joke about mango", "max_tokens": 32}
    assert "prompt_filter_results" not in out and out["choices"][0]["text"] == fake.INSTRUCT_TEXT
    assert "content_filter_results" not in out["choices"][0]


def test_data_sources_are_refused_unless_allowed() -> None:
    call = chat(data_sources=[{"type": "azure_search", "parameters": {
        "endpoint": "https://other.search.windows.net", "index_name": "secrets",
        "authentication": {"type": "system_assigned_managed_identity"}}}])
    with pytest.raises(InvalidRequest) as info:
        azure.AzureAdapter(spec()).chat_request(call)
    assert info.value.param == "data_sources"
    sent = azure.AzureAdapter(spec({"allow_data_sources": True})).chat_request(call)
    assert orjson.loads(sent.body)["data_sources"][0]["type"] == "azure_search"
    with pytest.raises(InvalidRequest) as info:
        azure.AzureAdapter(spec()).chat_request(chat(dataSources=[{"type": "AzureCognitiveSearch"}]))
    assert info.value.param == "dataSources"


def test_registered_as_a_plugin_would_be() -> None:
    from parrotrouter.providers.registry import provider_types

    assert provider_types()["azure"] is azure.PROVIDER
    assert azure.PROVIDER.endpoints == {"chat", "completions", "embeddings"} and azure.PROVIDER.supported_params is None


def _frames_text(frames: list[bytes]) -> bytes:
    return b"".join(frames)


@pytest.mark.parametrize("reads", [1, 4, 200])
async def test_stream_drops_annotation_chunks(reads: int) -> None:
    prov, transport = provider(Canned(body=_frames_text(fake.chat_frames("gpt-4o", include_usage=True)), reads=reads))
    chunks = [c async for batch in prov.chat_stream(chat(stream=True)) for c in batch]
    assert orjson.loads(transport.sent[0].body)["stream_options"] == {"include_usage": True}
    assert all(c["id"] for c in chunks)  # Azure's id-less annotation chunks are gone
    assert all("prompt_filter_results" not in c for c in chunks)
    assert all("content_filter_results" not in ch and "delta" in ch for c in chunks for ch in c["choices"])
    text = "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"])
    assert text == fake.SCENARIOS["gpt-4o"]["content"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 33


async def test_a_stream_the_filter_stopped_ends_with_content_filter() -> None:
    prov, _ = provider(Canned(body=_frames_text(fake.chat_frames("filtered-output", include_usage=False))))
    chunks = [c async for batch in prov.chat_stream(chat("filtered-output", stream=True)) for c in batch]
    last = chunks[-1]["choices"][0]
    assert last["finish_reason"] == "content_filter" and "content_filter_results" not in last
    text = "".join(ch.get("delta", {}).get("content") or "" for c in chunks for ch in c["choices"])
    assert text == "Hey Jude, don't make it bad"


async def test_stream_tool_call_deltas() -> None:
    prov, _ = provider(Canned(body=_frames_text(fake.chat_frames("gpt-4o-tools", include_usage=True)), reads=7))
    chunks = [c async for batch in prov.chat_stream(chat("gpt-4o-tools", stream=True)) for c in batch]
    calls = [tc for c in chunks for ch in c["choices"] for tc in ch["delta"].get("tool_calls") or ()]
    assert calls[0] == {"index": 0, "id": fake.WEATHER_CALL["id"], "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(tc["function"]["arguments"] for tc in calls) == fake.WEATHER_CALL["function"]["arguments"]


async def test_completion_stream_keeps_text_chunks() -> None:
    prov, _ = provider(Canned(body=_frames_text(fake.completion_frames(include_usage=True))))
    chunks = [c async for batch in prov.completion_stream(completion(stream=True)) for c in batch]
    assert "".join(ch["text"] for c in chunks for ch in c["choices"]) == fake.INSTRUCT_TEXT
    assert chunks[-1]["usage"]["completion_tokens"] == 20


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(("status", "body", "headers", "kind"), [
    (400, fake.FILTERED_PROMPT, {}, FailureKind.CONTENT_FILTER),
    (*fake.ERRORS["rate-limited"][:2], fake.ERRORS["rate-limited"][2], FailureKind.RATE_LIMIT),
    (*fake.ERRORS["context"][:2], {}, FailureKind.CONTEXT_LENGTH_EXCEEDED),
    (401, fake.UNAUTHORIZED_KEY, {}, FailureKind.AUTH),
    (404, fake.NO_DEPLOYMENT, {}, FailureKind.NOT_FOUND),
    (404, fake.NOT_FOUND, {}, FailureKind.NOT_FOUND),
    (400, fake.BAD_VERSION, {}, FailureKind.BAD_REQUEST),
    (500, fake.ERRORS["server-error"][1], {}, FailureKind.SERVER_ERROR),
    (503, fake.ERRORS["busy"][1], {}, FailureKind.MODEL_OVERLOADED),
])
async def test_error_mapping(status: int, body: dict[str, Any], headers: dict[str, str], kind: FailureKind) -> None:
    prov, _ = provider(Canned(status=status, body=orjson.dumps(body), headers=headers))
    with pytest.raises(UpstreamFailure) as info:
        await prov.chat(chat())
    failure = info.value
    assert failure.kind is kind and failure.upstream_status == status
    if kind is FailureKind.RATE_LIMIT:
        assert failure.retry_after == 7.0
    if kind is FailureKind.CONTENT_FILTER:
        client = failure.to_client_error()
        assert isinstance(client, ContentFiltered)
        assert client.envelope()["error"] | {"message": ""} == {
            "message": "", "type": "invalid_request_error", "code": "content_filter", "param": None, "status": 400}
        assert "content management policy" in client.message and "go.microsoft.com" not in client.message


async def test_a_content_filter_error_in_a_stream() -> None:
    body = fake.chat_frames("gpt-4o", include_usage=False)[1] + b"data: " + orjson.dumps(fake.FILTERED_PROMPT) + b"\n\n"
    prov, _ = provider(Canned(body=body))
    with pytest.raises(UpstreamFailure) as info:
        [b async for b in prov.chat_stream(chat(stream=True))]
    assert info.value.kind is FailureKind.CONTENT_FILTER


# ---------------------------------------------------------------------- zero config
def test_environment_as_the_sdk_reads_it() -> None:
    env = {"AZURE_OPENAI_ENDPOINT": ENDPOINT + "/", "AZURE_OPENAI_API_KEY": "k"}
    [s] = azure.from_env(env)
    assert (s.name, s.type, s.base_url, s.api_key.reveal() if s.api_key else None) == ("azure", "azure", ENDPOINT, "k")
    assert s.options == {"surface": "deployments", "api_version": None, "auth": "api_key", "allow_data_sources": False}
    assert "api-version=2024-10-21" in azure.AzureAdapter(s).chat_request(chat()).url
    # an Entra ID token wins over the key (the SDK's precedence); OPENAI_API_VERSION is read
    [s] = azure.from_env({**env, "AZURE_OPENAI_AD_TOKEN": "t", "OPENAI_API_VERSION": "2024-06-01"})
    sent = azure.AzureAdapter(s).chat_request(chat())
    assert sent.headers["Authorization"] == "Bearer t" and "api-key" not in sent.headers
    assert sent.url.endswith("?api-version=2024-06-01")
    for partial in ({"AZURE_OPENAI_API_KEY": "k"}, {"AZURE_OPENAI_ENDPOINT": ENDPOINT},
                    {"AZURE_OPENAI_ENDPOINT": ENDPOINT, "AZURE_OPENAI_API_KEY": ""}):
        assert azure.from_env(partial) == []


@pytest.mark.parametrize(("env", "problem"), [
    ({"AZURE_OPENAI_ENDPOINT": "parrot.openai.azure.com"}, "AZURE_OPENAI_ENDPOINT"),
    ({"OPENAI_API_VERSION": "2024-10-21?x=1"}, "OPENAI_API_VERSION")])
def test_a_bad_environment_is_a_config_error(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        azure.from_env({"AZURE_OPENAI_ENDPOINT": ENDPOINT, "AZURE_OPENAI_API_KEY": "k", **env})
    assert problem in info.value.render()


def test_deployments_from_the_environment() -> None:
    s = spec()
    listed = " gpt-4o , chat=gpt-4o-mini,gpt-4o,,legacy=gpt-35-turbo-instruct"
    models = azure.env_models(s, {"AZURE_OPENAI_DEPLOYMENTS": listed})
    assert [(m.id, m.deployments[0].provider, m.deployments[0].upstream_model) for m in models] == [
        ("gpt-4o", "az", "gpt-4o"), ("chat", "az", "chat"), ("legacy", "az", "legacy")]
    gpt4o, chat_model, legacy = models
    assert chat_model.pricing is not None and gpt4o.pricing is not None
    assert chat_model.pricing.prompt_mtok < gpt4o.pricing.prompt_mtok  # priced as gpt-4o-mini
    assert gpt4o.capabilities.vision and not legacy.capabilities.vision and legacy.capabilities.completion
    assert azure.env_models(s, {}) == []
    for bad in ("a b", "x=", "=y", "x=y=z", "-x", "x" * 65):
        with pytest.raises(ConfigError):
            azure.env_models(s, {"AZURE_OPENAI_DEPLOYMENTS": bad})
    with pytest.raises(ConfigError):
        azure.env_models(s, {"AZURE_OPENAI_DEPLOYMENTS": ",".join(f"d{i}" for i in range(300))})


# ---------------------------------------------------------------------- config file
def test_config_file_providers_and_the_environment(tmp_path: Path) -> None:
    from parrotrouter.config.loader import load_config

    path = tmp_path / "azure.yaml"
    path.write_text(yaml.safe_dump({"providers": [
        {"name": "azure-eu", "type": "azure", "base_url": ENDPOINT, "api_key": {"$env": "EU_KEY"},
         "options": {"surface": "v1", "auth": "entra_id"}}],
        "models": [{"id": "mine", "deployments": [{"provider": "azure-eu", "model": "prod-4o"},
                                                  {"provider": "azure", "model": "gpt-4o"}]}]}))
    env = {"EU_KEY": "t", "AZURE_OPENAI_ENDPOINT": ENDPOINT, "AZURE_OPENAI_API_KEY": "k",
           "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o,mine"}
    catalog = load_config(str(path), env, local_models=False).catalog
    assert catalog.providers["azure-eu"].options["surface"] == "v1" and catalog.providers["azure"].type == "azure"
    assert [d.id for d in catalog.models["mine"].deployments] == ["azure-eu/prod-4o", "azure/gpt-4o"]
    # priced by the deployment of the `azure` preset named like a model (Azure's table, else OpenAI's)
    assert catalog.models["mine"].pricing == lookup_pricing("gpt-4o", "azure") is not None
    assert catalog.models["gpt-4o"].owned_by == "azure"  # from the environment; `mine` was taken by the file
    assert catalog.models["mine"].owned_by == "azure-eu"
    assert catalog.resolve("azure/gpt-4o").pinned_provider == "azure"
    path.write_text(yaml.safe_dump({"providers": [{"name": "azure", "type": "azure"}]}))
    with pytest.raises(ConfigError) as info:
        load_config(str(path), {}, local_models=False)
    assert "providers[0].base_url: required" in info.value.render()
