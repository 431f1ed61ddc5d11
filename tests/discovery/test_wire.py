"""The servers' documented /models shapes (tests/data/discovery/) read as models, and hostile
answers read without harm: bad ids, numbers and prices skipped, counts capped."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parrotrouter.discovery import wire
from parrotrouter.discovery.servers import ollama_root, openai_base
from tests.fakes.model_servers import fixture


def by_id(listing: wire.Listing | None) -> dict[str, wire.Listed]:
    assert listing is not None
    return {m.id: m for m in listing.models}


def test_vllm_list_gives_ids_and_max_model_len() -> None:
    models = by_id(wire.read_openai(fixture("vllm_v1_models.json")))
    assert models["meta-llama/Llama-3.1-8B-Instruct"].context_length == 131072
    assert models["meta-llama/Llama-3.1-8B-Instruct"].created == 1732268408
    assert models["sql-lora"].context_length is None  # a LoRA adapter: max_model_len null
    assert models["BAAI/bge-m3-embed"].context_length == 8192


def test_llamacpp_list_gives_the_trained_context_and_props_the_served_one() -> None:
    models = by_id(wire.read_openai(fixture("llamacpp_v1_models.json")))
    assert models["../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"].context_length == 131072
    assert wire.read_llamacpp_props(fixture("llamacpp_props.json")) == 8192
    served = {"data": [{"id": "m", "meta": {"n_ctx": 4096, "n_ctx_train": 131072}}]}
    assert by_id(wire.read_openai(served))["m"].context_length == 4096


def test_ollama_tags_and_show() -> None:
    tags = by_id(wire.read_ollama_tags(fixture("ollama_api_tags.json")))
    assert list(tags) == ["llama3.2:latest", "nomic-embed-text:latest", "llava:7b"]
    shows = fixture("ollama_api_show.json")
    llama = wire.read_ollama_show(tags["llama3.2:latest"], shows["llama3.2:latest"])
    assert (llama.context_length, llama.embedding, llama.tools, llama.vision) == (131072, False, True, False)
    embed = wire.read_ollama_show(tags["nomic-embed-text:latest"], shows["nomic-embed-text:latest"])
    assert (embed.context_length, embed.embedding) == (2048, True)
    llava = wire.read_ollama_show(tags["llava:7b"], shows["llava:7b"])
    assert (llava.context_length, llava.vision, llava.tools) == (32768, True, False)
    assert wire.read_ollama_show(tags["llava:7b"], "garbage") == tags["llava:7b"]


def test_lmstudio_types() -> None:
    models = by_id(wire.read_lmstudio(fixture("lmstudio_api_v0_models.json")))
    assert models["qwen2-vl-7b-instruct"] == wire.Listed("qwen2-vl-7b-instruct", 32768, embedding=False, vision=True)
    assert models["meta-llama-3.1-8b-instruct"].context_length == 131072
    assert models["text-embedding-nomic-embed-text-v1.5"].embedding is True


def test_openrouter_prices_per_token_become_per_million_and_junk_prices_are_dropped() -> None:
    models = by_id(wire.read_openai(fixture("openrouter_models.json"), prices=True))
    small = models["mistralai/mistral-small-3.2-24b-instruct"]
    assert small.price_mtok == (Decimal("0.05"), Decimal("0.1"))
    assert (small.context_length, small.vision, small.tools) == (131072, True, True)
    assert models["thudm/glm-z1-32b:free"].price_mtok == (Decimal(0), Decimal(0))
    assert models["junk/negative-price"].price_mtok is None
    assert models["junk/huge-price"].price_mtok is None
    assert by_id(wire.read_openai(fixture("openrouter_models.json")))["thudm/glm-z1-32b:free"].price_mtok is None


@pytest.mark.parametrize("value", [-1, "-0.1", "1e30", "NaN", "Infinity", float("inf"), True, None, [], "1" * 50,
                                   "0x10"])
def test_bad_prices(value: object) -> None:
    assert wire.price_per_token(value) is None


@pytest.mark.parametrize("value", ["", " x", "x ", "a\x00b", "a\nb", "a\u202eb", "x" * 257, 7, None, ["x"]])
def test_bad_ids_are_skipped(value: object) -> None:
    assert wire.valid_id(value) is None
    listing = wire.read_openai({"data": [{"id": value}, {"id": "good"}]})
    assert listing is not None and [m.id for m in listing.models] == ["good"] and listing.skipped == 1


def test_junk_entries_and_numbers() -> None:
    listing = wire.read_openai({"data": [1, "x", None, {"no": "id"}, {"id": "a", "max_model_len": -5},
                                         {"id": "b", "max_model_len": 10**12}, {"id": "c", "max_model_len": True},
                                         {"id": "d", "max_model_len": "4096"}, {"id": "a", "max_model_len": 7}]})
    assert listing is not None
    assert [(m.id, m.context_length) for m in listing.models] == [("a", None), ("b", None), ("c", None), ("d", None)]
    assert wire.read_openai({"data": "nope"}) is None and wire.read_openai([1, 2]) is None
    assert wire.read_ollama_tags({"models": {}}) is None and wire.read_lmstudio("x") is None


def test_count_is_capped() -> None:
    listing = wire.read_openai({"data": [{"id": f"m{i}"} for i in range(10_000)]})
    assert listing is not None and len(listing.models) == wire.MAX_MODELS and listing.truncated


@pytest.mark.parametrize(("value", "root"), [
    ("127.0.0.1:11434", "http://127.0.0.1:11434"), ("0.0.0.0", "http://127.0.0.1:11434"),
    ("0.0.0.0:8080", "http://127.0.0.1:8080"), ("http://gpu-box:11434", "http://gpu-box:11434"),
    ("https://ollama.example.com", "https://ollama.example.com:443"), ("http://host", "http://host:80"),
    ("localhost", "http://localhost:11434"), (":11434", "http://127.0.0.1:11434"), ("[::1]:11434", "http://[::1]:11434"),
    ("  http://h:1/  ", "http://h:1"), ("ftp://h", None), ("http://u:p@h:1", None), ("h:99999", None),
])
def test_ollama_host_forms(value: str, root: str | None) -> None:
    assert ollama_root(value) == root


@pytest.mark.parametrize(("value", "base"), [
    ("http://127.0.0.1:1234", "http://127.0.0.1:1234/v1"), ("http://127.0.0.1:1234/v1/", "http://127.0.0.1:1234/v1"),
    ("localhost:1234", None), ("http://user:secret@h/v1", None),
])
def test_server_urls(value: str, base: str | None) -> None:
    assert openai_base(value) == base


@pytest.mark.parametrize("extra", [{"request": "0.005"}, {"image": "0.001445"}, {"web_search": "0.004"},
                                   {"internal_reasoning": "0.00002"}])
def test_an_openrouter_price_with_charges_not_per_token_is_unknown(extra: dict[str, str]) -> None:
    """A per-request, per-image or per-search charge (or reasoning dearer than output) cannot be billed
    from token counts: the price is unknown (refused to keys that pay), never the token price alone."""
    entry = {"id": "vendor/m", "pricing": {"prompt": "0.000001", "completion": "0.000002", **extra}}
    listing = wire.read_openai({"data": [entry]}, prices=True)
    assert listing is not None and listing.models[0].price_mtok is None


def test_an_openrouter_price_with_zero_extras_is_kept() -> None:
    entry = {"id": "vendor/m", "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0",
                                           "image": "0", "web_search": "0", "internal_reasoning": "0.000002",
                                           "input_cache_read": "0.0000001"}}
    listing = wire.read_openai({"data": [entry]}, prices=True)
    assert listing is not None and listing.models[0].price_mtok == (Decimal(1), Decimal(2))
