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

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.schema import usage
from .credits import CreditManager, Reservation
from .usage import UsageRecord

log = logging.getLogger("parrotrouter.ledger")
MAX_BACKLOG = 100_000


def row_of(rec: UsageRecord) -> dict[str, Any]:
    return {
        "id": rec.id, "endpoint": rec.endpoint, "key_id": rec.key_id, "account_id": rec.account_id,
        "requested_model": rec.requested_model[:200], "served_model": rec.served_model,
        "provider": rec.provider, "deployment": rec.deployment, "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens, "cached_tokens": rec.cached_tokens,
        "reasoning_tokens": rec.reasoning_tokens, "cost": rec.cost, "latency_ms": rec.latency_ms,
        "ttft_ms": rec.ttft_ms, "status": rec.status, "error_code": rec.error_code, "streamed": rec.streamed,
        "finish_reason": rec.finish_reason, "user": rec.user[:256] if rec.user else None,
        "attempts": [a.as_dict() for a in rec.attempts],
        "created_at": datetime.fromtimestamp(rec.created_at, UTC),
    }


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
                    await conn.execute(sa.insert(usage), [row_of(r) for r in batch])
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
