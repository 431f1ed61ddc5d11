"""`GET /v1/usage/current?granularity=minute|hour|day&include_breakdown=true`: the current window."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ...accounting import reports
from ...errors import InvalidRequest, ServiceUnavailable
from ...settings import parse_bool
from ..json import json_response
from ..request import app_state, authenticate


async def current_usage(http: web.Request) -> web.Response:
    principal = authenticate(http)
    granularity = http.query.get("granularity", "hour")
    if granularity not in reports.GRANULARITIES:
        raise InvalidRequest("'granularity' must be minute, hour or day.", param="granularity")
    try:
        breakdown = parse_bool(http.query.get("include_breakdown", "false"))
    except ValueError:
        raise InvalidRequest("'include_breakdown' must be true or false.", param="include_breakdown") from None
    accounts = app_state(http).accounts
    if accounts is None:
        raise ServiceUnavailable("The usage ledger is not available on this process.")
    await accounts.ledger.flush()
    now = datetime.now(UTC)
    start = reports.window_start(now, granularity)
    key = None if principal.is_master else principal.key_id
    totals = await reports.totals(accounts.engine, key, start)
    out: dict[str, Any] = {
        "object": "usage", "granularity": granularity,
        "period": {"start": start.isoformat().replace("+00:00", "Z"),
                   "end": (start + reports.GRANULARITIES[granularity]).isoformat().replace("+00:00", "Z")},
        "requests": totals["requests"],
        "tokens": {"prompt": totals["prompt"], "completion": totals["completion"],
                   "total": totals["prompt"] + totals["completion"]},
        "cost": totals["cost"], "currency": "USD", "active_users": totals["active_users"],
    }
    if breakdown:
        out["breakdown"] = {"by_model": await reports.by_model(accounts.engine, key, start)}
    return json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/usage/current", current_usage)
