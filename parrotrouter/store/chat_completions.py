"""Stored chat completions (`store: true` on POST /v1/chat/completions): each answer as served, with
the request's messages and metadata, owned by an account and kept for a maximum age, for OpenAI's
GET/POST/DELETE /v1/chat/completions/{id}, GET /v1/chat/completions/{id}/messages and the list.

In the database (`chat_completions`, migration 0007) when accounting is on, older rows deleted as new
ones are written; otherwise in a bounded store in this process's memory (lost at restart, not shared
between workers): the newest completions, at most `max_bytes` of their JSON in all.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .retained import MemoryRows, SqlRetention
from .schema import metadata as tables

chat_completions = sa.Table(
    "chat_completions", tables,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),  # the key's account (the master key: its key id)
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("metadata", sa.Text, nullable=False),  # JSON object of strings
    sa.Column("completion", sa.Text, nullable=False),  # JSON: the answer as served
    sa.Column("messages", sa.Text, nullable=False),  # JSON: the request's messages
    sa.Column("size", sa.Integer, nullable=False),  # bytes of completion and messages
    sa.Column("created_at", sa.BigInteger, nullable=False),  # epoch seconds, as the completion says
    sa.Column("stored_at", sa.BigInteger, nullable=False),  # epoch microseconds: the list's order
    sa.Index("ix_chat_completions_owner", "owner", "stored_at"),
    sa.Index("ix_chat_completions_created", "created_at"),
)

SCAN_BATCH = 200  # rows a list reads at a time while it filters by metadata


@dataclasses.dataclass(slots=True)
class StoredCompletion:
    id: str
    owner: str  # the key's account (the master key: its key id)
    model: str
    metadata: dict[str, str]
    completion: dict[str, Any]  # the answer as served, its `metadata` kept in step
    messages: list[dict[str, Any]]  # the request's
    created_at: int  # epoch seconds
    size: int = 0  # bytes of its JSON (what the store counts)


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    data: list[StoredCompletion]
    has_more: bool


class CompletionStore(Protocol):
    max_age: float  # seconds

    async def save(self, stored: StoredCompletion) -> None: ...

    async def get(self, cid: str, owner: str) -> StoredCompletion | None: ...

    async def set_metadata(self, cid: str, owner: str, metadata: dict[str, str]) -> StoredCompletion | None: ...

    async def delete(self, cid: str, owner: str) -> bool: ...

    async def list(self, owner: str, *, model: str | None, metadata: Mapping[str, str], after: str | None,
                   limit: int, order: Literal["asc", "desc"]) -> Page:
        """The owner's completions in creation order (`desc`: newest first), those of `model` and
        with every `metadata` pair only, from the one after `after` on (an id not among them: an
        empty page), at most `limit`."""
        ...


def _sized(stored: StoredCompletion) -> tuple[str, str]:
    completion, messages = orjson.dumps(stored.completion).decode(), orjson.dumps(stored.messages).decode()
    stored.size = len(completion) + len(messages)
    return completion, messages


def _stored(row: Any) -> StoredCompletion:
    return StoredCompletion(row.id, row.owner, row.model, orjson.loads(row.metadata), orjson.loads(row.completion),
                            orjson.loads(row.messages), row.created_at, row.size)


class SqlCompletionStore:
    def __init__(self, engine: AsyncEngine, max_age: float) -> None:
        self.engine = engine
        self.max_age = max_age
        self.rows = SqlRetention(engine, chat_completions, max_age)

    def _cutoff(self) -> int:
        return self.rows.cutoff()

    async def save(self, stored: StoredCompletion) -> None:
        completion, messages = _sized(stored)
        await self.rows.insert(dict(
            id=stored.id, owner=stored.owner, model=stored.model[:200],
            metadata=orjson.dumps(stored.metadata).decode(), completion=completion, messages=messages,
            size=stored.size, created_at=stored.created_at, stored_at=time.time_ns() // 1000))

    def _mine(self, cid: str, owner: str) -> sa.ColumnElement[bool]:
        c = chat_completions.c
        return sa.and_(c.id == cid, c.owner == owner, c.created_at >= self._cutoff())

    async def get(self, cid: str, owner: str) -> StoredCompletion | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(chat_completions).where(self._mine(cid, owner)))).first()
        return None if row is None else _stored(row)

    async def set_metadata(self, cid: str, owner: str, metadata: dict[str, str]) -> StoredCompletion | None:
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(chat_completions).where(self._mine(cid, owner)))).first()
            if row is None:
                return None
            found = _stored(row)
            found.metadata = dict(metadata)
            found.completion = {**found.completion, "metadata": found.metadata}
            completion, _ = _sized(found)
            await conn.execute(chat_completions.update().where(chat_completions.c.id == cid).values(
                metadata=orjson.dumps(found.metadata).decode(), completion=completion, size=found.size))
        return found

    async def delete(self, cid: str, owner: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(chat_completions.delete().where(self._mine(cid, owner)))
        return bool(result.rowcount)

    async def list(self, owner: str, *, model: str | None, metadata: Mapping[str, str], after: str | None,
                   limit: int, order: Literal["asc", "desc"]) -> Page:
        c = chat_completions.c
        where = [c.owner == owner, c.created_at >= self._cutoff()]
        if model is not None:
            where.append(c.model == model)
        position = sa.tuple_(c.stored_at, c.id)
        data: list[StoredCompletion] = []
        async with self.engine.connect() as conn:
            if after is not None:
                mark = (await conn.execute(sa.select(c.stored_at).where(*where, c.id == after))).first()
                if mark is None:
                    return Page([], False)
                cursor: tuple[int, str] | None = (mark.stored_at, after)
            else:
                cursor = None
            # In batches of ids and metadata (both databases' JSON differ, so metadata is matched
            # here): only the page's rows are then read whole (answers and messages can be large).
            wanted: list[str] = []
            has_more = False
            while not has_more:
                query = sa.select(c.id, c.stored_at, c.metadata).where(*where)
                if cursor is not None:
                    query = query.where(position > cursor if order == "asc" else position < cursor)
                ordering = (c.stored_at, c.id) if order == "asc" else (c.stored_at.desc(), c.id.desc())
                rows = (await conn.execute(query.order_by(*ordering).limit(SCAN_BATCH))).all()
                for row in rows:
                    if not metadata or _has(orjson.loads(row.metadata), metadata):
                        if len(wanted) == limit:
                            has_more = True
                            break
                        wanted.append(row.id)
                if len(rows) < SCAN_BATCH:
                    break
                cursor = (rows[-1].stored_at, rows[-1].id)
            if wanted:
                found = {row.id: _stored(row) for row in
                         (await conn.execute(sa.select(chat_completions).where(*where, c.id.in_(wanted)))).all()}
                data = [found[cid] for cid in wanted if cid in found]
            return Page(data, has_more)


def _has(metadata: Any, wanted: Mapping[str, str]) -> bool:
    return isinstance(metadata, dict) and all(metadata.get(k) == v for k, v in wanted.items())


class MemoryCompletionStore:
    def __init__(self, max_age: float, max_bytes: int) -> None:
        self.max_age = max_age
        self.rows: MemoryRows[StoredCompletion] = MemoryRows(max_age, max_bytes)

    def _live(self, cid: str, owner: str) -> StoredCompletion | None:
        return self.rows.live(cid, owner)

    async def save(self, stored: StoredCompletion) -> None:
        _sized(stored)
        self.rows.put(stored.id, stored)

    async def get(self, cid: str, owner: str) -> StoredCompletion | None:
        return self._live(cid, owner)

    async def set_metadata(self, cid: str, owner: str, metadata: dict[str, str]) -> StoredCompletion | None:
        found = self._live(cid, owner)
        if found is not None:
            found.metadata = dict(metadata)
            found.completion = {**found.completion, "metadata": found.metadata}
        return found

    async def delete(self, cid: str, owner: str) -> bool:
        return self.rows.remove(cid, owner)

    def _matching(self, owner: str, model: str | None, metadata: Mapping[str, str],
                  order: Literal["asc", "desc"]) -> Iterator[StoredCompletion]:
        for row in self.rows.owned(owner, newest_first=order == "desc"):
            if (model is None or row.model == model) and all(row.metadata.get(k) == v for k, v in metadata.items()):
                yield row

    async def list(self, owner: str, *, model: str | None, metadata: Mapping[str, str], after: str | None,
                   limit: int, order: Literal["asc", "desc"]) -> Page:
        rows = self._matching(owner, model, metadata, order)
        if after is not None and not any(row.id == after for row in rows):
            return Page([], False)
        data: list[StoredCompletion] = []
        for row in rows:
            if len(data) == limit:
                return Page(data, True)
            data.append(row)
        return Page(data, False)
