"""Which providers discover (the default rule and the setting), what a discovered model is (price,
price source, capabilities), and the merge: config and table models win, first claim on an id wins."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parrotrouter.catalog import Catalog, Deployment, ModelSpec, ProviderSpec
from parrotrouter.config.loader import load_config
from parrotrouter.discovery import wire
from parrotrouter.discovery.models import assemble, discovered_models, plan_for, plans
from parrotrouter.pricing import FREE, ModelPricing
from parrotrouter.providers.embedding_models import EMBEDDING
from parrotrouter.settings import Secret
from tests.fakes.model_servers import fixture


def spec(name: str, base_url: str, **kw: object) -> ProviderSpec:
    return ProviderSpec(name=name, type="openai", display_name=name, base_url=base_url, **kw)  # type: ignore[arg-type]


def providers(env: dict[str, str]) -> dict[str, ProviderSpec]:
    return load_config(None, {"PARROTROUTER_LOCAL_MODELS": "false", **env}, local_models=False).catalog.providers


def test_default_rule() -> None:
    found = providers({"OPENAI_API_KEY": "sk-x", "GROQ_API_KEY": "g", "OPENROUTER_API_KEY": "o",
                       "OLLAMA_HOST": "0.0.0.0", "VLLM_BASE_URL": "http://gpu:8000", "LMSTUDIO_BASE_URL":
                       "http://127.0.0.1:1234", "LLAMACPP_SERVER_URL": "http://127.0.0.1:8080/v1"})
    got = {p.source.provider: (p.source.dialect, p.source.keep, p.local) for p in plans(found.values(), "auto")}
    assert got == {"openai": ("openai", "^ft:", False), "openrouter": ("openrouter", None, False),
                   "ollama": ("ollama", None, True), "vllm": ("openai", None, True),
                   "lmstudio": ("lmstudio", None, True), "llamacpp-server": ("llamacpp", None, True)}
    assert found["ollama"].base_url == "http://127.0.0.1:11434/v1" and found["ollama"].api_key is None
    assert found["vllm"].base_url == "http://gpu:8000/v1"
    assert plans(found.values(), "none") == []
    assert [p.source.provider for p in plans(found.values(), "groq,vllm")] == ["groq", "vllm"]


def test_custom_openai_base_url_discovers_everything_and_sends_the_key() -> None:
    found = providers({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    plan = plan_for(found["openai"], "auto")
    assert plan is not None and plan.source.keep is None and not plan.local and not plan.cloud
    assert plan.source.headers["Authorization"] == "Bearer sk-x"
    assert "sk-x" not in repr(plan)


def test_config_providers_discover_only_when_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text("env_providers: false\nproviders:\n"
                    "  - {name: box, type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
                    "  - {name: box2, type: openai, base_url: 'http://127.0.0.1:9/v1', discover: true}\n"
                    "  - {name: ollama, type: openai, base_url: 'http://127.0.0.1:9/v1'}\n"
                    "  - {name: vllm, type: openai, base_url: 'http://127.0.0.1:9/v1', discover: false}\n")
    found = load_config(str(path), {}, local_models=False).catalog.providers
    assert [p.source.provider for p in plans(found.values(), "auto")] == ["box2"]
    assert [p.source.provider for p in plans(found.values(), "vllm,ollama")] == ["ollama", "vllm"]


def test_local_models_are_free_and_embeddings_become_embedding_models() -> None:
    plan = plan_for(spec("ollama", "http://127.0.0.1:11434/v1"), "auto")
    assert plan is not None
    shows = fixture("ollama_api_show.json")
    tags = wire.read_ollama_tags(fixture("ollama_api_tags.json"))
    assert tags is not None
    listing = wire.Listing(tuple(wire.read_ollama_show(m, shows[m.id]) for m in tags.models))
    models = {m.id: m for m in discovered_models(plan, spec("ollama", "http://x/v1"), listing)}
    llama = models["llama3.2:latest"]
    assert (llama.pricing, llama.price_source, llama.context_length, llama.discovered_from) == (
        FREE, "local", 131072, "ollama")
    assert llama.aliases == ("llama3.2",) and llama.capabilities.chat and llama.capabilities.function_calling
    assert llama.deployments == (Deployment("ollama", "llama3.2:latest", price_source="local"),)
    assert llama.deployments[0].price_source == "local"
    assert models["nomic-embed-text:latest"].capabilities == EMBEDDING
    assert models["llava:7b"].capabilities.vision and not models["llava:7b"].capabilities.function_calling


def test_official_openai_keeps_fine_tuned_models_priced_by_the_table() -> None:
    found = providers({"OPENAI_API_KEY": "sk-x"})
    plan = plan_for(found["openai"], "auto")
    assert plan is not None and plan.source.keep == "^ft:"
    listing = wire.read_openai(fixture("openai_v1_models.json"))
    assert listing is not None
    kept = wire.Listing(tuple(m for m in listing.models if m.id.startswith("ft:")))
    models = {m.id: m for m in discovered_models(plan, found["openai"], kept)}
    tuned = models["ft:gpt-4o-mini-2024-07-18:acme::9abcDEF1"]
    assert tuned.price_source == "table" and tuned.pricing is not None
    assert tuned.pricing.prompt_mtok == Decimal("0.3")
    assert tuned.capabilities.chat and not tuned.capabilities.completion and tuned.capabilities.vision
    davinci = models["ft:davinci-002:acme::8xyzABC2"]
    assert davinci.pricing is None and davinci.price_source is None
    assert not davinci.capabilities.chat and davinci.capabilities.completion


@pytest.mark.parametrize(("base_url", "own_price"), [
    ("http://gpu.internal:8000/v1", (None, None)),  # somebody's server: an unknown id's price is unknown
    ("http://10.0.0.7:8000/v1", (None, None)),  # a private address is not this machine
    ("http://127.0.0.1:9/v1", (FREE, "local")),  # this machine: the operator's own model, free
    ("http://localhost:9/v1", (FREE, "local")),
    ("http://[::1]:9/v1", (FREE, "local")),
])
def test_custom_base_url_prices_known_ids_from_the_table_and_others_unknown_unless_local(
        base_url: str, own_price: tuple[object, object]) -> None:
    found = providers({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": base_url})
    plan = plan_for(found["openai"], "auto")
    assert plan is not None
    listing = wire.read_openai({"data": [{"id": "gpt-4o-mini"}, {"id": "meta-llama/Llama-3.1-8B-Instruct"},
                                         {"id": "whisper-1"}]})
    assert listing is not None
    models = {m.id: m for m in discovered_models(plan, found["openai"], listing)}
    assert models["gpt-4o-mini"].price_source == "table"  # a local proxy of OpenAI still costs OpenAI's price
    llama = models["meta-llama/Llama-3.1-8B-Instruct"]
    assert (llama.pricing, llama.price_source) == own_price and llama.capabilities.completion
    assert "whisper-1" in models  # a server of the operator's: every id it lists


def test_openrouter_prices_come_from_upstream() -> None:
    plan = plan_for(spec("openrouter", "https://openrouter.ai/api/v1", api_key=Secret("k")), "auto")
    assert plan is not None and plan.upstream_prices
    listing = wire.read_openai(fixture("openrouter_models.json"), prices=True)
    assert listing is not None
    models = {m.id: m for m in discovered_models(plan, spec("openrouter", "https://openrouter.ai/api/v1"), listing)}
    small = models["mistralai/mistral-small-3.2-24b-instruct"]
    assert small.price_source == "upstream" and small.pricing is not None
    assert (small.pricing.prompt_mtok, small.pricing.completion_mtok) == (Decimal("0.05"), Decimal("0.1"))
    assert models["junk/negative-price"].pricing is None  # a junk price is no price


def model(model_id: str, provider: str, aliases: tuple[str, ...] = (), **kw: object) -> ModelSpec:
    return ModelSpec(id=model_id, deployments=(Deployment(provider, model_id),), aliases=aliases, **kw)  # type: ignore[arg-type]


def test_assemble_never_shadows_and_first_claim_wins() -> None:
    base = [model("gpt-4o-mini", "openai"), model("mine", "cfg", aliases=("llama3.2",))]
    discovered = {
        "vllm": [model("gpt-4o-mini", "vllm"), model("meta-llama/Llama-3.1-8B-Instruct", "vllm"),
                 model("openai/gpt-4o-mini", "vllm"), model("auto", "vllm")],
        "ollama": [model("llama3.2:latest", "ollama", aliases=("llama3.2",)),
                   model("meta-llama/Llama-3.1-8B-Instruct", "ollama")],
    }
    out = assemble(base, discovered)
    assert [(m.id, m.deployments[0].provider, m.aliases) for m in out] == [
        ("gpt-4o-mini", "openai", ()), ("mine", "cfg", ("llama3.2",)),
        ("meta-llama/Llama-3.1-8B-Instruct", "vllm", ()), ("llama3.2:latest", "ollama", ())]


def test_catalog_replace_swaps_models_and_names() -> None:
    catalog = Catalog([], [model("a", "p", aliases=("x",))])
    before = catalog.models
    catalog.replace([model("b", "p")])
    assert before == {"a": model("a", "p", aliases=("x",))}  # the old dict was not mutated
    assert list(catalog.models) == ["b"] and catalog.knows("p/b") and not catalog.knows("x")
    assert catalog.resolve("auto").model.id == "b"


def test_settings() -> None:
    import pytest

    from parrotrouter.errors import ConfigError
    from parrotrouter.settings import load_settings

    def loaded(**env: str) -> object:
        return load_settings(env={f"PARROTROUTER_{k.upper()}": v for k, v in env.items()})

    settings = loaded(discover_models=" vllm , ollama ", discovery_interval="0", discovery_timeout="0.5")
    assert (settings.discover_models, settings.discovery_interval, settings.discovery_timeout) == (  # type: ignore[attr-defined]
        "vllm,ollama", 0, 0.5)
    assert loaded(discover_models="NONE").discover_models == "none"  # type: ignore[attr-defined]
    assert loaded().discover_models == "auto"  # type: ignore[attr-defined]
    for bad in ({"discover_models": "a b"}, {"discovery_interval": "1"}, {"discovery_timeout": "0"},
                {"discovery_interval": "inf"}):
        with pytest.raises(ConfigError):
            loaded(**bad)


def test_config_models_on_a_local_server_are_free(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  - {id: my-llama, deployments: [{provider: ollama, model: 'llama3.2:latest'}]}\n")
    catalog = load_config(str(path), {"OLLAMA_HOST": "127.0.0.1:11434"}, local_models=False).catalog
    assert catalog.models["my-llama"].pricing == FREE and catalog.models["my-llama"].deployments[0].pricing == FREE


def test_an_openrouter_model_of_an_enabled_origin_joins_the_origins_model() -> None:
    """OpenRouter and the origin: one model, two deployments (each at its own price); an id whose
    origin is not enabled, or that OpenRouter states no price for, stays OpenRouter's own model."""
    price = ModelPricing(prompt_mtok=Decimal(3), completion_mtok=Decimal(15))
    origin = ModelSpec(id="claude-sonnet-4-5", deployments=(Deployment("anthropic", "claude-sonnet-4-5"),),
                       pricing=price)
    hosted = ModelSpec(id="anthropic/claude-sonnet-4.5", pricing=price, discovered_from="openrouter",
                       deployments=(Deployment("openrouter", "anthropic/claude-sonnet-4.5", pricing=price),))
    unpriced = ModelSpec(id="anthropic/claude-opus-4.1", discovered_from="openrouter",
                         deployments=(Deployment("openrouter", "anthropic/claude-opus-4.1"),))
    other = ModelSpec(id="meta-llama/llama-3.1-8b-instruct", pricing=price, discovered_from="openrouter",
                      deployments=(Deployment("openrouter", "meta-llama/llama-3.1-8b-instruct", pricing=price),))
    base = [origin, ModelSpec(id="claude-opus-4-1", deployments=(Deployment("anthropic", "claude-opus-4-1"),))]
    out = {m.id: m for m in assemble(base, {"openrouter": [hosted, unpriced, other]})}
    joined = out["claude-sonnet-4-5"]
    assert [d.id for d in joined.deployments] == ["anthropic/claude-sonnet-4-5",
                                                   "openrouter/anthropic/claude-sonnet-4.5"]
    assert "anthropic/claude-sonnet-4.5" in joined.aliases and "anthropic/claude-sonnet-4.5" not in out
    assert out["anthropic/claude-opus-4.1"].deployments[0].provider == "openrouter"  # no price: not joined
    assert out["meta-llama/llama-3.1-8b-instruct"].deployments[0].provider == "openrouter"  # no origin here
    catalog = Catalog([], list(out.values()))
    assert catalog.resolve("anthropic/claude-sonnet-4.5").model.id == "claude-sonnet-4-5"
