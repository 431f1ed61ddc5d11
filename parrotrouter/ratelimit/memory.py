"""Limits for one process: the `limits` package's sliding-window counters in memory."""

from __future__ import annotations

import asyncio
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from .limiter import RateLimiter
from .rules import Limit, Usage


class MemoryRateLimiter(RateLimiter):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__(fail_open=False)
        self.storage = MemoryStorage()
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._items: dict[tuple[int, int], RateLimitItemPerSecond] = {}
        self._lock = asyncio.Lock()

    def _item(self, limit: Limit) -> RateLimitItemPerSecond:
        key = (limit.amount, limit.window)
        item = self._items.get(key)
        if item is None:
            item = self._items[key] = RateLimitItemPerSecond(limit.amount, limit.window)
        return item

    async def _take(self, limits: list[Limit], tokens: int, take: bool = True) -> tuple[bool, list[Usage]]:
        async with self._lock:  # test all, then take all: one request never half-counted
            costs = [tokens if lim.tokens else 1 for lim in limits]
            if take and len(limits) == 1:  # one limit: the strategy's hit tests and takes at once
                allowed = costs[0] <= limits[0].amount and await self.strategy.hit(
                    self._item(limits[0]), limits[0].key, cost=costs[0])
                return allowed, [await self._usage(limits[0])]
            allowed = take
            if take:
                for lim, cost in zip(limits, costs, strict=True):
                    if cost > lim.amount or not await self.strategy.test(self._item(lim), lim.key, cost=cost):
                        allowed = False
                        break
            if allowed:
                for lim, cost in zip(limits, costs, strict=True):
                    await self.strategy.hit(self._item(lim), lim.key, cost=cost)
            usages = [await self._usage(lim) for lim in limits]
        return allowed, usages

    async def _usage(self, limit: Limit) -> Usage:
        stats = await self.strategy.get_window_stats(self._item(limit), limit.key)
        return Usage(limit, limit.amount - stats.remaining, max(0.0, stats.reset_time - time.time()))

    async def _adjust(self, limits: list[Limit], delta: int) -> None:
        # Reconciliation records what was used, over the limit or not, so it goes to the storage's
        # current-window counter directly (the strategy's hit would refuse, and has no refund).
        async with self._lock:
            for lim in limits:
                key = self._item(lim).key_for(lim.key)
                _, current = self.storage.sliding_window_keys(key, lim.window, time.time())
                if delta > 0:
                    await self.storage.incr(current, 2 * lim.window, delta)
                else:
                    await self.storage.decr(current, -delta)
