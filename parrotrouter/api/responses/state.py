"""Conversation state for the routes: who owns a response, the conversation before a request
(`previous_response_id`), what is kept of a response, and the input items as listed."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from aiohttp import web

from ...auth.principal import Principal
from ...errors import InvalidRequest, ServiceUnavailable, echo
from ...protocol.validation import storable
from ...state import AppState
from ...store.responses import MemoryResponseStore, ResponseStore, SqlResponseStore, StoredResponse
from .encode import new_item_id

log = logging.getLogger("parrotrouter.api.responses")
T = TypeVar("T")
STORE_KEY: web.AppKey[ResponseStore] = web.AppKey("parrotrouter_responses", ResponseStore)
MAX_CHAIN = 1000  # responses one conversation may chain (previous_response_id links)
MEMORY_BYTES = 64 * 2**20  # the in-memory store of stateless mode
HISTORY_FACTOR = 4  # a conversation's stored items: at most this many request bodies' worth
_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs",
                "custom_tool_call": "ctc", "custom_tool_call_output": "ctco"}


def build_store(state: AppState) -> ResponseStore:
    """The database when accounting is on, else this process's bounded memory."""
    max_age = state.settings.responses_max_age_days * 86400
    if state.accounts is not None:
        return SqlResponseStore(state.accounts.engine, max_age)
    return MemoryResponseStore(max_age, MEMORY_BYTES)


async def reach(call: Awaitable[T]) -> T:
    """A read or delete of the store: a database that cannot answer is a 503, not a 500."""
    try:
        return await call
    except Exception:
        log.exception("the response store failed")
        raise ServiceUnavailable("The response store (the database) is not answering; retry shortly.",
                                 retry_after=5) from None


def owner_of(principal: Principal) -> str:
    """Responses belong to the key's account (keys of one account share them); the master key's
    are its own."""
    return principal.account_id or principal.key_id


def known_id(rid: str) -> bool:
    """Whether `rid` can be one of ours (anything else is simply not found)."""
    return 0 < len(rid) <= 64 and storable(rid)


async def conversation(store: ResponseStore, previous: str | None, owner: str,
                       max_bytes: int) -> list[dict[str, Any]]:
    """The items of the conversation `previous` ends, oldest first (400 when it is unknown, broken
    by an expired or deleted response, or too long)."""
    if previous is None:
        return []
    limit = max_bytes * HISTORY_FACTOR  # also what the store reads of it (stored bytes)
    chain = await reach(store.chain(previous, owner, MAX_CHAIN, limit)) if known_id(previous) else []
    if not chain:
        raise InvalidRequest(f"Previous response with id '{echo(previous)}' not found.",
                             param="previous_response_id")
    if chain[0].previous_response_id is not None:
        raise InvalidRequest(f"The conversation of '{echo(previous)}' is longer than {MAX_CHAIN} responses or "
                             f"{limit} bytes, or refers to a response that expired or was deleted; start a new "
                             "one (send the items you need as 'input').", param="previous_response_id")
    items = [item for stored in chain for item in stored.items]
    if len(orjson.dumps(items)) > limit:
        raise InvalidRequest("The conversation of 'previous_response_id' has grown too long to continue; start "
                             "a new one (send the items you need as 'input').", param="previous_response_id")
    return items


def listed_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Input items as OpenAI lists them: each with an id, messages with content parts."""
    out = []
    for item in items:
        item = dict(item)
        kind = str(item.get("type"))
        if not isinstance(item.get("id"), str):
            item["id"] = new_item_id(_ITEM_PREFIX.get(kind, "item"))
        if kind == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": content}]
            item.setdefault("status", "completed")
        out.append(item)
    return out


def keep(rid: str, principal: Principal, model: str, previous: str | None, items: list[dict[str, Any]],
         response: dict[str, Any]) -> StoredResponse:
    return StoredResponse(rid, owner_of(principal), principal.key_id[:40], previous, model,
                          str(response.get("status") or "completed"), items, response,
                          int(response.get("created_at") or 0))
