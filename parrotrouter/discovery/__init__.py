"""Model discovery: the models an OpenAI-compatible upstream lists at GET /models, served by their ids.

`wire` reads the servers' list formats, `fetch` reads them over HTTP, `models` decides which
providers discover and turns their lists into catalog models, `refresh` keeps the catalog current,
`servers` turns local servers' environment variables into providers.
"""

from __future__ import annotations

from ..catalog import Catalog
from .models import assemble, plans
from .refresh import CatalogRefresh

__all__ = ["CatalogRefresh", "assemble", "build_discovery"]


def build_discovery(catalog: Catalog, setting: str, *, interval: float, timeout: float) -> CatalogRefresh | None:
    """The process's discovery loop, or None when no provider discovers its models."""
    found = plans(catalog.providers.values(), setting)
    if not found:
        return None
    return CatalogRefresh(catalog, found, interval=interval, timeout=timeout)
