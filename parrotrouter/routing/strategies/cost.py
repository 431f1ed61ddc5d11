from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from ...catalog import Deployment
from ..health import Health
from .base import RouteContext, Strategy

UNKNOWN = Decimal("Infinity")


def unit_price(d: Deployment) -> Decimal:
    """Prompt plus completion price per million tokens (unknown prices sort last)."""
    if d.pricing is None:
        return UNKNOWN
    return d.pricing.prompt_mtok + d.pricing.completion_mtok


class CostStrategy(Strategy):
    """Cheapest first, by the price table (or the configured price)."""

    name = "cost"

    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]:
        return sorted(deployments, key=unit_price)
