"""The application's state: one object created at start-up and passed in (no module globals)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from .accounting.usage import UsageSink
from .auth.principal import Authenticator
from .catalog import Catalog
from .providers.base import Provider
from .routing.router import Router
from .settings import Settings

if TYPE_CHECKING:
    pass


@dataclasses.dataclass
class AppState:
    settings: Settings
    catalog: Catalog
    providers: dict[str, Provider]
    router: Router
    authenticator: Authenticator
    usage: UsageSink
    started: bool = False
