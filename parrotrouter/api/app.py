"""Build the aiohttp application around one `AppState`."""

from __future__ import annotations

import logging

from aiohttp import web

from ..ratelimit.rules import UNLIMITED_HEADERS, limits_for
from ..serving.core import drain_streams
from ..state import AppState
from .chat_completions import routes as chat_routes
from .completions import routes as completion_routes
from .credits import routes as credit_routes
from .embeddings import routes as embedding_routes
from .errors import ERROR_SHAPES, error_middleware
from .generations import routes as generation_routes
from .health import routes as health_routes
from .keys import routes as key_routes
from .messages import routes as messages_routes
from .metrics import routes as metrics_routes
from .models import routes as model_routes
from .openapi import routes as openapi_routes
from .request import CONTEXT_KEY, STATE_KEY, request_id
from .responses import routes as responses_routes
from .route_explain import routes as explain_routes
from .usage import routes as usage_routes

log = logging.getLogger("parrotrouter")


async def _start(app: web.Application) -> None:
    state = app[STATE_KEY]
    if state.accounts is not None:
        await state.accounts.start()
    await state.router.health.start()
    for provider in state.providers.values():
        await provider.start()
    if state.accounts is not None:
        state.accounts.ledger.on_completed = state.observers.completed
    await state.observers.start(completes_itself=state.accounts is None)
    if state.provider_health is not None:
        await state.provider_health.start()
    if state.discovery is not None:  # the first lists, bounded by discovery_timeout (then they fill in)
        await state.discovery.start()
    state.started = True


async def _shutdown(app: web.Application) -> None:
    """Before connections close: let streams drain, then cut the rest cleanly."""
    await drain_streams(app[STATE_KEY])


async def _stop(app: web.Application) -> None:
    """Runs after in-flight requests drained: flush the ledger, then release everything."""
    state = app[STATE_KEY]
    state.started = False
    if state.accounts is not None:
        try:
            await state.accounts.stop()
        except Exception:
            log.exception("stopping accounting failed")
    try:
        await state.observers.aclose()  # after the ledger's last flush: every record was observed
    except Exception:
        log.exception("stopping the observers failed")
    if state.limiter is not None:
        await state.limiter.aclose()
    if state.provider_health is not None:
        await state.provider_health.aclose()
    if state.discovery is not None:
        await state.discovery.aclose()
    await state.router.health.aclose()
    for provider in state.providers.values():
        try:
            await provider.aclose()
        except Exception:
            log.exception("closing provider %s failed", provider.name)


async def _context_headers(request: web.Request, response: web.StreamResponse) -> None:
    """The headers the request's context asks for (the attempts, the X-RateLimit-* a generation
    request took), on whatever the answer turns out to be. Every response carries `x-request-id`;
    every `/v1/` response to a key the X-RateLimit-* headers: other endpoints report them without
    taking, and a key nothing limits is told so (no store round trip)."""
    response.headers["x-request-id"] = request_id(request)
    ctx = request.get(CONTEXT_KEY)
    if ctx is None:
        return
    if ctx.headers:
        response.headers.update(ctx.headers)
    if ctx.limits_taken or not request.path.startswith("/v1/"):
        return
    state = request.app[STATE_KEY]
    limiter = state.limiter
    limits = limits_for(ctx.principal, None, state.settings.limit_defaults) if limiter is not None else None
    if limiter is None or not limits:
        response.headers.update(UNLIMITED_HEADERS)
        return
    try:
        response.headers.update(await limiter.peek(limits))
    except Exception:
        return


def create_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=state.settings.max_body_bytes, middlewares=[error_middleware])
    app[STATE_KEY] = state
    app[ERROR_SHAPES] = []
    for module in (chat_routes, completion_routes, model_routes, health_routes, key_routes, credit_routes,
                   generation_routes, usage_routes, explain_routes, openapi_routes, embedding_routes,
                   responses_routes, messages_routes, metrics_routes):
        module.add_routes(app)
    app.on_response_prepare.append(_context_headers)
    app.on_startup.append(_start)
    app.on_shutdown.append(_shutdown)
    app.on_cleanup.append(_stop)
    return app
