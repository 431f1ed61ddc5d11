"""Stored prompts and answers (`generation_content`, migration 0006): only for a request that asked
for it when the operator allows it (`content_logging`), written beside the usage ledger (never on
the request path), readable by the ledger row's owner, deleted after `content_retention_days`.

Nothing here logs a stored text: failures are logged by generation id and error class only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .schema import metadata

log = logging.getLogger("parrotrouter.content")

generation_content = sa.Table(
    "generation_content", metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # the generation id (the ledger row's)
    sa.Column("key_id", sa.String(40), nullable=True),
    sa.Column("account_id", sa.String(40), nullable=True),
    sa.Column("request", sa.Text, nullable=True),  # the client's request body, as JSON text
    sa.Column("response", sa.Text, nullable=True),  # the answer (JSON) or the stream's relayed text
    sa.Column("request_truncated", sa.Boolean, nullable=False),
    sa.Column("response_truncated", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),  # epoch seconds
    sa.Index("ix_generation_content_created", "created_at"),
)


# Bytes of content held by this process's records until written (queued in the ledger's backlog,
# which holds up to 100,000 records while the database is slow or down): past it, new content is
# dropped, its usage row kept.
MAX_PENDING_BYTES = 64 * 1024 * 1024
DROP_LOG_SECONDS = 60.0  # dropped content is logged at most once per this interval


class ContentBudget:
    """The bytes of content this process holds, not yet written, and what was dropped past `limit`."""

    def __init__(self, limit: int = MAX_PENDING_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.pending = 0
        self.dropped = 0  # texts (a prompt or an answer) not kept: over the budget
        self._unlogged = 0
        self._logged_at: float | None = None

    def take(self, size: int) -> bool:
        """Whether `size` more bytes fit (then they are held until `give_back`); counts a refusal."""
        if self.pending + size <= self.limit:
            self.pending += size
            return True
        self.dropped += 1
        self._unlogged += 1
        now = self.clock()
        if self._logged_at is None or now - self._logged_at >= DROP_LOG_SECONDS:
            log.warning("%d prompts or answers not stored: %d bytes of content wait to be written "
                        "(at most %d per process; the database is slow or down); their usage rows are kept",
                        self._unlogged, self.pending, self.limit)
            self._logged_at, self._unlogged = now, 0
        return False

    def give_back(self, size: int) -> None:
        self.pending -= size


@dataclasses.dataclass(slots=True, repr=False)
class LoggedContent:
    """What a request asked to keep of its prompt and answer (None: not kept, or dropped over the
    budget). Never in a repr: records are logged and set aside as their repr."""

    request: str | None = None
    response: str | None = None
    budget: ContentBudget | None = None
    held: int = 0  # bytes taken from the budget: given back when this is freed

    def keep_request(self, text: str) -> None:
        if self._fits(text):
            self.request = text

    def keep_response(self, text: str) -> None:
        if self._fits(text):
            self.response = text

    def _fits(self, text: str) -> bool:
        if self.budget is None:
            return True
        size = sys.getsizeof(text)
        if not self.budget.take(size):
            return False
        self.held += size
        return True

    def __del__(self) -> None:
        # Freed when written (`ContentLog.write` forgets it) or with its record, whatever path the
        # record took (written, set aside, dropped): the budget can never leak.
        if self.held and self.budget is not None:
            self.budget.give_back(self.held)

    def __repr__(self) -> str:
        return "LoggedContent(...)"


def bounded(value: str, max_bytes: int) -> tuple[str, bool]:
    """`value` as text both databases take (no NUL, valid UTF-8) of at most `max_bytes` bytes, and
    whether it was cut."""
    data = value.replace("\x00", "").encode("utf-8", "replace")  # a lone surrogate becomes '?'
    if len(data) <= max_bytes:
        return data.decode("utf-8"), False
    return data[:max_bytes].decode("utf-8", "ignore"), True


class ContentLog:
    """Writes, reads and purges stored content. `write` and the purge never raise into their caller
    (except in strict mode, for the tests): content is never worth a lost usage row."""

    def __init__(self, engine: AsyncEngine, *, retention_days: float, max_bytes: int, purge_every: float,
                 strict: bool = False) -> None:
        self.engine = engine
        self.retention = retention_days * 86400.0
        self.max_bytes = max_bytes
        self.purge_every = purge_every
        self.strict = strict
        self.written = 0
        self.failed = 0  # records whose content could not be written (dropped, counted)
        self.budget = ContentBudget()  # content held by records until written, per process
        self._task: asyncio.Task[None] | None = None

    def cutoff(self) -> int:
        """Content created before this epoch second is expired: never shown, deleted by `purge`."""
        return int(time.time() - self.retention)

    def _row(self, rec: Any) -> dict[str, Any]:
        content: LoggedContent = rec.content
        request, request_cut = bounded(content.request, self.max_bytes) if content.request is not None \
            else (None, False)
        response, response_cut = bounded(content.response, self.max_bytes) if content.response is not None \
            else (None, False)
        return {"id": rec.id, "key_id": rec.key_id, "account_id": rec.account_id, "request": request,
                "response": response, "request_truncated": request_cut, "response_truncated": response_cut,
                "created_at": int(rec.created_at)}

    async def write(self, records: list[Any]) -> None:
        """Store the content of these records (UsageRecords whose `content` is set), then forget it."""
        if not records:
            return
        try:
            rows = [self._row(rec) for rec in records]
            async with self.engine.begin() as conn:
                await conn.execute(generation_content.insert(), rows)
            self.written += len(rows)
        except Exception as exc:
            if self.strict:  # loud in tests, but never with the statement's parameters: they are content
                raise RuntimeError(f"storing content failed: {type(exc).__name__}") from None
            self.failed += len(records)
            log.error("storing the content of %d requests failed (%s); first: %s", len(records),
                      type(exc).__name__, records[0].id)
        finally:
            for rec in records:
                rec.content = None  # kept once, in the database; a retried ledger write must not re-send it

    async def read(self, generation_id: str) -> Any:
        """The stored content of a generation, unless expired (None: none)."""
        async with self.engine.connect() as conn:
            return (await conn.execute(sa.select(generation_content).where(
                generation_content.c.id == generation_id,
                generation_content.c.created_at >= self.cutoff()))).first()

    async def purge(self) -> int:
        """Delete expired content: one indexed DELETE, harmless when several processes run it."""
        async with self.engine.begin() as conn:
            result = await conn.execute(generation_content.delete().where(
                generation_content.c.created_at < self.cutoff()))
        return int(result.rowcount or 0)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="content-purge")

    async def _run(self) -> None:
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("deleted the stored content of %d requests (older than %g days)", purged,
                             self.retention / 86400.0)
            except Exception as exc:
                if self.strict:
                    raise
                log.error("deleting expired content failed (%s); trying again in %g s", type(exc).__name__,
                          self.purge_every)
            await asyncio.sleep(self.purge_every)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
