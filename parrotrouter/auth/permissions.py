"""A key's permissions and restrictions, compiled once so each request checks them cheaply."""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

from ..catalog import AUTO, Deployment, ModelSpec
from ..errors import PermissionDenied, echo
from ..store.schema import from_nanos, to_nanos
from .key_schema import MAX_RATE, MAX_USD

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_VERDICTS_KEPT = 1024


def _patterns(values: Iterable[str] | None) -> re.Pattern[str] | None:
    values = list(values or ())
    if not values:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(v)})" for v in values), re.IGNORECASE)


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    """What a key may do. `None` for a rule means "no restriction"."""

    models_allowed: re.Pattern[str] | None = None
    models_denied: re.Pattern[str] | None = None
    features: frozenset[str] | None = None
    can_read: bool = True
    can_write: bool = True
    ip_networks: tuple[IPNetwork, ...] | None = None
    domains: tuple[str, ...] | None = None
    referrers: re.Pattern[str] | None = None
    user_agents: re.Pattern[str] | None = None
    max_requests_per_minute: int | None = None
    max_requests_per_day: int | None = None
    max_tokens_per_minute: int | None = None
    max_cost_per_day: Decimal | None = None
    # allows_model's answers by names, bounded (names come from callers); not part of equality.
    _verdicts: dict[tuple[str, ...], bool] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_json(cls, permissions: Any, restrictions: Any, problems: list[str] | None = None) -> Policy:
        """Compile a key's stored permissions and restrictions. The admin API validates what it
        stores, but a row written by an older version or by hand may hold anything: such values
        are brought within bounds (limits clamped, unreadable entries dropped, an unreadable
        whole denies everything) and described in `problems`; this never raises."""
        found: list[str] = [] if problems is None else problems
        if not isinstance(permissions, dict) or not isinstance(restrictions, dict):
            found.append("permissions or restrictions are not JSON objects: the key may do nothing")
            return DENY_ALL
        models = permissions.get("models")
        if isinstance(models, dict):
            allowed = _allow(_strings(models.get("allowed"), "models.allowed", found))
            denied = _deny(_strings(models.get("denied"), "models.denied", found))
        else:
            allowed, denied = _allow(_strings(models, "models", found)), None
        ops = _strings(permissions.get("operations"), "operations", found)
        features = _strings(permissions.get("features"), "features", found)
        ips = _strings(restrictions.get("ip_whitelist"), "ip_whitelist", found)
        domains = _strings(restrictions.get("domains"), "domains", found)
        return cls(
            models_allowed=allowed, models_denied=denied,
            features=None if features is None else frozenset(features or ()),
            can_read=ops is None or (ops is not False and "read" in ops),
            can_write=ops is None or (ops is not False and "write" in ops),
            ip_networks=() if ips is False else _networks(ips, found) if ips else None,
            domains=() if domains is False else tuple(d.lower() for d in domains) if domains else None,
            referrers=_allow(_strings(restrictions.get("referrers"), "referrers", found)),
            user_agents=_allow(_strings(restrictions.get("user_agents"), "user_agents", found)),
            max_requests_per_minute=_rate(permissions.get("max_requests_per_minute"), "max_requests_per_minute",
                                          found),
            max_requests_per_day=_rate(permissions.get("max_requests_per_day"), "max_requests_per_day", found),
            max_tokens_per_minute=_rate(permissions.get("max_tokens_per_minute"), "max_tokens_per_minute", found),
            max_cost_per_day=_usd(permissions.get("max_cost_per_day"), "max_cost_per_day", found),
        )

    # ------------------------------------------------------------------ checks (raise 403)
    def check_operation(self, write: bool) -> None:
        if write and not self.can_write:
            raise PermissionDenied("This API key is read-only: it cannot create completions.")
        if not write and not self.can_read:
            raise PermissionDenied("This API key has no 'read' permission.")

    def allows_model(self, *names: str) -> bool:
        """Denied patterns win; with an allow list, one of the names (as requested, as resolved)
        must match it. Patterns are shell-style (`gpt-4o*`)."""
        verdict = self._verdicts.get(names)
        if verdict is None:
            verdict = self._judge_models(names)
            if len(self._verdicts) < _VERDICTS_KEPT:
                self._verdicts[names] = verdict
        return verdict

    def _judge_models(self, names: tuple[str, ...]) -> bool:
        if self.models_denied is not None and any(self.models_denied.fullmatch(n) for n in names):
            return False
        return self.models_allowed is None or any(self.models_allowed.fullmatch(n) for n in names)

    def check_model(self, *names: str) -> None:
        if not self.allows_model(*names):
            raise PermissionDenied(f"This API key is not allowed to use the model '{echo(names[0])}'.")

    def model_permit(self) -> Callable[[str, ModelSpec, Deployment], bool] | None:
        """The key's model permissions as routing asks them (None: unrestricted). A pattern
        allows a deployment when it matches one of the model's own names: its id, `provider/id`
        (so `openai/*` can allow or deny a provider), or the alias — or `auto` — it was asked
        by; never another name that merely resolves to it (a `provider/upstream-model` name may
        spell another model's id). Denied patterns are matched against every name."""
        if self.models_allowed is None and self.models_denied is None:
            return None
        denied = self.models_denied

        def permit(name: str, model: ModelSpec, deployment: Deployment) -> bool:
            own = f"{deployment.provider}/{model.id}"
            if denied is not None and any(denied.fullmatch(alias) for alias in model.aliases):
                return False  # denied by another of its names (a dated id's model, an alias's target)
            if name in (model.id, own, AUTO) or name in model.aliases:
                return self.allows_model(model.id, own, name)
            if not self.allows_model(model.id, own):
                return False
            return denied is None or not (denied.fullmatch(name) or denied.fullmatch(deployment.id))

        return permit

    def check_features(self, used: Iterable[str]) -> None:
        if self.features is None:
            return
        for feature in used:
            if feature not in self.features:
                raise PermissionDenied(f"This API key is not allowed to use the feature '{echo(feature)}'.")

    def restricts_clients(self) -> bool:
        return (self.ip_networks is not None or self.domains is not None or self.referrers is not None
                or self.user_agents is not None)

    def check_client(self, ip: str | None, origin: str | None, referer: str | None, user_agent: str | None) -> None:
        if self.ip_networks is not None:
            try:
                addr = ipaddress.ip_address(ip or "")
            except ValueError:
                addr = None
            if addr is None or not any(addr in net for net in self.ip_networks):
                raise PermissionDenied(f"Requests from the IP address {echo(ip)} are not allowed for this API key.")
        if self.domains is not None:
            host = _host(origin) or _host(referer)
            if host is None or not any(_domain_matches(host, d) for d in self.domains):
                raise PermissionDenied(f"Requests from the domain {echo(host) if host else '(none given)'} are "
                                       "not allowed for this API key.")
        if self.referrers is not None and not (referer and self.referrers.fullmatch(referer)):
            raise PermissionDenied(f"The referrer {echo(referer) if referer else '(none given)'} is not allowed "
                                   "for this API key.")
        if self.user_agents is not None and not (user_agent and self.user_agents.fullmatch(user_agent)):
            raise PermissionDenied("This user agent is not allowed for this API key.")


