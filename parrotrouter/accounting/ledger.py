"""The usage ledger: one row per request, written off the request path by one writer in batches.

`record()` only appends to an in-memory queue. Every `interval` (200 ms) the writer takes what is
queued, completes the records (token counts deferred by the request path, costs) on a worker
thread, and writes rows and credit settlements in one transaction. A clean shutdown flushes
everything; a crash loses at most the current batch. A failed write never fails a user's request:
it is logged, counted, and retried with the next batch (in strict mode, used by the tests, it
raises instead).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.schema import to_nanos
from .credits import CreditManager, Reservation
from .usage import UsageRecord

log = logging.getLogger("parrotrouter.ledger")
MAX_BACKLOG = 100_000


COLUMNS = ("id", "endpoint", "key_id", "account_id", "requested_model", "served_model", "provider", "deployment",
           "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens", "cost", "latency_ms",
           "ttft_ms", "status", "error_code", "streamed", "finish_reason", "user", "attempts", "created_at")


def row_of(rec: UsageRecord, sqlite: bool) -> tuple[Any, ...]:
    """One ledger row as driver parameters (a batch goes to the driver's executemany directly:
    per-row SQLAlchemy parameter processing costs more than the insert itself)."""
    created = datetime.fromtimestamp(rec.created_at, UTC)
    return (
        rec.id, rec.endpoint, rec.key_id, rec.account_id, rec.requested_model[:200], rec.served_model,
        rec.provider, rec.deployment, rec.prompt_tokens, rec.completion_tokens, rec.cached_tokens,
        rec.reasoning_tokens, to_nanos(rec.cost), rec.latency_ms, rec.ttft_ms, rec.status, rec.error_code,
        rec.streamed, rec.finish_reason, rec.user[:256] if rec.user else None,
        orjson.dumps([a.as_dict() for a in rec.attempts]).decode(),
        # SQLAlchemy's SQLite DATETIME storage format, so reads through the ORM layer agree.
        created.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite else created,
    )


def insert_sql(dialect: str) -> str:
    cols = ", ".join(f'"{c}"' for c in COLUMNS)
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in COLUMNS)
    else:
        marks = ", ".join(f"${i + 1}" if c != "attempts" else f"${i + 1}::json" for i, c in enumerate(COLUMNS))
    return f"INSERT INTO usage ({cols}) VALUES ({marks})"


class Ledger:
    def __init__(self, engine: AsyncEngine, credits: CreditManager, *, interval: float = 0.2,
                 strict: bool = False) -> None:
        self.engine = engine
        self.credits = credits
        self.interval = interval
        self.strict = strict
        self.queue: collections.deque[UsageRecord] = collections.deque()
        self.failures = 0
        self.written = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def record(self, record: UsageRecord) -> None:
        if len(self.queue) >= MAX_BACKLOG:
            self.failures += 1
            log.error("usage ledger backlog full (%d rows): dropping %s", MAX_BACKLOG, record.id)
            return
        self.queue.append(record)

    def pending(self, generation_id: str) -> UsageRecord | None:
        for rec in self.queue:
            if rec.id == generation_id:
                return rec
        return None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="usage-ledger")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            if not self.queue:
                return
            batch = list(self.queue)
            self.queue.clear()
            try:
                await asyncio.get_running_loop().run_in_executor(None, _finalize, batch)
                settlements: list[tuple[Reservation, Decimal]] = [
                    (r.reservation, r.cost) for r in batch if r.reservation is not None]
                async with self.engine.begin() as conn:
                    sqlite = conn.dialect.name == "sqlite"
                    await conn.exec_driver_sql(insert_sql(conn.dialect.name), [row_of(r, sqlite) for r in batch])
                    if settlements:
                        await self.credits.settle_in(conn, settlements)
            except Exception:
                self.failures += 1
                self.queue.extendleft(reversed(batch))
                if self.strict:
                    raise
                log.exception("ledger write failed (%d rows kept for the next attempt)", len(batch))
                return
            self.credits.settled(settlements)
            self.written += len(batch)

    async def stop(self) -> None:
        """Write everything still queued (SIGTERM path)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for _ in range(3):
            await self.flush()
            if not self.queue:
                return
        log.error("%d usage rows could not be written at shutdown", len(self.queue))

    def health(self) -> dict[str, Any]:
        alive = self._task is None or not self._task.done()
        return {"ok": alive, "pending": len(self.queue), "written": self.written, "failures": self.failures}


def _finalize(batch: list[UsageRecord]) -> None:
    for rec in batch:
        rec.finalize()
