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


async def test_a_sweep_never_forgets_a_counter_the_request_is_taking(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request whose new counter (a new end user) starts a sweep of idle counters must not lose
    the count it takes in another counter fetched just before (the key's own, idle and rolled to
    zero): else that request is admitted and never counted."""
    from parrotrouter.ratelimit import memory

    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limiter = MemoryRateLimiter()
    rpm = Limit("rpm", "rpm:k", 1, 60)
    assert (await limiter._take([rpm], 0))[0]
    clock[0] += 130  # idle for two windows: the key's counter is stale, not yet swept
    for i in range(memory.SWEEP_MIN - 1):  # other keys' requests fill the table to the sweep mark
        assert (await limiter._take([Limit("rpm", f"rpm:f{i}", 5, 60)], 0))[0]
    first = await limiter._take([rpm, Limit("user-rpm", "urpm:k:u1", 5, 60)], 0)
    second = await limiter._take([rpm, Limit("user-rpm", "urpm:k:u2", 5, 60)], 0)
    assert first[0] and not second[0], "one request a minute: the second must be refused"


async def test_counters_of_a_past_burst_are_forgotten_without_new_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of end users leaves counters behind; once their windows have passed they go, even
    if no new key arrives afterwards to grow the table (memory returns to the live set)."""
    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limiter = MemoryRateLimiter()
    rpm = Limit("rpm", "rpm:k", 10**9, 60)
    for i in range(20_000):  # a burst: one request each from many end users
        assert (await limiter._take([rpm, Limit("user-rpm", f"urpm:k:u{i}", 5, 60)], 0))[0]
    for _ in range(10):  # then, for ten minutes, only the key's own requests (one known end user)
        clock[0] += 60
        assert (await limiter._take([rpm, Limit("user-rpm", "urpm:k:u0", 5, 60)], 0))[0]
    assert len(limiter._windows) <= 2
