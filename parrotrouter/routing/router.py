"""The router: resolve the requested name, order the deployments, hand out providers."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from ..catalog import Catalog, Deployment, ModelSpec
from ..errors import ServiceUnavailable
from ..providers.base import Provider
from .strategies import Strategy, WeightedStrategy


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    model: ModelSpec
    deployment: Deployment
    provider: Provider


class Router:
    def __init__(self, catalog: Catalog, providers: Mapping[str, Provider],
                 strategy: Strategy | None = None) -> None:
        self.catalog = catalog
        self.providers = providers
        self.strategy = strategy or WeightedStrategy()

    def candidates(self, model_name: str) -> list[Candidate]:
        """Deployments for a requested model name, in the order they should be tried."""
        resolution = self.catalog.resolve(model_name)
        deployments = resolution.deployments()
        ordered = self.strategy.order(deployments)
        out = [Candidate(resolution.model, d, self.providers[d.provider]) for d in ordered
               if d.provider in self.providers]
        if not out:
            raise ServiceUnavailable(f"No provider is available for model '{resolution.model.id}'.")
        return out
