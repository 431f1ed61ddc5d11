"""The in-process limiter counts as the `limits` package's SlidingWindowCounter strategy does
(its reference): same admissions, same remaining counts and reset times, on one clock."""

from __future__ import annotations

import random
import time

import pytest
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from parrotrouter.ratelimit.memory import MemoryRateLimiter
from parrotrouter.ratelimit.rules import Limit


@pytest.mark.parametrize("seed", range(6))
async def test_same_decisions_as_limits(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    clock = [1_700_000_000.0 + rng.random() * 10]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    ours = MemoryRateLimiter()
    reference = SlidingWindowCounterRateLimiter(MemoryStorage())
    limits = [Limit("rpm", "rpm:k", 7, 3), Limit("tpm", "tpm:k", 50, 5, tokens=True)]
    for _ in range(400):
        clock[0] += rng.choice([0.0, 0.01, 0.2, 0.7, 1.9, 4.0])
        lim = rng.choice(limits)
        cost = rng.randint(0, 20) if lim.tokens else 1
        item = RateLimitItemPerSecond(lim.amount, lim.window)
        expected = cost <= lim.amount and await reference.hit(item, lim.key, cost=cost)
        stats = await reference.get_window_stats(item, lim.key)
        allowed, (usage,) = await ours._take([lim], cost)
        assert allowed == expected
        assert usage.remaining == stats.remaining
        assert usage.reset_after == pytest.approx(max(0.0, stats.reset_time - clock[0]), abs=1e-6)
