"""Attempts: retry the same deployment, fail over to the next one or the next model, or give up.

Every upstream failure was classified once where it was met (`FailureKind`); here the kind
decides. A client's own bad request is never retried. Streams are held back until their first
real content (text, a tool call, reasoning, or a finish): until then any failure — an error
status, an error event, a stall past the first-token timeout, a malformed chunk — fails over
silently; after it, the stream is committed to its deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..accounting.usage import Attempt, UsageRecord
from ..errors import FailureKind, ServiceUnavailable, UpstreamFailure
from ..providers.base import malformed
from ..routing.health import Health
from ..routing.policy import DEFAULT_BUDGET, Budget, RoutingPolicy
from ..routing.router import Candidate, Plan
from .trace import RequestTrace

BASE_DELAY = 0.1
MAX_ATTEMPTS_HEADER = 4096  # bytes of X-ParrotRouter-Attempts, at most (the ledger keeps every attempt)


class Action(enum.Enum):
    GIVE_UP = "give_up"  # the request itself is at fault: no other deployment would do better
    NEXT = "next"  # this deployment cannot serve it (credentials, unknown model): try another
    RETRY = "retry"  # transient: the same deployment may serve it in a moment


ACTIONS = {
    FailureKind.BAD_REQUEST: Action.GIVE_UP,
    FailureKind.CONTEXT_LENGTH_EXCEEDED: Action.GIVE_UP,
    FailureKind.CONTENT_FILTER: Action.GIVE_UP,
    FailureKind.AUTH: Action.NEXT,
    FailureKind.NOT_FOUND: Action.NEXT,
    # A deployment that just took a whole timeout to fail is not retried unless asked
    # (X-Max-Retries): waiting that long twice is rarely what the caller wants.
    FailureKind.TIMEOUT: Action.NEXT,
}


def action_for(kind: FailureKind, retries_requested: bool) -> Action:
    action = ACTIONS.get(kind, Action.RETRY)
    if action is Action.NEXT and kind is FailureKind.TIMEOUT and retries_requested:
        return Action.RETRY
    return action


def retry_delay(attempt: int, retry_after: float | None, policy: RoutingPolicy) -> float:
    """Jittered exponential backoff, or the upstream's Retry-After when it gave one."""
    if retry_after is not None:
        return retry_after
    base = (policy.retry_delay_ms / 1000) if policy.retry_delay_ms is not None else BASE_DELAY
    return float(base * (2 ** attempt) * (0.5 + random.random()))


