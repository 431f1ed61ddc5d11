"""POST /v1/embeddings end to end: the official `openai` SDK against the real gateway, served by
fake upstreams that speak each vendor's embeddings wire format (OpenAI, Azure, Gemini, Cohere,
Bedrock) over loopback; billed in the ledger (SQLite), with key permissions and credits enforced."""

from __future__ import annotations

import array
import asyncio
import base64
import math
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from parrotrouter.store.db import database_url as async_url
from parrotrouter.store.schema import from_nanos
from tests.conftest import Gateway
from tests.fakes.embeddings_upstream import FakeEmbeddings, vector

TEXTS = ["The cat sat on the mat.", "Quarterly revenue grew by ten percent.", "How do I bake bread?"]


def embeddings_config(fake: FakeEmbeddings, database_url: str) -> dict[str, Any]:
    secret = {"$env": "FAKE_UPSTREAM_KEY"}
    return {
        "server": {"database_url": database_url, "key_refresh_seconds": 0.5, "breaker_failure_threshold": 10_000},
        "env_providers": False,
        "providers": [
            {"name": "emb", "type": "openai", "base_url": fake.openai_url, "api_key": secret},
            {"name": "gemini", "type": "gemini", "base_url": fake.url + "/v1beta", "api_key": secret},
            {"name": "cohere", "type": "cohere", "base_url": fake.url, "api_key": secret},
            {"name": "az", "type": "azure", "base_url": fake.url, "api_key": secret},
            {"name": "bedrock", "type": "bedrock", "base_url": fake.url, "api_key": secret,
             "options": {"region": "us-east-1"}},
        ],
        "models": [
            {"id": "text-embedding-3-small", "deployments": [{"provider": "emb"}],
             "pricing": {"prompt": "0.02", "completion": "0"}},
            {"id": "embed-failover", "deployments": [{"provider": "emb", "model": "text-embedding-3-small-500"},
                                                     {"provider": "emb", "model": "text-embedding-3-small"}],
             "capabilities": {"chat": False, "embeddings": True}, "strategy": "priority",
             "pricing": {"prompt": "0.02", "completion": "0"}},
            {"id": "embed-slow", "deployments": [{"provider": "emb", "model": "text-embedding-3-small-slow"}],
             "capabilities": {"chat": False, "embeddings": True}, "pricing": {"prompt": "0.02", "completion": "0"}},
            {"id": "gpt-4o-mini", "deployments": [{"provider": "emb"}],
             "pricing": {"prompt": "0.15", "completion": "0.60"}},
            {"id": "gemini-embedding-001", "deployments": [{"provider": "gemini"}]},
            {"id": "embed-v4.0", "deployments": [{"provider": "cohere"}]},
            {"id": "azure-embedding", "deployments": [{"provider": "az", "model": "text-embedding-3-large"}],
             "pricing": {"prompt": "0.13", "completion": "0"}},
            {"id": "amazon.titan-embed-text-v2:0", "deployments": [{"provider": "bedrock"}]},
            {"id": "cohere.embed-english-v3", "deployments": [{"provider": "bedrock"}],
             "pricing": {"prompt": "0.10", "completion": "0"}},
        ],
    }


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeEmbeddings]:
    server = FakeEmbeddings().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gw(fake: FakeEmbeddings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    home = tmp_path_factory.mktemp("gw-embeddings")
    url = f"sqlite:///{home / 'state.db'}"
    gateway = Gateway(home, embeddings_config(fake, url), env={"FAKE_UPSTREAM_KEY": "sk-upstream"}).start()
    gateway.database_url = url  # type: ignore[attr-defined]
    yield gateway
    gateway.stop()


def new_key(gw: Gateway, **body: Any) -> dict[str, Any]:
    with gw.http() as http:
        created = http.post("/v1/keys", json={"name": "embeddings", **body})
    assert created.status_code == 201, created.text
    key: dict[str, Any] = created.json()
    time.sleep(0.6)  # key_refresh_seconds: every worker knows it
    return key


def ledger(gw: Gateway) -> list[Any]:
    async def run() -> list[Any]:
        engine = create_async_engine(async_url(gw.database_url, Path(gw.home)))  # type: ignore[attr-defined]
        try:
            async with engine.begin() as conn:
                result = await conn.execute(sa.text(
                    "SELECT endpoint, requested_model, served_model, prompt_tokens, completion_tokens, cost, "
                    "status, key_id, request_id FROM usage ORDER BY created_at"))
                return list(result.all())
        finally:
            await engine.dispose()

    return asyncio.run(run())


def rows_for(gw: Gateway, key_id: str, count: int) -> list[Any]:
    deadline = time.time() + 10
    while time.time() < deadline:
        rows = [r for r in ledger(gw) if r.key_id == key_id]
        if len(rows) >= count:
            return rows
        time.sleep(0.1)
    raise AssertionError(f"the ledger has no {count} rows for the key")


def decoded(b64: str) -> list[float]:
    values = array.array("f")
    values.frombytes(base64.b64decode(b64))
    return values.tolist()


# ---------------------------------------------------------------------- the SDK, per vendor
def test_sdk_default_is_base64_and_decodes_to_the_upstream_vectors(gw: Gateway, fake: FakeEmbeddings) -> None:
    result = gw.client().embeddings.create(model="text-embedding-3-small", input=TEXTS)
    assert fake.requests[-1]["encoding_format"] == "base64"  # the SDK's default, passed through
    assert [d.index for d in result.data] == [0, 1, 2]
    for item, text in zip(result.data, TEXTS, strict=True):
        assert item.embedding == vector(text)
    assert result.model == "text-embedding-3-small"
    assert result.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS)  # the upstream's count


