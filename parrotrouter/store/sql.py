"""Small dialect-aware helpers shared by the stores."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def insert_ignore(conn: AsyncConnection, table: sa.Table, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, on SQLite and PostgreSQL."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        await conn.execute(postgresql.insert(table).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        await conn.execute(sqlite.insert(table).values(**values).on_conflict_do_nothing())
    else:  # pragma: no cover - other databases are not supported
        raise NotImplementedError(dialect)
