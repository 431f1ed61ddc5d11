"""The application's state: one object created at start-up and passed in (no module globals)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from .accounting.credits import CreditManager
from .accounting.ledger import Ledger
from .accounting.usage import UsageSink
from .auth.keystore import KeyCache, KeyStore
from .auth.principal import Authenticator
from .catalog import Catalog
from .discovery import CatalogRefresh
from .observe import Observers
from .observe.provider_health import ProviderHealth
from .providers.base import Provider
from .ratelimit.limiter import RateLimiter
from .routing.policy import DEFAULT_BUDGET, Budget
from .routing.router import Router
from .settings import Settings

if TYPE_CHECKING:
    from .observe.tracing import Tracing


@dataclasses.dataclass
class Accounts:
    """Keys, credits and the usage ledger, on the database."""

    engine: AsyncEngine
    keys: KeyStore
    key_cache: KeyCache
    credits: CreditManager
    ledger: Ledger

    async def start(self) -> None:
        await self.key_cache.start()
        await self.credits.start()
        await self.ledger.start()

    async def stop(self) -> None:
        await self.ledger.stop()
        await self.credits.stop()
        await self.key_cache.stop()
        await self.engine.dispose()


@dataclasses.dataclass
class AppState:
    settings: Settings
    catalog: Catalog
    providers: dict[str, Provider]
    router: Router
    authenticator: Authenticator
    usage: UsageSink
    accounts: Accounts | None = None
    limiter: RateLimiter | None = None
    started: bool = False
    budget: Budget = DEFAULT_BUDGET  # each request's attempt budget (from the settings)
    background: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)
    # Set when the server starts shutting down; streams still open after the drain period are cut
    # (each ends with an error frame and is billed as ended by "shutdown").
    stopping: bool = False
    streams: set[asyncio.Task[object]] = dataclasses.field(default_factory=set)
    # Metrics, traces, the request log (observe/): told of every request the serving core records.
    observers: Observers = dataclasses.field(default_factory=Observers)
    # Live provider health (probes, breakers) for /v1/models and /ready; None: loaded means healthy.
    provider_health: ProviderHealth | None = None
    # OpenTelemetry traces (observe/tracing.py, also one of the observers): None when tracing is off.
    tracing: Tracing | None = None
    # Model discovery (discovery/refresh.py): keeps the catalog's discovered models current; None: off.
    discovery: CatalogRefresh | None = None
