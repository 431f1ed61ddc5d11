from __future__ import annotations

import orjson
from aiohttp import web

from ..request import app_state


async def health(http: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")


async def ready(http: web.Request) -> web.Response:
    state = app_state(http)
    providers = {name: p.ready() for name, p in state.providers.items()}
    checks: dict[str, object] = {"started": state.started, "providers": providers}
    ok = state.started and (not providers or any(providers.values()))
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


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
