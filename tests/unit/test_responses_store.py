"""The Responses API's state store on SQLite and PostgreSQL (migration 0005), and the bounded
in-memory store of stateless mode: ownership, conversation chains, deletion, retention."""

from __future__ import annotations

import dataclasses
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from parrotrouter.api.responses.state import conversation
from parrotrouter.errors import InvalidRequest
from parrotrouter.store.db import create_engine, database_url, migrate
from parrotrouter.store.responses import (
    MemoryResponseStore,
    ResponseStore,
    SqlResponseStore,
    StoredResponse,
)
from tests.unit.test_migrations import _downgrade, _tables

DAY = 86400.0


def stored(rid: str, owner: str = "acct_a", previous: str | None = None, age: float = 0.0,
           text: str = "hi") -> StoredResponse:
    return StoredResponse(rid, owner, "key_1", previous, "gpt-4o-mini", "completed",
                          [{"type": "message", "id": f"msg_{rid}", "role": "user",
                            "content": [{"type": "input_text", "text": text}]}],
                          {"id": rid, "object": "response", "status": "completed",
                           "output": [{"type": "message", "role": "assistant", "content": []}]},
                          int(time.time() - age))


@pytest.fixture
async def sql_store(database_url: str, tmp_path: Path) -> AsyncIterator[SqlResponseStore]:
    engine = create_engine(database_url_for(database_url, tmp_path))
    await migrate(engine)
    yield SqlResponseStore(engine, 30 * DAY)
    await engine.dispose()


def database_url_for(configured: str, tmp_path: Path) -> str:
    return database_url(configured, tmp_path)


async def check_store(store: ResponseStore) -> None:
    await store.save(stored("resp_1"))
    await store.save(stored("resp_2", previous="resp_1", text="second"))
    await store.save(stored("resp_3", previous="resp_2", text="third"))
    await store.save(stored("resp_other", owner="acct_b"))
    found = await store.get("resp_2", "acct_a")
    assert found is not None and found.input[0]["content"][0]["text"] == "second"
    assert found.previous_response_id == "resp_1" and found.response["id"] == "resp_2"
    assert await store.get("resp_2", "acct_b") is None  # another account's
    assert await store.get("resp_other", "acct_a") is None
    chain = await store.chain("resp_3", "acct_a", 1000, 1 << 20)
    assert [s.id for s in chain] == ["resp_1", "resp_2", "resp_3"]
    assert [i["type"] for i in chain[0].items] == ["message", "message"]  # input, then output
    assert [s.id for s in await store.chain("resp_3", "acct_a", 1, 1 << 20)] == ["resp_2", "resp_3"]  # bounded
    assert [s.id for s in await store.chain("resp_3", "acct_a", 1000, 1)] == ["resp_3"]  # and by bytes read
    assert await store.chain("resp_3", "acct_b", 1000, 1 << 20) == []
    assert not await store.delete("resp_2", "acct_b")
    assert await store.delete("resp_2", "acct_a")
    assert not await store.delete("resp_2", "acct_a")
    # broken: the caller refuses
    assert [s.id for s in await store.chain("resp_3", "acct_a", 1000, 1 << 20)] == ["resp_3"]
    await store.save(stored("resp_old", age=31 * DAY))
    assert await store.get("resp_old", "acct_a") is None  # past the maximum age
    assert await store.chain("resp_old", "acct_a", 10, 1 << 20) == []


async def test_sql_store(sql_store: SqlResponseStore) -> None:
    await check_store(sql_store)


async def test_sql_store_purges_expired_rows(sql_store: SqlResponseStore) -> None:
    await sql_store.save(stored("resp_old", age=40 * DAY))
    sql_store.rows._purged_at = 0.0  # the next write purges
    await sql_store.save(stored("resp_new"))
    async with sql_store.engine.connect() as conn:
        ids = set((await conn.execute(sa.text("SELECT id FROM responses"))).scalars())
    assert ids == {"resp_new"}


async def test_memory_store() -> None:
    await check_store(MemoryResponseStore(30 * DAY, 1 << 20))


async def test_memory_store_keeps_the_newest_within_its_bytes() -> None:
    store = MemoryResponseStore(30 * DAY, 4000)
    for i in range(40):
        await store.save(stored(f"resp_{i}", text="x" * 50))
    assert await store.get("resp_39", "acct_a") is not None and await store.get("resp_0", "acct_a") is None
    assert store.rows.held <= 4000
    await store.save(stored("resp_huge", text="x" * 10_000))  # larger than the whole store: not kept
    assert await store.get("resp_huge", "acct_a") is None and await store.get("resp_39", "acct_a") is not None


async def test_memory_store_holds_its_bytes_not_ten_times_more() -> None:
    """Its bound is what the process spends: many small parts (a dict each, decoded) took ten
    times the bytes counted."""
    limit = 4 << 20
    store = MemoryResponseStore(30 * DAY, limit)
    part = {"type": "input_text", "text": "a"}
    tracemalloc.start()
    try:
        for i in range(8):
            item = {"type": "message", "role": "user", "content": [dict(part) for _ in range(20_000)]}
            await store.save(dataclasses.replace(stored(f"resp_{i}"), input=[item]))
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.rows.held <= limit and used < 2 * limit, used
    kept = await store.get("resp_7", "acct_a")
    assert kept is not None and kept.input[0]["content"][0] == part


async def long_conversation_peak(store: ResponseStore) -> int:
    """The memory a refused continuation of a conversation far over its bound takes."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}] * 5000}
    for i in range(30):  # 30 responses of ~160 KB each (ten times that decoded)
        await store.save(dataclasses.replace(stored(f"resp_{i}", previous=f"resp_{i - 1}" if i else None),
                                             input=[item]))
    tracemalloc.start()
    try:
        with pytest.raises(InvalidRequest):
            await conversation(store, "resp_29", "acct_a", 100_000)  # history bound: 4 x 100 KB
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_conversation_over_its_bound_is_refused_before_it_is_read(sql_store: SqlResponseStore) -> None:
    for store in (sql_store, MemoryResponseStore(30 * DAY, 64 << 20)):
        peak = await long_conversation_peak(store)
        assert peak < 12 << 20, peak  # all 30 decoded: ~50 MB


async def test_migration_0005_up_and_down(database_url: str, tmp_path: Path) -> None:
    url = database_url_for(database_url, tmp_path)
    engine = create_engine(url)
    try:
        await migrate(engine)
        assert "responses" in await _tables(url)
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0004_usage_request_id")
        assert "responses" not in await _tables(url)
        await migrate(engine)
        assert "responses" in await _tables(url)
    finally:
        await engine.dispose()


async def test_a_store_that_cannot_answer_is_a_503() -> None:
    from parrotrouter.api.responses.state import reach
    from parrotrouter.errors import ServiceUnavailable

    async def broken() -> None:
        raise OSError("connection refused")

    with pytest.raises(ServiceUnavailable) as err:
        await reach(broken())
    assert err.value.status == 503 and err.value.retry_after == 5
