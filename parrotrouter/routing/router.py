"""The router: which deployments to try for a request, in which order (the plan).

It resolves the requested model (and fallback models), removes deployments that a filter rules
out (pinned provider, only/ignore lists, price and latency limits, required parameters, open
circuit breakers), orders the rest with the strategy and the caller's provider preferences, and
notes every removal so `/v1/route/explain` can show it. It calls nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ..catalog import AUTO, Catalog, Deployment, ModelSpec
from ..errors import NoRoute, PermissionDenied, PriceUnknown, ServiceUnavailable, echo
from ..providers.base import Provider
from . import auto
from .auto import Wants
from .health import Health
from .params import unsupported
from .policy import DEFAULT, Fallback, RoutingPolicy
from .strategies import NO_CONTEXT, STRATEGIES, RouteContext, Strategy

_THOUSAND = Decimal(1000)
PRICE_UNKNOWN = "price_unknown"  # the filter that removes unpriced deployments for keys that hold credits

# Whether the caller may use a deployment of a model, given the name it asked for the model by
# (the key's permissions, compiled by the caller; the router knows nothing of keys).
Permit = Callable[[str, ModelSpec, Deployment], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    model: ModelSpec
    deployment: Deployment
    provider: Provider
    fallback: Fallback | None = None  # set for X-Failover-Config fallbacks: used only on their triggers


@dataclasses.dataclass(frozen=True, slots=True)
class Removed:
    deployment: str
    filter: str
    reason: str


@dataclasses.dataclass(slots=True)
class Plan:
    candidates: list[Candidate]
    strategy: str
    removed: list[Removed]
    models: list[str]

    def describe(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "models": self.models,
                "candidates": [{"position": i, "model": c.model.id, "provider": c.deployment.provider,
                                "deployment": c.deployment.id, "conditional": c.fallback is not None}
                               for i, c in enumerate(self.candidates)],
                "removed": [dataclasses.asdict(r) for r in self.removed]}


class Router:
    def __init__(self, catalog: Catalog, providers: Mapping[str, Provider], health: Health | None = None,
                 auto_model: str | None = None) -> None:
        self.catalog = catalog
        self.providers = providers
        self.health = health or Health()
        self.auto_model = auto_model  # the operator's `auto` (the `auto_model` setting), checked at start
        self.strategies: dict[str, Strategy] = {name: cls() for name, cls in STRATEGIES.items()}

    def candidates(self, model_name: str) -> list[Candidate]:
        """The default plan's candidates (no routing headers)."""
        return self.plan(model_name, None, DEFAULT, frozenset(), lambda: 0).candidates

    def plan(self, model_name: str, request: Wants | None, policy: RoutingPolicy, sent_params: frozenset[str],
             prompt_tokens: Callable[[], int], allow_empty: bool = False, permit: Permit | None = None,
             priced_only: bool = False) -> Plan:
        """Every model the request can reach — `model` or the failover config's primary, the
        `models` fallbacks, the failover config's fallbacks, `auto`'s choice — and every provider
        pin is checked against `permit` before anything else: a model or pinned provider the
        caller may not use is a 403 naming where it was asked for. `priced_only` (a caller that
        pays with credits): deployments without a known price are removed, a 402 if none is left."""
        removed: list[Removed] = []
        primary = policy.primary_model or model_name
        chain: list[tuple[str, Fallback | None, str]] = [
            (primary, None, "X-Failover-Config" if policy.primary_model else "model")]
        chain += [(m, None, "models") for m in policy.fallback_models if m != primary]
        chain += [(fb.model or primary, fb, "X-Failover-Config") for fb in policy.conditional_fallbacks]
        out: list[Candidate] = []
        strategy_name = "weighted"
        for i, (name, fallback, source) in enumerate(chain):
            model = self._resolve(name, request, policy, prompt_tokens, permit, priced_only)
            strategy_name = policy.strategy or model.strategy or "weighted"
            pinned = fallback.provider if fallback is not None and fallback.provider else policy.force_provider
            # every name of `auto` (`openrouter/auto` too) is `auto` to the key's permissions
            asked = AUTO if name in self.catalog.auto_names and AUTO not in self.catalog.models else name
            allowed = self._permitted(model, asked, pinned, permit, source)
            kept = self._filter(model, allowed, pinned, policy, sent_params, removed, priced_only)
            ordered = self._order(kept, strategy_name, policy)
            if i == 0 and not ordered:
                continue
            out += [Candidate(model, d, self.providers[d.provider], fallback) for d in ordered
                    if d.provider in self.providers]
            if not policy.fallbacks_enabled and out:
                out = out[:1]
                break
        if not out and not allow_empty:
            if removed and all(r.filter == "circuit_open" for r in removed):
                wait = min(self.health.retry_after(r.deployment) for r in removed)
                raise ServiceUnavailable(f"Every deployment of '{echo(model_name)}' is failing; its circuit breakers "
                                         "are open. Retry shortly.", retry_after=max(1.0, wait))
            if removed:
                last = next(r for r in reversed(removed) if r.filter != "circuit_open")
                if last.filter == PRICE_UNKNOWN:
                    raise PriceUnknown(last.reason, param="model")
                raise NoRoute(f"No deployment can serve this request: {last.reason} ({last.filter}).",
                              param=last.filter)
            raise ServiceUnavailable(f"No provider is available for model '{echo(model_name)}'.")
        return Plan(out, strategy_name, removed, [n for n, _, _ in chain])

    @staticmethod
    def _permitted(model: ModelSpec, name: str, pinned: str | None, permit: Permit | None,
                   source: str) -> list[Deployment]:
        """The model's deployments the caller may use; 403 when the request asks for the model (or
        pins a provider of it) and none of what it asked for is allowed."""
        if permit is None:
            return list(model.deployments)
        allowed = [d for d in model.deployments if permit(name, model, d)]
        if pinned is None:
            denied = not allowed and bool(model.deployments)
        else:
            denied = any(d.provider == pinned for d in model.deployments) and not any(
                d.provider == pinned for d in allowed)
        if denied:
            where = f" on provider '{echo(pinned)}'" if pinned is not None else ""
            raise PermissionDenied(f"This API key is not allowed to use the model '{echo(name)}'{where}.",
                                   param=source)
        return allowed

    def _resolve(self, name: str, request: Wants | None, policy: RoutingPolicy, prompt_tokens: Callable[[], int],
                 permit: Permit | None = None, priced_only: bool = False) -> ModelSpec:
        auto_asked = name in self.catalog.auto_names and AUTO not in self.catalog.models
        if auto_asked and self.auto_model is not None:
            name = self.auto_model  # the operator's choice: served as if asked for by name
        elif auto_asked and request is not None:
            def permitted(m: ModelSpec) -> bool:  # auto picks among what the caller may use
                return permit is None or any(permit(AUTO, m, d) for d in m.deployments)

            def priced(m: ModelSpec) -> bool:
                return any(self._price_ok(d, policy) and (permit is None or permit(AUTO, m, d))
                           for d in m.deployments)

            return auto.choose(self.catalog, request, policy, self.health, prompt_tokens, priced,
                               permitted if permit is not None else None, priced_only)
        resolution = self.catalog.resolve(name)
        if resolution.pinned_provider is None:
            return resolution.model
        return dataclasses.replace(resolution.model, deployments=resolution.deployments())

    def _price_ok(self, d: Deployment, policy: RoutingPolicy) -> bool:
        pricing = d.pricing
        cap = policy.max_cost_per_1k
        if cap is not None and (pricing is None or max(pricing.prompt_mtok, pricing.completion_mtok) / _THOUSAND > cap):
            return False
        if policy.max_price is not None:
            prompt_cap, completion_cap = policy.max_price
            if pricing is None:
                return False
            if prompt_cap is not None and pricing.prompt_mtok > prompt_cap:
                return False
            if completion_cap is not None and pricing.completion_mtok > completion_cap:
                return False
        return True

    def _filter(self, model: ModelSpec, deployments: list[Deployment], pinned: str | None, policy: RoutingPolicy,
                sent_params: frozenset[str], removed: list[Removed], priced_only: bool) -> list[Deployment]:
        """Apply the filters one after the other, so the one that removes the last deployment
        standing is the one a `no_route` error names (it is appended last). An unknown price is
        checked first: nothing else makes such a deployment usable by a key that pays."""
        params = sent_params if policy.require_parameters else frozenset()
        kept = deployments
        rules = self._rules(policy, pinned, params)
        if priced_only:
            rules.insert(0, lambda d: None if model.price_of(d) is not None else (PRICE_UNKNOWN, (
                f"The price of model '{echo(model.id)}' ({echo(d.id)}) is unknown, and this API key pays with "
                "credits: the operator must price it (pricing: in the config file) or mark it free (free: true).")))
        for rule in rules:
            survivors = []
            for d in kept:
                why = rule(d)
                if why is None:
                    survivors.append(d)
                else:
                    removed.append(Removed(d.id, why[0], why[1]))
            kept = survivors
        return kept

    def _rules(self, policy: RoutingPolicy, pinned: str | None,
               params: frozenset[str]) -> list[Callable[[Deployment], tuple[str, str] | None]]:
        rules: list[Callable[[Deployment], tuple[str, str] | None]] = []
        if pinned is not None:
            rules.append(lambda d: None if d.provider == pinned else
                         ("X-Provider", f"the request pins provider '{echo(pinned)}'"))
        if policy.only is not None:
            only = policy.only
            rules.append(lambda d: None if d.provider in only else
                         ("provider.only", f"'{d.provider}' is not in provider.only"))
        if policy.ignore:
            rules.append(lambda d: ("provider.ignore", f"'{d.provider}' is in provider.ignore")
                         if d.provider in policy.ignore else None)
        if policy.max_cost_per_1k is not None or policy.max_price is not None:
            which = "X-Max-Cost-Per-1K-Tokens" if policy.max_cost_per_1k is not None else "provider.max_price"
            rules.append(lambda d: None if self._price_ok(d, policy) else
                         (which, f"the price of {d.id} is above the limit"))
        if policy.max_latency_ms is not None:
            rules.append(lambda d: self._too_slow(d, policy.max_latency_ms))
        if params:
            rules.append(lambda d: self._lacks(d, params))
        rules.append(lambda d: None if self.health.available(d.id) else
                     ("circuit_open", f"the circuit breaker of {d.id} is open"))
        return rules

    def _too_slow(self, d: Deployment, limit: float | None) -> tuple[str, str] | None:
        latency = self.health.state(d.id).latency_ms
        if limit is not None and latency is not None and latency > limit:
            return "X-Max-Latency-Ms", f"{d.id} answers in {latency:.0f} ms on average"
        return None

    def _lacks(self, d: Deployment, params: frozenset[str]) -> tuple[str, str] | None:
        provider = self.providers.get(d.provider)
        missing = unsupported(provider.spec, params) if provider is not None else []
        if missing:
            return "provider.require_parameters", f"{d.id} does not support {', '.join(missing)}"
        return None

    def _order(self, deployments: list[Deployment], strategy: str, policy: RoutingPolicy) -> list[Deployment]:
        context = RouteContext(user_region=policy.user_region) if policy.user_region else NO_CONTEXT
        ordered = self.strategies[strategy].order(deployments, self.health, context)
        if policy.preference:
            rank = {p: i for i, p in enumerate(policy.preference)}
            ordered.sort(key=lambda d: rank.get(d.provider, len(rank)))
        if policy.failover_providers and len(ordered) > 1:
            rank = {p: i for i, p in enumerate(policy.failover_providers)}
            head, rest = ordered[0], ordered[1:]
            rest.sort(key=lambda d: rank.get(d.provider, len(rank)))
            ordered = [head, *rest]
        return ordered

