"""`model: "auto"`: the gateway picks a configured model from what the request needs.

The rule, in order:
  1. Candidates: every chat model of the catalog, in catalog order (the config file's models,
     then the embedded local model, then models enabled from the environment).
  2. Keep those that can serve the request: `function_calling` if it has tools, `vision` if it has
     images, `json_mode` if it asks for JSON, a context window (when known) holding the prompt
     plus `max_tokens`, and a price within `X-Max-Cost-Per-1K-Tokens` / `provider.max_price`.
  3. `X-Routing-Strategy: cost-optimized` (or `provider.sort: price`): the cheapest;
     `latency-optimized`: the fastest measured; otherwise the first in catalog order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..catalog import Catalog, ModelSpec
from ..errors import NoRoute, PermissionDenied
from .health import Health
from .policy import RoutingPolicy
from .strategies.cost import unit_price


class Wants(Protocol):
    """What `auto` (and a plan) may ask of the request: the typed generation request has it."""

    @property
    def model(self) -> str: ...

    @property
    def output_limit(self) -> int | None: ...

    def needs(self) -> tuple[bool, bool, bool]:
        """(tools, vision, JSON output)."""
        ...


def choose(catalog: Catalog, request: Wants, policy: RoutingPolicy, health: Health,
           prompt_tokens: Callable[[], int], price_ok: Callable[[ModelSpec], bool],
           permitted: Callable[[ModelSpec], bool] | None = None) -> ModelSpec:
    """The model `auto` stands for; only models the caller may use are considered (403 if none)."""
    tools, vision, json_mode = request.needs()
    reason = "no model in the catalog"
    fitting = []
    models = [m for m in catalog.models.values() if m.capabilities.chat]
    if permitted is not None:
        models = [m for m in models if permitted(m)]
        if not models:
            raise PermissionDenied("This API key may use none of the models 'auto' picks from.", param="model")
    for model in models:
        caps = model.capabilities
        if tools and not caps.function_calling:
            reason = "tools need a model with function_calling"
            continue
        if vision and not caps.vision:
            reason = "images need a model with vision"
            continue
        if json_mode and not caps.json_mode:
            reason = "JSON output needs a model with json_mode"
            continue
        if model.context_length is not None:
            wanted = prompt_tokens() + (request.output_limit or 0)
            if wanted > model.context_length:
                reason = "the prompt does not fit any context window"
                continue
        if not price_ok(model):
            reason = "the price limit"
            continue
        fitting.append(model)
    if not fitting:
        raise NoRoute(f"No model can serve this request for model 'auto' ({reason}).", param="model")
    if policy.strategy == "cost":
        return min(fitting, key=lambda m: min(unit_price(d) for d in m.deployments))
    if policy.strategy == "latency":
        def measured(m: ModelSpec) -> float:
            values = [health.state(d.id).latency_ms for d in m.deployments]
            known = [v for v in values if v is not None]
            return min(known) if known else float("inf")

        return min(fitting, key=measured)
    return fitting[0]
