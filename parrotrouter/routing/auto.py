"""`model: "auto"`: the model the gateway picks for the request.

The operator's `auto_model` setting, when set, is what `auto` stands for (a model id or alias,
checked against the catalog at start; the router resolves it as any name). Otherwise the rule:

  1. Candidates: the catalog's models that serve the request's endpoint (chat models on chat-type
     endpoints; on /v1/completions, models that serve text completions), not retired, that the
     key may use.
  2. Keep those that can serve the request: `function_calling` if it has tools, `vision` if it
     has images, `json_mode` if it asks for JSON, a context window (when known) holding the prompt
     plus `max_tokens`, a price within `X-Max-Cost-Per-1K-Tokens` / `provider.max_price`; for a key
     that holds credits, a known price.
  3. The first pool that is not empty: the models of cloud providers with a known price; then
     those without one (only for callers billed nothing: the master key, or no accounting); then
     local models (price source "local": a local server's before the in-process embedded one).
  4. In the pool, by `X-Routing-Strategy`: by default and `cost-optimized`, the cheapest (prompt
     plus completion price per million tokens of its cheapest deployment; ties in catalog order);
     `latency-optimized`, the fastest measured (unmeasured ones last, then by price);
     `quality-optimized`, the dearest — the price is the only quality signal the catalog has, so
     set `auto_model` when you know better.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

from ..catalog import Catalog, ModelSpec
from ..errors import NoRoute, PermissionDenied, PriceUnknown
from .health import Health
from .policy import RoutingPolicy

UNKNOWN = Decimal("Infinity")
NO_PRICE = "a known price (this API key pays with credits)"


class Wants(Protocol):
    """What `auto` (and a plan) may ask of the request: the typed generation request has it."""

    @property
    def model(self) -> str: ...

    @property
    def output_limit(self) -> int | None: ...

    def needs(self) -> tuple[bool, bool, bool]:
        """(tools, vision, JSON output)."""
        ...


def unit_price(model: ModelSpec) -> Decimal | None:
    """Prompt plus completion price per million tokens of the model's cheapest priced deployment."""
    prices = [p.prompt_mtok + p.completion_mtok for d in model.deployments if (p := model.price_of(d)) is not None]
    return min(prices) if prices else None


def choose(catalog: Catalog, request: Wants, policy: RoutingPolicy, health: Health,
           prompt_tokens: Callable[[], int], price_ok: Callable[[ModelSpec], bool],
           permitted: Callable[[ModelSpec], bool] | None = None, priced_only: bool = False) -> ModelSpec:
    """The model `auto` stands for; only models the caller may use are considered (403 if none),
    and with `priced_only` only models with a known price (402 if that leaves none)."""
    models = [m for m in catalog.models.values() if _serves(request, m) and not m.retired]
    if permitted is not None:
        models = [m for m in models if permitted(m)]
        if not models:
            raise PermissionDenied("This API key may use none of the models 'auto' picks from.", param="model")
    fitting, reason = _fitting(models, request, prompt_tokens, price_ok, priced_only)
    if not fitting:
        if reason == NO_PRICE:
            raise PriceUnknown("No model with a known price can serve this request for model 'auto', and this API "
                               "key pays with credits: the operator must price a model (pricing: in the config "
                               "file) or mark it free (free: true).", param="model")
        raise NoRoute(f"No model can serve this request for model 'auto' (it needs {reason}).", param="model")
    return _pick(_pool(catalog, fitting), policy, health)


def _serves(request: Wants, model: ModelSpec) -> bool:
    """A model for text generation that serves this kind of request: on /v1/completions a cloud's
    chat models do not (its text completion models do), on chat-type endpoints those do not."""
    caps = model.capabilities
    if not (caps.chat or caps.completion):
        return False
    mismatch = getattr(request, "mismatch", None)  # the request's own rule (serving/request.py)
    return caps.chat if mismatch is None else mismatch(model) is None


def _fitting(models: list[ModelSpec], request: Wants, prompt_tokens: Callable[[], int],
             price_ok: Callable[[ModelSpec], bool], priced_only: bool) -> tuple[list[ModelSpec], str]:
    """The models that can serve the request, and (when none can) what the last one lacked."""
    tools, vision, json_mode = request.needs()
    reason = "a chat model in the catalog"
    fitting = []
    for model in models:
        caps = model.capabilities
        if tools and not caps.function_calling:
            reason = "function_calling, for its tools"
        elif vision and not caps.vision:
            reason = "vision, for its images"
        elif json_mode and not caps.json_mode:
            reason = "json_mode, for JSON output"
        elif model.context_length is not None and prompt_tokens() + (request.output_limit or 0) > model.context_length:
            reason = "a context window holding the prompt and max_tokens"
        elif not price_ok(model):
            reason = "a price within the request's price limit"
        elif priced_only and unit_price(model) is None:
            reason = NO_PRICE
        else:
            fitting.append(model)
    return fitting, reason


def _pool(catalog: Catalog, fitting: list[ModelSpec]) -> list[ModelSpec]:
    """Priced cloud models, else unpriced cloud models, else local ones (a server's first)."""
    cloud = [m for m in fitting if not m.local]
    priced = [m for m in cloud if unit_price(m) is not None]
    if priced or cloud:
        return priced or cloud

    def in_process(m: ModelSpec) -> bool:
        return all((p := catalog.providers.get(d.provider)) is not None and p.local is not None
                   for d in m.deployments)

    return sorted(fitting, key=in_process)


def _pick(pool: list[ModelSpec], policy: RoutingPolicy, health: Health) -> ModelSpec:
    def price(m: ModelSpec) -> Decimal:
        found = unit_price(m)
        return UNKNOWN if found is None else found

    if policy.strategy == "latency":
        def measured(m: ModelSpec) -> float:
            known = [v for d in m.deployments if (v := health.state(d.id).latency_ms) is not None]
            return min(known) if known else float("inf")

        return min(pool, key=lambda m: (measured(m), price(m)))
    if policy.strategy == "priority":  # quality-optimized: the dearest priced model
        priced = [m for m in pool if unit_price(m) is not None]
        return max(priced, key=price) if priced else pool[0]
    return min(pool, key=price)