def test_float_dimensions_and_user(gw: Gateway, fake: FakeEmbeddings) -> None:
    result = gw.client().embeddings.create(model="text-embedding-3-small", input="hello world",
                                           encoding_format="float", dimensions=8, user="u-1")
    assert fake.requests[-1]["dimensions"] == 8 and fake.requests[-1]["user"] == "u-1"
    assert result.data[0].embedding == vector("hello world", 8)


def test_raw_base64_is_little_endian_float32(gw: Gateway) -> None:
    with gw.http() as http:
        r = http.post("/v1/embeddings", json={"model": "gemini-embedding-001", "input": "hi there",
                                              "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    assert decoded(r.json()["data"][0]["embedding"]) == vector("hi there")  # Gemini sends floats: encoded here


def test_token_arrays_pass_through_to_openai_and_are_decoded_for_others(gw: Gateway, fake: FakeEmbeddings) -> None:
    client = gw.client()
    ids = [[9906, 1917], [791, 8415, 7731]]  # cl100k_base: "Hello world", "The cat sat"
    result = client.embeddings.create(model="text-embedding-3-small", input=ids, encoding_format="float")
    assert fake.requests[-1]["input"] == ids
    assert result.usage.prompt_tokens == 5 and len(result.data) == 2
    single = client.embeddings.create(model="text-embedding-3-small", input=[9906, 1917], encoding_format="float")
    assert len(single.data) == 1
    gemini = client.embeddings.create(model="gemini-embedding-001", input=ids, encoding_format="float")
    sent = fake.requests[-1]["requests"]
    assert [r["content"]["parts"][0]["text"] for r in sent] == ["Hello world", "The cat sat"]
    assert gemini.data[1].embedding == vector("The cat sat")
    assert gemini.usage.prompt_tokens == 5  # Gemini reports none: the gateway's cl100k_base count


def test_gemini_batches_and_output_dimensionality(gw: Gateway, fake: FakeEmbeddings) -> None:
    texts = [f"text number {i}" for i in range(250)]  # three batchEmbedContents calls (100 each)
    before = len(fake.paths)
    result = gw.client().embeddings.create(model="gemini-embedding-001", input=texts, dimensions=4,
                                           encoding_format="float")
    calls = fake.paths[before:]
    assert len(calls) == 3 and all(p == "/v1beta/models/gemini-embedding-001:batchEmbedContents" for p in calls)
    assert [d.index for d in result.data] == list(range(250))
    for item, text in zip(result.data, texts, strict=True):  # shortened Gemini vectors: scaled to unit length
        norm = math.sqrt(math.fsum(x * x for x in vector(text, 4)))
        assert item.embedding == pytest.approx([x / norm for x in vector(text, 4)], rel=1e-6)
    assert fake.requests[-1]["requests"][0]["outputDimensionality"] == 4


def test_cohere_v2_embed(gw: Gateway, fake: FakeEmbeddings) -> None:
    result = gw.client().embeddings.create(model="embed-v4.0", input=TEXTS, dimensions=4)
    body = fake.requests[-1]
    assert body["embedding_types"] == ["float"] and body["input_type"] == "search_document"
    assert body["output_dimension"] == 4 and body["texts"] == TEXTS
    assert result.data[2].embedding == vector(TEXTS[2], 4)
    assert result.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS)  # meta.billed_units


def test_azure_deployment_path(gw: Gateway, fake: FakeEmbeddings) -> None:
    result = gw.client().embeddings.create(model="azure-embedding", input="hello")
    assert fake.paths[-1].startswith("/openai/deployments/text-embedding-3-large/embeddings?api-version=")
    assert fake.headers[-1]["api-key"] == "sk-upstream"
    assert result.data[0].embedding == vector("hello")


def test_bedrock_titan_one_call_per_input_and_cohere_batch(gw: Gateway, fake: FakeEmbeddings) -> None:
    client = gw.client()
    before = len(fake.paths)
    titan = client.embeddings.create(model="amazon.titan-embed-text-v2:0", input=TEXTS, dimensions=256)
    calls = fake.paths[before:]
    assert len(calls) == 3 and all(p == "/model/amazon.titan-embed-text-v2%3A0/invoke" for p in calls)
    assert sorted(r["inputText"] for r in fake.requests[before:]) == sorted(TEXTS)
    assert all(r["dimensions"] == 256 and r["normalize"] is True for r in fake.requests[before:])
    assert [d.embedding for d in titan.data] == [vector(t, 256) for t in TEXTS]
    assert titan.usage.prompt_tokens == sum(len(t.split()) for t in TEXTS)  # inputTextTokenCount, summed
    cohere = client.embeddings.create(model="cohere.embed-english-v3", input=TEXTS)
    assert fake.requests[-1] == {"texts": TEXTS, "input_type": "search_document"}
    assert cohere.data[1].embedding == vector(TEXTS[1], 1024)


def test_failover_to_the_next_deployment(gw: Gateway) -> None:
    response = gw.client().embeddings.with_raw_response.create(model="embed-failover", input="hi")
    assert "text-embedding-3-small-500;status=502" in response.headers["X-ParrotRouter-Attempts"]
    assert response.headers["x-request-id"]
    assert response.parse().data[0].embedding == vector("hi")


# ---------------------------------------------------------------------- wrong model kinds
def test_chat_model_and_embedding_model_are_not_interchangeable(gw: Gateway) -> None:
    client = gw.client()
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="gpt-4o-mini", input="hi")
    assert "not an embedding model" in err.value.message and err.value.body["param"] == "model"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="text-embedding-3-small", messages=[{"role": "user", "content": "hi"}])
    assert "embedding model" in err.value.message


