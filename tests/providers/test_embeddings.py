"""Each provider's embeddings translation against the vendor's documented wire bodies (the golden
fixtures under tests/data/embeddings/), and the fake upstream checked against the same fixtures."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from parrotrouter.catalog import Deployment, ModelSpec, ProviderSpec
from parrotrouter.errors import InvalidRequest, UpstreamFailure
from parrotrouter.providers.azure import AzureAdapter
from parrotrouter.providers.base import EmbeddingCall
from parrotrouter.providers.bedrock.provider import BedrockAdapter
from parrotrouter.providers.cohere import CohereAdapter
from parrotrouter.providers.embedding_models import EMBEDDING, is_embedding_model
from parrotrouter.providers.gemini import GeminiAdapter
from parrotrouter.providers.http import HttpProvider, joined
from parrotrouter.providers.openai_compat import OpenAIAdapter
from parrotrouter.serving.embeddings import _checked, from_base64, to_base64
from parrotrouter.settings import Secret
from tests.fakes.embeddings_upstream import FakeEmbeddings
from tests.providers.canned import Canned, CannedTransport

DATA = Path(__file__).resolve().parents[1] / "data" / "embeddings"


def golden(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def spec(type_: str, base_url: str | None = "https://upstream.example/v1", **kw: Any) -> ProviderSpec:
    return ProviderSpec(name=type_, type=type_, display_name=type_, base_url=base_url, api_key=Secret("sk-test"),
                        **kw)


def call(model: str, inputs: Any, dimensions: int | None = None, raw: dict[str, Any] | None = None,
         encoding_format: str = "float") -> EmbeddingCall:
    return EmbeddingCall(inputs, raw or {"model": "public", "input": inputs}, dimensions, encoding_format,
                         ModelSpec("public", (Deployment("p", model),), capabilities=EMBEDDING), Deployment("p", model))


def body_of(request: Any) -> Any:
    return orjson.loads(request.body)


# ---------------------------------------------------------------------- OpenAI-compatible, Azure
def test_openai_passes_the_body_through_with_the_upstream_model() -> None:
    adapter = OpenAIAdapter(spec("openai"))
    raw = {"model": "public", "input": [[1, 2]], "dimensions": 8, "encoding_format": "base64", "user": "u",
           "provider": {"order": ["x"]}}
    request = adapter.embeddings_request(call("text-embedding-3-small", [[1, 2]], 8, raw))
    assert request.url == "https://upstream.example/v1/embeddings"
    assert body_of(request) == {"model": "text-embedding-3-small", "input": [[1, 2]], "dimensions": 8,
                                "encoding_format": "base64", "user": "u"}  # routing fields are ours
    answer = adapter.embeddings_response(orjson.dumps(golden("openai_response.json")), call("m", ["a", "b"]))
    assert answer == golden("openai_response.json")


def test_openai_error_in_a_200_body_is_a_failure() -> None:
    adapter = OpenAIAdapter(spec("openai"))
    with pytest.raises(UpstreamFailure):
        adapter.embeddings_response(b'{"error": {"message": "boom", "type": "server_error"}}', call("m", ["a"]))
    with pytest.raises(UpstreamFailure):
        adapter.embeddings_response(b"[1, 2]", call("m", ["a"]))


def test_azure_addresses_the_deployment() -> None:
    adapter = AzureAdapter(spec("azure", "https://res.openai.azure.com", options={}))
    request = adapter.embeddings_request(call("my-embedder", ["hi"]))
    assert request.url == "https://res.openai.azure.com/openai/deployments/my-embedder/embeddings?api-version=2024-10-21"
    assert request.headers["api-key"] == "sk-test" and body_of(request)["model"] == "my-embedder"


# ---------------------------------------------------------------------- Gemini
def test_gemini_batch_embed_contents() -> None:
    adapter = GeminiAdapter(spec("gemini", "https://generativelanguage.googleapis.com/v1beta"))
    c = call("gemini-embedding-001", ["What is the meaning of life?", "How does the brain work?"], 3)
    request = adapter.embeddings_request(c)
    assert request.url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001"
                           ":batchEmbedContents")
    assert request.headers["x-goog-api-key"] == "sk-test"
    assert body_of(request) == golden("gemini_batch_request.json")
    assert adapter.embeddings_batch(c) == 100
    unsized = call("gemini-embedding-001", ["What is the meaning of life?", "How does the brain work?"])
    answer = adapter.embeddings_response(orjson.dumps(golden("gemini_batch_response.json")), unsized)
    assert answer == {"object": "list", "model": "gemini-embedding-001", "data": [
        {"object": "embedding", "index": 0, "embedding": [-0.0040537957, 0.011543961, -0.011478457]},
        {"object": "embedding", "index": 1, "embedding": [0.0042351587, -0.01874633, 0.0028561368]}]}
    assert "usage" not in answer  # Gemini reports none: the gateway counts
    shortened = adapter.embeddings_response(orjson.dumps(golden("gemini_batch_response.json")), c)
    for item in shortened["data"]:  # outputDimensionality: scaled to unit length, as OpenAI's vectors are
        assert math.isclose(math.fsum(x * x for x in item["embedding"]), 1.0)


def test_gemini_decodes_token_arrays_as_cl100k() -> None:
    adapter = GeminiAdapter(spec("gemini"))
    sent = body_of(adapter.embeddings_request(call("gemini-embedding-001", [[9906, 1917]])))
    assert sent["requests"][0]["content"]["parts"][0]["text"] == "Hello world"
    with pytest.raises(InvalidRequest):
        adapter.embeddings_request(call("gemini-embedding-001", [[10**9]]))


# ---------------------------------------------------------------------- Cohere
def test_cohere_v2_embed() -> None:
    adapter = CohereAdapter(spec("cohere", "https://api.cohere.com"))
    c = call("embed-v4.0", ["hello", "goodbye"], 256)
    request = adapter.embeddings_request(c)
    assert request.url == "https://api.cohere.com/v2/embed"
    assert body_of(request) == golden("cohere_embed_request.json")
    assert adapter.embeddings_batch(c) == 96
    answer = adapter.embeddings_response(orjson.dumps(golden("cohere_embed_response.json")), c)
    assert [d["embedding"] for d in answer["data"]] == golden("cohere_embed_response.json")["embeddings"]["float"]
    assert answer["usage"] == {"prompt_tokens": 2, "total_tokens": 2}  # meta.billed_units


def test_cohere_input_type_from_the_body() -> None:
    adapter = CohereAdapter(spec("cohere", "https://api.cohere.com"))
    raw = {"model": "x", "input": "q", "input_type": "search_query"}
    assert body_of(adapter.embeddings_request(call("embed-v4.0", ["q"], raw=raw)))["input_type"] == "search_query"
    raw["input_type"] = "something-else"
    assert body_of(adapter.embeddings_request(call("embed-v4.0", ["q"], raw=raw)))["input_type"] == "search_document"


# ---------------------------------------------------------------------- Bedrock
def bedrock() -> BedrockAdapter:
    adapter = BedrockAdapter(spec("bedrock", None, options={"region": "us-east-1"}), None)
    adapter.bind("us-east-1")
    return adapter


def test_bedrock_titan_v2() -> None:
    adapter = bedrock()
    c = call("amazon.titan-embed-text-v2:0", ["What are the different services that you offer?"], 256)
    request = adapter.embeddings_request(c)
    assert request.url == "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.titan-embed-text-v2%3A0/invoke"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert body_of(request) == golden("bedrock_titan_request.json")
    assert adapter.embeddings_batch(c) == 1
    answer = adapter.embeddings_response(orjson.dumps(golden("bedrock_titan_response.json")), c)
    assert answer["data"] == [{"object": "embedding", "index": 0,
                               "embedding": golden("bedrock_titan_response.json")["embedding"]}]
    assert answer["usage"] == {"prompt_tokens": 11, "total_tokens": 11}


def test_bedrock_cohere_embed() -> None:
    adapter = bedrock()
    c = call("cohere.embed-english-v3", ["Hello world", "This is a test"])
    assert body_of(adapter.embeddings_request(c)) == golden("bedrock_cohere_request.json")
    assert adapter.embeddings_batch(c) == 96
    answer = adapter.embeddings_response(orjson.dumps(golden("bedrock_cohere_response.json")), c)
    assert [d["embedding"] for d in answer["data"]] == golden("bedrock_cohere_response.json")["embeddings"]
    with pytest.raises(InvalidRequest):  # Cohere Embed v3 has fixed dimensions
        adapter.embeddings_request(call("cohere.embed-english-v3", ["x"], 256))
    with pytest.raises(InvalidRequest):
        adapter.embeddings_request(call("anthropic.claude-3-haiku", ["x"]))


# ---------------------------------------------------------------------- the fake speaks the same formats
def shape(value: Any) -> Any:
    """A JSON value's structure: object keys and value types, lists by their first item."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmbeddings]:
    server = FakeEmbeddings().start()
    yield server
    server.stop()


