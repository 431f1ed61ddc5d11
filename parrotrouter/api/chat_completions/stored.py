"""Stored chat completions, as OpenAI offers them: a request with `store: true` keeps its answer (JSON or
stream, as served) with its messages and metadata for the key's account; `GET /v1/chat/completions`
lists them, `GET`/`POST`/`DELETE /v1/chat/completions/{completion_id}` read, re-label and delete
one, `GET .../{completion_id}/messages` lists its messages. Another account's are never found."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from aiohttp import web

from ...auth.principal import Principal
from ...errors import InvalidRequest, NotFound, echo
from ...protocol.chat import ChatCompletionUpdate
from ...protocol.validation import convert, storable
from ...serving.core import Done, Frames, StreamEvent
from ...state import AppState
from ...store.chat_completions import CompletionStore, MemoryCompletionStore, SqlCompletionStore, StoredCompletion
from ..generate import ChatEncoder
from ..json import json_response
from ..request import authenticate, read_json
from ..responses.state import known_id, owner_of, reach

log = logging.getLogger("parrotrouter.api.chat_completions")
STORE_KEY: web.AppKey[CompletionStore] = web.AppKey("parrotrouter_chat_completions", CompletionStore)
MEMORY_BYTES = 64 * 2**20
MAX_LIMIT = 100  # a page of the list (OpenAI's default: 20)
MAX_METADATA_FILTERS = 16  # as many pairs as metadata holds
_METADATA_PARAM = re.compile(r"metadata\[(.{1,64})\]", re.DOTALL)

Keeper = Callable[[dict[str, Any]], Awaitable[None]]


def build_store(state: AppState) -> CompletionStore:
    """The database when accounting is on, else this process's bounded memory; completions are kept
    as long as stored Responses API responses (`responses_max_age_days`)."""
    max_age = state.settings.responses_max_age_days * 86400
    if state.accounts is not None:
        return SqlCompletionStore(state.accounts.engine, max_age)
    return MemoryCompletionStore(max_age, MEMORY_BYTES)


def keeper(http: web.Request, principal: Principal, raw: dict[str, Any]) -> Keeper:
    """What keeps the answer of a `store: true` request (a failure to keep it is logged: the answer
    was served and billed)."""
    store = http.app[STORE_KEY]
    metadata = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    messages = raw.get("messages") if isinstance(raw.get("messages"), list) else []

    async def keep(answer: dict[str, Any]) -> None:
        cid = answer.get("id")
        if not isinstance(cid, str) or not known_id(cid):
            return
        try:
            await store.save(StoredCompletion(
                cid, owner_of(principal), str(answer.get("model") or ""), dict(metadata or {}),
                {**answer, "metadata": dict(metadata or {})}, list(messages or []), int(answer.get("created") or 0)))
        except Exception:
            log.exception("storing chat completion %s failed", cid)

    return keep


class StoringEncoder(ChatEncoder):
    """A stream, written as usual, and its answer put together from its chunks to be kept once it
    ended well (a failed stream is not kept)."""

    def __init__(self, keep: Keeper) -> None:
        self.keep = keep
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.done = False

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, Frames):
            for chunk in event.chunks:
                self._feed(chunk)
        elif isinstance(event, Done):
            self.done = True
            if event.usage is not None:
                self.usage = event.usage.get("usage")
        return super().encode(event)

    def _feed(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk.get(k) for k in ("id", "created", "model", "system_fingerprint", "service_tier")
                         if k in chunk}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            out = self.choices.setdefault(index, {"index": index, "message": {"role": "assistant", "content": None},
                                                  "logprobs": None, "finish_reason": None})
            delta = choice.get("delta") or {}
            message = out["message"]
            for field in ("content", "refusal"):
                if isinstance(delta.get(field), str):
                    message[field] = (message.get(field) or "") + delta[field]
            for call in delta.get("tool_calls") or []:
                calls = message.setdefault("tool_calls", [])
                at = call.get("index", len(calls))
                while len(calls) <= at:
                    calls.append({"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
                target = calls[at]
                if call.get("id"):
                    target["id"] = call["id"]
                function = call.get("function") or {}
                target["function"]["name"] += function.get("name") or ""
                target["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason") is not None:
                out["finish_reason"] = choice["finish_reason"]

    async def ending(self) -> None:
        if not self.done or not self.head:
            return
        answer = {**self.head, "object": "chat.completion",
                  "choices": [self.choices[i] for i in sorted(self.choices)]}
        if self.usage is not None:
            answer["usage"] = self.usage
        await self.keep(answer)


def _completion_id(http: web.Request, write: bool = False) -> tuple[str, str]:
    principal = authenticate(http, write=write)
    return http.match_info["completion_id"], owner_of(principal)


def _not_found(cid: str) -> NotFound:
    return NotFound(f"Chat completion with id '{echo(cid)}' not found.", param="completion_id")


async def _found(http: web.Request) -> StoredCompletion:
    cid, owner = _completion_id(http)
    stored = await reach(http.app[STORE_KEY].get(cid, owner)) if known_id(cid) else None
    if stored is None:
        raise _not_found(cid)
    return stored


async def get_completion(http: web.Request) -> web.Response:
    return json_response((await _found(http)).completion)


async def update_completion(http: web.Request) -> web.Response:
    cid, owner = _completion_id(http, write=True)
    update = convert(await read_json(http), ChatCompletionUpdate)
    stored = (await reach(http.app[STORE_KEY].set_metadata(cid, owner, dict(update.metadata or {})))
              if known_id(cid) else None)
    if stored is None:
        raise _not_found(cid)
    return json_response(stored.completion)


async def delete_completion(http: web.Request) -> web.Response:
    cid, owner = _completion_id(http, write=True)
    if not known_id(cid) or not await reach(http.app[STORE_KEY].delete(cid, owner)):
        raise _not_found(cid)
    return json_response({"id": cid, "object": "chat.completion.deleted", "deleted": True})


def _limit(http: web.Request) -> int:
    text = http.query.get("limit", "20")
    if not text.isdigit() or int(text) > MAX_LIMIT:
        raise InvalidRequest(f"'limit' must be an integer from 0 to {MAX_LIMIT}.", param="limit")
    return int(text)


def _order(http: web.Request, default: Literal["asc", "desc"]) -> Literal["asc", "desc"]:
    order = http.query.get("order", default)
    if order not in ("asc", "desc"):
        raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
    return "asc" if order == "asc" else "desc"


def _metadata_filter(http: web.Request) -> dict[str, str]:
    pairs = {}
    for name, value in http.query.items():
        if (match := _METADATA_PARAM.fullmatch(name)) is not None:
            pairs[match.group(1)] = value
    if len(pairs) > MAX_METADATA_FILTERS:
        raise InvalidRequest(f"At most {MAX_METADATA_FILTERS} 'metadata' filters.", param="metadata")
    return pairs


def _page(data: list[dict[str, Any]], has_more: bool) -> web.Response:
    return json_response({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                          "last_id": data[-1]["id"] if data else None, "has_more": has_more})


async def list_completions(http: web.Request) -> web.Response:
    owner = owner_of(authenticate(http))
    model, after, metadata = http.query.get("model"), http.query.get("after"), _metadata_filter(http)
    limit, order = _limit(http), _order(http, "asc")
    # What no stored completion can have (text a database cannot hold, ids not ours) matches none.
    wanted = [model or "", *metadata, *metadata.values()]
    if not all(storable(text) and len(text) <= 512 for text in wanted) or (after is not None and not known_id(after)):
        return _page([], False)
    page = await reach(http.app[STORE_KEY].list(owner, model=model, metadata=metadata, after=after, limit=limit,
                                                order=order))
    return _page([stored.completion for stored in page.data], page.has_more)


def _listed_message(cid: str, index: int, message: dict[str, Any]) -> dict[str, Any]:
    """A request message as OpenAI lists it: an id (`<completion id>-<index>`), its text as
    `content`, and its parts (text and images) as `content_parts` when it was sent as parts."""
    content = message.get("content")
    parts = None
    if isinstance(content, list):
        parts = [p for p in content if isinstance(p, dict) and p.get("type") in ("text", "image_url")]
        content = "".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")
    return {"name": None, **message, "id": f"{cid}-{index}", "content": content, "content_parts": parts}


async def list_messages(http: web.Request) -> web.Response:
    """The request's messages, as OpenAI lists them."""
    stored = await _found(http)
    messages = [_listed_message(stored.id, i, m) for i, m in enumerate(stored.messages) if isinstance(m, dict)]
    if _order(http, "asc") == "desc":
        messages.reverse()
    after = http.query.get("after")
    if after is not None:
        ids = [m["id"] for m in messages]
        messages = messages[ids.index(after) + 1:] if after in ids else []
    limit = _limit(http)
    return _page(messages[:limit], len(messages) > limit)


def add_routes(app: web.Application) -> None:
    from ..request import STATE_KEY

    app[STORE_KEY] = build_store(app[STATE_KEY])
    app.router.add_get("/v1/chat/completions", list_completions)
    app.router.add_get("/v1/chat/completions/{completion_id}", get_completion)
    app.router.add_post("/v1/chat/completions/{completion_id}", update_completion)
    app.router.add_delete("/v1/chat/completions/{completion_id}", delete_completion)
    app.router.add_get("/v1/chat/completions/{completion_id}/messages", list_messages)
