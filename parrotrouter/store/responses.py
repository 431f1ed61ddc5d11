"""The Responses API's conversation state: each stored response with its input items, owned by an
account, kept for a maximum age (older rows are neither read nor kept: they are deleted as new
ones are written).

In the database (`responses`, migration 0005) when accounting is on; otherwise in a bounded
in-memory store of this process (lost at restart, not shared between workers).
"""

from __future__ import annotations

import dataclasses
import types
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .retained import MemoryRows, SqlRetention
from .schema import metadata

responses = sa.Table(
    "responses", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),  # the key's account (the master key: "master")
    sa.Column("key_id", sa.String(40), nullable=True),
    sa.Column("previous_response_id", sa.String(64), nullable=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input", sa.Text, nullable=False),  # JSON: this request's own input items
    sa.Column("response", sa.Text, nullable=False),  # JSON: the response object
    sa.Column("size", sa.Integer, nullable=False),  # bytes of input and response
    sa.Column("created_at", sa.BigInteger, nullable=False),  # epoch seconds, as the response says
    sa.Index("ix_responses_created", "created_at"),
)

@dataclasses.dataclass(slots=True)
class StoredResponse:
    id: str
    owner: str
    key_id: str | None
    previous_response_id: str | None
    model: str
    status: str
    input: list[dict[str, Any]]
    response: dict[str, Any]
    created_at: int

    @property
    def items(self) -> list[dict[str, Any]]:
        """What it adds to a conversation: its input items, then its output items."""
        output = self.response.get("output")
        return [*self.input, *(output if isinstance(output, list) else [])]


class ResponseStore(Protocol):
    max_age: float  # seconds

    async def save(self, stored: StoredResponse) -> None: ...

    async def get(self, rid: str, owner: str) -> StoredResponse | None: ...

    async def delete(self, rid: str, owner: str) -> bool: ...

    async def chain(self, rid: str, owner: str, depth: int, max_bytes: int) -> list[StoredResponse]:
        """The response and those before it, oldest first, at most `depth` + 1 of them, and none
        before the one that takes their stored bytes over `max_bytes` (empty: no such response
        for this owner)."""
        ...


def _row(stored: StoredResponse) -> dict[str, Any]:
    input_json, response_json = orjson.dumps(stored.input).decode(), orjson.dumps(stored.response).decode()
    return {"id": stored.id, "owner": stored.owner, "key_id": stored.key_id,
            "previous_response_id": stored.previous_response_id, "model": stored.model[:200],
            "status": stored.status[:16], "input": input_json, "response": response_json,
            "size": len(input_json) + len(response_json), "created_at": stored.created_at}


def _stored(row: Any) -> StoredResponse:
    return StoredResponse(row.id, row.owner, row.key_id, row.previous_response_id, row.model, row.status,
                          orjson.loads(row.input), orjson.loads(row.response), row.created_at)


_CHAIN = sa.text("""
WITH RECURSIVE chain(id, previous_response_id, depth, total) AS (
    SELECT id, previous_response_id, 0, CAST(size AS BIGINT) FROM responses
    WHERE id = :id AND owner = :owner AND created_at >= :cutoff
    UNION ALL
    SELECT r.id, r.previous_response_id, c.depth + 1, c.total + r.size
    FROM responses r JOIN chain c ON r.id = c.previous_response_id
    WHERE r.owner = :owner AND r.created_at >= :cutoff AND c.depth < :depth AND c.total <= :max_bytes
)
SELECT r.id, r.owner, r.key_id, r.previous_response_id, r.model, r.status, r.input, r.response, r.created_at
FROM chain c JOIN responses r ON r.id = c.id ORDER BY c.depth DESC
""")


class SqlResponseStore:
    def __init__(self, engine: AsyncEngine, max_age: float) -> None:
        self.engine = engine
        self.max_age = max_age
        self.rows = SqlRetention(engine, responses, max_age)

    def _cutoff(self) -> int:
        return self.rows.cutoff()

    async def save(self, stored: StoredResponse) -> None:
        await self.rows.insert(_row(stored))

    async def get(self, rid: str, owner: str) -> StoredResponse | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(responses).where(
                responses.c.id == rid, responses.c.owner == owner,
                responses.c.created_at >= self._cutoff()))).first()
        return None if row is None else _stored(row)

    async def delete(self, rid: str, owner: str) -> bool:
        async with self.engine.begin() as conn:
            result = await conn.execute(responses.delete().where(responses.c.id == rid, responses.c.owner == owner))
        return bool(result.rowcount)

    async def chain(self, rid: str, owner: str, depth: int, max_bytes: int) -> list[StoredResponse]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(_CHAIN, {"id": rid, "owner": owner, "cutoff": self._cutoff(),
                                                "depth": depth, "max_bytes": max_bytes})).all()
        return [_stored(row) for row in rows]


class MemoryResponseStore:
    """Stateless mode: the newest responses of this process, at most `max_bytes` of them, kept
    as their JSON (decoded objects would take ten times the bytes counted)."""

    def __init__(self, max_age: float, max_bytes: int) -> None:
        self.max_age = max_age
        self.rows: MemoryRows[types.SimpleNamespace] = MemoryRows(max_age, max_bytes)

    def _live(self, rid: str, owner: str) -> types.SimpleNamespace | None:
        return self.rows.live(rid, owner)

    async def save(self, stored: StoredResponse) -> None:
        self.rows.put(stored.id, types.SimpleNamespace(**_row(stored)))

    async def get(self, rid: str, owner: str) -> StoredResponse | None:
        row = self._live(rid, owner)
        return None if row is None else _stored(row)

    async def delete(self, rid: str, owner: str) -> bool:
        return self.rows.remove(rid, owner)

    async def chain(self, rid: str, owner: str, depth: int, max_bytes: int) -> list[StoredResponse]:
        out: list[StoredResponse] = []
        current: str | None = rid
        total = 0
        while current is not None and len(out) <= depth and total <= max_bytes:
            row = self._live(current, owner)
            if row is None:
                break
            out.append(_stored(row))
            total += row.size
            current = row.previous_response_id
        out.reverse()
        return out
