"""A key's permissions and restrictions, compiled once so each request checks them cheaply."""

from __future__ import annotations

import dataclasses
import fnmatch
import ipaddress
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from ..errors import PermissionDenied

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
    def from_json(cls, permissions: dict[str, Any], restrictions: dict[str, Any]) -> Policy:
        models = permissions.get("models")
        allowed = denied = None
        if isinstance(models, list):
            allowed = _patterns(models)
        elif isinstance(models, dict):
            allowed = _patterns(models.get("allowed"))
            denied = _patterns(models.get("denied"))
        ops = permissions.get("operations")
        features = permissions.get("features")
        ips = restrictions.get("ip_whitelist")
        cost = permissions.get("max_cost_per_day")
        return cls(
            models_allowed=allowed, models_denied=denied,
            features=frozenset(features) if features is not None else None,
            can_read=ops is None or "read" in ops, can_write=ops is None or "write" in ops,
            ip_networks=tuple(ipaddress.ip_network(c, strict=False) for c in ips) if ips else None,
            domains=tuple(d.lower() for d in restrictions["domains"]) if restrictions.get("domains") else None,
            referrers=_patterns(restrictions.get("referrers")),
            user_agents=_patterns(restrictions.get("user_agents")),
            max_requests_per_minute=permissions.get("max_requests_per_minute"),
            max_requests_per_day=permissions.get("max_requests_per_day"),
            max_tokens_per_minute=permissions.get("max_tokens_per_minute"),
            max_cost_per_day=Decimal(str(cost)) if cost is not None else None,
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
            raise PermissionDenied(f"This API key is not allowed to use the model '{names[0]}'.")

    def check_features(self, used: Iterable[str]) -> None:
        if self.features is None:
            return
        for feature in used:
            if feature not in self.features:
                raise PermissionDenied(f"This API key is not allowed to use the feature '{feature}'.")

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
                raise PermissionDenied(f"Requests from the IP address {ip} are not allowed for this API key.")
        if self.domains is not None:
            host = _host(origin) or _host(referer)
            if host is None or not any(_domain_matches(host, d) for d in self.domains):
                raise PermissionDenied(f"Requests from the domain {host or '(none given)'} are not allowed for "
                                       "this API key.")
        if self.referrers is not None and not (referer and self.referrers.fullmatch(referer)):
            raise PermissionDenied(f"The referrer {referer or '(none given)'} is not allowed for this API key.")
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


UNRESTRICTED = Policy()
