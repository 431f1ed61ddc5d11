"""Watching requests: metrics, traces and the request log, each one `Observer` module beside this.

An observer hears of every generation/embeddings request twice, and never on a path that can fail
the request:

- `finished(record, ctx)` on the request path, when the serving core records the request (in its
  `finally`): status, timings, attempts, the route are final; tokens and cost are final only when
  the upstream reported usage (`record.deferred_count is None`). Keep it to a few increments.
- `completed(records)` off the request path, in batches, once per record, after the record was
  completed (deferred token counts done, cost computed): by the ledger writer when accounting is
  on, else by `Observers`' own loop (only when some observer wants completed records).

An observer's exception is logged and swallowed (accounting failures never fail a request; in
strict mode, used by the tests, they raise).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Protocol

from ..accounting.usage import UsageRecord

if TYPE_CHECKING:
    from ..serving.context import RequestContext

log = logging.getLogger("parrotrouter.observe")
COMPLETE_EVERY = 0.2  # seconds between batches of completed records when no ledger completes them
MAX_PENDING = 100_000  # records waiting to be completed, at most (beyond: not observed, counted)


class Observer(Protocol):
    #: whether `completed` should be called (the records are then completed even with accounting off)
    wants_completed: bool

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None: ...

    def completed(self, records: list[UsageRecord]) -> None: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...


class Observers:
    """Every observer of this process, called in order. Empty: the hooks cost one truth test."""

    def __init__(self, observers: list[Observer] | None = None, *, strict: bool = False) -> None:
        self.observers: list[Observer] = list(observers or ())
        self.strict = strict
        self.wants_completed = any(o.wants_completed for o in self.observers)
        self.completes_itself = False  # set when no ledger completes records (accounting off)
        self.pending: collections.deque[UsageRecord] = collections.deque()
        self.unobserved = 0  # records dropped because `pending` was full
        self._task: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self.observers)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)
        self.wants_completed = self.wants_completed or observer.wants_completed

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        for observer in self.observers:
            try:
                observer.finished(record, ctx)
            except Exception:
                if self.strict:
                    raise
                log.exception("observer %s failed on %s", type(observer).__name__, record.id)
        if self.completes_itself and self.wants_completed:
            if len(self.pending) >= MAX_PENDING:
                self.unobserved += 1
            else:
                self.pending.append(record)

    def completed(self, records: list[UsageRecord]) -> None:
        """Records completed (tokens and cost final): each is passed on once, however often a
        ledger that failed to write them completes them again."""
        if not self.wants_completed:
            return
        fresh = [r for r in records if not r.observed]
        if not fresh:
            return
        for rec in fresh:
            rec.observed = True
        for observer in self.observers:
            if observer.wants_completed:
                try:
                    observer.completed(fresh)
                except Exception:
                    if self.strict:
                        raise
                    log.exception("observer %s failed on %d records", type(observer).__name__, len(fresh))

    async def start(self, *, completes_itself: bool) -> None:
        self.completes_itself = completes_itself
        for observer in self.observers:
            await observer.start()
        if completes_itself and self.wants_completed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="observe-completed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(COMPLETE_EVERY)
            try:
                await self.drain()
            except Exception:
                if self.strict:
                    raise
                log.exception("completing records for observers failed")

    async def drain(self) -> None:
        """Complete the records waiting and pass them on (also at shutdown)."""
        if not self.pending:
            return
        batch = list(self.pending)
        self.pending.clear()
        done = []
        for i, rec in enumerate(batch):
            try:
                await rec.complete()
                done.append(rec)
            except Exception:
                if self.strict:
                    raise
                log.exception("completing %s for observers failed", rec.id)
            if i % 256 == 255:
                await asyncio.sleep(0)
        self.completed(done)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.drain()
        except Exception:
            log.exception("completing the last records for observers failed")
        for observer in self.observers:
            try:
                await observer.aclose()
            except Exception:
                log.exception("closing observer %s failed", type(observer).__name__)
