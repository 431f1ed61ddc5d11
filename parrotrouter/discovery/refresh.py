"""Keep the catalog's discovered models current: list each discovering provider at start and every
`discovery_interval` seconds, in each worker process, and swap the catalog's models in place.

Start-up waits at most `discovery_timeout` seconds for the first lists (a server that is down does
not hold the gateway back: what arrives later is served from then on). A failed listing keeps the
provider's last good list and is logged by its reason (never a URL or a key); while one fails, the
next round comes sooner (10 s, doubling up to the interval), so a server started after the gateway
is picked up within seconds, not at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

import aiohttp

from ..catalog import Catalog, ModelSpec
from .fetch import list_models, reason_of
from .models import Plan, assemble, discovered_models
from .wire import Listed

log = logging.getLogger("parrotrouter.discovery")
FIRST_RETRY = 10.0  # seconds before a failed listing is tried again (doubling up to the interval)


class CatalogRefresh:
    """The discovery loop of one process (created at start-up, started with the app)."""

    def __init__(self, catalog: Catalog, plans: Sequence[Plan], *, interval: float, timeout: float,
                 startup_wait: float | None = None) -> None:
        self.catalog = catalog
        self.plans = list(plans)
        self.interval = interval  # 0: at start only
        self.timeout = timeout  # one request's
        self.startup_wait = timeout if startup_wait is None else startup_wait
        self.retry = FIRST_RETRY
        self.base = list(catalog.models.values())  # what the config and the environment give
        self.found: dict[str, list[ModelSpec]] = {}  # each provider's last good list
        self.failing: dict[str, str] = {}  # provider -> why its last listing failed
        self.known: dict[str, dict[str, Listed]] = {}  # provider -> its models' details (Ollama's /api/show)
        self.rounds = 0
        # Told of each new model list (e.g. provider health, which judges providers by their deployments).
        self.listeners: list[Callable[[Catalog], None]] = []
        self._session: aiohttp.ClientSession | None = None
        self.task: asyncio.Task[None] | None = None  # the loop (its first round included)

    async def start(self) -> None:
        if not self.plans:
            return
        self._session = aiohttp.ClientSession(trust_env=False, connector=aiohttp.TCPConnector(limit=32))
        first = asyncio.get_running_loop().create_task(self.refresh(), name="model-discovery")
        await asyncio.wait({first}, timeout=self.startup_wait)  # then serve; late lists fill in
        self.task = asyncio.get_running_loop().create_task(self._run(first), name="model-discovery-loop")

    async def _run(self, first: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await first
        while self.interval > 0:
            await asyncio.sleep(self._pause())
            try:
                await self.refresh()
            except Exception:  # never let the loop die: the next round tries again
                log.exception("model discovery failed")

    def _pause(self) -> float:
        """The interval; sooner while a provider fails (10 s, then doubling up to the interval)."""
        if not self.failing:
            self.retry = FIRST_RETRY
            return self.interval
        pause, self.retry = min(self.retry, self.interval), min(self.retry * 2, self.interval)
        return pause

    async def refresh(self) -> None:
        """One round: every provider listed concurrently; each result applied as it arrives."""
        await asyncio.gather(*(self._one(plan) for plan in self.plans))
        self.rounds += 1

    async def _one(self, plan: Plan) -> None:
        name = plan.source.provider
        assert self._session is not None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout * 4):  # Ollama: the list, then each model's details
                listing = await list_models(self._session, plan.source, self.timeout,
                                            self.known.setdefault(name, {}))
        except Exception as exc:
            reason = reason_of(exc)
            if self.failing.get(name) != reason:
                kept = len(self.found.get(name, ()))
                log.warning("provider %s: listing its models failed: %s (%s)", name, reason,
                            f"keeping the {kept} listed before" if name in self.found else "none served yet")
            self.failing[name] = reason
            return
        spec = self.catalog.providers[name]
        models = discovered_models(plan, spec, listing)
        if listing.truncated:
            log.warning("provider %s lists more than %d models; the rest are ignored", name, len(listing.models))
        if listing.skipped:
            log.info("provider %s: %d listed entries were not valid models and are ignored", name, listing.skipped)
        changed = [m.id for m in models] != [m.id for m in self.found.get(name, [])] or name in self.failing
        self.failing.pop(name, None)
        self.found[name] = models
        self.apply()
        if changed:
            served = sum(1 for m in self.catalog.models.values() if m.discovered_from == name)
            log.info("provider %s lists %d models (%d served by their ids) in %.2f s", name, len(models), served,
                     time.monotonic() - started)

    def apply(self) -> None:
        self.catalog.replace(assemble(self.base, {p.source.provider: self.found.get(p.source.provider, [])
                                                  for p in self.plans}))
        for listener in self.listeners:
            try:
                listener(self.catalog)
            except Exception:
                log.exception("a listener of the catalog's models failed")

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        if self._session is not None:
            await self._session.close()