@pytest.mark.parametrize(("path", "request_file", "response_file"), [
    ("/v1beta/models/gemini-embedding-001:batchEmbedContents", "gemini_batch_request.json",
     "gemini_batch_response.json"),
    ("/v2/embed", "cohere_embed_request.json", "cohere_embed_response.json"),
    ("/model/amazon.titan-embed-text-v2:0/invoke", "bedrock_titan_request.json", "bedrock_titan_response.json"),
    ("/model/cohere.embed-english-v3/invoke", "bedrock_cohere_request.json", "bedrock_cohere_response.json"),
])
def test_fake_answers_the_documented_shape(fake: FakeEmbeddings, path: str, request_file: str,
                                           response_file: str) -> None:
    headers = {"x-goog-api-key": "k", "Authorization": "Bearer k"}
    answer = httpx.post(fake.url + path, json=golden(request_file), headers=headers).json()
    assert shape(answer) == shape(golden(response_file))


def test_fake_openai_answers_the_documented_shape(fake: FakeEmbeddings) -> None:
    answer = httpx.post(fake.openai_url + "/embeddings", json={"model": "text-embedding-3-small",
                                                               "input": ["a", "b"]}).json()
    assert shape(answer) == shape(golden("openai_response.json"))


# ---------------------------------------------------------------------- answers as the client wants them
def test_base64_is_little_endian_float32() -> None:
    assert to_base64([1.0, -2.5]) == base64.b64encode(b"\x00\x00\x80\x3f\x00\x00\x20\xc0").decode()
    assert from_base64(to_base64([0.25, -1.0, 3.5])) == [0.25, -1.0, 3.5]
    with pytest.raises(UpstreamFailure):
        from_base64("not base64!")
    with pytest.raises(UpstreamFailure):
        to_base64(["x"])  # type: ignore[list-item]


