"""Routing strategies: each a small module behind `Strategy`; the router orchestrates them."""

from .base import NO_CONTEXT, RouteContext, Strategy
from .cost import CostStrategy
from .geographic import GeographicStrategy
from .latency import LatencyStrategy
from .least_busy import LeastBusyStrategy
from .priority import PriorityStrategy
from .weighted import WeightedStrategy

# The one registry of strategy names: routing headers, provider.sort and the config file's
# `strategy` are all checked against it.
STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (WeightedStrategy, LeastBusyStrategy, LatencyStrategy,
                                                             CostStrategy, PriorityStrategy, GeographicStrategy)}
# X-Routing-Strategy values (the ParrotRouter docs) and OpenRouter's provider.sort, as strategies.
ALIASES = {"cost-optimized": "cost", "latency-optimized": "latency", "quality-optimized": "priority",
           "price": "cost", "latency": "latency", "throughput": "least-busy"}



def strategy_name(name: str) -> str | None:
    """The strategy a name or alias stands for, or None."""
    name = ALIASES.get(name, name)
    return name if name in STRATEGIES else None


__all__ = ["ALIASES", "NO_CONTEXT", "STRATEGIES", "CostStrategy", "GeographicStrategy", "LatencyStrategy",
           "LeastBusyStrategy", "PriorityStrategy", "RouteContext", "Strategy", "WeightedStrategy", "strategy_name"]
