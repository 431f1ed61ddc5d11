"""OpenRouter's routing fields of a request body (`models`, `provider`), decoded and bounded here,
at the protocol layer: routing receives these typed values and never sees the raw body."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import InvalidRequest

# Bounds on what one request may ask of the router (documented in the README). OpenRouter takes
# up to 3 fallback `models`; the same cap holds for X-Failover-Config fallbacks.
MAX_FALLBACK_MODELS = 3
MAX_PROVIDER_NAMES = 32  # entries of provider.order/only/ignore and of the provider-list headers
MAX_NAME_LENGTH = 256  # a model or provider name
MAX_PRICE = Decimal(1_000_000)  # USD per million tokens: far above any real price
SORTS = ("price", "throughput", "latency")

# Fields that are not "parameters" in OpenRouter's `require_parameters` sense.
BASIC_FIELDS = frozenset({"model", "messages", "prompt", "stream", "stream_options", "user", "metadata", "models",
                          "provider", "route", "transforms", "plugins", "usage", "store", "service_tier"})


@dataclasses.dataclass(frozen=True, slots=True)
class BodyRouting:
    """The body's routing wishes. `models` holds the fallback models (deduplicated, without the
    requested model); `max_price` is (prompt, completion) in USD per million tokens."""

    models: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    allow_fallbacks: bool = True
    require_parameters: bool = False
    sort: str | None = None
    max_price: tuple[Decimal | None, Decimal | None] | None = None


NO_ROUTING = BodyRouting()


def check_name(value: Any, where: str) -> str:
    """A model or provider name: a non-empty printable string of bounded length."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequest(f"'{where}' must be a non-empty string.", param=where)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"'{where}' is longer than {MAX_NAME_LENGTH} characters.", param=where)
    if not value.isprintable():  # control characters, or bytes a header could not decode
        raise InvalidRequest(f"'{where}' must be printable text.", param=where)
    return value.strip()


def check_price(value: Any, where: str) -> Decimal | None:
    """A price in USD per million tokens, finite and bounded."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str) or (
            isinstance(value, str) and len(value) > 40):
        raise InvalidRequest(f"'{where}' must be a number (USD per million tokens).", param=where)
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"'{where}' must be a number (USD per million tokens).", param=where) from None
    if not price.is_finite() or not 0 <= price <= MAX_PRICE:
        raise InvalidRequest(f"'{where}' must be between 0 and {MAX_PRICE} (USD per million tokens).", param=where)
    return price


def decode_routing(raw: Mapping[str, Any]) -> BodyRouting:
    """The body's `models` and `provider` fields; 400 naming the field for a bad value."""
    if "models" not in raw and "provider" not in raw:
        return NO_ROUTING
    values: dict[str, Any] = {}
    models = raw.get("models")
    if models is not None:
        if not isinstance(models, list):
            raise InvalidRequest("'models' must be a list of model names.", param="models")
        # Checked before anything else looks at the list: its length is the caller's.
        if len(models) > MAX_FALLBACK_MODELS + 1:
            raise InvalidRequest(f"'models' may list at most {MAX_FALLBACK_MODELS} fallback models.", param="models")
        unique = dict.fromkeys(check_name(m, f"models[{i}]") for i, m in enumerate(models))
        unique.pop(str(raw.get("model")), None)
        if len(unique) > MAX_FALLBACK_MODELS:
            raise InvalidRequest(f"'models' may list at most {MAX_FALLBACK_MODELS} fallback models.", param="models")
        values["models"] = tuple(unique)
    prefs = raw.get("provider")
    if prefs is not None:
        _provider_fields(prefs, values)
    return BodyRouting(**values)


def _provider_fields(prefs: Any, values: dict[str, Any]) -> None:
    if not isinstance(prefs, dict):
        raise InvalidRequest("'provider' must be an object of provider preferences.", param="provider")
    for key in ("order", "only", "ignore"):
        value = prefs.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or len(value) > MAX_PROVIDER_NAMES:
            raise InvalidRequest(f"'provider.{key}' must be a list of at most {MAX_PROVIDER_NAMES} provider names.",
                                 param=f"provider.{key}")
        names = tuple(dict.fromkeys(check_name(v, f"provider.{key}[{i}]") for i, v in enumerate(value)))
        values[key] = names if key == "order" else frozenset(names)
    for key in ("allow_fallbacks", "require_parameters"):
        if key in prefs:
            if not isinstance(prefs[key], bool):
                raise InvalidRequest(f"'provider.{key}' must be true or false.", param=f"provider.{key}")
            values[key] = prefs[key]
    sort = prefs.get("sort")
    if sort is not None:
        if not isinstance(sort, str) or sort not in SORTS:
            raise InvalidRequest("'provider.sort' must be price, throughput or latency.", param="provider.sort")
        values["sort"] = sort
    max_price = prefs.get("max_price")
    if max_price is not None:
        if not isinstance(max_price, dict):
            raise InvalidRequest("'provider.max_price' must be {prompt, completion}.", param="provider.max_price")
        values["max_price"] = (check_price(max_price.get("prompt"), "provider.max_price.prompt"),
                               check_price(max_price.get("completion"), "provider.max_price.completion"))


def sent_parameters(raw: Mapping[str, Any]) -> frozenset[str]:
    """The request parameters a body sets (for `provider.require_parameters`)."""
    return frozenset(k for k, v in raw.items() if k not in BASIC_FIELDS and v is not None)
