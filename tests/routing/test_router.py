"""The router as a unit: plans from typed values (the protocol layer decoded the body), the
strategies with their context, and the permission filter, over a catalog of scripted providers."""

from __future__ import annotations

from typing import Any

import pytest

from parrotrouter.auth.permissions import Policy
from parrotrouter.catalog import Catalog, Deployment, ModelSpec
from parrotrouter.errors import InvalidRequest, PermissionDenied
from parrotrouter.protocol.routing_fields import decode_routing
from parrotrouter.routing.policy import parse_policy
from parrotrouter.routing.router import Router
from parrotrouter.routing.strategies import STRATEGIES, RouteContext, strategy_name
from parrotrouter.routing.strategies.geographic import GeographicStrategy
from tests.serving.world import Scripted


def router() -> Router:
    eu, us, other = Scripted("eu"), Scripted("us"), Scripted("other")
    models = [ModelSpec(id="m", aliases=("alias",), deployments=(
        Deployment("us", "m", region="us"), Deployment("eu", "m", region="eu"))),
        ModelSpec(id="x", deployments=(Deployment("other", "x"),))]
    providers = {p.name: p for p in (eu, us, other)}
    return Router(Catalog([p.spec for p in providers.values()], models), providers)


def plan(headers: dict[str, str] | None = None, permit: Any = None, **body: Any) -> list[str]:
    raw = {"model": "m", **body}
    result = router().plan(raw["model"], None, parse_policy(headers or {}, decode_routing(raw)), frozenset(),
                           lambda: 0, permit=permit)
    return [c.deployment.id for c in result.candidates]


def test_geographic_is_an_ordinary_strategy() -> None:
    assert "geographic" in STRATEGIES and strategy_name("geographic") == "geographic"
    for _ in range(10):
        assert plan({"X-Routing-Strategy": "geographic", "X-User-Region": "eu"})[0] == "eu/m"
        assert plan({"X-Routing-Strategy": "geographic", "X-User-Region": "us"})[0] == "us/m"
    deployments = [Deployment("a", "m", region="eu"), Deployment("b", "m", region="us")]
    ordered = GeographicStrategy().order(deployments, router().health, RouteContext(user_region="us"))
    assert ordered[0].provider == "b"


def test_body_fields_arrive_typed() -> None:
    assert plan(models=["x"]) == ["us/m", "eu/m", "other/x"] or plan(models=["x"])[-1] == "other/x"
    assert plan(provider={"only": ["eu"]}) == ["eu/m"]
    assert plan(provider={"ignore": ["eu"], "allow_fallbacks": False}, models=["x"]) == ["us/m"]
    with pytest.raises(InvalidRequest) as info:
        plan(provider={"max_price": {"prompt": "NaN"}})
    assert info.value.param == "provider.max_price.prompt"


def test_permissions_filter_every_route() -> None:
    only_m = Policy.from_json({"models": ["m"]}, {}).model_permit()
    assert sorted(plan(permit=only_m)) == ["eu/m", "us/m"]
    with pytest.raises(PermissionDenied) as info:
        plan(permit=only_m, models=["x"])
    assert info.value.param == "models"
    no_us = Policy.from_json({"models": {"allowed": ["*"], "denied": ["us/*"]}}, {}).model_permit()
    assert plan(permit=no_us) == ["eu/m"]
    with pytest.raises(PermissionDenied):
        plan({"X-Provider": "us"}, permit=no_us)
    alias_only = Policy.from_json({"models": ["alias"]}, {}).model_permit()
    assert router().plan("alias", None, parse_policy({}), frozenset(), lambda: 0, permit=alias_only).candidates
    with pytest.raises(PermissionDenied):
        plan(permit=alias_only)  # the model asked by its id: the alias pattern does not allow that name
