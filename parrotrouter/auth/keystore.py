"""API keys in the database: create, list, show, update, revoke, rotate; credits on accounts.

Every write bumps `meta.keys_version` in the same transaction; each gateway process polls that one
row and reloads its in-memory key table when it changed (`KeyCache`), so a revoked or changed key
takes effect everywhere within the poll interval, with no database round trip per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import logging
import secrets
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import ExpiredApiKey, InvalidApiKey, InvalidRequest, MissingApiKey, NotFound, echo
from ..home import KEY_PREFIX, KeyHasher, display_prefix, hash_key, new_api_key
from ..store.schema import accounts, api_keys, meta, usd_text
from .key_schema import MAX_USD, KeyCreate, KeyUpdate, check_body, check_money, to_json
from .permissions import Policy
from .principal import MASTER, Principal

log = logging.getLogger("parrotrouter.keys")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


async def _bump(conn: AsyncConnection) -> None:
    await conn.execute(sa.update(meta).where(meta.c.name == "keys_version").values(value=meta.c.value + 1))


def key_json(row: Any, balance: Decimal | None = None) -> dict[str, Any]:
    """The API's view of a key (never the secret)."""
    out = {
        "id": row.id, "object": "api_key", "name": row.name, "description": row.description,
        "prefix": row.prefix, "account_id": row.account_id, "permissions": row.permissions,
        "restrictions": row.restrictions, "metadata": row.metadata, "expires_at": _iso(row.expires_at),
        "revoked": row.revoked_at is not None, "revoked_at": _iso(row.revoked_at),
        "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
    }
    if balance is not None:
        out["balance"] = {"credits": balance, "currency": "USD"}
    return out


class KeyStore:
    def __init__(self, engine: AsyncEngine, secret: bytes) -> None:
        self.engine = engine
        self.secret = secret

    async def create(self, body: KeyCreate) -> tuple[dict[str, Any], str]:
        check_body(body)
        check_money(body.credits, "credits")
        if body.credits is not None and body.account_id is not None:
            raise InvalidRequest("Give either 'credits' (a new account) or 'account_id' (share a balance).",
                                 param="credits")
        secret = new_api_key()
        now = utcnow()
        key_id = "key_" + secrets.token_hex(8)
        async with self.engine.begin() as conn:
            if body.account_id is not None:
                found = await conn.scalar(sa.select(accounts.c.id).where(accounts.c.id == body.account_id))
                if found is None:
                    raise InvalidRequest(f"No account '{echo(body.account_id)}'.", param="account_id")
                account_id = body.account_id
            else:
                account_id = "acct_" + secrets.token_hex(8)
                await conn.execute(sa.insert(accounts).values(
                    id=account_id, name=body.name, balance=body.credits or Decimal(0), leased=Decimal(0),
                    created_at=now, updated_at=now))
            await conn.execute(sa.insert(api_keys).values(
                id=key_id, account_id=account_id, name=body.name, description=body.description,
                key_hash=hash_key(self.secret, secret), prefix=display_prefix(secret),
                permissions=to_json(body.permissions) or {}, restrictions=to_json(body.restrictions) or {},
                metadata=body.metadata or {}, expires_at=body.expires_at, revoked_at=None,
                created_at=now, updated_at=now))
            await _bump(conn)
        shown = await self.get(key_id)
        shown["key"] = secret
        return shown, secret

    async def _row(self, conn: AsyncConnection, key_id: str) -> Any:
        row = (await conn.execute(sa.select(api_keys).where(api_keys.c.id == key_id))).first()
        if row is None:
            raise NotFound(f"No API key '{echo(key_id)}'.", param="id")
        return row

    async def get(self, key_id: str) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            row = await self._row(conn, key_id)
            balance = await conn.scalar(sa.select(accounts.c.balance).where(accounts.c.id == row.account_id))
        return key_json(row, balance)

    async def list(self) -> list[dict[str, Any]]:
        query = (sa.select(api_keys, accounts.c.balance).join(accounts, accounts.c.id == api_keys.c.account_id)
                 .order_by(api_keys.c.created_at))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [key_json(r, r.balance) for r in rows]

    async def update(self, key_id: str, body: KeyUpdate, fields: set[str]) -> dict[str, Any]:
        """Apply the fields present in the PATCH body (`fields`); null clears optional ones."""
        check_body(body)
        values: dict[str, Any] = {}
        for name in ("name", "description", "expires_at"):
            if name in fields:
                if name == "name" and body.name is None:
                    raise InvalidRequest("'name' cannot be null.", param="name")
                values[name] = getattr(body, name)
        for name in ("permissions", "restrictions", "metadata"):
            if name in fields:
                values[name] = to_json(getattr(body, name)) or {}
        async with self.engine.begin() as conn:
            await self._row(conn, key_id)
            if values:
                values["updated_at"] = utcnow()
                await conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(**values))
                await _bump(conn)
        return await self.get(key_id)

    async def revoke(self, key_id: str) -> dict[str, Any]:
        async with self.engine.begin() as conn:
            row = await self._row(conn, key_id)
            if row.revoked_at is None:
                now = utcnow()
                await conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id)
                                   .values(revoked_at=now, updated_at=now))
                await _bump(conn)
        return await self.get(key_id)

    async def rotate(self, key_id: str) -> dict[str, Any]:
        """A new secret for the same key and settings; the old secret stops working."""
        secret = new_api_key()
        async with self.engine.begin() as conn:
            row = await self._row(conn, key_id)
            if row.revoked_at is not None:
                raise InvalidRequest("A revoked key cannot be rotated.", param="id")
            await conn.execute(sa.update(api_keys).where(api_keys.c.id == key_id).values(
                key_hash=hash_key(self.secret, secret), prefix=display_prefix(secret), updated_at=utcnow()))
            await _bump(conn)
        shown = await self.get(key_id)
        shown["key"] = secret
        return shown

    async def add_credits(self, key_or_account: str, amount: Decimal) -> dict[str, Any]:
        """Add (or, with a negative amount, remove) USD on an account, named by account or key id."""
        check_money(amount, "amount", signed=True)
        async with self.engine.begin() as conn:
            account_id: str | None = key_or_account
            if not key_or_account.startswith("acct_"):
                account_id = await conn.scalar(sa.select(api_keys.c.account_id)
                                               .where(api_keys.c.id == key_or_account))
                if account_id is None:
                    raise NotFound(f"No key or account '{echo(key_or_account)}'.", param="id")
            row = (await conn.execute(sa.select(accounts).where(accounts.c.id == account_id))).first()
            if row is None:
                raise NotFound(f"No account '{echo(account_id)}'.", param="id")
            if row.balance + amount < row.leased:
                raise InvalidRequest("The balance cannot go below what in-flight requests have reserved.",
                                     param="amount")
            if row.balance + amount > MAX_USD:
                raise InvalidRequest(f"The balance would exceed {usd_text(MAX_USD)} USD (it is "
                                     f"{usd_text(row.balance)} USD).", param="amount")
            await conn.execute(sa.update(accounts).where(accounts.c.id == account_id).values(
                balance=accounts.c.balance + amount, updated_at=utcnow()))
            balance = await conn.scalar(sa.select(accounts.c.balance).where(accounts.c.id == account_id))
        return {"account_id": account_id, "balance": {"credits": balance, "currency": "USD"}}


