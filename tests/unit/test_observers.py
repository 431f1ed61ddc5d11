"""The observers' seam (observe/): each record reaches `completed` exactly once with its final
tokens and cost — through the ledger writer (also when a flush failed and is tried again), or,
with accounting off, through the observers' own loop — and an observer that raises never stops
the others (in strict mode it raises)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from parrotrouter.accounting.credits import CreditManager
from parrotrouter.accounting.ledger import Ledger
from parrotrouter.accounting.usage import UsageRecord
from parrotrouter.auth.principal import Principal
from parrotrouter.observe import Observers
from parrotrouter.pricing import ModelPricing
from parrotrouter.serving.context import RequestContext
from parrotrouter.store.schema import usage
from tests.unit.test_ledger_writer import Books, admitted, books, ids_in, move_usage_table  # noqa: F401

CTX = RequestContext(Principal(key_id=None, name="t", account_id=None))


class Watcher:
    wants_completed = True

    def __init__(self) -> None:
        self.finished_ids: list[str] = []
        self.completed_ids: list[str] = []
        self.costs: list[Decimal] = []

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        self.finished_ids.append(record.id)

    def completed(self, records: list[UsageRecord]) -> None:
        for rec in records:
            assert rec.finalized
            self.completed_ids.append(rec.id)
            self.costs.append(rec.cost)

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class Broken(Watcher):
    def completed(self, records: list[UsageRecord]) -> None:
        raise RuntimeError("observer bug")

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        raise RuntimeError("observer bug")


async def test_completed_records_reach_observers_once_through_the_ledger_even_after_a_failed_flush(
        books: Books) -> None:  # noqa: F811
    from parrotrouter.accounting.ledger import Ledger

    watcher = Watcher()
    observers = Observers([watcher])
    ledger = Ledger(books.engine, books.credits, home=books.home)
    ledger.on_completed = observers.completed
    records = await admitted(books, 5)
    await move_usage_table(books, away=True)
    for rec in records:
        ledger.record(rec)
    await ledger.flush()  # fails: the rows stay queued, but they were completed
    assert ledger.failing
    await move_usage_table(books, away=False)
    await ledger.flush()
    assert not ledger.failing
    assert sorted(watcher.completed_ids) == sorted(r.id for r in records)


async def test_with_accounting_off_observers_complete_records_themselves() -> None:
    watcher = Watcher()
    observers = Observers([watcher])
    await observers.start(completes_itself=True)
    pricing = ModelPricing(prompt_mtok=Decimal("1"), completion_mtok=Decimal("2"))
    rec = UsageRecord(id="gen-1", endpoint="chat.completions", requested_model="m", pricing=pricing,
                      deferred_count=lambda: (1000, 500))
    observers.finished(rec, CTX)
    await observers.aclose()  # drains what waits
    assert watcher.finished_ids == ["gen-1"] and watcher.completed_ids == ["gen-1"]
    assert watcher.costs == [pricing.cost_of(1000, 500, 0, 0)] and watcher.costs[0] > 0


async def test_a_failing_observer_never_stops_the_others_and_raises_in_strict_mode() -> None:
    watcher = Watcher()
    observers = Observers([Broken(), watcher])
    rec = UsageRecord(id="gen-2", endpoint="chat.completions", requested_model="m", finalized=True)
    observers.finished(rec, CTX)
    observers.completed([rec])
    assert watcher.finished_ids == ["gen-2"] and watcher.completed_ids == ["gen-2"]
    strict = Observers([Broken()], strict=True)
    with pytest.raises(RuntimeError):
        strict.finished(rec, CTX)


def test_no_observer_costs_one_truth_test() -> None:
    assert not Observers()


async def test_rows_replayed_from_a_spill_file_are_observed_once_in_all(books: Books) -> None:  # noqa: F811
    """The observers (metrics, request log) saw the spilled rows in the process that spilled them;
    the next process writes them without counting them again, and counts those never seen."""
    seen = Watcher()
    ledger = Ledger(books.engine, books.credits, home=books.home, interval=0.05)
    await ledger.start()
    ledger.on_completed = Observers([seen]).completed  # as api/app.py sets it, after start()
    batch = await admitted(books, 3)
    await move_usage_table(books, away=True)
    for rec in batch:
        ledger.record(rec)
    await ledger.stop()  # completed (observed), then spilled
    await books.credits.stop()
    assert sorted(seen.completed_ids) == sorted(r.id for r in batch)
    unseen = (await admitted(books, 1))[0]  # spilled by a process without observers
    bare = Ledger(books.engine, CreditManager(books.engine), home=books.home, interval=0.05)
    bare.record(unseen)
    await bare.stop()
    await bare.credits.stop()

    again = Watcher()  # the next process starts while the database still refuses the rows
    restarted = Ledger(books.engine, CreditManager(books.engine), home=books.home, interval=0.05)
    await restarted.start()
    restarted.on_completed = Observers([again]).completed
    await move_usage_table(books, away=False)
    await restarted.flush()
    await restarted.stop()
    await restarted.credits.stop()
    assert await ids_in(books, usage, "id") == {r.id for r in [*batch, unseen]}
    assert again.completed_ids == [unseen.id]