def test_checked_orders_by_index_and_encodes() -> None:
    answer = {"data": [{"index": 1, "embedding": [0.5]}, {"index": 0, "embedding": to_base64([0.25])}]}
    out = _checked(answer, 2, "float")
    assert out["data"] == [{"object": "embedding", "index": 0, "embedding": [0.25]},
                           {"object": "embedding", "index": 1, "embedding": [0.5]}]
    out = _checked({"data": [{"embedding": [0.5]}]}, 1, "base64")
    assert out["data"][0]["embedding"] == to_base64([0.5])


@pytest.mark.parametrize("data", [
    None, [], [{"embedding": [1.0]}, {"embedding": [1.0]}], [{"index": 3, "embedding": [1.0]}], ["x"],
    [{"index": 0, "embedding": []}], [{"index": 0, "embedding": ["x"]}], [{"index": 0, "embedding": [True]}],
    [{"index": 0, "embedding": None}], [{"index": 0, "embedding": ""}],
])
def test_malformed_answers_fail_over(data: Any) -> None:
    with pytest.raises(UpstreamFailure):
        _checked({"data": data}, 1, "float")


def test_split_answers_are_joined_in_order() -> None:
    parts = [{"data": [{"index": 0, "embedding": [0.0]}, {"index": 1, "embedding": [1.0]}],
              "usage": {"prompt_tokens": 3}},
             {"data": [{"index": 0, "embedding": [2.0]}], "usage": {"prompt_tokens": 4}}]
    out = joined(parts, 2)
    assert [d["index"] for d in out["data"]] == [0, 1, 2] and out["usage"]["prompt_tokens"] == 7
    parts[1].pop("usage")
    assert "usage" not in joined(parts, 2)  # one part unreported: the gateway counts


def test_embedding_model_ids() -> None:
    for model in ("text-embedding-3-small", "gemini-embedding-001", "embed-v4.0", "amazon.titan-embed-text-v2:0",
                  "cohere.embed-english-v3", "mistral-embed", "nomic-embed-text", "openai/text-embedding-3-large",
                  "embeddinggemma-300m"):
        assert is_embedding_model(model), model
    for model in ("gpt-4o-mini", "gemini-2.5-flash", "command-a-03-2025", "claude-sonnet-4-5", "embedded-llama"):
        assert not is_embedding_model(model), model


# ---------------------------------------------------------------------- split calls through HttpProvider
class SlowTransport(CannedTransport):
    """Canned answers; a `None` answer hangs until cancelled (counted)."""

    def __init__(self, *answers: Canned | None) -> None:
        super().__init__()
        self.queue = list(answers)
        self.cancelled = 0

    @contextlib.asynccontextmanager
    async def open(self, request: Any) -> AsyncIterator[Any]:
        answer = self.queue.pop(0)
        if answer is None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        self.answers = [answer]
        async with super().open(request) as response:
            yield response


def gemini_batch(n: int) -> Canned:
    return Canned(200, orjson.dumps({"embeddings": [{"values": [float(i)]} for i in range(n)]}))


async def test_a_split_call_is_joined_in_input_order() -> None:
    transport = SlowTransport(gemini_batch(100), gemini_batch(100), gemini_batch(50))
    provider = HttpProvider(spec("gemini"), GeminiAdapter(spec("gemini")), supports_completions=False,
                            transport=transport)
    answer = await provider.embeddings(call("gemini-embedding-001", [f"t{i}" for i in range(250)]))
    assert [d["index"] for d in answer["data"]] == list(range(250))
    assert [len(orjson.loads(r.body)["requests"]) for r in transport.sent] == [100, 100, 50]


async def test_a_failed_part_fails_the_call_and_stops_the_others() -> None:
    error = Canned(500, b'{"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}')
    transport = SlowTransport(None, error, None)
    provider = HttpProvider(spec("gemini"), GeminiAdapter(spec("gemini")), supports_completions=False,
                            transport=transport)
    with pytest.raises(UpstreamFailure):
        await provider.embeddings(call("gemini-embedding-001", [f"t{i}" for i in range(250)]))
    assert transport.cancelled == 2  # the parts still waiting were cancelled, not left running
