"""The limiters' windows, with short windows so that resets happen within the test."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from parrotrouter.errors import RateLimitExceeded
from parrotrouter.ratelimit.limiter import RateLimiter
from parrotrouter.ratelimit.memory import MemoryRateLimiter
from parrotrouter.ratelimit.redis import RedisRateLimiter
from parrotrouter.ratelimit.rules import Limit
from tests.conftest import IN_CI

REDIS_URL = os.environ.get("PARROTROUTER_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    client = aioredis.from_url(REDIS_URL)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is unreachable under CI: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    await client.aclose()
    lim = RedisRateLimiter(REDIS_URL, prefix=f"test:{os.urandom(4).hex()}:")
    yield lim
    await lim.aclose()


async def test_boundary_headers_and_reset(limiter: RateLimiter) -> None:
    five = Limit("rpm", "k1", 5, 2)
    remaining = []
    for _ in range(5):
        decision = await limiter.admit([five], 0)
        remaining.append(int(decision.headers["X-RateLimit-Remaining"]))
        assert decision.headers["X-RateLimit-Bucket"] == "rpm"
        assert decision.headers["X-RateLimit-Policy"] == "5;w=2"
    assert remaining == [4, 3, 2, 1, 0]
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit([five], 0)
    assert info.value.retry_after is not None and 1 <= info.value.retry_after <= 2
    assert info.value.headers["X-RateLimit-Remaining"] == "0"
    await asyncio.sleep(4.1)  # two windows later the sliding counter has emptied
    decision = await limiter.admit([five], 0)
    assert decision.headers["X-RateLimit-Remaining"] == "4"


async def test_all_or_nothing_and_token_reconciliation(limiter: RateLimiter) -> None:
    rpm = Limit("rpm", "k2", 100, 60)
    tpm = Limit("tpm", "k2t", 1000, 60, tokens=True)
    decision = await limiter.admit([rpm, tpm], 900)
    assert decision.ticket is not None and decision.ticket.reserved == 900
    with pytest.raises(RateLimitExceeded):  # the token limit refuses: the request limit is not taken either
        await limiter.admit([rpm, tpm], 200)
    assert (await limiter.peek([rpm]))["X-RateLimit-Remaining"] == "99"
    await limiter.reconcile(decision.ticket, 250)  # the answer used fewer tokens than reserved
    assert (await limiter.peek([tpm]))["X-RateLimit-Remaining"] == "750"
    second = await limiter.admit([rpm, tpm], 700)
    assert second.ticket is not None
    await limiter.reconcile(second.ticket, 760)  # ... or more
    assert (await limiter.peek([tpm]))["X-RateLimit-Remaining"] == "0"  # 250 + 760 used: over, nothing left
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.admit([tpm], 5000)
    assert "more than this key's limit" in info.value.message
