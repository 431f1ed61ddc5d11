"""Read-side queries over the ledger: one request's row, balances, usage windows (not the hot path)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..store.schema import accounts, key_days, usage, usage_rejects
from .ledger_rows import metadata_of, row_view

GRANULARITIES = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return _aware(value).isoformat().replace("+00:00", "Z") if value else None


def generation_json(row: Any) -> dict[str, Any]:
    return {
        "object": "generation", "id": row.id, "endpoint": row.endpoint, "key_id": row.key_id,
        "account_id": row.account_id, "requested_model": row.requested_model, "model": row.served_model,
        "provider": row.provider, "deployment": row.deployment,
        "usage": {"prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
                  "total_tokens": row.prompt_tokens + row.completion_tokens, "cached_tokens": row.cached_tokens,
                  "reasoning_tokens": row.reasoning_tokens},
        "cost": row.cost, "currency": "USD", "latency_ms": round(row.latency_ms, 3),
        "time_to_first_token_ms": round(row.ttft_ms, 3) if row.ttft_ms is not None else None,
        "status": row.status, "error_code": row.error_code, "streamed": row.streamed,
        "finish_reason": row.finish_reason, "ended_by": row.ended_by, "request_id": row.request_id, "user": row.user,
        "session_id": row.session_id, "metadata": metadata_of(row.log_metadata),
        "attempts": row.attempts,
        "created_at": _iso(row.created_at),
    }


async def generation(engine: AsyncEngine, generation_id: str) -> Any:
    async with engine.connect() as conn:
        return (await conn.execute(sa.select(usage).where(usage.c.id == generation_id))).first()


async def rejected_generation(engine: AsyncEngine, generation_id: str) -> Any:
    """The row of a request the ledger set aside (refused by the database), shaped like a usage row."""
    async with engine.connect() as conn:
        record = await conn.scalar(sa.select(usage_rejects.c.record)
                                   .where(usage_rejects.c.generation_id == generation_id)
                                   .order_by(usage_rejects.c.id.desc()).limit(1))
    if record is None:
        return None
    obj = orjson.loads(record)
    return row_view(obj) if "requested_model" in obj else None


async def balance(engine: AsyncEngine, account_id: str) -> Decimal | None:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(accounts.c.balance).where(accounts.c.id == account_id))


def _scope(query: Any, key_id: str | None) -> Any:
    return query.where(usage.c.key_id == key_id) if key_id is not None else query


async def totals(engine: AsyncEngine, key_id: str | None, since: datetime) -> dict[str, Any]:
    query = _scope(sa.select(
        sa.func.count(), sa.func.coalesce(sa.func.sum(usage.c.cost), 0),
        sa.func.coalesce(sa.func.sum(usage.c.prompt_tokens), 0),
        sa.func.coalesce(sa.func.sum(usage.c.completion_tokens), 0),
        sa.func.count(sa.distinct(usage.c.user)),
    ).where(usage.c.created_at >= since), key_id)
    async with engine.connect() as conn:
        n, cost, prompt, completion, users = (await conn.execute(query)).one()
    return {"requests": n, "cost": cost,  # SUM over a Money column comes back as Money (USD)
            "prompt": int(prompt), "completion": int(completion), "active_users": users}


async def by_model(engine: AsyncEngine, key_id: str | None, since: datetime) -> list[dict[str, Any]]:
    name = sa.func.coalesce(usage.c.served_model, usage.c.requested_model)
    query = _scope(sa.select(
        name, sa.func.count(), sa.func.coalesce(sa.func.sum(usage.c.prompt_tokens + usage.c.completion_tokens), 0),
        sa.func.coalesce(sa.func.sum(usage.c.cost), 0), sa.func.avg(usage.c.latency_ms),
    ).where(usage.c.created_at >= since).group_by(name).order_by(sa.func.count().desc()), key_id)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [{"name": r[0], "requests": r[1], "tokens": int(r[2]), "cost": r[3],
             "avg_latency_ms": round(float(r[4] or 0), 3)} for r in rows]


async def spent_today(engine: AsyncEngine, key_id: str, day: str) -> Decimal:
    async with engine.connect() as conn:
        value = await conn.scalar(sa.select(key_days.c.spent).where(key_days.c.key_id == key_id)
                                  .where(key_days.c.day == day))
    return value or Decimal(0)


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    return day_start(now).replace(day=1)


def window_start(now: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return now.replace(second=0, microsecond=0)
    if granularity == "hour":
        return now.replace(minute=0, second=0, microsecond=0)
    return day_start(now)
