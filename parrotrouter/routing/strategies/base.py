from __future__ import annotations

import abc
from collections.abc import Sequence

from ...catalog import Deployment
from ..health import Health


class Strategy(abc.ABC):
    """Orders a model's healthy deployments: the first is tried first."""

    name: str = ""

    @abc.abstractmethod
    def order(self, deployments: Sequence[Deployment], health: Health) -> list[Deployment]: ...
