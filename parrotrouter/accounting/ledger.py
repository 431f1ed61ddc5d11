"""The usage ledger: one row per request, written off the request path by one writer in batches.

`record()` only appends to an in-memory queue. Every `interval` (200 ms) the writer takes what is
queued, completes the records (token counts deferred by the request path, costs), and writes rows
and credit settlements in one transaction. On SQLite the rows go in multi-row INSERTs of up to 512: the
driver runs in a thread and gives up the GIL at every statement step, so one step per row
(executemany) makes that thread fight the event loop for the GIL hundreds of times per batch
(measured: -22% throughput), while a few large steps do not.

One row must not stop the ledger for everyone. Values are cleaned for both databases
(`ledger_rows`); should the database still refuse a batch, it is written again in halves, so
every good row is written and settled, and a single row the database refuses for its data is set
aside in `usage_rejects` (its credits settled all the same), counted and logged. An unreachable
database is not a refusal: then the rows stay queued and are tried again with the next batch,
and `health()` reports the ledger as failing (so does a backlog past READY_BACKLOG). A clean
shutdown writes everything, or, if the database cannot take it, saves the rows to a file in the
data directory that the next start writes; a crash loses at most the current batch. A failed
write never fails a user's request (in strict mode, used by the tests, a write that could not be
done raises instead; a row set aside does not).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from itertools import chain
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..store.content import ContentLog
from ..store.schema import usage, usage_rejects
from .credits import CreditManager, Reservation
from .ledger_rows import (
    PG_INSERT,
    SQLITE_INSERTS,
    SQLITE_MAX_ROWS,
    record_from_json,
    record_json,
    row_of,
    row_view,
    text,
)
from .usage import UsageRecord

log = logging.getLogger("parrotrouter.ledger")
MAX_BACKLOG = 100_000  # beyond this, new records are dropped (counted and logged)
# /ready reports the ledger as failing past this backlog: 10 s of a busy worker (~2,000 req/s),
# 50 flush intervals; a healthy writer keeps the queue at one interval's worth.
READY_BACKLOG = 20_000
# Single rows refused for an unclassified reason, before any row of the flush was written, after
# which the flush stops: the database, not the rows, is then the likely problem.
DOUBT_LIMIT = 3
LOG_EVERY = 10.0  # seconds between log lines about the same failing writes
STOP_WAIT = 10.0  # seconds a shutdown waits for the batch being written
SPILL_GLOB = "ledger-unwritten-*.jsonl"
Settlement = tuple[Reservation, Decimal]

REFUSED, UNREACHABLE, UNKNOWN = "refused", "unreachable", "unknown"


def verdict(exc: BaseException) -> str:
    """Whether a failed write was refused for its values (a data or constraint error: the row is
    at fault), failed because the database cannot be reached or is busy (the rows are fine: try
    again later), or neither is clear."""
    for err in _causes(exc):
        state = getattr(err, "sqlstate", None)
        if isinstance(state, str) and len(state) == 5:
            if state[:2] in ("22", "23"):  # data exception, integrity constraint violation
                return REFUSED
            if state[:2] in ("08", "40", "53", "55", "57", "58"):  # connection, rollback, resources, shutdown
                return UNREACHABLE
            return UNKNOWN
        if isinstance(err, (sqlite3.IntegrityError, sqlite3.DataError)):
            return REFUSED
        if isinstance(err, sqlite3.OperationalError):  # locked, busy, disk full, cannot open, no table
            return UNREACHABLE
        if isinstance(err, sa.exc.DBAPIError) and err.connection_invalidated:
            return UNREACHABLE
        if isinstance(err, (OSError, sa.exc.TimeoutError)):  # connection refused or lost, pool timeout
            return UNREACHABLE
        if isinstance(err, (ValueError, TypeError, OverflowError, ArithmeticError)):  # the driver could not bind it
            return REFUSED
    return UNKNOWN


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    err: BaseException | None = exc
    while err is not None and len(seen) < 8 and all(err is not s for s in seen):
        seen.append(err)
        yield err
        err = getattr(err, "orig", None) or err.__cause__ or err.__context__


def describe(exc: BaseException, size: int = 1000) -> str:
    """An error as one line of text safe to store: the driver's message without SQLAlchemy's
    statement and parameters (those may run to a whole batch), cleaned (it may quote the value)."""
    message = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return text(f"{type(exc).__name__}: {message}", size) or type(exc).__name__


async def insert_rows(conn: AsyncConnection, batch: list[UsageRecord]) -> None:
    if conn.dialect.name == "sqlite":
        start = 0
        while start < len(batch):
            size = min(SQLITE_MAX_ROWS, 1 << ((len(batch) - start).bit_length() - 1))
            part = batch[start:start + size]
            await conn.exec_driver_sql(SQLITE_INSERTS[size],
                                       tuple(chain.from_iterable([row_of(rec, True) for rec in part])))
            start += size
    else:  # asyncpg pipelines executemany on the event loop itself
        await conn.exec_driver_sql(PG_INSERT, [row_of(rec, False) for rec in batch])


async def written_ids(conn: AsyncConnection, ids: list[str]) -> set[str]:
    """Which of these generation ids already have a ledger row."""
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        found.update((await conn.execute(sa.select(usage.c.id).where(usage.c.id.in_(chunk)))).scalars())
    return found


class Ledger:
    def __init__(self, engine: AsyncEngine, credits: CreditManager, *, interval: float = 0.2,
                 strict: bool = False, home: Path | None = None, content: ContentLog | None = None) -> None:
        self.engine = engine
        self.content = content  # stored prompts and answers, written after their rows (content_logging)
        self.credits = credits
        self.interval = interval
        self.strict = strict
        self.home = home  # where rows the database could not take at shutdown are saved
        self.queue: collections.deque[UsageRecord] = collections.deque()
        self.failures = 0  # flushes that kept rows for a later attempt
        self.written = 0
        self.rejected = 0  # rows set aside in usage_rejects
        self.dropped = 0  # records refused because the backlog was full
        self.failing = False  # the last flush kept rows: the database is not taking them
        self.last_error: str | None = None  # the class of the last write error (no values: /ready is public)
        self._logged_at = -LOG_EVERY
        self._writing: list[UsageRecord] = []  # the batch being written (still findable by `pending`)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # Told of each batch of completed records (tokens and cost final): the observers (metrics,
        # the request log). Never raises into the writer (Observers swallows, or raises in strict mode).
        self.on_completed: Callable[[list[UsageRecord]], None] | None = None
        # Told how long each write of a batch took, in seconds, and its rows (metrics).
        self.on_flushed: Callable[[float, int], None] | None = None

    @property
    def accepting(self) -> bool:
        """Whether a new request's row would be kept (requests are refused, not served unbilled,
        when the backlog is full)."""
        return len(self.queue) < MAX_BACKLOG

    def record(self, record: UsageRecord) -> None:
        if len(self.queue) >= MAX_BACKLOG:
            self.dropped += 1
            log.error("usage ledger backlog full (%d rows): dropping %s", MAX_BACKLOG, record.id)
            return
        self.queue.append(record)

    def pending(self, generation_id: str) -> UsageRecord | None:
        for rec in chain(self._writing, self.queue):
            if rec.id == generation_id:
                return rec
        return None

    @staticmethod
    def view(rec: UsageRecord) -> SimpleNamespace:
        """A queued record shaped like its ledger row (values cleaned as they will be written)."""
        with contextlib.suppress(Exception):  # a record that cannot be completed is shown as it is
            if not rec.counts_off_loop:  # a large count is the writer's, in a thread
                rec.finalize()
        return row_view(record_json(rec))

    async def start(self) -> None:
        await self.replay()
        self._task = asyncio.create_task(self._run(), name="usage-ledger")
        if self.content is not None:
            await self.content.start()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception:
                if self.strict:
                    raise
                log.exception("usage ledger writer failed")  # flush() keeps its rows; carry on

    # ------------------------------------------------------------------ writing
    async def flush(self) -> None:
        async with self._lock:
            if not self.queue:
                return
            batch = list(self.queue)
            self.queue.clear()
            self._writing = batch
            done: set[int] = set()  # id() of the records written or set aside
            began = time.perf_counter()
            try:
                error = await self._flush(batch, done)
            except BaseException as exc:  # cancelled, or a bug: nothing not yet written is lost
                self._keep(batch, done, exc)
                raise
            finally:
                self._writing = []
            if self.on_flushed is not None:
                self.on_flushed(time.perf_counter() - began, len(batch))
            if self.content is not None:
                await self.content.write([r for r in batch if r.content is not None and id(r) in done])
            if error is None:
                if self.failing:
                    log.warning("usage ledger writes again (%d rows written)", len(batch))
                self.failing, self.last_error, self._logged_at = False, None, -LOG_EVERY
                return
            kept = self._keep(batch, done, error)
            if self.strict:
                raise error
            if time.monotonic() - self._logged_at >= LOG_EVERY:  # once per outage and then and again
                self._logged_at = time.monotonic()
                log.error("usage ledger write failed (%d rows kept for the next attempt, %d attempts so far): %s",
                          kept, self.failures, describe(error, 300))

    def _keep(self, batch: list[UsageRecord], done: set[int], error: BaseException) -> int:
        """Put the rows not written back at the head of the queue, for the next attempt."""
        kept = [r for r in batch if id(r) not in done]
        self.queue.extendleft(reversed(kept))
        self.failing, self.failures = True, self.failures + 1
        self.last_error = type(error).__name__
        return len(kept)

    async def _flush(self, batch: list[UsageRecord], done: set[int]) -> BaseException | None:
        """Write what can be written; returns why some rows are left, or None."""
        broken = await _finalize(batch)
        if broken and self.strict:
            raise broken[0][1]  # a bug in our own accounting code: loud in tests
        if self.on_completed is not None:
            skipped = {id(rec) for rec, _ in broken}
            self.on_completed([rec for rec in batch if id(rec) not in skipped] if broken else batch)
        if broken:
            skip = {id(rec) for rec, _ in broken}
            refused, error = await self._write([rec for rec in batch if id(rec) not in skip], done)
        else:
            refused, error = await self._write(batch, done)
        refused += broken
        if refused:
            error = await self._set_aside(refused, done) or error
        if len(done) == len(batch) or all(id(rec) in done for rec in batch):
            return None
        return error or RuntimeError("usage rows left unwritten")

    async def _write(self, batch: list[UsageRecord], done: set[int]
                     ) -> tuple[list[tuple[UsageRecord, BaseException]], BaseException | None]:
        """Write the batch; on failure its halves, and so on down to single rows. Returns the
        rows refused for their data (to be set aside) and the last error; the rows neither
        written nor refused are left out of `done`, for a later attempt."""
        parts = [batch]
        refused: list[tuple[UsageRecord, BaseException]] = []
        doubtful: list[tuple[UsageRecord, BaseException]] = []
        error: BaseException | None = None
        wrote = checked = False
        while parts:
            part = parts.pop()
            try:
                await self._commit(part, done)
                wrote = True
                continue
            except Exception as exc:
                error, kind = exc, verdict(exc)
            if kind == UNREACHABLE:
                return refused, error
            if kind == REFUSED and not checked:  # rows already written (a commit whose answer was lost)?
                checked = True
                rest = await self._drop_written(part, done)
                if len(rest) < len(part):
                    if rest:
                        parts.append(rest)
                    continue
            if len(part) > 1:
                half = len(part) // 2
                parts += [part[half:], part[:half]]
            elif kind == REFUSED:
                refused.append((part[0], error))
            else:
                doubtful.append((part[0], error))
                if len(doubtful) >= DOUBT_LIMIT and not wrote:
                    return refused, error  # the database, not these rows, is the likely problem
        if wrote:  # the database takes rows now; these failed, perhaps before it did (an outage
            # ending during this flush): tried once more, each, before they are taken as refused
            for rec, _ in doubtful:
                try:
                    await self._commit([rec], done)
                except Exception as exc:
                    if verdict(exc) == UNREACHABLE:
                        return refused, exc
                    refused.append((rec, exc))
        return refused, error

    async def _commit(self, part: list[UsageRecord], done: set[int]) -> None:
        # costs in nano-dollars, as the rows book them
        settlements = [(r.reservation, r.cost_nanos()) for r in part if r.reservation is not None]
        async with self.engine.begin() as conn:
            await insert_rows(conn, part)
            if settlements:
                await self.credits.settle_nanos_in(conn, settlements)
        self.credits.settled_nanos(settlements)
        self.written += len(part)
        done.update(map(id, part))

    async def _drop_written(self, part: list[UsageRecord], done: set[int]) -> list[UsageRecord]:
        """Leave out rows already in the ledger: their settlement was committed with them, so
        only this process's reservations are released."""
        try:
            async with self.engine.connect() as conn:
                present = await written_ids(conn, [r.id for r in part])
        except Exception:
            return part
        if not present:
            return part
        twice = [r for r in part if r.id in present]
        self.credits.settled_nanos([(r.reservation, r.cost_nanos()) for r in twice if r.reservation is not None])
        done.update(id(r) for r in twice)
        log.warning("usage ledger: %d row(s) were already written (a commit whose answer was lost)", len(twice))
        return [r for r in part if r.id not in present]

    async def _set_aside(self, refused: list[tuple[UsageRecord, BaseException]],
                         done: set[int]) -> BaseException | None:
        """Store refused rows in usage_rejects and settle their credits; returns why not, if even
        that failed (the rows are then kept). A refused row is charged its cost, at most what was
        reserved for it (the value the database refused may be what made the cost wrong)."""
        now = datetime.now(UTC)
        errors = [describe(err) for _, err in refused]
        values = [{"generation_id": text(rec.id, 64) or "", "record": orjson.dumps(record_json(rec)).decode(),
                   "error": error, "created_at": now} for (rec, _), error in zip(refused, errors, strict=True)]
        settlements = [(rec.reservation, _charge(rec.cost, rec.reservation.amount))
                       for rec, _ in refused if rec.reservation is not None]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(usage_rejects), values)
                if settlements:
                    await self.credits.settle_in(conn, settlements)
        except Exception as exc:
            log.exception("usage ledger: setting %d refused row(s) aside failed", len(refused))
            return exc
        self.credits.settled(settlements)
        self.rejected += len(refused)
        done.update(id(rec) for rec, _ in refused)
        log.error("usage ledger: %d row(s) refused by the database were set aside in usage_rejects "
                  "(%d in all); first: %s: %s", len(refused), self.rejected, values[0]["generation_id"],
                  errors[0][:300])
        return None

    # ------------------------------------------------------------------ shutdown and restart
    async def stop(self) -> None:
        """Write everything still queued (SIGTERM path); what the database cannot take is saved
        to a file in the data directory (without any content: that is never written to a file)."""
        if self.content is not None:
            await self.content.stop()
        if self._task is not None:
            try:  # cancel the writer between batches (mid-batch, after a while: it puts the rows back)
                await asyncio.wait_for(self._lock.acquire(), STOP_WAIT)
            except TimeoutError:
                self._task.cancel()
            else:
                self._task.cancel()
                self._lock.release()
            await asyncio.gather(self._task, return_exceptions=True)
        for _ in range(3):
            try:
                await self.flush()
            except Exception:
                log.exception("usage ledger: writing the backlog at shutdown failed")
            if not self.queue:
                return
        self._spill()

    def _spill(self) -> None:
        rows = list(self.queue)
        if self.home is None:
            log.error("%d usage rows could not be written at shutdown and are lost (no data directory)", len(rows))
            return
        path = self.home / f"ledger-unwritten-{int(time.time() * 1000)}-{os.getpid()}.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.writelines(orjson.dumps(record_json(rec)) + b"\n" for rec in rows)
                out.flush()
                os.fsync(out.fileno())
        except OSError:
            log.exception("%d usage rows could not be written at shutdown, nor saved to %s", len(rows), path)
            return
        self.queue.clear()
        log.error("%d usage rows could not be written at shutdown: saved to %s (written at the next start)",
                  len(rows), path)

    async def replay(self) -> None:
        """Write the rows an earlier shutdown saved to files; a file is removed once its rows are
        in the ledger (a row written twice is recognised by its id and not charged again)."""
        if self.home is None:
            return
        files = sorted(self.home.glob(SPILL_GLOB))
        if not files:
            return
        records: dict[str, UsageRecord] = {}
        for path in files:
            for line in path.read_bytes().splitlines():
                try:
                    rec = record_from_json(orjson.loads(line))
                except Exception:
                    log.exception("usage ledger: unreadable line in %s skipped", path)
                    continue
                records[rec.id] = rec
        self.queue.extend(records.values())
        try:
            await self.flush()
        except Exception:
            log.exception("usage ledger: writing the rows saved at the last shutdown failed")
        mine = {id(r) for r in records.values()}
        if any(id(r) in mine for r in self.queue):
            log.error("usage ledger: %d saved rows could not be written yet; %s kept", len(records), files)
            return
        for path in files:
            path.unlink(missing_ok=True)
        log.info("usage ledger: %d rows saved at the last shutdown written (%d files)", len(records), len(files))

    def health(self) -> dict[str, Any]:
        alive = self._task is None or not self._task.done()
        backlog = len(self.queue) + len(self._writing)  # rows not written yet
        return {"ok": alive and not self.failing and backlog <= READY_BACKLOG, "pending": backlog,
                "written": self.written, "failures": self.failures, "rejected": self.rejected,
                "dropped": self.dropped, "failing": self.failing, "last_error": self.last_error,
                "backlog_limit": READY_BACKLOG}


def _charge(cost: Decimal, reserved: Decimal) -> Decimal:
    """What a refused row is charged: its cost, at most its reservation (a record replayed from
    a spill file has none of this process: its cost)."""
    if not (isinstance(cost, Decimal) and cost.is_finite() and cost >= 0):
        return reserved
    return min(cost, reserved) if reserved > 0 else cost


async def _finalize(batch: list[UsageRecord]) -> list[tuple[UsageRecord, BaseException]]:
    """Complete the records on the event loop, yielding now and then so requests keep flowing
    (a worker thread would pay a GIL hand-off per record instead). Returns the records that
    could not be completed."""
    broken: list[tuple[UsageRecord, BaseException]] = []
    for i, rec in enumerate(batch):
        try:
            if rec.counts_off_loop or rec.counting is not None:
                await rec.complete()
            else:
                rec.finalize()
        except Exception as exc:
            broken.append((rec, exc))
        if i % 256 == 255:
            await asyncio.sleep(0)
    return broken
