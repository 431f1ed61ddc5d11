"""A request's routing wishes: the ParrotRouter routing headers and the OpenRouter body fields.

How they combine (documented in the README):
  1. `X-Provider` (or `X-Failover-Config.primary`) pins the first attempt to one provider.
  2. `provider.only` / `provider.ignore`, `X-Max-Cost-Per-1K-Tokens` / `provider.max_price`,
     `X-Max-Latency-Ms`, `provider.require_parameters` and open circuit breakers remove
     deployments.
  3. The strategy orders what is left: `X-Routing-Strategy`, else `provider.sort`, else the
     model's configured strategy, else weighted.
  4. `X-Provider-Preference` / `provider.order` (the header wins) moves the named providers to
     the front, in that order; `X-Failover-Providers` moves the named ones right after the first.
  5. Fallback models follow the requested one: the body's `models`, then `X-Failover-Config`
     fallbacks (each used only for the failure kinds its `trigger` lists).
  6. `X-Failover-Enabled: false` or `provider.allow_fallbacks: false` keeps only the first
     deployment; `X-Max-Retries` / `X-Retry-Delay-Ms` set retries of the same deployment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from ..errors import FailureKind, InvalidRequest, echo
from ..protocol.routing_fields import MAX_FALLBACK_MODELS, MAX_PROVIDER_NAMES, NO_ROUTING, BodyRouting, check_name
from ..settings import Settings, parse_bool
from .strategies import ALIASES, STRATEGIES, strategy_name

TRIGGERS = {"timeout": FailureKind.TIMEOUT, "rate_limit": FailureKind.RATE_LIMIT,
            "server_error": FailureKind.SERVER_ERROR, "model_overloaded": FailureKind.MODEL_OVERLOADED}
ROUTING_HEADERS = ("X-Provider", "X-Provider-Preference", "X-Routing-Strategy", "X-User-Region", "X-Max-Latency-Ms",
                   "X-Max-Cost-Per-1K-Tokens", "X-Failover-Enabled", "X-Failover-Providers", "X-Max-Retries",
                   "X-Retry-Delay-Ms", "X-Failover-Config")
MAX_RETRIES = 5
MAX_FALLBACKS = MAX_FALLBACK_MODELS  # X-Failover-Config fallbacks, as OpenRouter's `models`


@dataclasses.dataclass(frozen=True, slots=True)
class Budget:
    """What one request may spend on upstream attempts: calls, wall time until its answer starts,
    and the longest single wait before a retry (an upstream's Retry-After included)."""

    max_attempts: int = 8
    seconds: float = 600.0
    max_wait: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Budget:
        return cls(max_attempts=settings.max_attempts, seconds=settings.request_timeout,
                   max_wait=settings.max_retry_wait)


DEFAULT_BUDGET = Budget()


@dataclasses.dataclass(frozen=True, slots=True)
class Fallback:
    model: str | None
    provider: str | None
    triggers: frozenset[FailureKind] | None  # None: any error
    reduce_max_tokens: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class RoutingPolicy:
    force_provider: str | None = None
    primary_model: str | None = None
    preference: tuple[str, ...] = ()
    failover_providers: tuple[str, ...] = ()
    strategy: str | None = None
    user_region: str | None = None
    max_latency_ms: float | None = None
    max_cost_per_1k: Decimal | None = None
    max_price: tuple[Decimal | None, Decimal | None] | None = None  # (prompt, completion) per 1M tokens
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    require_parameters: bool = False
    fallbacks_enabled: bool = True
    max_retries: int | None = None
    retry_delay_ms: int | None = None
    fallback_models: tuple[str, ...] = ()
    conditional_fallbacks: tuple[Fallback, ...] = ()
    breaker: dict[str, Any] | None = None

    @property
    def is_default(self) -> bool:
        return self is DEFAULT


DEFAULT = RoutingPolicy()


def _bad(header: str, why: str) -> InvalidRequest:
    return InvalidRequest(f"Invalid {header} header: {why}.", param=header)


_name = check_name


def _names(value: str, header: str) -> tuple[str, ...]:
    """A comma-separated header list, deduplicated, in order."""
    names = tuple(dict.fromkeys(_name(p, header) for p in value.split(",") if p.strip()))
    if len(names) > MAX_PROVIDER_NAMES:
        raise _bad(header, f"at most {MAX_PROVIDER_NAMES} providers")
    return names


def _number(header: str, value: str, low: float, high: float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _bad(header, "not a number") from None
    if not low <= number <= high:
        raise _bad(header, f"must be between {low:g} and {high:g}")
    return number


def _strategy(name: str, where: str) -> str:
    found = strategy_name(name)
    if found is None:
        choices = sorted({*ALIASES, *STRATEGIES})
        raise InvalidRequest(f"Unknown routing strategy '{echo(name)}' ({where}); use one of "
                             f"{', '.join(choices)}.", param=where)
    return found


def _failover_config(raw: str) -> dict[str, Any]:
    header = "X-Failover-Config"
    try:
        config = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _bad(header, "not valid JSON") from None
    if not isinstance(config, dict):
        raise _bad(header, "must be a JSON object")
    out: dict[str, Any] = {}
    primary = config.get("primary")
    if primary is not None:
        if not isinstance(primary, dict):
            raise _bad(header, "'primary' must be an object {provider, model}")
        out["primary"] = {k: _name(primary[k], f"{header}.primary.{k}")
                          for k in ("provider", "model") if primary.get(k) is not None}
    fallbacks = config.get("fallbacks")
    if fallbacks is None:
        fallbacks = []
    if not isinstance(fallbacks, list):
        raise _bad(header, "'fallbacks' must be a list")
    if len(fallbacks) > MAX_FALLBACKS:
        raise _bad(header, f"at most {MAX_FALLBACKS} fallbacks")
    out["fallbacks"] = tuple(_fallback(fb, i) for i, fb in enumerate(fallbacks))
    breaker = {}
    for key in ("failure_threshold", "success_threshold", "health_check_interval"):
        if key in config:
            value = config[key]
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1_000_000:
                raise _bad(header, f"'{key}' must be a positive number")
            breaker[key] = value
    out["breaker"] = breaker or None
    return out


def _fallback(fb: Any, i: int) -> Fallback:
    header = "X-Failover-Config"
    if not isinstance(fb, dict) or not (fb.get("model") or fb.get("provider")):
        raise _bad(header, f"fallbacks[{i}] needs a model or a provider")
    model = _name(fb["model"], f"{header}.fallbacks[{i}].model") if fb.get("model") is not None else None
    provider = _name(fb["provider"], f"{header}.fallbacks[{i}].provider") if fb.get("provider") is not None else None
    trigger = fb.get("trigger", "any_error")
    if trigger == "any_error" or trigger == ["any_error"]:
        kinds = None
    elif (isinstance(trigger, list) and trigger and len(trigger) <= len(TRIGGERS)
          and all(isinstance(t, str) and t in TRIGGERS for t in trigger)):
        kinds = frozenset(TRIGGERS[t] for t in trigger)
    else:
        raise _bad(header, f"fallbacks[{i}].trigger must be any_error or a list of {', '.join(TRIGGERS)}")
    reduce = fb.get("reduce_max_tokens")
    if reduce is not None and (not isinstance(reduce, int) or isinstance(reduce, bool) or not 1 <= reduce <= 2**31 - 1):
        raise _bad(header, f"fallbacks[{i}].reduce_max_tokens must be a positive integer")
    return Fallback(model, provider, kinds, reduce)


def _apply_body(body: BodyRouting, values: dict[str, Any]) -> None:
    """OpenRouter's body fields, decoded by the protocol layer, into the policy's values."""
    if body.models:
        values["fallback_models"] = body.models
    if body.order:
        values.setdefault("preference", body.order)
    if body.only is not None:
        values["only"] = body.only
    if body.ignore:
        values["ignore"] = body.ignore
    if not body.allow_fallbacks:
        values["fallbacks_enabled"] = False
    values["require_parameters"] = body.require_parameters
    if body.sort is not None:
        values.setdefault("strategy", ALIASES[body.sort])
    if body.max_price is not None:
        values["max_price"] = body.max_price


def parse_policy(headers: Mapping[str, str], body: BodyRouting = NO_ROUTING) -> RoutingPolicy:
    """The request's routing policy from its routing headers and the body's routing fields (as
    the protocol layer decoded them); 400 naming the header for a bad value."""
    if body is NO_ROUTING:
        for name in ROUTING_HEADERS:  # a loop, not any(<generator>): every request pays it
            if name in headers:
                break
        else:
            return DEFAULT
    values: dict[str, Any] = {}
    if value := headers.get("X-Provider"):
        values["force_provider"] = _name(value, "X-Provider")
    if value := headers.get("X-Provider-Preference"):
        values["preference"] = _names(value, "X-Provider-Preference")
    if value := headers.get("X-Failover-Providers"):
        values["failover_providers"] = _names(value, "X-Failover-Providers")
    if value := headers.get("X-Routing-Strategy"):
        values["strategy"] = _strategy(value.strip(), "X-Routing-Strategy")
    if value := headers.get("X-User-Region"):
        values["user_region"] = _name(value, "X-User-Region")
    if value := headers.get("X-Max-Latency-Ms"):
        values["max_latency_ms"] = _number("X-Max-Latency-Ms", value, 1, 3_600_000)
    if value := headers.get("X-Max-Cost-Per-1K-Tokens"):
        values["max_cost_per_1k"] = Decimal(str(_number("X-Max-Cost-Per-1K-Tokens", value, 0, 1_000)))
    if (value := headers.get("X-Failover-Enabled")) is not None:
        try:
            values["fallbacks_enabled"] = parse_bool(value)
        except ValueError:
            raise _bad("X-Failover-Enabled", "use true or false") from None
    if value := headers.get("X-Max-Retries"):
        values["max_retries"] = int(_number("X-Max-Retries", value, 0, MAX_RETRIES))
    if value := headers.get("X-Retry-Delay-Ms"):
        values["retry_delay_ms"] = int(_number("X-Retry-Delay-Ms", value, 0, 60_000))
    if value := headers.get("X-Failover-Config"):
        config = _failover_config(value)
        primary = config.get("primary") or {}
        if primary.get("provider") and "force_provider" not in values:
            values["force_provider"] = primary["provider"]
        if primary.get("model"):
            values["primary_model"] = primary["model"]
        values["conditional_fallbacks"] = config["fallbacks"]
        values["breaker"] = config["breaker"]
    _apply_body(body, values)
    return RoutingPolicy(**values)
