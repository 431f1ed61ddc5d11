"""Model discovery: the models an OpenAI-compatible upstream lists at GET /models, served by their ids.

`wire` reads the servers' list formats, `fetch` reads them over HTTP, `models` decides which
providers discover and turns their lists into catalog models, `refresh` keeps the catalog current,
`servers` turns local servers' environment variables into providers.
"""

from __future__ import annotations

import asyncio

from ..catalog import Catalog
from .models import assemble, plans
from .refresh import CatalogRefresh

__all__ = ["CatalogRefresh", "assemble", "build_discovery", "discover_once"]


def build_discovery(catalog: Catalog, setting: str, *, interval: float, timeout: float) -> CatalogRefresh | None:
    """The process's discovery loop, or None when no provider discovers its models."""
    found = plans(catalog.providers.values(), setting)
    if not found:
        return None
    return CatalogRefresh(catalog, found, interval=interval, timeout=timeout)


def discover_once(catalog: Catalog, setting: str, timeout: float) -> None:
    """List every discovering provider's models once, into `catalog` (`parrotrouter models`)."""
    refresh = build_discovery(catalog, setting, interval=0, timeout=timeout)
    if refresh is None:
        return

    async def run() -> None:
        await refresh.start()
        try:
            if refresh.task is not None:
                await refresh.task  # the whole first round, not only what start-up waits for
        finally:
            await refresh.aclose()

    asyncio.run(run())
