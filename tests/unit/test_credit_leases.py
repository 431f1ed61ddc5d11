"""Credit leases against a real SQLite database: a busy key rarely goes to the database, and the
balance still bounds what is admitted."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from parrotrouter.accounting.credits import LEASE_REQUESTS, CreditManager, Reservation
from parrotrouter.auth.key_schema import KeyCreate
from parrotrouter.auth.keystore import KeyStore
from parrotrouter.auth.principal import Principal
from parrotrouter.errors import InsufficientCredits
from parrotrouter.store.db import create_engine, database_url, migrate
from parrotrouter.store.schema import accounts

COST = Decimal("0.0001")  # the maximum cost of each request below


async def _cost() -> Decimal:
    return COST


async def _manager(tmp_path: Path, balance: str) -> tuple[CreditManager, Principal]:
    engine = create_engine(database_url(None, tmp_path))
    await migrate(engine)
    shown, _ = await KeyStore(engine, b"s" * 32).create(KeyCreate(name="t", credits=Decimal(balance)))
    principal = Principal(key_id=shown["id"], name="t", account_id=shown["account_id"])
    return CreditManager(engine), principal


async def _leased(credits: CreditManager, principal: Principal) -> Decimal:
    async with credits.engine.connect() as conn:
        leased = await conn.scalar(sa.select(accounts.c.leased).where(accounts.c.id == principal.account_id))
    assert isinstance(leased, Decimal)
    return leased


async def _settle(credits: CreditManager, reservations: list[Reservation], cost: Decimal) -> None:
    """What the ledger writer does with each batch."""
    settlements = [(r, cost) for r in reservations]
    async with credits.engine.begin() as conn:
        await credits.settle_in(conn, settlements)
    credits.settled(settlements)
    reservations.clear()


async def test_a_busy_key_extends_its_lease_rarely(tmp_path: Path) -> None:
    credits, principal = await _manager(tmp_path, "1000")
    open_: list[Reservation] = []
    for i in range(5000):
        reservation = await credits.reserve(principal, COST, _cost)
        assert reservation is not None
        open_.append(reservation)
        if i % 50 == 49:  # a few requests in flight, the rest settled in batches
            await _settle(credits, open_, COST / 2)
    # A fixed lease of LEASE_REQUESTS needs one round trip per ~20 requests; doubling, a handful.
    assert credits.extensions <= 12, credits.extensions
    bucket = credits.buckets[f"acct:{principal.account_id}"]
    assert bucket.lease_requests > LEASE_REQUESTS
    # What this process holds is recorded in the database, so other processes cannot spend it.
    assert await _leased(credits, principal) == bucket.lease >= bucket.in_flight
    async with credits.engine.connect() as conn:
        balance = await conn.scalar(sa.select(accounts.c.balance).where(accounts.c.id == principal.account_id))
    assert balance == 1000 - 5000 * COST / 2
    await credits.engine.dispose()


async def test_growing_leases_never_admit_beyond_the_balance(tmp_path: Path) -> None:
    credits, principal = await _manager(tmp_path, "0.25")  # covers 2500 requests of COST
    admitted = 0
    with pytest.raises(InsufficientCredits):
        for _ in range(3000):
            await credits.reserve(principal, COST, _cost)
            admitted += 1
    assert admitted == 2500
    assert await _leased(credits, principal) == Decimal("0.25")
    await credits.engine.dispose()
