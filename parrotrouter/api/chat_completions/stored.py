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
    ended well (a failed stream is not kept).

    The chunks' deltas are the upstream's words, relayed as they came: what is put together here
    takes only what fits OpenAI's shape (a choice or tool call index below `MAX_INDEX`, text as
    strings), so junk neither breaks the stream nor makes the worker build a trillion tool calls;
    texts are joined once, at the end (linear in the stream's length)."""

    def __init__(self, keep: Keeper) -> None:
        self.keep = keep
        self.head: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
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
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            index = _index(choice.get("index", 0)) if isinstance(choice, dict) else None
            if index is None:
                continue
            out = self.choices.get(index)
            if out is None:
                if len(self.choices) >= MAX_INDEX:
                    continue
                out = self.choices[index] = _Choice()
            delta = choice.get("delta")
            if isinstance(delta, dict):
                out.feed(delta)
            if isinstance(choice.get("finish_reason"), str):
                out.finish_reason = choice["finish_reason"]

    async def ending(self) -> None:
        if not self.done or not self.head:
            return
        answer = {**self.head, "object": "chat.completion",
                  "choices": [self.choices[i].answer(i) for i in sorted(self.choices)]}
        if self.usage is not None:
            answer["usage"] = self.usage
        await self.keep(answer)


MAX_INDEX = 128  # choices (`n`) and tool calls of one answer a stream may put together (OpenAI: n <= 128)


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_INDEX else None


class _Choice:
    """One choice of a stream, as its deltas arrive: text parts, joined at the end."""

    __slots__ = ("content", "finish_reason", "refusal", "tool_calls")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None

    def feed(self, delta: dict[str, Any]) -> None:
        if isinstance(text := delta.get("content"), str):
            self.content.append(text)
        if isinstance(text := delta.get("refusal"), str):
            self.refusal.append(text)
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            at = _index(call.get("index", len(self.tool_calls))) if isinstance(call, dict) else None
            if at is None:
                continue
            target = self.tool_calls.setdefault(at, {"id": "", "type": "function", "name": [], "arguments": []})
            if isinstance(call.get("id"), str) and call["id"]:
                target["id"] = call["id"]
            function = call.get("function")
            if isinstance(function, dict):
                for field in ("name", "arguments"):
                    if isinstance(function.get(field), str):
                        target[field].append(function[field])

    def answer(self, index: int) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) if self.content else None}
        if self.refusal:
            message["refusal"] = "".join(self.refusal)
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": call["id"], "type": "function",
                 "function": {"name": "".join(call["name"]), "arguments": "".join(call["arguments"])}}
                for _, call in sorted(self.tool_calls.items())]
        return {"index": index, "message": message, "logprobs": None, "finish_reason": self.finish_reason}


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
    # ASCII digits only: `isdigit` alone takes "²" (int() refuses it) and 5,000 digits (so does int())
    if not (0 < len(text) <= 3 and text.isascii() and text.isdigit()) or int(text) > MAX_LIMIT:
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
