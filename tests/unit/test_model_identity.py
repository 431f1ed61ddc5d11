"""Which model a name means (config/identity.py and the catalog's on-demand names): dated and
documented ids, OpenRouter-style ids, fixed aliases, one model at several providers, text
completion models, retired models, and names a hostile client makes up."""

from __future__ import annotations

import contextlib
import random
import string
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from parrotrouter import catalog as cat
from parrotrouter.config.loader import load_config
from parrotrouter.errors import InvalidRequest, UnsupportedModel
from parrotrouter.protocol.chat import ChatCompletionRequest
from parrotrouter.protocol.completions import CompletionRequest
from parrotrouter.providers.bedrock import canonical_id as bedrock_id
from parrotrouter.routing.router import Plan
from parrotrouter.serving.request import GenerationRequest
from parrotrouter.serving.served import keep_serving

OPENAI = {"OPENAI_API_KEY": "sk"}
ANTHROPIC = {"ANTHROPIC_API_KEY": "ak"}
GEMINI = {"GEMINI_API_KEY": "gk"}
OPENROUTER = {"OPENROUTER_API_KEY": "or"}
AWS = {"AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"}
AZURE = {"AZURE_OPENAI_ENDPOINT": "https://r.openai.azure.com", "AZURE_OPENAI_API_KEY": "k",
         "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o,prod=gpt-4o-mini"}


def catalog(*envs: dict[str, str]) -> cat.Catalog:
    env: dict[str, str] = {}
    for part in envs:
        env.update(part)
    return load_config(None, env, local_models=False).catalog


def served(c: cat.Catalog, name: str) -> tuple[str, list[tuple[str, str]]]:
    resolution = c.resolve(name)
    return resolution.model.id, [(d.provider, d.upstream_model) for d in resolution.deployments()]


def prompt_price(c: cat.Catalog, name: str) -> Decimal:
    deployment = c.resolve(name).deployments()[0]
    assert deployment.pricing is not None
    return deployment.pricing.prompt_mtok


# ---------------------------------------------------------------------------- per-endpoint models
def test_completion_models_are_listed_for_completions_only() -> None:
    c = catalog(OPENAI)
    for model_id in ("gpt-3.5-turbo-instruct", "davinci-002", "babbage-002"):
        caps = c.models[model_id].capabilities
        assert (caps.chat, caps.completion, caps.function_calling, caps.json_mode) == (False, True, False, False)
        assert c.models[model_id].pricing is not None
    # OpenAI's cloud serves /v1/completions for those only
    assert c.models["gpt-4o"].capabilities.completion is False
    assert c.models["gpt-4o"].capabilities.chat is True


def test_a_self_hosted_openai_compatible_server_serves_completions() -> None:
    c = catalog({**OPENAI, "OPENAI_BASE_URL": "http://127.0.0.1:8000/v1"})
    assert c.models["gpt-4o"].capabilities.completion is True
    assert c.models["gpt-3.5-turbo-instruct"].capabilities.chat is False


def _plan(model: cat.ModelSpec) -> Plan:
    from parrotrouter.routing.router import Candidate

    return Plan([Candidate(model, model.deployments[0], object())], "weighted", [], [model.id])  # type: ignore[arg-type]


def test_the_endpoint_check_names_the_endpoint_that_serves_the_model() -> None:
    c = catalog(OPENAI)
    chat = GenerationRequest.decode(ChatCompletionRequest(model="gpt-3.5-turbo-instruct",
                                                          messages=[{"role": "user", "content": "x"}]),  # type: ignore[list-item]
                                    {}, 10)
    with pytest.raises(InvalidRequest) as info:
        keep_serving(chat, _plan(c.models["gpt-3.5-turbo-instruct"]))
    assert info.value.param == "model" and "/v1/completions" in str(info.value)
    text = GenerationRequest.decode(CompletionRequest(model="gpt-4o", prompt="x"), {}, 10)
    with pytest.raises(InvalidRequest) as info:
        keep_serving(text, _plan(c.models["gpt-4o"]))
    assert info.value.param == "model" and "/v1/chat/completions" in str(info.value)
    keep_serving(text, _plan(c.models["davinci-002"]))  # served