def test_models_show_the_capability_and_prices(gw: Gateway) -> None:
    with gw.http() as http:
        listed = http.get("/v1/models", params={"capability": "embeddings"}).json()["data"]
    by_id = {m["id"]: m for m in listed}
    assert "gpt-4o-mini" not in by_id and "text-embedding-3-small" in by_id
    assert "wordllama-l2-supercat" not in by_id  # PARROTROUTER_LOCAL_MODELS is false here
    small = by_id["text-embedding-3-small"]
    assert small["capabilities"]["embeddings"] is True and small["capabilities"]["chat"] is False
    assert small["pricing"] == {"prompt": 0.00002, "completion": 0.0, "unit": "1k_tokens", "source": "config"}
    assert small["endpoints"] == ["/v1/embeddings"]
    assert by_id["gemini-embedding-001"]["pricing"]["prompt"] == 0.00015  # genai-prices' input price


# ---------------------------------------------------------------------- billing and permissions
def test_ledger_row_with_endpoint_tokens_and_cost(gw: Gateway) -> None:
    key = new_key(gw, credits="1")
    response = gw.client(key["key"]).embeddings.with_raw_response.create(
        model="text-embedding-3-small", input=["one two three", "four five"])
    row = rows_for(gw, key["id"], 1)[-1]
    assert row.request_id == response.headers["x-request-id"]
    assert row.endpoint == "embeddings" and row.status == 200
    assert (row.requested_model, row.served_model) == ("text-embedding-3-small", "text-embedding-3-small")
    assert (row.prompt_tokens, row.completion_tokens) == (5, 0)
    assert from_nanos(row.cost) == Decimal("0.02") * 5 / 1_000_000  # the model's input price


