"""`GET /v1/generation?id=...`: the ledger row of one request (own key's rows; master sees all), also
while it waits to be written, and after the database refused it (it was set aside); with the prompt
and answer stored for it, when the request asked for that and the operator allows it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...accounting import reports
from ...errors import InvalidRequest, NotFound, ServiceUnavailable, echo
from ...protocol.validation import storable
from ...store.content import ContentLog
from ..json import json_response
from ..request import app_state, authenticate

MAX_ID_CHARS = 64  # generation ids are 40 characters


async def get_generation(http: web.Request) -> web.Response:
    principal = authenticate(http)
    generation_id = http.query.get("id")
    if not generation_id:
        raise InvalidRequest("Give the generation id as ?id=...", param="id")
    if len(generation_id) > MAX_ID_CHARS or not storable(generation_id):  # never an id of ours
        raise NotFound(f"No generation '{echo(generation_id)}' for this API key.", param="id")
    accounts = app_state(http).accounts
    if accounts is None:
        raise ServiceUnavailable("The usage ledger is not available on this process.")
    ledger = accounts.ledger
    queued = ledger.pending(generation_id)
    if queued is not None:  # write it first, so the answer is the row
        await ledger.flush()
        queued = ledger.pending(generation_id)  # still queued: the database is not taking rows
    row = ledger.view(queued) if queued is not None else await reports.generation(accounts.engine, generation_id)
    if row is None:  # refused by the database and set aside?
        row = await reports.rejected_generation(accounts.engine, generation_id)
    if row is None or (not principal.is_master and row.key_id != principal.key_id):
        raise NotFound(f"No generation '{echo(generation_id)}' for this API key.", param="id")
    answer = reports.generation_json(row)
    answer["content"] = await _content(ledger.content, generation_id)
    return json_response(answer)


async def _content(content: ContentLog | None, generation_id: str) -> dict[str, Any] | None:
    """The prompt and answer stored for the generation (X-Log-Request/X-Log-Response at debug, the
    operator allowing), until they expire; None when none was stored."""
    stored = await content.read(generation_id) if content is not None else None
    if stored is None:
        return None
    return {"request": stored.request, "response": stored.response,
            "request_truncated": stored.request_truncated, "response_truncated": stored.response_truncated}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/generation", get_generation)
