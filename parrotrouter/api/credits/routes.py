"""`GET /v1/credits`: the ParrotRouter `credit_balance` object for the calling key.

`balance` is the key's account (shared by every key of that account); `usage` is this key's own,
per UTC day and calendar month; the master key, which has no account, sees everyone's usage and
`credits: null` (unlimited). Self-hosted billing defaults: plan `self-hosted`, no auto-recharge,
no billing date.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...accounting import reports
from ...accounting.credits import utc_day
from ...errors import ServiceUnavailable
from ..json import json_response
from ..request import app_state, authenticate


def _usage(totals: dict[str, Any]) -> dict[str, Any]:
    return {"credits_used": totals["cost"], "requests": totals["requests"],
            "tokens": {"prompt": totals["prompt"], "completion": totals["completion"],
                       "total": totals["prompt"] + totals["completion"]}}


async def get_credits(http: web.Request) -> web.Response:
    principal = authenticate(http, read=False)
    accounts = app_state(http).accounts
    if accounts is None:
        raise ServiceUnavailable("Credits are not available on this process.")
    await accounts.ledger.flush()
    engine = accounts.engine
    balance = await reports.balance(engine, principal.account_id) if principal.account_id else None
    out: dict[str, Any] = {"object": "credit_balance", "balance": {"credits": balance, "currency": "USD"}}
    if not principal.policy.can_read:
        return json_response(out)
    key = None if principal.is_master else principal.key_id
    now = datetime.now(UTC)
    daily = await reports.totals(engine, key, reports.day_start(now))
    monthly = await reports.totals(engine, key, reports.month_start(now))
    policy = principal.policy
    limit = policy.max_cost_per_day
    remaining = None
    if limit is not None:
        remaining = max(limit - await reports.spent_today(engine, principal.key_id, utc_day()), limit * 0)
    out["usage"] = {"daily": _usage(daily), "monthly": _usage(monthly)}
    out["limits"] = {
        "rate_limit": {"requests_per_minute": policy.max_requests_per_minute,
                       "tokens_per_minute": policy.max_tokens_per_minute},
        "daily_limit": {"credits": limit, "remaining": remaining},
    }
    out["billing"] = {"plan": "self-hosted", "auto_recharge": {"enabled": False, "threshold": None, "amount": None},
                      "next_billing_date": None}
    return json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/credits", get_credits)
