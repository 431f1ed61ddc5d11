"""Schema migrations: from an empty database, and from the previous migration with data kept."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from parrotrouter.store.db import create_engine, database_url, migrate

EXPECTED = {"meta", "accounts", "api_keys", "credit_leases", "key_days", "usage", "alembic_version"}


async def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_upgrade_from_empty(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = database_url_for(database_url, tmp_path)
    engine = create_engine(url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent
    finally:
        await engine.dispose()
    assert await _tables(url) >= EXPECTED


async def test_upgrade_from_previous_migration_keeps_data(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = database_url_for(database_url, tmp_path)
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        await migrate(engine, "0001_accounts_and_keys")
        assert "usage" not in await _tables(url)
        async with engine.begin() as conn:
            await conn.execute(sa.text(
                "INSERT INTO accounts (id, name, balance, leased, created_at, updated_at) "
                "VALUES ('acct_1', 'a', 5000000000, 0, :now, :now)"), {"now": now})
            await conn.execute(sa.text(
                "INSERT INTO api_keys (id, account_id, name, key_hash, prefix, permissions, restrictions, metadata, "
                "created_at, updated_at) VALUES ('key_1', 'acct_1', 'k', 'h', 'pr-x', '{}', '{}', '{}', :now, :now)"),
                {"now": now})
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT balance FROM accounts WHERE id = 'acct_1'")) == 5_000_000_000
            assert await conn.scalar(sa.text("SELECT name FROM api_keys WHERE id = 'key_1'")) == "k"
            assert await conn.scalar(sa.text("SELECT value FROM meta WHERE name = 'keys_version'")) == 0
            assert await conn.scalar(sa.text("SELECT count(*) FROM usage")) == 0
    finally:
        await engine.dispose()
    assert await _tables(url) >= EXPECTED


def database_url_for(configured: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    return database_url(configured, tmp_path)
