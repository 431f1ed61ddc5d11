"""The first lease asked for with the cheap bound (`_take_all(cheap=True)`), against a real SQLite
database: with an account bucket and a tight day bucket, concurrent requests (some cancelled
while they wait) never leave a hold behind and never admit past the day's limit."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from parrotrouter.accounting.credits import CreditManager, Reservation
from parrotrouter.auth.key_schema import KeyCreate
from parrotrouter.auth.keystore import KeyStore
from parrotrouter.auth.permissions import Policy
from parrotrouter.auth.principal import Principal
from parrotrouter.errors import InsufficientCredits
from parrotrouter.store.db import create_engine, database_url, migrate
from parrotrouter.store.schema import accounts

BOUND, PRECISE = 1_000_000, 400_000  # nano-dollars: the cheap bound, the precise count
DAY = Decimal("0.05")


async def test_cheap_first_leases_under_concurrency_and_cancellation(tmp_path: Path) -> None:
    engine = create_engine(database_url(None, tmp_path))
    await migrate(engine)
    shown, _ = await KeyStore(engine, b"s" * 32).create(KeyCreate(name="t", credits=Decimal("1")))
    principal = Principal(key_id=shown["id"], name="t", account_id=shown["account_id"],
                          policy=Policy(max_cost_per_day=DAY))
    credits = CreditManager(engine)
    rng = random.Random(7)
    held: list[Reservation] = []
    kinds: set[int] = set()

    async def precise() -> int:
        await asyncio.sleep(0)
        return PRECISE

    async def one() -> None:
        try:
            res = await credits.reserve_nanos(principal, BOUND, precise)
        except InsufficientCredits:
            return
        assert res is not None
        held.append(res)
        kinds.add(res.nanos)

    for _round in range(6):
        tasks = [asyncio.create_task(one()) for _ in range(60)]
        for _ in range(rng.randint(0, 20)):
            await asyncio.sleep(0)
            rng.choice(tasks).cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        buckets = list(credits.buckets.values())
        for bucket in buckets:  # every hold is a live reservation's, none left by a refusal or cancel
            assert bucket.in_flight_nanos == sum(r.nanos for r in held if bucket in r.buckets), bucket.name
            assert bucket.in_flight_nanos <= bucket.lease_nanos
        day = next(b for b in buckets if b.kind == "day")
        assert sum(r.nanos for r in held) <= int(DAY.scaleb(9))
        settlements = [(r, PRECISE // 2) for r in held[: len(held) // 2]]
        async with engine.begin() as conn:
            await credits.settle_nanos_in(conn, settlements)
        credits.settled_nanos(settlements)
        del held[: len(held) // 2]
        assert day.in_flight_nanos == sum(r.nanos for r in held)
    async with engine.connect() as conn:
        leased = await conn.scalar(sa.select(accounts.c.leased).where(accounts.c.id == principal.account_id))
    acct = next(b for b in credits.buckets.values() if b.kind == "acct")
    assert leased == acct.lease  # the database and memory agree on the account's lease
    assert kinds == {BOUND, PRECISE}  # both the cheap first leases and the precise ones were taken
    await engine.dispose()
