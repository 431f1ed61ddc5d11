"""Engine creation (SQLite WAL with a busy timeout, or PostgreSQL) and migrations on start."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger("parrotrouter.store")
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK = 0x5052_4F55  # advisory lock id held while migrating (several instances may start at once)


def database_url(configured: str | None, home: Path) -> str:
    """The async SQLAlchemy URL: the configured one (drivers filled in) or SQLite in `home`."""
    if not configured:
        return f"sqlite+aiosqlite:///{home / 'parrotrouter.db'}"
    if configured.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + configured.split("://", 1)[1]
    if configured.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + configured[len("sqlite:///"):]
    return configured


def _identity(value: Any) -> Any:
    return value


def _private_sqlite_files(url: str) -> None:
    """The database holds key hashes, credits and usage: only its owner may read it. It is created
    0600 before SQLite opens it, and SQLite gives its -wal and -shm files the database file's mode;
    files an earlier version left group- or world-readable are tightened."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # an empty file is an empty database
    except OSError:
        return  # SQLite reports it on connect, in its words
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if os.stat(file).st_mode & 0o077:
                os.chmod(file, 0o600)
                log.warning("%s was readable by other users: made it private (0600)", file)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("%s is readable by other users and could not be made private: %s", file, exc)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        _private_sqlite_files(url)
        # sqlite3 looks for an adapter for every parameter that is not exactly int, float or
        # str, None included; a miss costs two failed attribute lookups, a hit one call. The
        # ledger binds several NULLs per row, so register the identity for None (process-wide,
        # and it changes nothing but speed: None still binds as NULL).
        sqlite3.register_adapter(type(None), _identity)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-32000")  # 32 MB of page cache: ledger indexes stay hot
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True)


def _alembic_config(connection: sa.Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: sa.Connection, revision: str) -> None:
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": _PG_LOCK})
    try:
        command.upgrade(_alembic_config(connection), revision)
    finally:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": _PG_LOCK})


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)


def migrate_sync(url: str, revision: str = "head") -> None:
    async def run() -> None:
        engine = create_engine(url)
        try:
            await migrate(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())
