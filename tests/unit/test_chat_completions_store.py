"""Stored chat completions on SQLite and PostgreSQL (migration 0007) and in the bounded memory of
stateless mode: ownership, list order, filters and cursor, metadata updates, deletion, retention."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parrotrouter.store import chat_completions as store_module
from parrotrouter.store.chat_completions import (
    CompletionStore,
    MemoryCompletionStore,
    SqlCompletionStore,
    StoredCompletion,
)
from parrotrouter.store.db import create_engine, migrate
from parrotrouter.store.db import database_url as url_in
from tests.unit.test_migrations import _tables

DAY = 86400.0


def stored(cid: str, owner: str = "acct_a", model: str = "gpt-4o-mini", age: float = 0.0,
           **metadata: str) -> StoredCompletion:
    return StoredCompletion(cid, owner, model, dict(metadata),
                            {"id": cid, "object": "chat.completion", "model": model, "metadata": dict(metadata),
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                          "finish_reason": "stop", "logprobs": None}]},
                            [{"role": "user", "content": "hello"}], int(time.time() - age))


@pytest.fixture
async def sql_store(database_url: str, tmp_path: Path) -> AsyncIterator[SqlCompletionStore]:
    engine = create_engine(url_in(database_url, tmp_path))
    await migrate(engine)
    yield SqlCompletionStore(engine, 30 * DAY)
    await engine.dispose()


async def ids(store: CompletionStore, owner: str = "acct_a", *, model: str | None = None,
              metadata: dict[str, str] | None = None, after: str | None = None, limit: int = 20,
              order: str = "asc") -> tuple[list[str], bool]:
    page = await store.list(owner, model=model, metadata=metadata or {}, after=after, limit=limit,
                            order="asc" if order == "asc" else "desc")
    return [s.id for s in page.data], page.has_more


async def check_store(store: CompletionStore) -> None:
    for i in range(5):
        await store.save(stored(f"chatcmpl-{i}", model="gpt-4o" if i == 4 else "gpt-4o-mini",
                                team="a" if i % 2 else "b"))
    await store.save(stored("chatcmpl-other", owner="acct_b"))
    found = await store.get("chatcmpl-1", "acct_a")
    assert found is not None and found.messages == [{"role": "user", "content": "hello"}]
    assert found.completion["choices"][0]["message"]["content"] == "hi" and found.metadata == {"team": "a"}
    assert await store.get("chatcmpl-1", "acct_b") is None and await store.get("chatcmpl-other", "acct_a") is None
    assert await ids(store) == ([f"chatcmpl-{i}" for i in range(5)], False)
    assert await ids(store, limit=2) == (["chatcmpl-0", "chatcmpl-1"], True)
    assert await ids(store, limit=2, after="chatcmpl-1") == (["chatcmpl-2", "chatcmpl-3"], True)
    assert await ids(store, after="chatcmpl-3") == (["chatcmpl-4"], False)
    assert await ids(store, order="desc", limit=2) == (["chatcmpl-4", "chatcmpl-3"], True)
    assert await ids(store, order="desc", after="chatcmpl-1") == (["chatcmpl-0"], False)
    assert await ids(store, metadata={"team": "a"}) == (["chatcmpl-1", "chatcmpl-3"], False)
    assert await ids(store, model="gpt-4o") == (["chatcmpl-4"], False)
    assert await ids(store, after="chatcmpl-other") == ([], False)  # another account's cursor
    assert await ids(store, limit=0) == ([], True)
    assert await ids(store, "acct_b") == (["chatcmpl-other"], False)
    updated = await store.set_metadata("chatcmpl-0", "acct_a", {"reviewed": "yes"})
    assert updated is not None and updated.completion["metadata"] == {"reviewed": "yes"}
    again = await store.get("chatcmpl-0", "acct_a")
    assert again is not None and again.metadata == again.completion["metadata"] == {"reviewed": "yes"}
    assert await store.set_metadata("chatcmpl-0", "acct_b", {}) is None
    assert not await store.delete("chatcmpl-2", "acct_b")
    assert await store.delete("chatcmpl-2", "acct_a") and not await store.delete("chatcmpl-2", "acct_a")
    assert await store.get("chatcmpl-2", "acct_a") is None
    await store.save(stored("chatcmpl-old", age=31 * DAY))
    assert await store.get("chatcmpl-old", "acct_a") is None  # past the maximum age
    assert "chatcmpl-old" not in (await ids(store, limit=100))[0]


async def test_sql_store(sql_store: SqlCompletionStore) -> None:
    await check_store(sql_store)


async def test_memory_store() -> None:
    await check_store(MemoryCompletionStore(30 * DAY, 1 << 20))


async def test_sql_list_reads_past_a_batch_of_non_matching_rows(sql_store: SqlCompletionStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "SCAN_BATCH", 3)
    for i in range(8):
        await sql_store.save(stored(f"chatcmpl-{i}", wanted="yes" if i in (0, 6, 7) else "no"))
    assert await ids(sql_store, metadata={"wanted": "yes"}, limit=2) == (["chatcmpl-0", "chatcmpl-6"], True)
    assert await ids(sql_store, metadata={"wanted": "yes"}, after="chatcmpl-0") == (["chatcmpl-6", "chatcmpl-7"], False)


async def test_sql_list_filters_by_metadata_without_reading_every_answer(sql_store: SqlCompletionStore,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A filter that matches few of an account's many completions reads their metadata, not every
    answer and its messages (each up to a request body's size) out of the database."""
    for i in range(60):
        await sql_store.save(stored(f"chatcmpl-{i}", wanted="yes" if i in (5, 50) else "no"))
    decoded = 0
    real = store_module._stored

    def counting(row: object) -> StoredCompletion:
        nonlocal decoded
        decoded += 1
        return real(row)

    monkeypatch.setattr(store_module, "_stored", counting)
    assert await ids(sql_store, metadata={"wanted": "yes"}, limit=1) == (["chatcmpl-5"], True)
    assert await ids(sql_store, metadata={"wanted": "yes"}) == (["chatcmpl-5", "chatcmpl-50"], False)
    assert await ids(sql_store, metadata={"wanted": "none"}) == ([], False)
    assert decoded <= 3


async def test_memory_store_is_bounded_by_bytes() -> None:
    store = MemoryCompletionStore(30 * DAY, 4000)
    for i in range(50):
        await store.save(stored(f"chatcmpl-{i}"))
    kept, _ = await ids(store, limit=100)
    assert kept and len(kept) < 50 and kept[-1] == "chatcmpl-49"  # the newest kept, the oldest dropped
    assert await store.get("chatcmpl-0", "acct_a") is None


async def test_migration_creates_the_table(database_url: str, tmp_path: Path) -> None:
    url = url_in(database_url, tmp_path)
    engine = create_engine(url)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    assert "chat_completions" in await _tables(url)