class Attempts:
    """Walks a plan's candidates within the request's budget, recording each attempt in the usage
    record and in health. Circuit breakers are consulted before every attempt, retries included."""

    def __init__(self, plan: Plan, policy: RoutingPolicy, health: Health, record: UsageRecord,
                 budget: Budget = DEFAULT_BUDGET, trace: RequestTrace | None = None) -> None:
        self.plan = plan
        self.trace = trace  # each attempt runs inside `trace.attempt` (serving/trace.py): `_traced`
        self.policy = policy
        self.health = health
        self.record = record
        self.budget = budget
        self.last: UpstreamFailure | None = None
        self.calls = 0
        # The caller's X-Retry-Delay-Ms is its consent to wait that long; otherwise the setting.
        wished = policy.retry_delay_ms / 1000 if policy.retry_delay_ms is not None else 0.0
        self.max_wait = max(budget.max_wait, wished)

    async def run(self, attempt: Callable[[Candidate], Awaitable[Any]]) -> tuple[Any, Candidate]:
        deadline = time.monotonic() + self.budget.seconds
        candidates = self.plan.candidates
        skipped: list[str] = []
        for position, cand in enumerate(candidates):
            fallback = cand.fallback
            if fallback is not None and fallback.triggers is not None and (
                    self.last is None or self.last.kind not in fallback.triggers):
                continue  # a conditional fallback whose trigger did not happen
            more = self.policy.fallbacks_enabled and position < len(candidates) - 1
            retries = self.policy.max_retries if self.policy.max_retries is not None else (0 if more else 1)
            for n in range(retries + 1):
                if not self.health.available(cand.deployment.id):
                    skipped.append(cand.deployment.id)  # its breaker opened meanwhile
                    break
                if self.calls >= self.budget.max_attempts:
                    raise self._exhausted(f"the gateway's limit of {self.budget.max_attempts} upstream attempts "
                                          "per request was reached")
                # The first attempt has the whole budget (no clock read, and usually no timer: see _timed).
                remaining = deadline - time.monotonic() if self.calls else self.budget.seconds
                if remaining <= 0:
                    raise self._exhausted(f"the request's time budget ({self.budget.seconds:g} s) ran out")
                try:
                    return await self._timed(cand, attempt, remaining), cand
                except UpstreamFailure as failure:
                    self.last = failure
                    action = action_for(failure.kind, self.policy.max_retries is not None)
                    if action is Action.GIVE_UP:
                        raise
                    if action is Action.NEXT or n == retries:
                        break
                    delay = retry_delay(n, failure.retry_after, self.policy)
                    if delay > self.max_wait or delay >= deadline - time.monotonic():
                        if more:
                            break  # another deployment may answer now
                        raise  # the client hears the upstream's Retry-After at once
                    await asyncio.sleep(delay)
            if not self.policy.fallbacks_enabled:
                break
        if self.last is None:
            wait = min((self.health.retry_after(d) for d in skipped), default=1.0)
            raise ServiceUnavailable("Every deployment of this request is failing; their circuit breakers are open. "
                                     "Retry shortly.", retry_after=max(1.0, wait))
        raise self.last

    def _exhausted(self, why: str) -> UpstreamFailure:
        """The last failure, told with the budget that stopped the retries."""
        last = self.last
        if last is None:
            return UpstreamFailure(f"No upstream answered: {why}.", kind=FailureKind.TIMEOUT)
        last.message = f"{last.message} (no further attempt: {why})"
        last.args = (last.message,)
        return last

    def _timed(self, cand: Candidate, attempt: Callable[[Candidate], Awaitable[Any]],
               remaining: float) -> Awaitable[Any]:
        # Untraced requests await `_one` directly, and without a timer when the provider's own
        # limit comes first: no extra coroutine on the path.
        one = self._one if self.trace is None else self._traced
        if remaining >= cand.provider.spec.timeouts.total:
            return one(cand, attempt)
        return self._within(one, cand, attempt, remaining)

    async def _within(self, one: Callable[[Candidate, Callable[[Candidate], Awaitable[Any]]], Awaitable[Any]],
                      cand: Candidate, attempt: Callable[[Candidate], Awaitable[Any]], remaining: float) -> Any:
        """`one` attempt, cut when the request's time budget runs out."""
        try:
            async with asyncio.timeout(remaining):
                return await one(cand, attempt)
        except TimeoutError:
            raise UpstreamFailure(f"The request's time budget ({self.budget.seconds:g} s) ran out while waiting "
                                  "for the upstream provider.", kind=FailureKind.TIMEOUT) from None

    async def _traced(self, cand: Candidate, attempt: Callable[[Candidate], Awaitable[Any]]) -> Any:
        """`_one` inside the request trace's `attempt` (its span, the traceparent sent upstream)."""
        assert self.trace is not None
        with self.trace.attempt(cand):
            return await self._one(cand, attempt)

    async def _one(self, cand: Candidate, attempt: Callable[[Candidate], Awaitable[Any]]) -> Any:
        deployment = cand.deployment.id
        self.calls += 1
        began = time.perf_counter()
        self.health.started(deployment)
        self.record.served_model, self.record.provider = cand.model.id, cand.deployment.provider
        self.record.deployment, self.record.pricing = deployment, cand.model.price_of(cand.deployment)
        try:
            result = await attempt(cand)
        except UpstreamFailure as failure:
            elapsed = (time.perf_counter() - began) * 1000
            self.health.finished(deployment, False, elapsed, None, failure.kind)
            client = failure.to_client_error()
            self.record.attempts.append(Attempt(cand.deployment.provider, deployment, client.status,
                                                failure.kind.value, round(elapsed, 3)))
            raise
        except BaseException:
            self.health.finished(deployment, False, (time.perf_counter() - began) * 1000, None, None)
            raise
        elapsed = (time.perf_counter() - began) * 1000
        self.health.finished(deployment, True, elapsed, self.record.ttft_ms)
        self.record.attempts.append(Attempt(cand.deployment.provider, deployment, 200, None, round(elapsed, 3)))
        return result


def has_content(batch: list[dict[str, Any]]) -> bool:
    """A chunk that commits a stream: text, a tool call, reasoning, a finish, or the usage at the end."""
    for chunk in batch:
        if chunk.get("usage") and not chunk.get("choices"):
            return True
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                delta = {}
            if (delta.get("content") or delta.get("tool_calls") or delta.get("reasoning")
                    or delta.get("reasoning_content") or delta.get("refusal")
                    or choice.get("text") or choice.get("finish_reason")):
                return True
    return False


async def open_stream(batches: AsyncIterator[list[dict[str, Any]]],
                      first_token: float) -> tuple[list[list[dict[str, Any]]], AsyncIterator[list[dict[str, Any]]]]:
    """Read until the first real content (within `first_token` seconds); what was read so far is
    returned to be sent first. A failure before that point is raised (the caller fails over)."""
    held: list[list[dict[str, Any]]] = []
    try:
        async with asyncio.timeout(first_token):
            async for batch in batches:
                held.append(batch)
                if has_content(batch):
                    return held, batches
    except TimeoutError:
        await close_quietly(batches)
        raise UpstreamFailure(f"No content within the first-token timeout ({first_token:g} s).",
                              kind=FailureKind.TIMEOUT) from None
    except BaseException:
        await close_quietly(batches)
        raise
    raise malformed("stream: it ended without any content")


async def close_quietly(batches: AsyncIterator[list[dict[str, Any]]]) -> None:
    aclose = getattr(batches, "aclose", None)
    if aclose is not None:
        # closing an upstream that already failed must not mask the answer
        with contextlib.suppress(Exception):
            await aclose()


def attempts_header(record: UsageRecord) -> str:
    """The attempts, for the X-ParrotRouter-Attempts header: at most MAX_ATTEMPTS_HEADER bytes."""
    parts: list[str] = []
    size = 0
    for i, a in enumerate(record.attempts):
        part = f"{a.deployment};status={a.status}" + (f";error={a.error_code}" if a.error_code else "")
        if size + len(part) + 2 > MAX_ATTEMPTS_HEADER - 32:
            parts.append(f"...;more={len(record.attempts) - i}")
            break
        parts.append(part)
        size += len(part) + 2
    return ", ".join(parts)
