"""The key admin API's request bodies, as the ParrotRouter docs define them."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from ..errors import InvalidRequest

Feature = Literal["chat", "completions", "streaming", "tools", "vision", "json_mode", "embeddings"]
FEATURES: tuple[str, ...] = ("chat", "completions", "streaming", "tools", "vision", "json_mode", "embeddings")
Operation = Literal["read", "write"]
PositiveInt = Annotated[int, Meta(ge=1)]
Name = Annotated[str, Meta(min_length=1, max_length=200)]


class ModelRules(Struct, forbid_unknown_fields=True, omit_defaults=True):
    allowed: list[str] | None = None
    denied: list[str] | None = None


class Permissions(Struct, forbid_unknown_fields=True, omit_defaults=True):
    models: list[str] | ModelRules | None = None
    features: list[Feature] | None = None
    operations: list[Operation] | None = None
    max_requests_per_minute: PositiveInt | None = None
    max_requests_per_day: PositiveInt | None = None
    max_tokens_per_minute: PositiveInt | None = None
    max_cost_per_day: Decimal | None = None


class Restrictions(Struct, forbid_unknown_fields=True, omit_defaults=True):
    ip_whitelist: list[str] | None = None
    domains: list[str] | None = None
    referrers: list[str] | None = None
    user_agents: list[str] | None = None


class KeyCreate(Struct, forbid_unknown_fields=True):
    name: Name
    description: Annotated[str, Meta(max_length=2000)] | None = None
    permissions: Permissions | None = None
    restrictions: Restrictions | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = None
    credits: Decimal | None = None
    account_id: str | None = None


class KeyUpdate(Struct, forbid_unknown_fields=True):
    name: Name | None = None
    description: Annotated[str, Meta(max_length=2000)] | None = None
    permissions: Permissions | None = None
    restrictions: Restrictions | None = None
    metadata: dict[str, Any] | None = None
    expires_at: datetime | None = None


class CreditsAdd(Struct, forbid_unknown_fields=True):
    amount: Decimal


def check_money(value: Decimal | None, param: str) -> None:
    if value is not None and (not value.is_finite() or value < 0):
        raise InvalidRequest(f"'{param}' must be a non-negative amount of USD.", param=param)


def check_body(permissions: Permissions | None, restrictions: Restrictions | None,
               expires_at: datetime | None) -> None:
    """Rules the types cannot state; 400 naming the param."""
    if permissions is not None:
        check_money(permissions.max_cost_per_day, "permissions.max_cost_per_day")
    check_restrictions(restrictions)
    check_expiry(expires_at)


def check_restrictions(r: Restrictions | None) -> None:
    if r is None:
        return
    for i, cidr in enumerate(r.ip_whitelist or ()):
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise InvalidRequest(f"'{cidr}' is not an IP address or CIDR block.",
                                 param=f"restrictions.ip_whitelist[{i}]") from None
    for i, domain in enumerate(r.domains or ()):
        host = domain[2:] if domain.startswith("*.") else domain
        if not host or "/" in host or "*" in host or " " in host:
            raise InvalidRequest(f"'{domain}' is not a host name or *.host pattern.",
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
        return str(obj)
    raise TypeError(type(obj))
