from __future__ import annotations

import random
from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health
from .base import RouteContext, Strategy


class LeastBusyStrategy(Strategy):
    """Fewest requests in flight first (ties broken at random)."""

    name = "least-busy"

    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]:
        rnd = random.random
        return sorted(deployments, key=lambda d: (health.state(d.id).in_flight, rnd()))
