"""USD credits: reserve a request's maximum cost before it goes upstream, settle the real cost after.

No database round trip for an ordinary request: each gateway process holds a *lease* — money set
aside in the database for it (`accounts.leased` plus one `credit_leases` row per process) — and
admits requests against that lease in memory. Only when a lease runs short does the process go to
the database, where one conditional UPDATE (`... WHERE balance - leased >= :grant`) takes more; so
under any concurrency, across processes and instances, admitted reservations never exceed the
balance. When the balance is tight, leases are taken request by request, which makes admission
exact. The ledger writer settles real costs in batches (balance and lease both shrink by what was
spent); idle leases are given back, and leases of processes that stopped renewing are reclaimed.
A key's `max_cost_per_day` is a second budget handled the same way (`key_days`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..auth.principal import Principal
from ..errors import InsufficientCredits
from ..store.schema import credit_leases, key_days, to_nanos
from ..store.sql import insert_ignore

log = logging.getLogger("parrotrouter.credits")
ZERO = Decimal(0)
LEASE_REQUESTS = 20  # a lease covers this many requests like the current one when money allows
# ... doubled while leases run out within LEASE_PERIOD of each other (a busy key extends its lease
# about once a second, not once every 20 requests), back to LEASE_REQUESTS after a quiet spell.
LEASE_REQUESTS_MAX = 4096
LEASE_PERIOD = 1.0
LEASE_TTL = timedelta(seconds=30)  # a process that has not renewed its leases for this long is gone
IDLE_RELEASE = 10.0  # seconds without use after which the unused part of a lease is given back


def ceil_nanos(value: Decimal) -> Decimal:
    """`value` rounded up to a whole nano-dollar (the unit the database books)."""
    return value.scaleb(9).to_integral_value(ROUND_CEILING).scaleb(-9)


def nanos_up(value: Decimal) -> int:
    """`value` in whole nano-dollars, rounded up."""
    return int(value.scaleb(9).to_integral_value(ROUND_CEILING))


def usd(nanos: int) -> Decimal:
    """Nano-dollars as USD, exact (nine decimal places, as `ceil_nanos` writes them)."""
    return Decimal(nanos).scaleb(-9)


def utc_day(now: float | None = None) -> str:
    """The UTC date as YYYY-MM-DD (cached until the next midnight: it is asked on every request)."""
    now = time.time() if now is None else now
    cached = _DAY_CACHE
    if cached[0] <= now < cached[1]:
        return str(cached[2])
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = day.timestamp()
    _DAY_CACHE[:] = [start, start + 86400, day.strftime("%Y-%m-%d")]
    return str(_DAY_CACHE[2])


_DAY_CACHE: list[Any] = [0.0, 0.0, ""]  # [start, end, "YYYY-MM-DD"]: a pure function's memo


@dataclasses.dataclass(eq=False)
class Bucket:
    """One budget as this process sees it."""

    name: str  # acct:<account id> | day:<key id>:<YYYY-MM-DD>
    kind: str
    ref: str  # account id, or key id
    day: str | None = None
    limit: Decimal | None = None  # for day buckets: the key's max_cost_per_day
    # Money in whole nano-dollars, the unit the database books: integer arithmetic on the request
    # path, exact like the database's (USD as Decimal only at the edges: `lease`, `in_flight`).
    lease_nanos: int = 0
    in_flight_nanos: int = 0
    last_used: float = 0.0
    # The budget could not grant a lease for many requests: admit request by request, exactly
    # (a new budget is not known to be tight: its first lease is asked for with the cheap bound).
    tight: bool = False
    lease_requests: int = LEASE_REQUESTS  # how many requests the next generous extension covers
    extended_at: float = -1e9  # monotonic time of the last extension
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)

    @property
    def lease(self) -> Decimal:
        """USD this process holds of the budget."""
        return usd(self.lease_nanos)

    @property
    def in_flight(self) -> Decimal:
        """USD reserved by requests not settled yet."""
        return usd(self.in_flight_nanos)


@dataclasses.dataclass(slots=True)
class Reservation:
    nanos: int  # the amount held, in nano-dollars
    buckets: tuple[Bucket, ...]
    account_id: str
    key_id: str
    day: str

    @property
    def amount(self) -> Decimal:
        """The amount held, in USD."""
        return usd(self.nanos)


class CreditManager:
    def __init__(self, engine: AsyncEngine, holder: str | None = None) -> None:
        self.engine = engine
        self.holder = holder or f"{os.getpid()}-{os.urandom(6).hex()}"
        self.buckets: dict[str, Bucket] = {}
        self.extensions = 0  # database round trips taken to grow a lease
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ admission
    def _buckets_for(self, principal: Principal, day: str) -> list[Bucket]:
        assert principal.account_id is not None
        name = f"acct:{principal.account_id}"
        out = [self.buckets.get(name) or self.buckets.setdefault(
            name, Bucket(name, "acct", principal.account_id))]
        limit = principal.policy.max_cost_per_day
        if limit is not None:
            name = f"day:{principal.key_id}:{day}"
            bucket = self.buckets.get(name) or self.buckets.setdefault(
                name, Bucket(name, "day", principal.key_id, day=day, limit=limit))
            bucket.limit = limit
            out.append(bucket)
        return out

    async def reserve(self, principal: Principal, bound: Decimal,
                      precise: Callable[[], Awaitable[Decimal]]) -> Reservation | None:
        """Reserve the request's maximum cost; 402 when the budget cannot cover it.

        `bound` is a cheap upper bound used when the lease has room; `precise` (the tokenizer's
        estimate) is computed only when the lease is short. The master key has no budget."""

        async def precise_nanos() -> int:
            return nanos_up(await precise())

        return await self.reserve_nanos(principal, nanos_up(bound), precise_nanos)

    async def reserve_nanos(self, principal: Principal, bound: int,
                            precise: Callable[[], Awaitable[int]]) -> Reservation | None:
        """`reserve`, the amounts in whole nano-dollars (rounded up by the caller: the database
        books nano-dollars, and memory must agree with it exactly — a reservation rounded down
        could let settlements pass the balance)."""
        account_id = principal.account_id
        if principal.is_master or account_id is None:
            return None
        day = utc_day()
        buckets = self._buckets_for(principal, day)
        if all(not b.tight and b.in_flight_nanos + bound <= b.lease_nanos for b in buckets):
            now = time.monotonic()
            for b in buckets:
                b.in_flight_nanos += bound
                b.last_used = now
            return Reservation(bound, tuple(buckets), account_id, principal.key_id, day)
        # Not known to be tight: the cheap bound, if every lease can grow generously to cover it
        # (no tokenizer is loaded for a budget with room); else the budget is tight, and the
        # request is counted precisely and admitted exactly.
        if not any(b.tight for b in buckets) and await self._take_all(buckets, bound, bound, cheap=True):
            return Reservation(bound, tuple(buckets), account_id, principal.key_id, day)
        amount = await precise()
        await self._take_all(buckets, amount, bound)
        return Reservation(amount, tuple(buckets), account_id, principal.key_id, day)

    async def _take_all(self, buckets: Iterable[Bucket], amount: int, bound: int, cheap: bool = False) -> bool:
        """Take `amount` from every bucket, or from none (False: a cheap take found a bucket tight;
        a refusal raises)."""
        taken: list[Bucket] = []
        try:
            for bucket in buckets:
                if not await self._take(bucket, amount, bound, cheap):
                    for earlier in taken:
                        earlier.in_flight_nanos -= amount
                    return False
                taken.append(bucket)
        except BaseException:  # refused, or cancelled (the client left): give back what was taken
            for bucket in taken:
                bucket.in_flight_nanos -= amount
            raise
        return True

    async def _take(self, bucket: Bucket, amount: int, bound: int, cheap: bool = False) -> bool:
        """Book `amount` in the bucket, growing its lease when short. `cheap`: only a generous
        extension will do; the bucket is marked tight and nothing is booked (False) otherwise."""
        async with bucket.lock:
            if cheap and bucket.tight:  # found tight meanwhile
                return False
            if bucket.in_flight_nanos + amount > bucket.lease_nanos:
                short = bucket.in_flight_nanos + amount - bucket.lease_nanos
                # Room for lease_requests more, plus as much again as is in flight (concurrency).
                self._pace(bucket)
                generous = short + max(bound, amount) * bucket.lease_requests + bucket.in_flight_nanos
                # Shielded: a lease the database granted is booked here too, even if the request
                # is cancelled meanwhile (else that money would stay leased and unused).
                if await asyncio.shield(self._grow(bucket, generous)):
                    bucket.tight = False
                elif cheap:
                    bucket.tight = True
                    return False
                elif await asyncio.shield(self._grow(bucket, short)):
                    bucket.tight = True
                else:
                    bucket.tight = True
                    raise self._refusal(bucket)
            bucket.in_flight_nanos += amount
            bucket.last_used = time.monotonic()
            return True

    @staticmethod
    def _pace(bucket: Bucket) -> None:
        now = time.monotonic()
        since = now - bucket.extended_at
        if since < LEASE_PERIOD:
            bucket.lease_requests = min(bucket.lease_requests * 2, LEASE_REQUESTS_MAX)
        elif since > 10 * LEASE_PERIOD:
            bucket.lease_requests = LEASE_REQUESTS
        bucket.extended_at = now

    @staticmethod
    def _refusal(bucket: Bucket) -> InsufficientCredits:
        if bucket.kind == "day":
            return InsufficientCredits(f"This API key's daily cost limit (${bucket.limit}) is reached "
                                       "for today (UTC).")
        return InsufficientCredits("Insufficient credits: the balance cannot cover this request's maximum cost "
                                   "(prompt plus max_tokens). Add credits or lower max_tokens.")

    async def _grow(self, bucket: Bucket, grant: int) -> bool:
        if not await self._extend(bucket, grant):
            return False
        bucket.lease_nanos += grant
        return True

    async def _extend(self, bucket: Bucket, grant: int) -> bool:
        self.extensions += 1
        g = grant
        async with self.engine.begin() as conn:
            if bucket.kind == "acct":
                result = await conn.execute(
                    sa.text("UPDATE accounts SET leased = leased + :g WHERE id = :id AND balance - leased >= :g"),
                    {"g": g, "id": bucket.ref})
            else:
                assert bucket.day is not None and bucket.limit is not None
                await insert_ignore(conn, key_days, {"key_id": bucket.ref, "day": bucket.day,
                                                     "spent": ZERO, "leased": ZERO})
                result = await conn.execute(
                    sa.text("UPDATE key_days SET leased = leased + :g WHERE key_id = :k AND day = :d "
                            "AND :limit - spent - leased >= :g"),
                    {"g": g, "k": bucket.ref, "d": bucket.day, "limit": to_nanos(bucket.limit)})
            if result.rowcount != 1:
                return False
            await self._add_lease_row(conn, bucket.name, g)
        return True

    async def _add_lease_row(self, conn: AsyncConnection, bucket: str, nanos: int) -> None:
        now = datetime.now(UTC)
        await insert_ignore(conn, credit_leases, {"bucket": bucket, "holder": self.holder, "amount": ZERO,
                                                  "renewed_at": now})
        await conn.execute(sa.text("UPDATE credit_leases SET amount = amount + :n, renewed_at = :now "
                                   "WHERE bucket = :b AND holder = :h"),
                           {"n": nanos, "now": now, "b": bucket, "h": self.holder})

    # ------------------------------------------------------------------ settlement (ledger writer)
    async def settle_in(self, conn: AsyncConnection, settlements: Iterable[tuple[Reservation, Decimal]]) -> None:
        """Apply real costs inside the ledger writer's transaction: each budget shrinks by what was
        spent, and so does the lease that covered it."""
        await self.settle_nanos_in(conn, [(res, to_nanos(cost)) for res, cost in settlements])

    async def settle_nanos_in(self, conn: AsyncConnection, settlements: Iterable[tuple[Reservation, int]]) -> None:
        """`settle_in`, each cost in nano-dollars (rounded as the ledger row's)."""
        per_account: dict[str, list[int]] = {}
        per_day: dict[tuple[str, str], list[int]] = {}
        per_lease: dict[str, int] = {}
        for res, spent in settlements:
            used = min(spent, res.nanos)  # the reservation is whole nano-dollars: as min() of the USD
            acc = per_account.setdefault(res.account_id, [0, 0])
            acc[0] += spent
            acc[1] += used
            for bucket in res.buckets:
                per_lease[bucket.name] = per_lease.get(bucket.name, 0) + used
                if bucket.kind == "day":
                    totals = per_day.setdefault((bucket.ref, res.day), [0, 0])
                    totals[0] += spent
                    totals[1] += used
        for account_id, (spent, used) in per_account.items():
            await conn.execute(sa.text("UPDATE accounts SET balance = balance - :s, leased = leased - :u "
                                       "WHERE id = :id"), {"s": spent, "u": used, "id": account_id})
        for (key_id, day), (spent, used) in per_day.items():
            await conn.execute(sa.text("UPDATE key_days SET spent = spent + :s, leased = leased - :u "
                                       "WHERE key_id = :k AND day = :d"),
                               {"s": spent, "u": used, "k": key_id, "d": day})
        for name, used in per_lease.items():
            await conn.execute(sa.text("UPDATE credit_leases SET amount = amount - :u WHERE bucket = :b "
                                       "AND holder = :h"), {"u": used, "b": name, "h": self.holder})

    def settled(self, settlements: Iterable[tuple[Reservation, Decimal]]) -> None:
        """After the settling transaction committed: release the in-memory reservations."""
        self.settled_nanos([(res, to_nanos(cost)) for res, cost in settlements])

    def settled_nanos(self, settlements: Iterable[tuple[Reservation, int]]) -> None:
        """`settled`, each cost in nano-dollars."""
        for res, spent in settlements:
            held = res.nanos
            consumed = spent if spent < held else held  # as the database booked it
            for bucket in res.buckets:
                bucket.in_flight_nanos -= held
                bucket.lease_nanos -= consumed

    # ------------------------------------------------------------------ housekeeping
    async def start(self, interval: float = 5.0) -> None:
        self._task = asyncio.create_task(self._housekeeping(interval), name="credit-leases")

    async def _housekeeping(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.maintain()
            except Exception:
                log.exception("credit lease housekeeping failed")

    def health(self) -> dict[str, Any]:
        return {"budgets": len(self.buckets), "lease_extensions": self.extensions}

    async def maintain(self) -> None:
        """Renew this process's leases, give back idle ones, reclaim those of vanished processes."""
        now = time.monotonic()
        today = utc_day()
        for bucket in list(self.buckets.values()):
            idle = now - bucket.last_used > IDLE_RELEASE or (bucket.day is not None and bucket.day != today)
            excess = bucket.lease_nanos - bucket.in_flight_nanos
            if idle and excess > 0:
                await self._release(bucket, excess)
            if bucket.lease_nanos <= 0 and bucket.in_flight_nanos <= 0 and idle:
                self.buckets.pop(bucket.name, None)
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(credit_leases).where(credit_leases.c.holder == self.holder)
                               .values(renewed_at=datetime.now(UTC)))
        await self.reclaim_dead()

    async def _release(self, bucket: Bucket, amount: int) -> None:
        async with bucket.lock:
            amount = min(amount, bucket.lease_nanos - bucket.in_flight_nanos)
            if amount <= 0:
                return
            bucket.lease_nanos -= amount  # shrink locally first: admissions never use what is being returned
            try:
                async with self.engine.begin() as conn:
                    await self._return(conn, bucket.name, self.holder, amount)
            except Exception:
                bucket.lease_nanos += amount
                raise

    @staticmethod
    async def _unlease(conn: AsyncConnection, bucket: str, nanos: int) -> None:
        """Take `nanos` off a budget's leased total."""
        kind, _, rest = bucket.partition(":")
        if kind == "acct":
            await conn.execute(sa.text("UPDATE accounts SET leased = leased - :n WHERE id = :id"),
                               {"n": nanos, "id": rest})
        else:
            key_id, _, day = rest.partition(":")
            await conn.execute(sa.text("UPDATE key_days SET leased = leased - :n WHERE key_id = :k AND day = :d"),
                               {"n": nanos, "k": key_id, "d": day})

    async def _return(self, conn: AsyncConnection, bucket: str, holder: str, nanos: int) -> None:
        await self._unlease(conn, bucket, nanos)
        await conn.execute(sa.text("UPDATE credit_leases SET amount = amount - :n WHERE bucket = :b AND holder = :h"),
                           {"n": nanos, "b": bucket, "h": holder})

    async def reclaim_dead(self) -> None:
        cutoff = datetime.now(UTC) - LEASE_TTL
        async with self.engine.begin() as conn:
            rows = (await conn.execute(sa.select(credit_leases).where(credit_leases.c.renewed_at < cutoff)
                                       .where(credit_leases.c.holder != self.holder))).all()
            for row in rows:
                deleted = await conn.execute(sa.delete(credit_leases).where(credit_leases.c.bucket == row.bucket)
                                             .where(credit_leases.c.holder == row.holder))
                if deleted.rowcount == 1 and row.amount > 0:
                    await self._unlease(conn, row.bucket, to_nanos(row.amount))

    async def stop(self) -> None:
        """Give every unused lease back (clean shutdown, after the ledger's last flush)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for bucket in list(self.buckets.values()):
            excess = bucket.lease_nanos - bucket.in_flight_nanos
            if excess > 0:
                try:
                    await self._release(bucket, excess)
                except Exception:
                    log.exception("returning the lease of %s failed", bucket.name)
        async with self.engine.begin() as conn:
            await conn.execute(sa.delete(credit_leases).where(credit_leases.c.holder == self.holder)
                               .where(credit_leases.c.amount <= 0))