def test_a_client_that_hangs_up_is_billed_for_its_prompt(gw: Gateway, fake: FakeEmbeddings) -> None:
    key = new_key(gw, credits="1")
    with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=gw.url, timeout=1.0) as http:
        http.post("/v1/embeddings", headers={"Authorization": f"Bearer {key['key']}"},
                  json={"model": "embed-slow", "input": ["one two three", "four"]})
    row = rows_for(gw, key["id"], 1)[-1]
    assert row.endpoint == "embeddings" and row.status == 499  # the upstream had the inputs: billed
    assert row.prompt_tokens == 4 and from_nanos(row.cost) == Decimal("0.02") * 4 / 1_000_000


def test_a_split_call_that_fails_part_way_bills_the_parts_served(gw: Gateway, fake: FakeEmbeddings) -> None:
    """Titan embeds one input a call: the upstream billed every call that answered before the
    last input was refused, so the request is billed for them (not free, as a failure would be)."""
    key = new_key(gw, credits="1")
    inputs = [f"split part {i}" for i in range(20)] + ["=" * 60_000]  # 3 words each, then one too long for Titan
    with pytest.raises(openai.BadRequestError):
        gw.client(key["key"]).embeddings.create(model="amazon.titan-embed-text-v2:0", input=inputs)
    row = rows_for(gw, key["id"], 1)[-1]
    # 8 calls run at once: the refused one started after at least 13 others had answered.
    assert row.status == 400 and 3 * 13 <= row.prompt_tokens <= 3 * 20, row.prompt_tokens
    assert from_nanos(row.cost) > 0


def test_key_without_the_embeddings_feature_gets_403(gw: Gateway) -> None:
    key = new_key(gw, credits="1", permissions={"features": ["chat"]})
    with pytest.raises(openai.PermissionDeniedError) as err:
        gw.client(key["key"]).embeddings.create(model="text-embedding-3-small", input="hi")
    assert "embeddings" in err.value.message


def test_model_permissions_apply(gw: Gateway) -> None:
    key = new_key(gw, credits="1", permissions={"models": ["gemini-*"]})
    client = gw.client(key["key"])
    with pytest.raises(openai.PermissionDeniedError):
        client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert client.embeddings.create(model="gemini-embedding-001", input="hi").data


def test_rate_limits_apply(gw: Gateway) -> None:
    key = new_key(gw, credits="1", permissions={"max_requests_per_minute": 1})
    client = gw.client(key["key"])
    first = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="hi")
    assert first.headers["X-RateLimit-Limit"] == "1" and first.headers["X-RateLimit-Remaining"] == "0"
    with pytest.raises(openai.RateLimitError):
        client.embeddings.create(model="text-embedding-3-small", input="hi")


def test_exhausted_credits_get_402(gw: Gateway) -> None:
    key = new_key(gw, credits="0.000000001")
    with httpx.Client(base_url=gw.url, timeout=30) as http:
        r = http.post("/v1/embeddings", headers={"Authorization": f"Bearer {key['key']}"},
                      json={"model": "text-embedding-3-small", "input": "word " * 2000})
    assert r.status_code == 402, r.text
    assert r.json()["error"]["code"] == "insufficient_credits"


