"""What the stores of clients' objects (stored responses, stored chat completions) share: rows
kept for `max_age` seconds, per owner — in a database table whose expired rows are deleted now and
then, or, without a database, in this process's memory, newest kept within a byte budget."""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

PURGE_EVERY = 600.0  # seconds between deletions of expired rows (per process)


class SqlRetention:
    """A table of owned rows with a `created_at` (seconds): inserts, and the retention cutoff."""

    def __init__(self, engine: AsyncEngine, table: sa.Table, max_age: float) -> None:
        self.engine = engine
        self.table = table
        self.max_age = max_age
        self._purged_at = 0.0

    def cutoff(self) -> int:
        return int(time.time() - self.max_age)

    async def insert(self, values: Mapping[str, Any]) -> None:
        """Insert a row; at most every PURGE_EVERY seconds, delete the expired ones."""
        async with self.engine.begin() as conn:
            await conn.execute(self.table.insert().values(**values))
        if time.monotonic() - self._purged_at > PURGE_EVERY:
            self._purged_at = time.monotonic()
            async with self.engine.begin() as conn:
                await conn.execute(self.table.delete().where(self.table.c.created_at < self.cutoff()))


class Owned(Protocol):
    @property
    def owner(self) -> str: ...

    @property
    def created_at(self) -> int: ...

    @property
    def size(self) -> int: ...


Row = TypeVar("Row", bound=Owned)


class MemoryRows(Generic[Row]):
    """Rows by id, oldest first, at most `max_bytes` of them (their `size`): the oldest go first."""

    def __init__(self, max_age: float, max_bytes: int) -> None:
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._rows: collections.OrderedDict[str, Row] = collections.OrderedDict()
        self._bytes = 0

    @property
    def held(self) -> int:
        """Bytes of the rows kept."""
        return self._bytes

    def live(self, rid: str, owner: str) -> Row | None:
        """The row, if it is `owner`'s and not expired."""
        found = self._rows.get(rid)
        if found is None or found.owner != owner or found.created_at < time.time() - self.max_age:
            return None
        return found

    def put(self, rid: str, row: Row) -> None:
        """Keep `row` (one larger than the whole budget is not kept)."""
        if row.size > self.max_bytes:
            return
        if (old := self._rows.pop(rid, None)) is not None:
            self._bytes -= old.size
        self._rows[rid] = row
        self._bytes += row.size
        while self._bytes > self.max_bytes:
            _, dropped = self._rows.popitem(last=False)
            self._bytes -= dropped.size

    def remove(self, rid: str, owner: str) -> bool:
        """Forget `owner`'s live row; False when there is none."""
        if self.live(rid, owner) is None:
            return False
        self._bytes -= self._rows.pop(rid).size
        return True

    def owned(self, owner: str, newest_first: bool) -> Iterator[Row]:
        """`owner`'s live rows, oldest (or newest) first."""
        cutoff = time.time() - self.max_age
        rows = reversed(self._rows.values()) if newest_first else iter(self._rows.values())
        return (row for row in rows if row.owner == owner and row.created_at >= cutoff)
