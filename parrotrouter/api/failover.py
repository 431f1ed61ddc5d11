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
from ..errors import FailureKind, UpstreamFailure
from ..providers.base import malformed
from ..routing.health import Health
from ..routing.policy import RoutingPolicy
from ..routing.router import Candidate, Plan

MAX_WAIT = 5.0  # longest Retry-After worth waiting for when another deployment could answer now
BASE_DELAY = 0.1


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
    return base * (2 ** attempt) * (0.5 + random.random())


class Attempts:
    """Walks a plan's candidates, recording each attempt in the usage record and in health."""

    def __init__(self, plan: Plan, policy: RoutingPolicy, health: Health, record: UsageRecord) -> None:
        self.plan = plan
        self.policy = policy
        self.health = health
        self.record = record
        self.last: UpstreamFailure | None = None

    async def run(self, attempt: Callable[[Candidate], Awaitable[Any]]) -> tuple[Any, Candidate]:
        candidates = self.plan.candidates
        for position, cand in enumerate(candidates):
            fallback = cand.fallback
            if fallback is not None and fallback.triggers is not None and (
                    self.last is None or self.last.kind not in fallback.triggers):
                continue  # a conditional fallback whose trigger did not happen
            more = self.policy.fallbacks_enabled and position < len(candidates) - 1
            retries = self.policy.max_retries if self.policy.max_retries is not None else (0 if more else 1)
            for n in range(retries + 1):
                try:
                    return await self._one(cand, attempt), cand
                except UpstreamFailure as failure:
                    self.last = failure
                    action = action_for(failure.kind, self.policy.max_retries is not None)
                    if action is Action.GIVE_UP:
                        raise
                    if action is Action.NEXT or n == retries:
                        break
                    delay = retry_delay(n, failure.retry_after, self.policy)
                    if delay > MAX_WAIT and more:
                        break
                    await asyncio.sleep(min(delay, MAX_WAIT * 4))
            if not self.policy.fallbacks_enabled:
                break
        assert self.last is not None
        raise self.last

    async def _one(self, cand: Candidate, attempt: Callable[[Candidate], Awaitable[Any]]) -> Any:
        deployment = cand.deployment.id
        began = time.perf_counter()
        self.health.started(deployment)
        self.record.served_model, self.record.provider = cand.model.id, cand.deployment.provider
        self.record.deployment, self.record.pricing = deployment, cand.deployment.pricing or cand.model.pricing
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
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if (delta.get("content") or delta.get("tool_calls") or delta.get("reasoning")
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
    return ", ".join(f"{a.deployment};status={a.status}" + (f";error={a.error_code}" if a.error_code else "")
                     for a in record.attempts)
