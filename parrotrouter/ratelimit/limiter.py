"""The rate limiter interface and its decisions."""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
from typing import Any

from ..errors import RateLimitExceeded, ServiceUnavailable
from .rules import Limit, Usage, headers_for

log = logging.getLogger("parrotrouter.ratelimit")


@dataclasses.dataclass(slots=True)
class Ticket:
    """What a request took from its token limits, to reconcile with what it really used."""

    limits: list[Limit]
    reserved: int


@dataclasses.dataclass(slots=True)
class Decision:
    headers: dict[str, str]
    ticket: Ticket | None = None


class RateLimiter(abc.ABC):
    backend = ""

    def __init__(self, fail_open: bool = False) -> None:
        self.fail_open = fail_open
        self.degraded = 0  # decisions taken without the store (fail open or closed)
        self.healthy = True

    async def admit(self, limits: list[Limit], tokens: int) -> Decision:
        """Take one request (and `tokens` estimated tokens) from every limit, all or nothing;
        429 with Retry-After when one is exhausted."""
        if not limits:
            return Decision({})
        try:
            allowed, usages = await self._take(limits, tokens)
            self.healthy = True
        except Exception as exc:
            return self._degraded(exc)
        headers = headers_for(usages)
        if not allowed:
            blocked = [u for u in usages if u.used + (tokens if u.limit.tokens else 1) > u.limit.amount]
            worst = max(blocked or usages, key=lambda u: u.reset_after)
            err = RateLimitExceeded(_message(worst.limit, tokens), retry_after=max(1, math.ceil(worst.reset_after)),
                                    headers=headers)
            raise err
        token_limits = [lim for lim in limits if lim.tokens]
        return Decision(headers, Ticket(token_limits, tokens) if token_limits else None)

    async def peek(self, limits: list[Limit]) -> dict[str, str]:
        """The headers for these limits, taking nothing."""
        _, usages = await self._take(limits, 0, take=False)
        return headers_for(usages)

    def _degraded(self, exc: Exception) -> Decision:
        self.degraded += 1
        self.healthy = False
        log.warning("rate limit store unavailable (%s): failing %s", type(exc).__name__,
                    "open" if self.fail_open else "closed")
        if self.fail_open:
            return Decision({})
        raise ServiceUnavailable("Rate limits cannot be checked right now (the limit store is unavailable). "
                                 "Retry shortly.", retry_after=1)

    async def reconcile(self, ticket: Ticket, actual: int) -> None:
        """Replace a token reservation by the real count (never fails the caller)."""
        delta = actual - ticket.reserved
        if not delta:
            return
        try:
            await self._adjust(ticket.limits, delta)
        except Exception as exc:
            self.degraded += 1
            log.warning("reconciling token limits failed: %s", type(exc).__name__)

    @abc.abstractmethod
    async def _take(self, limits: list[Limit], tokens: int, take: bool = True) -> tuple[bool, list[Usage]]: ...

    @abc.abstractmethod
    async def _adjust(self, limits: list[Limit], delta: int) -> None: ...

    async def aclose(self) -> None:
        pass

    def health(self) -> dict[str, Any]:
        return {"backend": self.backend, "ok": self.healthy, "degraded_decisions": self.degraded,
                "fail_open": self.fail_open}


def _message(limit: Limit, tokens: int) -> str:
    unit = "tokens" if limit.tokens else "requests"
    per = {60: "minute", 86400: "day"}.get(limit.window, f"{limit.window} s")
    if limit.tokens and tokens > limit.amount:
        return (f"This request needs about {tokens} tokens, more than this key's limit of {limit.amount} "
                f"tokens per {per}. Lower max_tokens or the prompt.")
    return f"Rate limit exceeded: {limit.amount} {unit} per {per} ({limit.bucket}). Retry after the reset."
