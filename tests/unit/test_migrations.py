"""Schema migrations: from an empty database, and from the previous migration with data kept."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from parrotrouter.store.db import MIGRATIONS, create_engine, database_url, migrate

EXPECTED = {"meta", "accounts", "api_keys", "credit_leases", "key_days", "usage", "usage_rejects", "alembic_version",
            "generation_content"}


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


async def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {c["name"] for c in await conn.run_sync(lambda c: sa.inspect(c).get_columns(table))}
    finally:
        await engine.dispose()


def _downgrade(connection: sa.Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


USAGE_ROW = ("INSERT INTO usage (id, endpoint, key_id, account_id, requested_model, prompt_tokens, completion_tokens, "
             "cached_tokens, reasoning_tokens, cost, latency_ms, status, streamed, attempts, created_at) VALUES "
             "(:id, 'chat.completions', 'key_1', 'acct_1', 'm', 1, 2, 0, 0, 5, 1.5, 200, :streamed, '[]', :now)")


async def test_ended_by_and_rejects_upgrade_and_downgrade_keep_ledger_rows(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = database_url_for(database_url, tmp_path)
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        await migrate(engine, "0002_ledger_and_credit_leases")
        assert "ended_by" not in await _columns(url, "usage")
        assert "usage_rejects" not in await _tables(url)
        async with engine.begin() as conn:
            await conn.execute(sa.text(USAGE_ROW), {"id": "gen-before", "streamed": False, "now": now})
        await migrate(engine)
        assert {"ended_by"} <= await _columns(url, "usage")
        assert {"id", "generation_id", "record", "error", "created_at"} <= await _columns(url, "usage_rejects")
        async with engine.begin() as conn:
            assert await conn.scalar(sa.text("SELECT ended_by FROM usage WHERE id = 'gen-before'")) is None
            await conn.execute(sa.text(USAGE_ROW.replace("created_at)", "created_at, ended_by)")
                                       .replace(":now)", ":now, 'client')")),
                               {"id": "gen-after", "streamed": True, "now": now})
            await conn.execute(sa.text("INSERT INTO usage_rejects (generation_id, record, error, created_at) "
                                       "VALUES ('gen-x', '{}', 'DataError: no', :now)"), {"now": now})
            assert await conn.scalar(sa.text("SELECT ended_by FROM usage WHERE id = 'gen-after'")) == "client"
        async with engine.begin() as conn:
            await conn.run_sync(_downgrade, "0002_ledger_and_credit_leases")
        assert "ended_by" not in await _columns(url, "usage")
        assert "usage_rejects" not in await _tables(url)
        async with engine.connect() as conn:
            ids = set((await conn.execute(sa.text("SELECT id FROM usage"))).scalars())
            assert ids == {"gen-before", "gen-after"}
            assert await conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == \
                "0002_ledger_and_credit_leases"
        await migrate(engine)  # and up again
        assert {"ended_by"} <= await _columns(url, "usage")
        assert "usage_rejects" in await _tables(url)
    finally:
        await engine.dispose()


async def test_logging_labels_and_content_upgrade_and_downgrade_keep_ledger_rows(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = database_url_for(database_url, tmp_path)
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        await migrate(engine, "0005_responses")
        async with engine.begin() as conn:
            await conn.execute(sa.text(USAGE_ROW), {"id": "gen-before", "streamed": False, "now": now})
        await migrate(engine)
        assert {"session_id", "log_metadata"} <= await _columns(url, "usage")
        assert {"id", "key_id", "account_id", "request", "response", "request_truncated", "response_truncated",
                "created_at"} <= await _columns(url, "generation_content")
        async with engine.begin() as conn:
            await conn.execute(sa.text("INSERT INTO generation_content (id, request, request_truncated, "
                                       "response_truncated, created_at) VALUES ('gen-before', '{}', :f, :f, 1)"),
                               {"f": False})
            await conn.run_sync(_downgrade, "0005_responses")
        assert "session_id" not in await _columns(url, "usage")
        assert "generation_content" not in await _tables(url)
        async with engine.connect() as conn:
            assert set((await conn.execute(sa.text("SELECT id FROM usage"))).scalars()) == {"gen-before"}
        await migrate(engine)  # and up again
        assert "generation_content" in await _tables(url)
    finally:
        await engine.dispose()


def database_url_for(configured: str, tmp_path) -> str:  # type: ignore[no-untyped-def]
    return database_url(configured, tmp_path)