# ---------------------------------------------------------------------- hostile input
HOSTILE: list[tuple[Any, str | None]] = [
    ({"model": "text-embedding-3-small", "input": ["x"] * 2049}, "input"),
    ({"model": "text-embedding-3-small", "input": "word " * 9000}, "input"),
    ({"model": "text-embedding-3-small", "input": "x" * (8192 * 128 + 1)}, "input"),
    ({"model": "text-embedding-3-small", "input": ["a", ["b"]]}, "input[1]"),
    ({"model": "text-embedding-3-small", "input": [[1, 2], [3, "x"]]}, "input[1]"),
    ({"model": "text-embedding-3-small", "input": [[1] * 8193]}, "input[0]"),
    ({"model": "text-embedding-3-small", "input": [[1] * 8000] * 38}, "input"),
    ({"model": "text-embedding-3-small", "input": [-1, 2]}, "input"),
    ({"model": "text-embedding-3-small", "input": [True]}, "input"),
    ({"model": "text-embedding-3-small", "input": [2**40]}, "input"),
    ({"model": "text-embedding-3-small", "input": {"nested": ["x"]}}, "input"),
    ({"model": "text-embedding-3-small", "input": [[[1]]]}, "input[0]"),
    ({"model": "text-embedding-3-small", "input": []}, "input"),
    ({"model": "text-embedding-3-small", "input": ""}, "input"),
    ({"model": "text-embedding-3-small", "input": "a\u0000b"}, "input"),
    ({"model": "text-embedding-3-small", "input": "hi", "dimensions": 0}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "hi", "dimensions": 10**12}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "hi", "dimensions": "8"}, "dimensions"),
    ({"model": "text-embedding-3-small", "input": "hi", "encoding_format": "int8"}, "encoding_format"),
    ({"model": "text-embedding-3-small", "input": "hi", "user": "u" * 300}, "user"),
    ({"model": "", "input": "hi"}, "model"),
    ({"input": "hi"}, "model"),
    ({"model": "text-embedding-3-small"}, "input"),
    ({"model": "no-such-model", "input": "hi"}, "model"),
    ({"model": ["text-embedding-3-small"], "input": "hi"}, "model"),
    ({"model": "gemini-embedding-001", "input": [[100276, 200000]]}, "input"),
]


@pytest.mark.parametrize(("body", "param"), HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_input_is_a_400_naming_the_param(gw: Gateway, body: Any, param: str | None) -> None:
    with gw.http() as http:
        r = http.post("/v1/embeddings", json=body)
    assert 400 <= r.status_code < 500, r.text
    error = r.json()["error"]
    assert error["param"] == param, error
    assert len(r.content) < 2000


def test_local_model_refuses_dimensions_beyond_its_own(make_gateway: Any) -> None:
    gw: Gateway = make_gateway(None, env={"PARROTROUTER_LOCAL_MODELS": "true"}).start()
    with gw.http() as http:
        r = http.post("/v1/embeddings", json={"model": "wordllama-l2-supercat", "input": "hi", "dimensions": 257})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


def test_local_model_answers_with_no_cloud_key(make_gateway: Any) -> None:
    gw: Gateway = make_gateway(None, env={"PARROTROUTER_LOCAL_MODELS": "true"}).start()
    client = gw.client()
    texts = ["The cat sat on the mat.", "A kitten is sitting on a rug.", "Quarterly revenue grew by ten percent."]
    result = client.embeddings.create(model="wordllama-l2-supercat", input=texts)  # base64, the SDK's default
    vectors = [d.embedding for d in result.data]
    assert all(len(v) == 256 for v in vectors)
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4) for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.2
    again = client.embeddings.create(model="wordllama-l2-supercat", input=texts[0], encoding_format="float")
    assert again.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)
    small = client.embeddings.create(model="wordllama-l2-supercat", input=texts[0], dimensions=64)
    assert len(small.data[0].embedding) == 64
    assert result.usage.prompt_tokens > 0
    with gw.http() as http:
        listed = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert listed["wordllama-l2-supercat"]["capabilities"]["embeddings"] is True
    assert listed["wordllama-l2-supercat"]["pricing"]["prompt"] == 0.0