def _host(url: str | None) -> str | None:
    if not url:
        return None
    return (urlsplit(url if "://" in url else f"//{url}").hostname or "").lower() or None


def _domain_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


Listed = list[str] | None | Literal[False]  # a stored list: absent, its strings, or unreadable


def _strings(value: Any, name: str, problems: list[str]) -> Listed:
    """A stored list of strings: entries of other types are dropped; a value that is not a list
    at all is unreadable (False), and the rule it states then admits nothing."""
    if value is None:
        return None
    if not isinstance(value, list):
        problems.append(f"{name} is not a list: read as admitting nothing")
        return False
    kept = [v for v in value if isinstance(v, str)]
    if len(kept) != len(value):
        problems.append(f"{name} has entries that are not strings: dropped")
    return kept


def _allow(values: Listed) -> re.Pattern[str] | None:
    return _NOTHING if values is False else _patterns(values)


def _deny(values: Listed) -> re.Pattern[str] | None:
    return _EVERYTHING if values is False else _patterns(values)


_NOTHING = re.compile(r"(?!)")
_EVERYTHING = re.compile(r".*", re.DOTALL)


def _networks(values: list[str], problems: list[str]) -> tuple[IPNetwork, ...]:
    """Unreadable entries are dropped (so they admit nobody); an empty result admits nobody."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError:
            problems.append(f"ip_whitelist entry {echo(value)!r} is not an IP network: dropped")
    return tuple(out)


def _rate(value: Any, name: str, problems: list[str]) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RATE:
        return value
    number = _decimal(value)
    clamped = MAX_RATE if number is None or number.is_nan() else int(min(max(number, Decimal(1)), Decimal(MAX_RATE)))
    problems.append(f"{name} {echo(value)!r} is not a whole number from 1 to {MAX_RATE}: {clamped} is used")
    return clamped


def _usd(value: Any, name: str, problems: list[str]) -> Decimal | None:
    if value is None:
        return None
    number = _decimal(value)
    if number is not None and number.is_finite() and 0 <= number <= MAX_USD:
        return from_nanos(to_nanos(number))  # whole nano-dollars, written plainly (100, not 1E+2)
    clamped = MAX_USD if number is None or number.is_nan() else min(max(number, Decimal(0)), MAX_USD)
    problems.append(f"{name} {echo(value)!r} is not an amount from 0 to {MAX_USD} USD: {clamped} is used")
    return clamped


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value)) if not isinstance(value, str) or len(value) <= 100 else None
    except InvalidOperation:
        return None


UNRESTRICTED = Policy()
DENY_ALL = Policy(can_read=False, can_write=False, models_allowed=_NOTHING)
