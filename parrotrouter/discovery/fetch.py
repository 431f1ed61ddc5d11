"""Read an upstream's model list over HTTP: size-capped, time-bounded, no redirects followed.

A failure is a `DiscoveryFailed` whose reason never quotes a URL, a header or a key (it is logged).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import re
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from . import wire
from .servers import root_of

MAX_SHOWN = 500  # Ollama: models whose /api/show is asked (their context length and capabilities)
SHOW_CONCURRENCY = 4
MAX_SHOW_BYTES = 2**20


class DiscoveryFailed(Exception):
    """Why an upstream's models could not be listed, in words safe to log."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclasses.dataclass(frozen=True, slots=True)
class Source:
    """How one provider's models are listed."""

    provider: str
    dialect: str  # openai | openrouter | ollama | lmstudio | llamacpp
    base_url: str  # the OpenAI-compatible base (…/v1)
    headers: Mapping[str, str] = dataclasses.field(repr=False)  # may hold the provider's key
    keep: str | None = None  # a regex: only ids it matches are served


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, DiscoveryFailed):
        return exc.reason
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not found"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connection refused" if exc.os_error.errno == errno.ECONNREFUSED else "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection closed by the server"
    return f"failed ({type(exc).__name__})"


async def read_json(session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], timeout: float, *,
                    body: Any = None, limit: int = wire.MAX_BODY_BYTES) -> Any:
    """GET (or POST `body` as JSON) and parse the answer; at most `limit` bytes are read."""
    method = "GET" if body is None else "POST"
    async with session.request(method, url, headers=headers, json=body, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        if response.status != 200:
            raise DiscoveryFailed(f"HTTP {response.status}", response.status)
        if response.content_length is not None and response.content_length > limit:
            raise DiscoveryFailed(f"answer larger than {limit} bytes")
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise DiscoveryFailed(f"answer larger than {limit} bytes")
            chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise DiscoveryFailed("answer is not JSON") from None


async def _generic(session: aiohttp.ClientSession, source: Source, timeout: float) -> wire.Listing:
    obj = await read_json(session, source.base_url + "/models", source.headers, timeout)
    listing = wire.read_openai(obj, prices=source.dialect == "openrouter")
    if listing is None:
        raise DiscoveryFailed("answer is not a model list")
    return listing


async def _ollama(session: aiohttp.ClientSession, source: Source, timeout: float,
                  known: dict[str, wire.Listed]) -> wire.Listing:
    root = root_of(source.base_url)
    try:
        obj = await read_json(session, root + "/api/tags", source.headers, timeout)
    except DiscoveryFailed as exc:
        if exc.status in (404, 405):  # not Ollama after all (or a proxy of its /v1 only)
            return await _generic(session, source, timeout)
        raise
    listing = wire.read_ollama_tags(obj)
    if listing is None:
        raise DiscoveryFailed("answer is not an Ollama model list")
    gate = asyncio.Semaphore(SHOW_CONCURRENCY)

    async def show(model: wire.Listed) -> wire.Listed:
        if model.digest is not None and (seen := known.get(model.id)) is not None and seen.digest == model.digest:
            return seen  # the same model as last round: its details too
        # `model` is the field today, `name` the one older Ollama releases read: both, for either.
        async with gate:
            try:
                details = await read_json(session, root + "/api/show", source.headers, timeout,
                                          body={"model": model.id, "name": model.id}, limit=MAX_SHOW_BYTES)
            except (DiscoveryFailed, aiohttp.ClientError, TimeoutError, ValueError):
                return model  # listed without details: still served
        return wire.read_ollama_show(model, details)

    shown = await asyncio.gather(*(show(m) for m in listing.models[:MAX_SHOWN]))
    known.clear()  # remembered: the models whose details arrived (the others are asked again)
    known.update((m.id, m) for m in shown if m.context_length is not None or m.embedding is not None)
    return dataclasses.replace(listing, models=(*shown, *listing.models[MAX_SHOWN:]))


async def _lmstudio(session: aiohttp.ClientSession, source: Source, timeout: float,
                    known: dict[str, wire.Listed]) -> wire.Listing:
    try:
        obj = await read_json(session, root_of(source.base_url) + "/api/v0/models", source.headers, timeout)
    except DiscoveryFailed as exc:
        if exc.status in (404, 405):  # an older LM Studio, or its OpenAI-compatible API alone
            return await _generic(session, source, timeout)
        raise
    listing = wire.read_lmstudio(obj)
    return listing if listing is not None else await _generic(session, source, timeout)


async def _llamacpp(session: aiohttp.ClientSession, source: Source, timeout: float,
                    known: dict[str, wire.Listed]) -> wire.Listing:
    listing = await _generic(session, source, timeout)
    if len(listing.models) != 1:
        return listing
    try:  # the context it serves (--ctx-size), rather than the one the model was trained for
        n_ctx = wire.read_llamacpp_props(await read_json(session, root_of(source.base_url) + "/props",
                                                         source.headers, timeout, limit=MAX_SHOW_BYTES))
    except (DiscoveryFailed, aiohttp.ClientError, TimeoutError, ValueError):
        n_ctx = None
    if n_ctx is None:
        return listing
    return dataclasses.replace(listing, models=(dataclasses.replace(listing.models[0], context_length=n_ctx),))


async def _openai(session: aiohttp.ClientSession, source: Source, timeout: float,
                  known: dict[str, wire.Listed]) -> wire.Listing:
    return await _generic(session, source, timeout)


READERS = {"openai": _openai, "openrouter": _openai, "ollama": _ollama, "lmstudio": _lmstudio, "llamacpp": _llamacpp}


async def list_models(session: aiohttp.ClientSession, source: Source, timeout: float,
                      known: dict[str, wire.Listed] | None = None) -> wire.Listing:
    """The provider's models as its upstream lists them (filtered by `source.keep`). `known`: what
    the last round learned of each model, kept by the caller (Ollama's details, asked again only
    when a model's digest changed)."""
    listing = await READERS.get(source.dialect, _openai)(session, source, timeout, {} if known is None else known)
    if source.keep is None:
        return listing
    keep = re.compile(source.keep)
    return dataclasses.replace(listing, models=tuple(m for m in listing.models if keep.search(m.id)))
