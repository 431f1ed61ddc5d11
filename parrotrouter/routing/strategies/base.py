from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health


@dataclasses.dataclass(frozen=True, slots=True)
class RouteContext:
    """What a strategy may know of the request beyond its deployments."""

    user_region: str | None = None


NO_CONTEXT = RouteContext()


class Strategy(abc.ABC):
    """Orders a model's healthy deployments: the first is tried first."""

    name: str = ""

    @abc.abstractmethod
    def order(self, deployments: Sequence[Deployment], health: Health, context: RouteContext) -> list[Deployment]: ...
