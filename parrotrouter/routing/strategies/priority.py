from __future__ import annotations

from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health
from .base import RouteContext, Strategy


class PriorityStrategy(Strategy):
    """The configured order: the first deployment, then the next as fallback."""

    name = "priority"

    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]:
        return list(deployments)
