"""The ledger writer against real SQLite and PostgreSQL databases: a row the database refuses is
set aside while every other row is written and settled; an unreachable database keeps rows
queued and the ledger unhealthy; rows the database cannot take at shutdown are saved and written
at the next start, never charged twice."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

import parrotrouter.accounting.ledger as ledger_module
from parrotrouter.accounting.credits import CreditManager
from parrotrouter.accounting.ledger import Ledger, insert_rows
from parrotrouter.accounting.usage import UsageRecord
from parrotrouter.auth.key_schema import KeyCreate
from parrotrouter.auth.keystore import KeyStore
from parrotrouter.auth.principal import Principal
from parrotrouter.store.db import create_engine, migrate
from parrotrouter.store.db import database_url as async_url
from parrotrouter.store.schema import accounts, usage, usage_rejects

BALANCE = Decimal(10)
RESERVED = Decimal("0.001")  # each request's reservation
COST = Decimal("0.0002")  # each request's real cost


async def _reserved() -> Decimal:
    return RESERVED


@dataclass
class Books:
    engine: AsyncEngine
    credits: CreditManager
    principal: Principal
    home: Path


@pytest.fixture
async def books(database_url: str, tmp_path: Path) -> AsyncIterator[Books]:
    engine = create_engine(async_url(database_url, tmp_path))
    await migrate(engine)
    shown, _ = await KeyStore(engine, b"s" * 32).create(KeyCreate(name="t", credits=BALANCE))
    principal = Principal(key_id=shown["id"], name="t", account_id=shown["account_id"])
    home = tmp_path / "home"
    home.mkdir()
    yield Books(engine, CreditManager(engine), principal, home)
    await engine.dispose()


async def admitted(books: Books, n: int, credits: CreditManager | None = None, **kw: object) -> list[UsageRecord]:
    """Records of n admitted requests (credits reserved), as the request path hands them over."""
    out = []
    for i in range(n):
        rec = UsageRecord(id=f"gen-{os.urandom(6).hex()}-{i}", endpoint="chat.completions",
                          requested_model="gpt-4o-mini", key_id=books.principal.key_id,
                          account_id=books.principal.account_id, served_model="gpt-4o-mini", provider="fake",
                          deployment="fake/gpt-4o-mini", prompt_tokens=10, completion_tokens=20, cost=COST,
                          user=f"u{i}", latency_ms=1.0, finalized=True, **kw)  # type: ignore[arg-type]
        rec.reservation = await (credits or books.credits).reserve(books.principal, RESERVED, _reserved)
        out.append(rec)
    return out


async def scalar(books: Books, query: sa.Executable) -> object:
    async with books.engine.connect() as conn:
        return await conn.scalar(query)


async def balance(books: Books) -> Decimal:
    value = await scalar(books, sa.select(accounts.c.balance).where(accounts.c.id == books.principal.account_id))
    assert isinstance(value, Decimal)
    return value


async def ids_in(books: Books, table: sa.Table, column: str) -> set[str]:
    async with books.engine.connect() as conn:
        return set((await conn.execute(sa.select(table.c[column]))).scalars())


def in_flight(credits: CreditManager) -> Decimal:
    return sum((b.in_flight for b in credits.buckets.values()), Decimal(0))


async def refuse_user(books: Books, value: str) -> None:
    """A rule in the database that refuses one value (an operator's CHECK, a trigger)."""
    async with books.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.exec_driver_sql(f"""CREATE TRIGGER refuse BEFORE INSERT ON usage WHEN NEW."user" = '{value}'
                                           BEGIN SELECT RAISE(ABORT, 'refused by rule'); END""")
        else:
            await conn.exec_driver_sql(f"""ALTER TABLE usage ADD CONSTRAINT refuse CHECK ("user" <> '{value}')""")


async def move_usage_table(books: Books, away: bool) -> None:
    """Make every ledger write fail (as when the database cannot take them), or undo it."""
    old, new = ("usage", "usage_away") if away else ("usage_away", "usage")
    async with books.engine.begin() as conn:
        await conn.exec_driver_sql(f"ALTER TABLE {old} RENAME TO {new}")


async def test_a_refused_row_is_set_aside_and_every_other_row_written_and_settled(
        books: Books, caplog: pytest.LogCaptureFixture) -> None:
    await refuse_user(books, "poison")
    ledger = Ledger(books.engine, books.credits, strict=True)
    batch = await admitted(books, 50)
    batch[17].user = "poison"
    batch[30].status = {"not": "an int"}  # type: ignore[assignment]  # a bug's value: the driver cannot bind it
    batch[41].prompt_tokens = 2**70  # out of any integer column: clamped, written
    for rec in batch:
        ledger.record(rec)
    with caplog.at_level(logging.ERROR, logger="parrotrouter.ledger"):
        await ledger.flush()  # strict mode: a refused row does not raise
    refused = {batch[17].id, batch[30].id}
    assert await ids_in(books, usage, "id") == {r.id for r in batch} - refused
    assert await ids_in(books, usage_rejects, "generation_id") == refused
    async with books.engine.connect() as conn:
        rejects = {r.generation_id: r for r in (await conn.execute(sa.select(usage_rejects))).all()}
    poisoned = orjson.loads(rejects[batch[17].id].record)
    assert poisoned["user"] == "poison" and poisoned["cost"] == str(COST) and poisoned["reservation"]["amount"]
    assert "refuse" in rejects[batch[17].id].error.lower()
    assert await scalar(books, sa.select(usage.c.prompt_tokens).where(usage.c.id == batch[41].id)) == 2**31 - 1
    # Every request is charged, the refused ones included; every reservation is released.
    assert await balance(books) == BALANCE - 50 * COST
    assert in_flight(books.credits) == 0
    health = ledger.health()
    assert health["ok"] and health["rejected"] == 2 and health["written"] == 48 and not health["failing"]
    assert health["pending"] == 0 and not ledger.queue
    assert any("2 row(s) refused by the database were set aside" in r.getMessage() for r in caplog.records)
    # The next batch goes in whole.
    for rec in await admitted(books, 5):
        ledger.record(rec)
    await ledger.flush()
    assert ledger.health()["written"] == 53 and ledger.rejected == 2


async def test_an_unreachable_database_keeps_rows_and_fails_health_until_it_recovers(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(books.engine, books.credits)
    strict = Ledger(books.engine, books.credits, strict=True)
    batch = await admitted(books, 20)
    for rec in batch[:19]:
        ledger.record(rec)
    strict.record(batch[19])
    await move_usage_table(books, away=True)
    await ledger.flush()
    await ledger.flush()
    with pytest.raises(sa.exc.DBAPIError):
        await strict.flush()  # strict mode raises when rows could not be written
    health = ledger.health()
    assert not health["ok"] and health["failing"] and health["pending"] == 19 and health["failures"] == 2
    assert health["rejected"] == 0 and health["last_error"]
    assert len(strict.queue) == 1
    assert await ids_in(books, usage_rejects, "generation_id") == set()  # an outage dead-letters nothing
    assert await balance(books) == BALANCE and in_flight(books.credits) == 20 * RESERVED
    await move_usage_table(books, away=False)
    await ledger.flush()
    await strict.flush()
    assert ledger.health()["ok"] and not ledger.failing and ledger.written == 19
    assert await ids_in(books, usage, "id") == {r.id for r in batch}
    assert await balance(books) == BALANCE - 20 * COST and in_flight(books.credits) == 0
    # A backlog past the threshold fails health as well, with writes succeeding.
    monkeypatch.setattr(ledger_module, "READY_BACKLOG", 3)
    for rec in await admitted(books, 4):
        ledger.record(rec)
    assert not ledger.health()["ok"]
    await ledger.flush()
    assert ledger.health()["ok"]


async def test_an_outage_ending_in_the_middle_of_a_flush_sets_nothing_aside(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table comes back while a failed batch is being written in halves: the single rows that
    failed before it did are rows of the outage, not rows the database refuses (a race the e2e
    ledger test met on PostgreSQL)."""
    ledger = Ledger(books.engine, books.credits)
    batch = await admitted(books, 8)
    for rec in batch:
        ledger.record(rec)
    await move_usage_table(books, away=True)
    commit = ledger._commit
    failed: list[int] = []

    async def commit_then_recover(part: list[UsageRecord], done: set[int]) -> None:
        try:
            await commit(part, done)
        except Exception:
            failed.append(len(part))
            if len(failed) == 6:  # single rows have failed by now; the database recovers
                await move_usage_table(books, away=False)
            raise

    monkeypatch.setattr(ledger, "_commit", commit_then_recover)
    await ledger.flush()
    if books.engine.dialect.name == "sqlite":  # "no such table" is an outage there: nothing halved
        assert failed == [8] and len(ledger.queue) == 8
        await move_usage_table(books, away=False)
        await ledger.flush()
    else:
        assert 1 in failed  # the race happened: single rows failed before the table came back
    assert await ids_in(books, usage_rejects, "generation_id") == set()
    assert await ids_in(books, usage, "id") == {r.id for r in batch}
    assert ledger.rejected == 0 and ledger.health()["ok"] and not ledger.queue
    assert await balance(books) == BALANCE - 8 * COST and in_flight(books.credits) == 0


async def test_a_record_that_cannot_be_completed_is_set_aside_or_raises_in_strict_mode(books: Books) -> None:
    def broken_count() -> tuple[int, int]:
        raise ZeroDivisionError("a tokenizer bug")

    for strict in (False, True):
        ledger = Ledger(books.engine, books.credits, strict=strict)
        batch = await admitted(books, 3)
        batch[1].finalized, batch[1].deferred_count = False, broken_count
        for rec in batch:
            ledger.record(rec)
        if strict:
            with pytest.raises(ZeroDivisionError):
                await ledger.flush()
            assert len(ledger.queue) == 3  # nothing lost
        else:
            await ledger.flush()
            assert ledger.rejected == 1 and ledger.written == 2
            assert batch[1].id in await ids_in(books, usage_rejects, "generation_id")


async def test_a_row_written_by_a_commit_whose_answer_was_lost_is_not_charged_twice(books: Books) -> None:
    ledger = Ledger(books.engine, books.credits, strict=True)
    batch = await admitted(books, 6)
    async with books.engine.begin() as conn:  # the commit happened; the writer never heard of it
        await insert_rows(conn, batch[:2])
        await books.credits.settle_in(conn, [(r.reservation, r.cost) for r in batch[:2] if r.reservation])
    for rec in batch:
        ledger.record(rec)
    await ledger.flush()
    assert await ids_in(books, usage, "id") == {r.id for r in batch}
    assert await ids_in(books, usage_rejects, "generation_id") == set()
    assert await balance(books) == BALANCE - 6 * COST and in_flight(books.credits) == 0


async def test_rows_the_database_cannot_take_at_shutdown_are_saved_and_written_at_the_next_start(
        books: Books, caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(books.engine, books.credits, home=books.home, interval=0.05)
    await ledger.start()
    batch = await admitted(books, 5)
    await move_usage_table(books, away=True)
    for rec in batch:
        ledger.record(rec)
    with caplog.at_level(logging.ERROR, logger="parrotrouter.ledger"):
        await ledger.stop()
    await books.credits.stop()
    files = list(books.home.glob("ledger-unwritten-*.jsonl"))
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    saved = files[0].read_bytes()
    assert len(saved.splitlines()) == 5 and not ledger.queue
    assert any("5 usage rows could not be written at shutdown: saved to" in r.getMessage() for r in caplog.records)
    await move_usage_table(books, away=False)

    for _ in range(2):  # the second start finds the file again (as if it had not been removed): no double charge
        credits = CreditManager(books.engine)
        restarted = Ledger(books.engine, credits, home=books.home)
        await restarted.start()
        assert not list(books.home.glob("ledger-unwritten-*.jsonl"))
        assert await ids_in(books, usage, "id") == {r.id for r in batch}
        assert await balance(books) == BALANCE - 5 * COST
        await restarted.stop()
        files[0].write_bytes(saved)
    files[0].unlink()