@dataclasses.dataclass(frozen=True, slots=True)
class KeyEntry:
    principal: Principal
    expires_at: float | None
    revoked: bool


class KeyCache:
    """Every key, in memory, by keyed hash; reloaded when `meta.keys_version` changes."""

    def __init__(self, engine: AsyncEngine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self.by_hash: dict[str, KeyEntry] = {}
        self.version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned: set[tuple[str, str]] = set()

    async def refresh(self) -> None:
        async with self.engine.connect() as conn:
            version = await conn.scalar(sa.select(meta.c.value).where(meta.c.name == "keys_version"))
            if version == self.version:
                return
            rows = (await conn.execute(sa.select(api_keys))).all()
        table = {}
        for row in rows:
            problems: list[str] = []
            try:
                expires = _aware(row.expires_at)
                policy = Policy.from_json(row.permissions or {}, row.restrictions or {}, problems)
                principal = Principal(key_id=row.id, name=row.name, account_id=row.account_id, policy=policy)
                table[row.key_hash] = KeyEntry(principal, expires.timestamp() if expires else None,
                                               row.revoked_at is not None)
            except Exception as exc:  # one unreadable row must not take every other key down
                problems.append(f"the key is unusable until fixed ({type(exc).__name__}: {echo(str(exc))})")
            self._warn_once(row.id, problems)
        self.by_hash = table
        self.version = version

    def _warn_once(self, key_id: str, problems: list[str]) -> None:
        """Stored values the policy had to bring within bounds, logged once per key and problem
        (the table is reloaded on every key change)."""
        for problem in problems:
            if (key_id, problem) not in self._warned:
                self._warned.add((key_id, problem))
                log.warning("API key %s: stored %s", key_id, problem)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._poll(), name="key-cache")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.refresh()
            except Exception:  # the database may be briefly unavailable: keep the last table
                log.exception("refreshing API keys failed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class KeyAuthenticator:
    """The master key and the stored keys. The bearer token is HMAC-hashed with the server
    secret and looked up by digest: the comparison never touches the secret itself, and the
    master key is compared with `hmac.compare_digest`."""

    def __init__(self, secret: bytes, master_hash: str | None, cache: KeyCache) -> None:
        self._hash = KeyHasher(secret)
        self._master_hash = master_hash
        self._cache = cache

    def authenticate(self, token: str | None) -> Principal:
        if token is None:
            raise MissingApiKey("No API key provided. Send it as 'Authorization: Bearer pr-...'.")
        if not token.startswith(KEY_PREFIX):
            raise InvalidApiKey("The API key is not valid.")
        digest = self._hash(token)
        if self._master_hash is not None and hmac.compare_digest(digest, self._master_hash):
            return MASTER
        entry = self._cache.by_hash.get(digest)
        if entry is None:
            raise InvalidApiKey("The API key is not valid.")
        if entry.revoked:
            raise InvalidApiKey("The API key has been revoked.")
        if entry.expires_at is not None and time.time() >= entry.expires_at:
            raise ExpiredApiKey("The API key has expired.")
        return entry.principal
