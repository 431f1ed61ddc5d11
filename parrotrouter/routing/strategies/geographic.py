from __future__ import annotations

from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health
from .base import RouteContext, Strategy
from .weighted import WeightedStrategy


class GeographicStrategy(Strategy):
    """Deployments in the caller's region (`X-User-Region` matching the provider's `region`)
    first, each group in weighted random order."""

    name = "geographic"

    def __init__(self) -> None:
        self._weighted = WeightedStrategy()

    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]:
        ordered = self._weighted.order(deployments, health, context)
        region = context.user_region
        if region:
            ordered.sort(key=lambda d: 0 if d.region == region else 1)
        return ordered
