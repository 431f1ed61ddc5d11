from __future__ import annotations

import random
from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health
from .base import RouteContext, Strategy

EXPLORE = 0.1  # share of requests sent in random order, so slow-looking deployments get re-measured


class LatencyStrategy(Strategy):
    """Lowest recent time to first token (streams) or latency first; deployments never measured
    go first (to measure them), and a tenth of requests explore in random order."""

    name = "latency"

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]:
        if len(deployments) <= 1:
            return list(deployments)
        if self.rng.random() < EXPLORE:
            shuffled = list(deployments)
            self.rng.shuffle(shuffled)
            return shuffled

        def key(d: Deployment) -> float:
            state = health.state(d.id)
            measured = state.ttft_ms if state.ttft_ms is not None else state.latency_ms
            return -1.0 if measured is None else measured

        return sorted(deployments, key=key)
