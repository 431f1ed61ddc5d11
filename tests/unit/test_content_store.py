"""Stored content (store/content.py) on SQLite and PostgreSQL: bounded to bytes on a character
boundary and cleaned, written once, never shown once expired, and purged."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from parrotrouter.accounting.usage import UsageRecord
from parrotrouter.store.content import ContentBudget, ContentLog, LoggedContent, bounded
from parrotrouter.store.db import create_engine, database_url, migrate

DAY = 86400.0


@pytest.mark.parametrize(("value", "limit", "expected"), [
    ("short", 10, ("short", False)),
    ("é" * 3, 5, ("éé", True)),  # 6 bytes: cut before the last character, never inside it
    ("a\x00b", 10, ("ab", False)),
    ("lone \ud800 surrogate", 100, ("lone ? surrogate", False)),
])
def test_bounded(value: str, limit: int, expected: tuple[str, bool]) -> None:
    assert bounded(value, limit) == expected


@pytest.fixture
async def content_log(database_url: str, tmp_path: Path) -> AsyncIterator[ContentLog]:
    engine = create_engine(database_url_for(database_url, tmp_path))
    await migrate(engine)
    yield ContentLog(engine, retention_days=30, max_bytes=8, purge_every=600, strict=True)
    await engine.dispose()


def database_url_for(configured: str, tmp_path: Path) -> str:
    return database_url(configured, tmp_path)


def record(rid: str, age_days: float, request: str | None, response: str | None) -> UsageRecord:
    rec = UsageRecord(id=rid, endpoint="chat.completions", requested_model="m", key_id="key_1",
                      account_id="acct_1", created_at=time.time() - age_days * DAY)
    rec.content = LoggedContent(request=request, response=response)
    return rec


async def test_written_once_shown_until_expired_then_purged(content_log: ContentLog) -> None:
    fresh, old = record("gen-fresh", 0, "0123456789", None), record("gen-old", 31, "old", "answer")
    await content_log.write([fresh, old])
    assert fresh.content is None and old.content is None  # handed over: a retried batch cannot write it twice
    row = await content_log.read("gen-fresh")
    assert (row.request, row.request_truncated, row.response, row.response_truncated) == (
        "01234567", True, None, False)
    assert await content_log.read("gen-old") is None  # expired: never shown, even before the purge
    assert await content_log.purge() == 1
    assert await content_log.purge() == 0  # another worker purging the same rows finds nothing
    assert (await content_log.read("gen-fresh")).request == "01234567"


def test_pending_content_has_a_byte_budget(caplog: pytest.LogCaptureFixture) -> None:
    """Past the budget, content is dropped (the record keeps its row), counted, and logged once per
    interval; the bytes come back when the content is freed, whatever path its record took."""
    now = [0.0]
    text = "x" * 1000
    size = sys.getsizeof(text)
    budget = ContentBudget(limit=3 * size, clock=lambda: now[0])
    records = [record(f"gen-{i}", 0, None, None) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="parrotrouter.content"):
        for rec in records:
            rec.content = LoggedContent(budget=budget)
            rec.content.keep_request(text)
            rec.content.keep_response(text)
        kept = [(rec.content.request, rec.content.response) for rec in records if rec.content is not None]
        assert kept[:1] == [(text, text)] and kept[1] == (text, None) and kept[2] == (None, None)
        assert budget.pending == 3 * size and budget.dropped == 3
        now[0] += 1
        over = LoggedContent(budget=budget)
        over.keep_request(text)
        assert over.request is None and budget.dropped == 4
        assert len(caplog.records) == 1  # once per interval, however many are dropped
        assert text not in caplog.text
        now[0] += 61
        over.keep_response(text)
        assert len(caplog.records) == 2 and "4 prompts or answers not stored" in caplog.text
    records[0].content = None  # written (ContentLog.write forgets it) or its record dropped
    assert budget.pending == size
    del records
    assert budget.pending == 0
    fits = LoggedContent(budget=budget)
    fits.keep_request(text)
    assert fits.request == text


async def test_written_content_gives_its_bytes_back(content_log: ContentLog) -> None:
    rec = record("gen-budget", 0, None, None)
    rec.content = LoggedContent(budget=content_log.budget)
    rec.content.keep_request("0123")
    assert content_log.budget.pending > 0
    await content_log.write([rec])
    assert content_log.budget.pending == 0 and (await content_log.read("gen-budget")).request == "0123"