# ---------------------------------------------------------------------------- dated and documented ids
@pytest.mark.parametrize(("name", "provider", "entry_price"), [
    ("claude-3-opus-20240229", "anthropic", Decimal(15)),
    ("claude-3-7-sonnet-20250219", "anthropic", Decimal(3)),
    ("claude-sonnet-4-5-20250929", "anthropic", Decimal(3)),
    ("gpt-4-turbo-preview", "openai", Decimal(10)),
    ("gpt-4o-2024-08-06", "openai", Decimal("2.5")),
])
def test_dated_and_docs_ids_are_sent_as_written_at_their_table_price(name: str, provider: str,
                                                                      entry_price: Decimal) -> None:
    c = catalog(OPENAI, ANTHROPIC)
    assert served(c, name) == (name, [(provider, name)])
    assert prompt_price(c, name) == entry_price


def test_a_provider_not_enabled_does_not_serve_its_ids() -> None:
    with pytest.raises(UnsupportedModel):
        catalog(OPENAI).resolve("claude-3-opus-20240229")


# ---------------------------------------------------------------------------- fixed aliases
def test_aliases_name_one_exact_model() -> None:
    c = catalog(ANTHROPIC, GEMINI)
    for alias, target in [("claude-3-opus", "claude-3-opus-20240229"), ("claude-3-sonnet", "claude-3-sonnet-20240229"),
                          ("claude-3-haiku-latest", "claude-3-haiku-20240307"), ("gemini-pro", "gemini-2.5-pro"),
                          ("gemini-flash", "gemini-2.5-flash")]:
        model = c.resolve(alias).model
        assert model.id == target and alias in model.aliases
        assert [d.upstream_model for d in model.deployments] == [target]
    assert prompt_price(c, "claude-3-opus") == 15  # Claude 3 Opus's, not a newer Opus's
    assert "claude-3-sonnet" not in c.models  # the table's family id gives way to the alias


def test_retired_models_are_flagged_and_still_resolve() -> None:
    c = catalog(GEMINI)
    assert c.models["gemini-2.0-flash"].retired is True  # the price table marks it deprecated
    assert c.models["gemini-2.5-pro"].retired is False
    assert c.resolve("gemini-2.0-flash").model.id == "gemini-2.0-flash"


# ---------------------------------------------------------------------------- OpenRouter-style ids
def test_openrouter_ids_resolve_to_the_origin_provider() -> None:
    c = catalog(OPENAI, ANTHROPIC, GEMINI)
    assert served(c, "anthropic/claude-sonnet-4.5") == ("claude-sonnet-4-5", [("anthropic", "claude-sonnet-4-5")])
    assert served(c, "anthropic/claude-3-opus") == ("claude-3-opus-20240229",
                                                    [("anthropic", "claude-3-opus-20240229")])
    assert served(c, "openai/gpt-4o") == ("gpt-4o", [("openai", "gpt-4o")])
    assert served(c, "google/gemini-2.5-pro") == ("gemini-2.5-pro", [("gemini", "gemini-2.5-pro")])
    with pytest.raises(UnsupportedModel):
        c.resolve("x-ai/grok-3")  # xAI is not enabled, nor OpenRouter
    assert c.resolve("openrouter/auto") is c.resolve("auto")


def test_openrouter_ids_are_also_deployments_at_openrouter() -> None:
    c = catalog(ANTHROPIC, OPENROUTER)
    model_id, deployments = served(c, "anthropic/claude-sonnet-4.5")
    assert model_id == "claude-sonnet-4-5"
    assert deployments == [("anthropic", "claude-sonnet-4-5"), ("openrouter", "anthropic/claude-sonnet-4.5")]
    assert served(c, "meta-llama/llama-3.3-70b-instruct") == (
        "meta-llama/llama-3.3-70b-instruct", [("openrouter", "meta-llama/llama-3.3-70b-instruct")])
    assert prompt_price(c, "anthropic/claude-3-opus") == 15
    assert served(c, "openrouter/auto") == ("openrouter/auto", [("openrouter", "openrouter/auto")])
    assert "openrouter/auto" not in c.auto_names


