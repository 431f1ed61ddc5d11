"""Limits for one process: sliding-window counters in memory.

The same weighted sliding-window counter as the `limits` package's SlidingWindowCounter strategy
(and as the Redis script in `redis.py`): per limit key a count for the current fixed window and
one for the previous window; the request count is the previous count weighted by the share of
the previous window still inside the sliding window, plus the current count, rounded down. A
request is admitted when that count plus its cost fits the limit.

Kept here rather than taken from `limits`' memory storage: on the request path that storage costs
several awaits, locks and string keys per limit and a second look-up for the headers' numbers
(measured: ~8% of a worker's CPU at full load); this is a dict look-up and a few float operations,
and it never awaits, so test-all-then-take-all is atomic on the event loop without a lock.
"""

from __future__ import annotations

import math
import time

from .limiter import RateLimiter
from .rules import Limit, Usage

SWEEP_MIN = 4096  # counters kept before the first sweep of idle ones (their windows have passed)
SWEEP_EVERY = 60.0  # seconds: idle counters are also swept this often (a past burst's go without new keys)


class _Window:
    """One limit key's counters: the current fixed window's index and count, the previous count."""

    __slots__ = ("current", "index", "length", "previous")

    def __init__(self, length: int, index: int) -> None:
        self.length = length  # seconds
        self.index = index
        self.current = 0
        self.previous = 0

    def roll(self, index: int) -> None:
        """Move to fixed window `index` (the current count becomes the previous one, or both go)."""
        if index != self.index:
            self.previous = self.current if index == self.index + 1 else 0
            self.current = 0
            self.index = index


class MemoryRateLimiter(RateLimiter):
    backend = "memory"

    def __init__(self) -> None:
        super().__init__(fail_open=False)
        self._windows: dict[str, _Window] = {}
        self._sweep_at = SWEEP_MIN
        self._sweep_after = 0.0  # time.time() of the next timed sweep

    def _window(self, limit: Limit, now: float) -> _Window:
        index = int(now / limit.window)
        window = self._windows.get(limit.key)
        if window is None:
            window = self._windows[limit.key] = _Window(limit.window, index)
        else:
            window.roll(index)
        return window

    def _sweep(self, now: float) -> None:
        """Forget counters whose two windows have passed (they count nothing any more); the next
        sweep comes when the table has doubled (so sweeping costs O(1) per request) or after
        SWEEP_EVERY seconds (so a past burst's counters do not stay for good)."""
        stale = [key for key, w in self._windows.items()
                 if w.index < int(now / w.length) - 1 or not (w.current or w.previous)]
        for key in stale:
            del self._windows[key]
        self._sweep_at = max(SWEEP_MIN, 2 * len(self._windows))
        self._sweep_after = now + SWEEP_EVERY

    @staticmethod
    def _weighted(window: _Window, limit: Limit, now: float) -> float:
        w = limit.window
        return window.previous * (w - (now - window.index * w)) / w + window.current

    async def _take(self, limits: list[Limit], tokens: int, take: bool = True) -> tuple[bool, list[Usage]]:
        # No await between the test and the take: all limits are taken, or none, atomically.
        now = time.time()
        # Swept before any counter is fetched: none of this request's is dropped under it.
        if len(self._windows) >= self._sweep_at or now >= self._sweep_after:
            self._sweep(now)
        windows = [self._window(lim, now) for lim in limits]
        allowed = take
        if take:
            for lim, window in zip(limits, windows, strict=True):
                cost = tokens if lim.tokens else 1
                if cost > lim.amount or math.floor(self._weighted(window, lim, now)) + cost > lim.amount:
                    allowed = False
                    break
        if allowed:
            for lim, window in zip(limits, windows, strict=True):
                window.current += tokens if lim.tokens else 1
        return allowed, [self._usage(lim, window, now) for lim, window in zip(limits, windows, strict=True)]

    def _usage(self, limit: Limit, window: _Window, now: float) -> Usage:
        """As `limits`' window stats: the count used (at most the limit), and the time until the
        count next drops (a previous window's request ages out, or the current window ends)."""
        w = limit.window
        used = min(limit.amount, math.floor(self._weighted(window, limit, now)))
        previous, current = window.previous, window.current
        if not (previous or current):
            return Usage(limit, used, 0.0)
        left = w - (now - window.index * w)  # of the current fixed window
        previous_reset = left % (w / previous) if previous else math.inf
        current_reset = left % w if current else math.inf
        return Usage(limit, used, max(0.0, min(previous_reset, current_reset)))

    async def _adjust(self, limits: list[Limit], delta: int) -> None:
        # Reconciliation records what was used, over the limit or not, in the current window.
        now = time.time()
        if len(self._windows) >= self._sweep_at or now >= self._sweep_after:
            self._sweep(now)
        for lim in limits:
            window = self._window(lim, now)
            window.current = max(0, window.current + delta)

