"""`GET /v1/generation?id=...`: the ledger row of one request (own key's rows; master sees all)."""

from __future__ import annotations

from aiohttp import web

from ...accounting import reports
from ...errors import InvalidRequest, NotFound, ServiceUnavailable
from ..json import json_response
from ..request import app_state, authenticate


async def get_generation(http: web.Request) -> web.Response:
    principal = authenticate(http)
    generation_id = http.query.get("id")
    if not generation_id:
        raise InvalidRequest("Give the generation id as ?id=...", param="id")
    accounts = app_state(http).accounts
    if accounts is None:
        raise ServiceUnavailable("The usage ledger is not available on this process.")
    if accounts.ledger.pending(generation_id) is not None:
        await accounts.ledger.flush()
    row = await reports.generation(accounts.engine, generation_id)
    if row is None or (not principal.is_master and row.key_id != principal.key_id):
        raise NotFound(f"No generation '{generation_id}' for this API key.", param="id")
    return json_response(reports.generation_json(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/generation", get_generation)
