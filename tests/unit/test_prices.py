"""Where prices come from (the loader's `price_source`), `free: true`, and the pure parts of
`auto`: the pools (priced cloud, unpriced cloud, local), the strategies, the unknown-price rule."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from parrotrouter.bootstrap import check_auto_model
from parrotrouter.catalog import Capabilities, Catalog, Deployment, LocalModelFile, ModelSpec, ProviderSpec
from parrotrouter.config.loader import load_config
from parrotrouter.errors import ConfigError, NoRoute, PriceUnknown
from parrotrouter.pricing import FREE, pricing_override
from parrotrouter.routing import auto
from parrotrouter.routing.health import Health
from parrotrouter.routing.policy import DEFAULT, RoutingPolicy
from parrotrouter.routing.router import Router
from tests.serving.world import Scripted


def catalog_of(tmp_path: Path, models: list[dict[str, Any]], env: dict[str, str] | None = None) -> Catalog:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"providers": [
        {"name": "house", "type": "openai", "base_url": "http://127.0.0.1:9/v1"}], "models": models}))
    return load_config(str(path), env or {}, local_models=False).catalog


def test_price_sources_of_the_loader(tmp_path: Path) -> None:
    cat = catalog_of(tmp_path, [
        {"id": "priced", "deployments": [{"provider": "house"}], "pricing": {"prompt": 1, "completion": 2}},
        {"id": "free", "deployments": [{"provider": "house"}], "free": True},
        {"id": "unknown", "deployments": [{"provider": "house"}]},
        {"id": "gpt-4o-mini", "deployments": [{"provider": "openai"}]},  # the price table's
        {"id": "own", "deployments": [{"provider": "house", "pricing": {"prompt": 3, "completion": 4}},
                                      {"provider": "openai", "model": "gpt-4o-mini"}]},
    ], env={"OPENAI_API_KEY": "sk"})
    m = cat.models
    assert (m["priced"].price_source, m["priced"].deployments[0].price_source) == ("config", "config")
    assert m["free"].pricing == FREE and m["free"].price_source == "config"
    assert m["unknown"].pricing is None and m["unknown"].price_source is None
    assert m["unknown"].deployments[0].pricing is None and m["unknown"].deployments[0].price_source is None
    assert m["gpt-4o-mini"].price_source == "table" and m["gpt-4o-mini"].pricing is not None
    assert [d.price_source for d in m["own"].deployments] == ["config", "table"]
    table = next(x for x in m.values() if x.id == "gpt-4.1-nano")  # enabled from the environment
    assert table.price_source == "table" and table.deployments[0].price_source == "table"


def test_free_and_pricing_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="either pricing or free: true"):
        catalog_of(tmp_path, [{"id": "x", "deployments": [{"provider": "house"}], "free": True,
                               "pricing": {"prompt": 1, "completion": 1}}])


def test_local_models_are_free_and_local() -> None:
    cat = load_config(None, {}, local_models=True).catalog
    local = [m for m in cat.models.values() if m.local]
    if not local:
        pytest.skip("the local extra is not installed")
    assert all(m.pricing == FREE and m.price_source == "local" for m in local)


# ---------------------------------------------------------------------------- auto
@dataclasses.dataclass
class Wanted:
    model: str = "auto"
    output_limit: int | None = None
    tools: bool = False

    def needs(self) -> tuple[bool, bool, bool]:
        return self.tools, False, False


def spec(id: str, provider: str, price: tuple[str, str] | None, *, source: str | None = "table",
         tools: bool = True, retired: bool = False) -> ModelSpec:
    pricing = None if price is None else pricing_override(Decimal(price[0]), Decimal(price[1]), None, "1m_tokens")
    return ModelSpec(id=id, deployments=(Deployment(provider, id, pricing=pricing, price_source=source),),
                     pricing=pricing, price_source=source if price is not None else None, retired=retired,
                     capabilities=Capabilities(function_calling=tools))


def world(models: list[ModelSpec]) -> Catalog:
    names = {d.provider for m in models for d in m.deployments}
    providers = [ProviderSpec(name=n, type="llamacpp" if n == "inproc" else "openai", display_name=n,
                              local=LocalModelFile("x.gguf") if n == "inproc" else None) for n in names]
    return Catalog(providers, models)


def choose(models: list[ModelSpec], policy: RoutingPolicy = DEFAULT, priced_only: bool = False,
           **wanted: Any) -> str:
    return auto.choose(world(models), Wanted(**wanted), policy, Health(), lambda: 10, lambda m: True,
                       None, priced_only).id


CLOUD = [spec("dear", "openai", ("10", "30")), spec("first-in-order", "openai", ("5", "15")),
         spec("cheap", "anthropic", ("0.1", "0.4")), spec("cheapest-no-tools", "openai", ("0.01", "0.01"), tools=False),
         spec("retired-cheaper", "openai", ("0.001", "0.001"), retired=True),
         spec("unpriced", "openrouter", None, source=None)]
LOCAL = [spec("embedded", "inproc", ("0", "0"), source="local"), spec("ollama", "ollama", ("0", "0"), source="local")]


def test_auto_is_the_cheapest_capable_priced_cloud_model() -> None:
    assert choose(CLOUD + LOCAL) == "cheapest-no-tools"
    assert choose(CLOUD + LOCAL, tools=True) == "cheap"


def test_auto_strategies() -> None:
    quality = dataclasses.replace(DEFAULT, strategy="priority")
    assert choose(CLOUD, quality) == "dear"
    latency = dataclasses.replace(DEFAULT, strategy="latency")
    assert choose(CLOUD, latency, tools=True) == "cheap"  # nothing measured: the cheapest


def test_auto_falls_back_to_unpriced_cloud_then_local_models() -> None:
    assert choose([CLOUD[-1], *LOCAL]) == "unpriced"
    assert choose(LOCAL) == "ollama"  # a local server's model before the in-process one
    with pytest.raises(PriceUnknown, match="known price"):
        choose([CLOUD[-1]], priced_only=True)
    assert choose([CLOUD[-1], *LOCAL], priced_only=True) == "ollama"
    with pytest.raises(NoRoute, match="function_calling"):
        choose([CLOUD[3]], tools=True)


def router_for(models: list[ModelSpec], auto_model: str | None = None) -> Router:
    names = {d.provider for m in models for d in m.deployments}
    providers = {n: Scripted(n) for n in names}
    return Router(Catalog([p.spec for p in providers.values()], models), providers, auto_model=auto_model)


def test_the_router_removes_unpriced_deployments_for_paying_callers() -> None:
    half = ModelSpec(id="half", pricing=None, deployments=(
        Deployment("a", "half"), Deployment("b", "half", pricing=FREE, price_source="config")))
    r = router_for([half, CLOUD[-1]])
    plan = r.plan("half", Wanted(), DEFAULT, frozenset(), lambda: 0, priced_only=True)
    assert [c.deployment.id for c in plan.candidates] == ["b/half"]
    assert [x.filter for x in plan.removed] == ["price_unknown"]
    assert len(r.plan("half", Wanted(), DEFAULT, frozenset(), lambda: 0).candidates) == 2
    with pytest.raises(PriceUnknown, match="The price of model 'unpriced'") as err:
        r.plan("unpriced", Wanted(), DEFAULT, frozenset(), lambda: 0, priced_only=True)
    assert err.value.status == 402 and err.value.param == "model"


def test_the_operators_auto_model() -> None:
    r = router_for(CLOUD, auto_model="dear")
    assert r.plan("auto", Wanted(), DEFAULT, frozenset(), lambda: 0).candidates[0].model.id == "dear"
    check_auto_model("dear", r.catalog)
    check_auto_model(None, r.catalog)
    for bad, says in (("nope", "'nope' is not a model"), ("auto", "'auto' itself"), ("x" * 300, "more characters")):
        with pytest.raises(ConfigError, match=says):
            check_auto_model(bad, r.catalog)


@pytest.mark.parametrize("value", ["a\x00b", " gpt-4o", "x" * 257, "tab\there"])
def test_the_auto_model_setting_is_bounded(value: str) -> None:
    from parrotrouter.settings import load_settings

    with pytest.raises(ConfigError, match="PARROTROUTER_AUTO_MODEL: must be a model id"):
        load_settings(env={"PARROTROUTER_AUTO_MODEL": value})
    assert load_settings(env={"PARROTROUTER_AUTO_MODEL": "openai/gpt-4o"}).auto_model == "openai/gpt-4o"
