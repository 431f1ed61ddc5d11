"""Embedding models in the catalog: zero-config models of each configured provider, their prices
(genai-prices' input price, else the vendor's published one) and capabilities; the local model
found inside the installed `wordllama` package and run with no network."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from parrotrouter.catalog import Deployment, ModelSpec
from parrotrouter.config.loader import load_config
from parrotrouter.providers.base import EmbeddingCall
from parrotrouter.providers.embedding_models import EMBEDDING
from parrotrouter.providers.local_embeddings import DIMENSIONS, MODEL_ID, PROVIDER, model_files

ENV = {"OPENAI_API_KEY": "sk-1", "GEMINI_API_KEY": "g-1", "CO_API_KEY": "c-1", "MISTRAL_API_KEY": "m-1",
       "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
       "AZURE_OPENAI_ENDPOINT": "https://res.openai.azure.com", "AZURE_OPENAI_API_KEY": "az-1",
       "AZURE_OPENAI_DEPLOYMENTS": "chat=gpt-4o-mini,emb=text-embedding-3-large"}


def test_zero_config_embedding_models_with_prices() -> None:
    models = load_config(None, ENV, local_models=False).catalog.models
    expected = {  # model: (provider, USD per million input tokens)
        "text-embedding-3-small": ("openai", "0.02"), "text-embedding-3-large": ("openai", "0.13"),
        "gemini-embedding-001": ("gemini", "0.15"), "text-embedding-004": ("gemini", "0"),
        "embed-v4.0": ("cohere", "0.12"), "embed-english-v3.0": ("cohere", "0.10"),
        "amazon.titan-embed-text-v2:0": ("bedrock", "0.02"), "cohere.embed-english-v3": ("bedrock", "0.10"),
        "mistral-embed": ("mistral", "0.1"), "emb": ("azure", "0.13"),
    }
    for model_id, (provider, price) in expected.items():
        model = models[model_id]
        assert model.deployments[0].provider == provider, model_id
        assert model.capabilities == EMBEDDING, model_id
        assert model.pricing is not None and model.pricing.prompt_mtok == Decimal(price), model_id
        assert model.pricing.cost_of(1_000_000, 0) == Decimal(price), model_id
    assert models["chat"].capabilities.chat and not models["chat"].capabilities.embeddings
    assert models["gpt-4o-mini"].capabilities.chat  # chat models are unchanged
    assert MODEL_ID not in models


def test_config_file_embedding_model_by_its_id(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("env_providers: false\nproviders: [{name: openai, type: openai, api_key: {$env: K}}]\n"
                      "models: [{id: text-embedding-3-small, deployments: [{provider: openai}]},\n"
                      "         {id: gpt-4o, deployments: [{provider: openai}]}]\n")
    models = load_config(str(config), {"K": "sk"}, local_models=False).catalog.models
    assert models["text-embedding-3-small"].capabilities == EMBEDDING
    assert models["text-embedding-3-small"].pricing is not None
    assert models["text-embedding-3-small"].pricing.prompt_mtok == Decimal("0.02")
    assert models["gpt-4o"].capabilities.chat


def test_local_embedding_model_is_served_with_the_local_models() -> None:
    models = load_config(None, {}, local_models=True).catalog.models
    model = models[MODEL_ID]
    assert model.capabilities == EMBEDDING and model.pricing is not None and model.pricing.is_free
    assert model.deployments[0].provider == "local-embeddings"
    assert MODEL_ID not in load_config(None, {}, local_models=False).catalog.models


def test_weights_are_inside_the_installed_package() -> None:
    files = model_files()
    assert files is not None
    spec = importlib.util.find_spec("wordllama")
    assert spec is not None and spec.submodule_search_locations
    package = Path(next(iter(spec.submodule_search_locations))).resolve()
    for path in files:
        assert Path(path).resolve().is_relative_to(package) and Path(path).stat().st_size > 1_000_000


def test_local_model_runs_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the local embedding model used the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    spec = load_config(None, {}, local_models=True).catalog.providers["local-embeddings"]
    provider = PROVIDER.build(spec)
    model = ModelSpec(MODEL_ID, (Deployment("local-embeddings", MODEL_ID),), capabilities=EMBEDDING)

    async def run() -> dict[str, Any]:
        await provider.start()
        try:
            texts = ["The cat sat on the mat.", "A kitten is sitting on a rug.", "Revenue grew by ten percent."]
            return await provider.embeddings(EmbeddingCall(texts, {}, None, "float", model, model.deployments[0]))
        finally:
            await provider.aclose()

    answer = asyncio.run(run())
    vectors = [item["embedding"] for item in answer["data"]]
    assert [len(v) for v in vectors] == [DIMENSIONS] * 3
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5) for v in vectors)
    cos = [math.fsum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    assert cos[0] > cos[1] + 0.2  # similar texts are closer than unrelated ones
    assert answer["usage"]["prompt_tokens"] > 0


def test_config_file_models_on_the_local_embedding_provider(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("models: [{id: search-embedder, aliases: [embedder],\n"
                      "          deployments: [{provider: local-embeddings, model: wordllama-l2-supercat}]}]\n")
    catalog = load_config(str(config), {}, local_models=True).catalog
    model = catalog.models["search-embedder"]
    assert model.capabilities == EMBEDDING and model.pricing is not None and model.pricing.is_free
    assert catalog.resolve("embedder").model is model
    assert MODEL_ID in catalog.models  # the zero-config id stays served too
