"""Stored chat completions (`store: true` on POST /v1/chat/completions): each answer as served, with
the request's messages and metadata, owned by an account and kept for a maximum age, for OpenAI's
GET/POST/DELETE /v1/chat/completions/{id}, GET /v1/chat/completions/{id}/messages and the list.

Kept in a bounded store in this process's memory (lost at restart, not shared between workers): the
newest completions, at most `max_bytes` of their JSON in all; older ones are dropped first.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Iterator, Mapping
from typing import Any, Literal, Protocol

import orjson


@dataclasses.dataclass(slots=True)
class StoredCompletion:
    id: str
    owner: str  # the key's account (the master key: its key id)
    model: str
    metadata: dict[str, str]
    completion: dict[str, Any]  # the answer as served, its `metadata` kept in step
    messages: list[dict[str, Any]]  # the request's
    created_at: int  # epoch seconds
    size: int = 0  # bytes of its JSON (what the store counts)


@dataclasses.dataclass(frozen=True, slots=True)
class Page:
    data: list[StoredCompletion]
    has_more: bool


class CompletionStore(Protocol):
    max_age: float  # seconds

    async def save(self, stored: StoredCompletion) -> None: ...

    async def get(self, cid: str, owner: str) -> StoredCompletion | None: ...

    async def set_metadata(self, cid: str, owner: str, metadata: dict[str, str]) -> StoredCompletion | None: ...

    async def delete(self, cid: str, owner: str) -> bool: ...

    async def list(self, owner: str, *, model: str | None, metadata: Mapping[str, str], after: str | None,
                   limit: int, order: Literal["asc", "desc"]) -> Page:
        """The owner's completions in creation order (`desc`: newest first), those of `model` and
        with every `metadata` pair only, from the one after `after` on (an id not among them: an
        empty page), at most `limit`."""
        ...


class MemoryCompletionStore:
    def __init__(self, max_age: float, max_bytes: int) -> None:
        self.max_age = max_age
        self.max_bytes = max_bytes
        self._rows: collections.OrderedDict[str, StoredCompletion] = collections.OrderedDict()  # oldest first
        self._bytes = 0

    def _live(self, cid: str, owner: str) -> StoredCompletion | None:
        found = self._rows.get(cid)
        if found is None or found.owner != owner or found.created_at < time.time() - self.max_age:
            return None
        return found

    async def save(self, stored: StoredCompletion) -> None:
        stored.size = len(orjson.dumps(stored.completion)) + len(orjson.dumps(stored.messages))
        if stored.size > self.max_bytes:
            return
        if (old := self._rows.pop(stored.id, None)) is not None:
            self._bytes -= old.size
        self._rows[stored.id] = stored
        self._bytes += stored.size
        while self._bytes > self.max_bytes:
            _, dropped = self._rows.popitem(last=False)
            self._bytes -= dropped.size

    async def get(self, cid: str, owner: str) -> StoredCompletion | None:
        return self._live(cid, owner)

    async def set_metadata(self, cid: str, owner: str, metadata: dict[str, str]) -> StoredCompletion | None:
        found = self._live(cid, owner)
        if found is not None:
            found.metadata = dict(metadata)
            found.completion = {**found.completion, "metadata": found.metadata}
        return found

    async def delete(self, cid: str, owner: str) -> bool:
        found = self._live(cid, owner)
        if found is None:
            return False
        self._bytes -= self._rows.pop(cid).size
        return True

    def _matching(self, owner: str, model: str | None, metadata: Mapping[str, str],
                  order: Literal["asc", "desc"]) -> Iterator[StoredCompletion]:
        cutoff = time.time() - self.max_age
        rows = reversed(self._rows.values()) if order == "desc" else iter(self._rows.values())
        for row in rows:
            if (row.owner == owner and row.created_at >= cutoff and (model is None or row.model == model)
                    and all(row.metadata.get(k) == v for k, v in metadata.items())):
                yield row

    async def list(self, owner: str, *, model: str | None, metadata: Mapping[str, str], after: str | None,
                   limit: int, order: Literal["asc", "desc"]) -> Page:
        rows = self._matching(owner, model, metadata, order)
        if after is not None and not any(row.id == after for row in rows):
            return Page([], False)
        data: list[StoredCompletion] = []
        for row in rows:
            if len(data) == limit:
                return Page(data, True)
            data.append(row)
        return Page(data, False)
