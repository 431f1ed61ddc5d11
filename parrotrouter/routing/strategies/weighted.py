from __future__ import annotations

import random
from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health
from .base import RouteContext, Strategy


class WeightedStrategy(Strategy):
    """Random order, each deployment drawn with probability proportional to its weight
    (weighted sampling without replacement, Efraimidis-Spirakis keys)."""

    name = "weighted"

    def __init__(self, rng: random.Random | None = None) -> None:
        self._random = (rng or random.Random()).random

    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]:
        if len(deployments) <= 1:
            return list(deployments)
        rnd = self._random
        return sorted(deployments, key=lambda d: rnd() ** (1.0 / d.weight), reverse=True)
