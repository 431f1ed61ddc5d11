from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from ...observe.performance import performance_of
from ...state import AppState
from ..request import app_state


async def health(http: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def ready(http: web.Request) -> web.Response:
    state = app_state(http)
    providers = {name: p.ready() for name, p in state.providers.items()}
    checks: dict[str, object] = {"started": state.started, "providers": providers}
    ok = state.started and (not providers or any(providers.values()))
    if state.provider_health is not None:
        health = state.provider_health.report()
        await _success_rates(state, health)
        checks["provider_health"] = health
        minimum = state.settings.ready_min_healthy_providers
        if minimum:
            healthy = sum(1 for entry in health.values() if entry["healthy"])
            checks["healthy_providers"] = {"healthy": healthy, "required": minimum}
            ok = ok and healthy >= minimum
    if state.accounts is not None:
        ledger = state.accounts.ledger.health()
        checks["ledger"] = ledger
        checks["credits"] = state.accounts.credits.health()
        ok = ok and bool(ledger["ok"])
    if state.limiter is not None:
        if hasattr(state.limiter, "ping"):
            await state.limiter.ping()
        limits = state.limiter.health()
        checks["limits"] = limits
        ok = ok and (bool(limits["ok"]) or bool(limits["fail_open"]))
    return web.Response(body=orjson.dumps({"status": "ready" if ok else "not_ready", "checks": checks}),
                        status=200 if ok else 503, content_type="application/json")


async def _success_rates(state: AppState, health: dict[str, dict[str, Any]]) -> None:
    """Each provider's recent upstream success rate (attempts over the performance window)."""
    performance = performance_of(state.observers)
    if performance is None:
        return
    stats = await performance.stats()
    for name, entry in health.items():
        found = stats.get(("p", name))
        entry["success_rate"] = None if found is None or found.success_rate is None else round(found.success_rate, 4)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
