"""A local model loads on its first request: concurrent first requests share one load, a request
that goes away does not cancel it for the others, and a failed load is retried by the next one."""

from __future__ import annotations

import asyncio

import pytest

from parrotrouter.errors import UpstreamFailure
from parrotrouter.providers.lazy import LazyModel


async def test_concurrent_first_requests_share_one_load() -> None:
    loads = 0
    gate = asyncio.Event()

    async def load() -> str:
        nonlocal loads
        loads += 1
        await gate.wait()
        return "weights"

    model = LazyModel("tiny", load)
    assert model.ready() and model.value is None  # listed as available before any load
    waiting = [asyncio.create_task(model.get()) for _ in range(5)]
    await asyncio.sleep(0)
    waiting[0].cancel()  # the first requester leaves: the load goes on for the others
    gate.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == ["weights"] * 4
    assert loads == 1 and model.value == "weights"
    assert await model.get() == "weights" and loads == 1


async def test_a_failed_load_is_reported_and_retried() -> None:
    attempts = 0

    async def load() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise OSError("no such file")
        return "weights"

    model = LazyModel("tiny", load)
    with pytest.raises(UpstreamFailure):
        await model.get()
    assert not model.ready() and model.failed is not None and "no such file" in model.failed
    assert await model.get() == "weights"
    assert model.ready() and attempts == 2
