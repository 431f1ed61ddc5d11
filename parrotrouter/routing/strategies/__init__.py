"""Routing strategies: each a small module behind `Strategy`; the router orchestrates them."""

from .base import Strategy
from .weighted import WeightedStrategy

STRATEGIES: dict[str, type[Strategy]] = {WeightedStrategy.name: WeightedStrategy}

__all__ = ["STRATEGIES", "Strategy", "WeightedStrategy"]
