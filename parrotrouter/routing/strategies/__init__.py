"""Routing strategies: each a small module behind `Strategy`; the router orchestrates them."""

from .base import Strategy
from .cost import CostStrategy
from .latency import LatencyStrategy
from .least_busy import LeastBusyStrategy
from .priority import PriorityStrategy
from .weighted import WeightedStrategy

STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (WeightedStrategy, LeastBusyStrategy, LatencyStrategy,
                                                             CostStrategy, PriorityStrategy)}
# X-Routing-Strategy values (the ParrotRouter docs) and OpenRouter's provider.sort, as strategies.
ALIASES = {"cost-optimized": "cost", "latency-optimized": "latency", "quality-optimized": "priority",
           "price": "cost", "latency": "latency", "throughput": "least-busy"}

__all__ = ["ALIASES", "STRATEGIES", "CostStrategy", "LatencyStrategy", "LeastBusyStrategy", "PriorityStrategy",
           "Strategy", "WeightedStrategy"]
