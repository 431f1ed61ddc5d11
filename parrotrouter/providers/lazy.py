"""A local model loaded on its first request, not at start-up: a gateway that never serves it pays
nothing for it (weights, tokenizer, the native library itself).

Concurrent first requests share one load; a request that goes away meanwhile does not cancel it
for the others. A load that fails is reported to the requests waiting for it and tried again by
the next one (a missing or corrupt file stays visible in /ready: `failed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from ..errors import FailureKind, UpstreamFailure

T = TypeVar("T")
log = logging.getLogger("parrotrouter.providers")


class LazyModel(Generic[T]):
    def __init__(self, name: str, load: Callable[[], Awaitable[T]]) -> None:
        self.name = name
        self._load = load
        self.value: T | None = None
        self.failed: str | None = None  # why the last load failed (None: not tried, or loaded)
        self._task: asyncio.Task[T] | None = None

    async def get(self) -> T:
        """The model, loading it first if no request has yet."""
        if self.value is not None:
            return self.value
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
            # Its outcome is read here too: when every waiting request went away, no one else does.
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())
        # Shielded: the load goes on for the other requests waiting for it if this one is cancelled.
        return await asyncio.shield(self._task)

    async def _run(self) -> T:
        try:
            value = await self._load()
        except Exception as exc:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("the local model '%s' could not be loaded: %s", self.name, self.failed)
            raise UpstreamFailure(f"The local model '{self.name}' could not be loaded.",
                                  kind=FailureKind.SERVER_ERROR) from exc
        finally:
            self._task = None
        self.value, self.failed = value, None
        return value

    def ready(self) -> bool:
        """Whether requests can be served: loaded, or loadable on demand (no failed load)."""
        return self.failed is None

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
