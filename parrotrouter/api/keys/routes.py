"""Key administration (master key only): create, list, show, update, revoke, rotate, add credits."""

from __future__ import annotations

from aiohttp import web

from ...auth.key_schema import CreditsAdd, KeyCreate, KeyUpdate, Permissions
from ...auth.keystore import KeyStore
from ...errors import InvalidRequest, NotFound, ServiceUnavailable, echo
from ...protocol.validation import convert, storable
from ..json import json_response
from ..request import app_state, read_json, require_master


def _store(http: web.Request) -> KeyStore:
    require_master(http)
    accounts = app_state(http).accounts
    if accounts is None:
        raise ServiceUnavailable("Key management is not available on this process.")
    return accounts.keys


MAX_ID_CHARS = 64  # key and account ids are 20 characters; longer ones are never looked up


def _key_id(http: web.Request) -> str:
    key_id = http.match_info["key_id"]
    if len(key_id) > MAX_ID_CHARS or not storable(key_id):
        raise NotFound(f"No API key '{echo(key_id)}'.", param="id")
    return key_id


async def _changed(http: web.Request) -> None:
    """This process sees its own key changes at once; others within `key_refresh_seconds`."""
    accounts = app_state(http).accounts
    assert accounts is not None
    await accounts.key_cache.refresh()


def _check_limits_backend(http: web.Request, permissions: Permissions | None) -> None:
    """Keys with rate limits on several workers without Redis would get N times their limits."""
    settings = app_state(http).settings
    if permissions is None or settings.workers <= 1 or settings.redis_url:
        return
    if permissions.max_requests_per_minute or permissions.max_requests_per_day or permissions.max_tokens_per_minute:
        raise InvalidRequest("Rate limits on keys need Redis when the gateway runs several workers: set redis_url "
                             "(PARROTROUTER_REDIS_URL), or run one worker.", param="permissions")


async def create_key(http: web.Request) -> web.Response:
    store = _store(http)
    body = convert(await read_json(http), KeyCreate)
    _check_limits_backend(http, body.permissions)
    created, _ = await store.create(body)
    await _changed(http)
    return json_response(created, status=201)


async def list_keys(http: web.Request) -> web.Response:
    return json_response({"object": "list", "data": await _store(http).list()})


async def get_key(http: web.Request) -> web.Response:
    return json_response(await _store(http).get(_key_id(http)))


async def update_key(http: web.Request) -> web.Response:
    store = _store(http)
    raw = await read_json(http)
    body = convert(raw, KeyUpdate)
    _check_limits_backend(http, body.permissions)
    updated = await store.update(_key_id(http), body, set(raw))
    await _changed(http)
    return json_response(updated)


async def revoke_key(http: web.Request) -> web.Response:
    revoked = await _store(http).revoke(_key_id(http))
    await _changed(http)
    return json_response(revoked)


async def rotate_key(http: web.Request) -> web.Response:
    rotated = await _store(http).rotate(_key_id(http))
    await _changed(http)
    return json_response(rotated)


async def add_credits(http: web.Request) -> web.Response:
    store = _store(http)
    body = convert(await read_json(http), CreditsAdd)
    return json_response(await store.add_credits(_key_id(http), body.amount))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/keys", create_key)
    app.router.add_get("/v1/keys", list_keys)
    app.router.add_get("/v1/keys/{key_id}", get_key)
    app.router.add_patch("/v1/keys/{key_id}", update_key)
    app.router.add_delete("/v1/keys/{key_id}", revoke_key)
    app.router.add_post("/v1/keys/{key_id}/rotate", rotate_key)
    app.router.add_post("/v1/keys/{key_id}/credits", add_credits)