# ---------------------------------------------------------------------------- one model, many providers
def test_bedrock_ids_name_anthropic_models() -> None:
    assert bedrock_id("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == "claude-sonnet-4-5-20250929"
    assert bedrock_id("anthropic.claude-3-opus-20240229-v1:0") == "claude-3-opus-20240229"
    assert bedrock_id("global.anthropic.claude-opus-4-5-v1:0") == "claude-opus-4-5"
    assert bedrock_id("meta.llama3-8b-instruct-v1:0") is None


def test_anthropic_and_bedrock_are_deployments_of_one_model() -> None:
    c = catalog(ANTHROPIC, AWS)
    model_id, deployments = served(c, "claude-sonnet-4-5")
    assert deployments == [("anthropic", "claude-sonnet-4-5"),
                           ("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")]
    assert c.models[model_id].owned_by == "anthropic"
    # Bedrock's ids pin its deployment; a regional profile's id too (priced from Bedrock's table)
    assert served(c, "global.anthropic.claude-sonnet-4-5-20250929-v1:0") == (
        "claude-sonnet-4-5", [("bedrock", "global.anthropic.claude-sonnet-4-5-20250929-v1:0")])
    assert served(c, "us.anthropic.claude-sonnet-4-5-20250929-v1:0")[1] == [
        ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0")]
    assert "global.anthropic.claude-sonnet-4-5-20250929-v1:0" not in c.models  # one model, listed once


def test_openai_and_azure_are_deployments_of_one_model() -> None:
    c = catalog(OPENAI, AZURE)
    assert served(c, "gpt-4o") == ("gpt-4o", [("openai", "gpt-4o"), ("azure", "gpt-4o")])
    assert c.models["gpt-4o"].owned_by == "openai"
    assert served(c, "prod") == ("prod", [("azure", "prod")])  # a deployment named otherwise stays its own
    assert served(c, "azure/gpt-4o") == ("gpt-4o", [("azure", "gpt-4o")])


def test_a_config_file_model_keeps_its_name(tmp_path: Path) -> None:
    """The operator's model of an id is theirs: environment providers do not join it."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"providers": [{"name": "mine", "type": "openai", "base_url": "http://h/v1"}],
                                    "models": [{"id": "gpt-4o", "deployments": [{"provider": "mine"}]}]}))
    c = load_config(str(path), {**OPENAI, **AZURE}, local_models=False).catalog
    assert served(c, "gpt-4o") == ("gpt-4o", [("mine", "gpt-4o")])


# ---------------------------------------------------------------------------- hostile names
def test_random_names_stay_within_the_lru_bound() -> None:
    c = catalog(OPENAI, ANTHROPIC, OPENROUTER)
    rng = random.Random(16)
    alphabet = string.ascii_lowercase + string.digits + "-./:"
    for i in range(10_000):
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        if i % 3 == 0:
            name = "gpt-4o-" + name  # names the table's match clauses may take
        with contextlib.suppress(UnsupportedModel):
            c.resolve(name)
    assert len(c._dynamic) <= cat.DYNAMIC_NAMES


def test_random_names_do_not_grow_the_price_tables_caches() -> None:
    """genai-prices remembers every name it is asked about (its provider cache, misses too) and every
    match (`claude-3-5-sonnet-<anything>` matches a clause): names a client makes up must not reach
    those unbounded dicts, only our bounded ones."""
    from genai_prices.data_snapshot import get_snapshot

    c = catalog(OPENAI, ANTHROPIC, OPENROUTER, AWS)
    c.resolve("claude-3-5-sonnet-20241022")  # warm: the providers themselves are cached once
    snapshot = get_snapshot()
    before = len(snapshot._lookup_cache) + len(snapshot._provider_cache) + len(snapshot._provider_misses)
    rng = random.Random(7)
    for i in range(3_000):
        tail = "".join(rng.choice(string.ascii_lowercase) for _ in range(12))
        name = ("claude-3-5-sonnet-", "gpt-4o-", "anthropic/claude-3-5-sonnet-", "zz-")[i % 4] + tail
        with contextlib.suppress(UnsupportedModel):
            c.resolve(name)
    after = len(snapshot._lookup_cache) + len(snapshot._provider_cache) + len(snapshot._provider_misses)
    assert after - before < 50


def test_nested_vendor_names_are_not_resolved_level_by_level() -> None:
    """`anthropic/anthropic/.../claude-3.5-x` names no model; resolving it must not resolve every
    suffix (two per level: as written and dashed), each costing a table lookup and an LRU entry."""
    c = catalog(OPENAI, ANTHROPIC, OPENROUTER)
    name = ("anthropic/" * 24 + "claude-3.5-x")[:256]
    with pytest.raises(UnsupportedModel):
        c.resolve(name)
    assert len(c._dynamic) <= 3
    assert served(c, "anthropic/claude-3.5-sonnet")[0]  # one level still resolves (dotted -> dashed)


@pytest.mark.parametrize("name", ["claude-3-opus\x00", "x" * 100_000, "gpt-4o\n", "", "a/" * 200])
def test_malformed_names_are_refused_cleanly(name: str) -> None:
    c = catalog(OPENAI, ANTHROPIC, OPENROUTER)
    with pytest.raises(UnsupportedModel) as info:
        c.resolve(name)
    assert len(str(info.value)) < 500
    assert name not in c._dynamic


def test_without_environment_providers_only_the_files_names_resolve(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"env_providers": False,
                                    "providers": [{"name": "openai", "type": "openai"}],
                                    "models": [{"id": "gpt-4o", "deployments": [{"provider": "openai"}]}]}))
    c = load_config(str(path), OPENAI, local_models=False).catalog
    assert served(c, "gpt-4o") == ("gpt-4o", [("openai", "gpt-4o")])
    for name in ("gpt-4o-2024-08-06", "openai/gpt-4.1"):
        with pytest.raises(UnsupportedModel):
            c.resolve(name)


# ---------------------------------------------------------------------------- loose table matches (review)
@pytest.mark.parametrize(("name", "envs"), [
    ("gpt-4o-mini-search-preview", (OPENAI,)),  # the table's gpt-4o-mini: text price, no per-search fee
    ("gemini-2.5-flash-native-audio-preview-09-2025", (GEMINI,)),  # the table's gemini-live-2.5-flash
    ("gemini-2.0-flash-thinking-exp-01-21", (GEMINI,)),  # an experiment, not gemini-2.0-flash
    ("claude-3-opus-foo", (ANTHROPIC,)),  # made up: the table's starts-with match is no model
])
def test_a_name_the_table_only_loosely_matches_is_not_served_at_another_models_price(
        name: str, envs: tuple[dict[str, str], ...]) -> None:
    with pytest.raises(UnsupportedModel):
        catalog(*envs).resolve(name)


@pytest.mark.parametrize("name", ["gpt-4-0125-preview", "gpt-4o-2024-11-20", "claude-3-5-haiku-20241022",
                                  "claude-sonnet-4-20250514", "gemini-2.5-pro-preview-03-25", "gpt-4.1-2025-04-14",
                                  "o1-2024-12-17", "gpt-3.5-turbo-instruct-0914"])
def test_dated_snapshots_still_resolve(name: str) -> None:
    assert catalog(OPENAI, ANTHROPIC, GEMINI).resolve(name).model.id == name


def test_xais_beta_ids_resolve() -> None:
    assert catalog({"XAI_API_KEY": "x"}).resolve("grok-3-mini-beta").model.id == "grok-3-mini-beta"


def test_auto_on_completions_picks_a_model_that_serves_completions() -> None:
    """OpenAI's cloud: its chat models do not serve /v1/completions, so `auto` there must pick one
    of its text completion models (the cheapest), not the cheapest chat model keep_serving refuses."""
    from parrotrouter.routing.policy import DEFAULT
    from parrotrouter.routing.router import Router

    c = catalog(OPENAI)
    router = Router(c, {name: object() for name in c.providers})  # type: ignore[misc]
    text = GenerationRequest.decode(CompletionRequest(model="auto", prompt="x", max_tokens=4), {}, 10)
    for priced_only in (False, True):
        plan = router.plan("auto", text, DEFAULT, frozenset(), lambda: 1, priced_only=priced_only)
        keep_serving(text, plan)
        chosen = plan.candidates[0].model
        assert chosen.capabilities.completion and chosen.pricing is not None
    chat = GenerationRequest.decode(ChatCompletionRequest(model="auto", messages=[{"role": "user", "content": "x"}]),  # type: ignore[list-item]
                                    {}, 10)
    assert router.plan("auto", chat, DEFAULT, frozenset(), lambda: 1).candidates[0].model.capabilities.chat


def test_an_azure_deployment_named_after_another_model_is_not_merged_into_it() -> None:
    """`gpt-4o=my-finetune` (a deployment named `gpt-4o` running a model the table does not price)
    and `gpt-4o-mini=gpt-4o` are not OpenAI's `gpt-4o` and `gpt-4o-mini`: merged, a client asking
    for gpt-4o-mini was served gpt-4o, and the unpriced one was billed at gpt-4o's price (a key with
    credits was served it). They stay reachable by their provider's name, at their own price."""
    from parrotrouter.routing.policy import DEFAULT
    from parrotrouter.routing.router import Router

    c = catalog(OPENAI, {**AZURE, "AZURE_OPENAI_DEPLOYMENTS": "gpt-4o=my-finetune,gpt-4o-mini=gpt-4o,gpt-4.1"})
    assert [d.id for d in c.models["gpt-4o"].deployments] == ["openai/gpt-4o"]
    assert [d.id for d in c.models["gpt-4o-mini"].deployments] == ["openai/gpt-4o-mini"]
    assert [d.id for d in c.models["gpt-4.1"].deployments] == ["openai/gpt-4.1", "azure/gpt-4.1"]  # the same model
    assert served(c, "azure/gpt-4o-mini") == ("azure/gpt-4o-mini", [("azure", "gpt-4o-mini")])
    assert prompt_price(c, "azure/gpt-4o-mini") == Decimal("2.5")  # gpt-4o's, what it runs
    unpriced = c.resolve("azure/gpt-4o").model
    assert unpriced.pricing is None and all(unpriced.price_of(d) is None for d in unpriced.deployments)
    router = Router(c, {name: object() for name in c.providers})  # type: ignore[misc]
    plan = router.plan("gpt-4o", None, DEFAULT, frozenset(), lambda: 0, priced_only=True)
    assert [cand.deployment.id for cand in plan.candidates] == ["openai/gpt-4o"]


@pytest.mark.parametrize("name", ["us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929",
                                  "anthropic/claude-sonnet-4.5"])
def test_a_denied_model_is_denied_by_every_name_that_reaches_it(name: str) -> None:
    from parrotrouter.auth.permissions import Policy
    from parrotrouter.errors import PermissionDenied
    from parrotrouter.routing.policy import DEFAULT
    from parrotrouter.routing.router import Router

    c = catalog(ANTHROPIC, AWS)
    router = Router(c, {p: object() for p in c.providers})  # type: ignore[misc]
    permit = Policy.from_json({"models": {"denied": ["claude-sonnet-4-5"]}}, {}).model_permit()
    with pytest.raises(PermissionDenied):
        router.plan(name, None, DEFAULT, frozenset(), lambda: 0, permit=permit)
    assert router.plan("claude-haiku-4-5", None, DEFAULT, frozenset(), lambda: 0, permit=permit).candidates
