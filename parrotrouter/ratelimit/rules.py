"""Which limits apply to a request, and the `X-RateLimit-*` headers that describe them."""

from __future__ import annotations

import dataclasses
import math
import time

from ..auth.principal import Principal


@dataclasses.dataclass(frozen=True, slots=True)
class Limit:
    bucket: str  # what the numbers describe: rpm, rpd, tpm, user-rpm, user-tpm
    key: str  # storage key: the bucket and who it counts
    amount: int  # allowed per window
    window: int  # seconds
    tokens: bool = False  # counts tokens (reserved, then reconciled) instead of requests

    @property
    def policy(self) -> str:
        return f"{self.amount};w={self.window}"


@dataclasses.dataclass(frozen=True, slots=True)
class Defaults:
    """Gateway-wide limits (0 = none): per key unless the key sets its own, and per end user."""

    rpm: int = 0
    rpd: int = 0
    tpm: int = 0
    user_rpm: int = 0
    user_tpm: int = 0

    @property
    def any(self) -> bool:
        return bool(self.rpm or self.rpd or self.tpm or self.user_rpm or self.user_tpm)


def limits_for(principal: Principal, user: str | None, defaults: Defaults) -> list[Limit]:
    if principal.is_master:
        return []
    policy = principal.policy
    who = principal.key_id
    out = []
    rpm = policy.max_requests_per_minute or defaults.rpm
    rpd = policy.max_requests_per_day or defaults.rpd
    tpm = policy.max_tokens_per_minute or defaults.tpm
    if rpm:
        out.append(Limit("rpm", f"rpm:{who}", rpm, 60))
    if rpd:
        out.append(Limit("rpd", f"rpd:{who}", rpd, 86400))
    if tpm:
        out.append(Limit("tpm", f"tpm:{who}", tpm, 60, tokens=True))
    if user:
        if defaults.user_rpm:
            out.append(Limit("user-rpm", f"urpm:{who}:{user}", defaults.user_rpm, 60))
        if defaults.user_tpm:
            out.append(Limit("user-tpm", f"utpm:{who}:{user}", defaults.user_tpm, 60, tokens=True))
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    """A limit's state after a decision: how much of it is used and when its window ends."""

    limit: Limit
    used: int
    reset_after: float  # seconds

    @property
    def remaining(self) -> int:
        return max(0, self.limit.amount - self.used)


# What a response to a key nothing limits reports (no explicit limit, no gateway default, the
# master key, or accounting off): no number a client could mistake for a budget running out
# (OpenRouter's -1 reads as "0 left" to a naive client), nothing to wait for.
UNLIMITED_HEADERS: dict[str, str] = {
    "X-RateLimit-Limit": "unlimited",
    "X-RateLimit-Remaining": "unlimited",
    "X-RateLimit-Reset": "0",
    "X-RateLimit-Reset-After": "0",
}


def headers_for(usages: list[Usage]) -> dict[str, str]:
    """The six headers, describing the tightest limit (least room left, relatively)."""
    if not usages:
        return {}
    tight = min(usages, key=lambda u: (u.remaining / u.limit.amount, u.remaining))
    reset_after = max(0, math.ceil(tight.reset_after))
    return {
        "X-RateLimit-Limit": str(tight.limit.amount),
        "X-RateLimit-Remaining": str(tight.remaining),
        "X-RateLimit-Reset": str(int(time.time()) + reset_after),
        "X-RateLimit-Reset-After": str(reset_after),
        "X-RateLimit-Bucket": tight.limit.bucket,
        "X-RateLimit-Policy": ", ".join(u.limit.policy for u in sorted(usages, key=lambda u: u is not tight)),
    }
