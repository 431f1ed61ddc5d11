"""The key admin API's request bodies, as the ParrotRouter docs define them."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import orjson
from msgspec import Meta, Struct

from ..errors import InvalidRequest, echo
from ..protocol.validation import check_storable
from ..store.schema import NANO, usd_text

Feature = Literal["chat", "completions", "streaming", "tools", "vision", "json_mode", "embeddings"]
FEATURES: tuple[str, ...] = ("chat", "completions", "streaming", "tools", "vision", "json_mode", "embeddings")
Operation = Literal["read", "write"]
Name = Annotated[str, Meta(min_length=1, max_length=200)]

# Bounds (the README's table lists them). Money: USD amounts are whole nano-dollars (the database
# stores integer nano-dollars) of at most MAX_USD, and a balance stays within MAX_USD too, so every
# sum the gateway forms stays far inside 64-bit integers.
MAX_USD = Decimal(1_000_000_000)
USD_PLACES = 9
MAX_RATE = 1_000_000_000  # requests per minute or day, tokens per minute
RateLimit = Annotated[int, Meta(ge=1, le=MAX_RATE)]
MAX_PATTERNS = 1000  # entries of a model, IP, domain, referrer or user-agent list
Pattern = Annotated[str, Meta(min_length=1, max_length=500)]
Patterns = Annotated[list[Pattern], Meta(max_length=MAX_PATTERNS)]
MAX_METADATA_BYTES = 16_384  # a key's free-form metadata, as JSON
AccountId = Annotated[str, Meta(min_length=1, max_length=40)]


class ModelRules(Struct, forbid_unknown_fields=True, omit_defaults=True):
    allowed: Patterns | None = None
    denied: Patterns | None = None


class Permissions(Struct, forbid_unknown_fields=True, omit_defaults=True):
    models: Patterns | ModelRules | None = None
    features: list[Feature] | None = None
    operations: list[Operation] | None = None
    max_requests_per_minute: RateLimit | None = None
    max_requests_per_day: RateLimit | None = None
    max_tokens_per_minute: RateLimit | None = None
    max_cost_per_day: Decimal | None = None


class Restrictions(Struct, forbid_unknown_fields=True, omit_defaults=True):
    ip_whitelist: Patterns | None = None
    domains: Patterns | None = None
    referrers: Patterns | None = None
    user_agents: Patterns | None = None


class KeyCreate(Struct, forbid_unknown_fields=True):
    name: Name
    description: Annotated[str, Meta(max_length=2000)] | None = None
    permissions: Permissions | None = None
    restrictions: Restrictions | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = None
    credits: Decimal | None = None
    account_id: AccountId | None = None


class KeyUpdate(Struct, forbid_unknown_fields=True):
    name: Name | None = None
    description: Annotated[str, Meta(max_length=2000)] | None = None
    permissions: Permissions | None = None
    restrictions: Restrictions | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = None


class CreditsAdd(Struct, forbid_unknown_fields=True):
    amount: Decimal


def check_money(value: Decimal | None, param: str, *, signed: bool = False) -> None:
    """400 unless `value` is a finite USD amount of at most MAX_USD (non-negative unless `signed`)
    in whole nano-dollars: a finer amount could not be stored exactly, and is refused rather than
    silently rounded."""
    if value is None:
        return
    low = -MAX_USD if signed else Decimal(0)
    if not value.is_finite() or not low <= value <= MAX_USD:
        raise InvalidRequest(f"'{param}' must be a number of USD from {usd_text(low)} to {usd_text(MAX_USD)}.",
                             param=param)
    if value != value.quantize(NANO):
        raise InvalidRequest(f"'{param}' has more than {USD_PLACES} decimal places (the smallest amount is "
                             "0.000000001 USD).", param=param)


def check_metadata(metadata: dict[str, Any] | None) -> None:
    if metadata is not None and len(orjson.dumps(metadata)) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"'metadata' is larger than {MAX_METADATA_BYTES} bytes as JSON.", param="metadata")


def check_body(body: KeyCreate | KeyUpdate) -> None:
    """Rules the types cannot state; 400 naming the param."""
    for field in ("name", "description", "metadata", "account_id"):
        check_storable(getattr(body, field, None), field)
    for field in ("permissions", "restrictions"):
        value = getattr(body, field)
        if value is not None:
            check_storable(msgspec.to_builtins(value, enc_hook=str), field)
    if body.permissions is not None:
        check_money(body.permissions.max_cost_per_day, "permissions.max_cost_per_day")
    check_restrictions(body.restrictions)
    check_expiry(body.expires_at)
    check_metadata(body.metadata)


def check_restrictions(r: Restrictions | None) -> None:
    if r is None:
        return
    for i, cidr in enumerate(r.ip_whitelist or ()):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise InvalidRequest(f"'{echo(cidr)}' is not an IP address or CIDR block.",
                                 param=f"restrictions.ip_whitelist[{i}]") from None
    for i, domain in enumerate(r.domains or ()):
        host = domain[2:] if domain.startswith("*.") else domain
        if not host or "/" in host or "*" in host or " " in host:
            raise InvalidRequest(f"'{echo(domain)}' is not a host name or *.host pattern.",
                                 param=f"restrictions.domains[{i}]")


def check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidRequest("'expires_at' must carry a time zone (e.g. 2026-12-31T23:59:59Z).",
                             param="expires_at")


def to_json(value: Any) -> Any:
    """Structs (with Decimals) to plain JSON values for storage and responses."""
    return msgspec.to_builtins(value, enc_hook=_enc) if value is not None else None


def _enc(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return usd_text(obj)  # stored as a plain decimal string, never 1E+2
    raise TypeError(type(obj))
