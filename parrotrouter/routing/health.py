"""Per-deployment health: in-flight counts and latency (for strategies) and a circuit breaker.

The breaker opens after `failure_threshold` classified failures in a row (rate limit, server
error, timeout, overload, auth, connection, broken stream), stays open for `cooldown` seconds,
then lets probes through (half-open) and closes after `success_threshold` successes. Client
errors (a bad request, a too-long prompt, a content filter) say nothing about the deployment and
do not count. With Redis, open breakers are shared by every process and instance.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from typing import Any

from ..errors import FailureKind

log = logging.getLogger("parrotrouter.health")

COUNTED = frozenset({FailureKind.RATE_LIMIT, FailureKind.SERVER_ERROR, FailureKind.TIMEOUT,
                     FailureKind.MODEL_OVERLOADED, FailureKind.AUTH, FailureKind.CONNECTION,
                     FailureKind.STREAM_PROTOCOL, FailureKind.NOT_FOUND})
EWMA = 0.2  # weight of the newest observation in the latency averages
# Deployments whose state is kept: names resolved on demand make deployments as clients write them
# (`claude-3-5-sonnet-<anything>` matches a price-table clause), so beyond this the idle closed
# states of the least used go (an open breaker and a request in flight stay).
MAX_STATES = 10_000


@dataclasses.dataclass(frozen=True, slots=True)
class BreakerSettings:
    failure_threshold: int = 5
    success_threshold: int = 1
    cooldown: float = 30.0


@dataclasses.dataclass(slots=True)
class DeploymentState:
    in_flight: int = 0
    requests: int = 0
    latency_ms: float | None = None  # EWMA of whole-request latency
    ttft_ms: float | None = None  # EWMA of time to first token (streams)
    failures: int = 0  # consecutive counted failures
    successes: int = 0  # successes while half-open
    open_until: float = 0.0  # monotonic time; 0 when closed


class Health:
    """In-process health of every deployment (breaker state local unless `shared` overrides)."""

    def __init__(self, settings: BreakerSettings | None = None) -> None:
        self.settings = settings or BreakerSettings()
        self.states: dict[str, DeploymentState] = {}
        self.rng = random.Random()

    def state(self, deployment: str) -> DeploymentState:
        state = self.states.get(deployment)
        if state is None:
            if len(self.states) >= MAX_STATES:
                self._forget_idle()
            state = self.states[deployment] = DeploymentState()
        return state

    def _forget_idle(self) -> None:
        """Drop a quarter of the states, the least used idle closed ones (amortised: once per
        MAX_STATES / 4 new deployments)."""
        idle = [(s.requests, name) for name, s in self.states.items() if not s.in_flight and not s.open_until]
        idle.sort()
        for _, name in idle[: max(1, MAX_STATES // 4)]:
            del self.states[name]

    # ------------------------------------------------------------------ breaker
    def available(self, deployment: str, now: float | None = None) -> bool:
        """Closed, or open with its cooldown over (half-open: probes go through)."""
        state = self.states.get(deployment)
        return state is None or state.open_until <= (now if now is not None else time.monotonic())

    def retry_after(self, deployment: str) -> float:
        state = self.states.get(deployment)
        return max(0.0, state.open_until - time.monotonic()) if state else 0.0

    def is_open(self, deployment: str) -> bool:
        return not self.available(deployment)

    def started(self, deployment: str) -> None:
        self.state(deployment).in_flight += 1

    def finished(self, deployment: str, ok: bool, latency_ms: float, ttft_ms: float | None,
                 kind: FailureKind | None = None, settings: BreakerSettings | None = None) -> None:
        state = self.state(deployment)
        state.in_flight -= 1
        state.requests += 1
        if ok:
            state.latency_ms = latency_ms if state.latency_ms is None else (
                (1 - EWMA) * state.latency_ms + EWMA * latency_ms)
            if ttft_ms is not None:
                state.ttft_ms = ttft_ms if state.ttft_ms is None else (1 - EWMA) * state.ttft_ms + EWMA * ttft_ms
            self._success(deployment, state, settings or self.settings)
        elif kind in COUNTED:
            self._failure(deployment, state, settings or self.settings)

    def _success(self, deployment: str, state: DeploymentState, settings: BreakerSettings) -> None:
        state.failures = 0
        if state.open_until:
            state.successes += 1
            if state.successes >= settings.success_threshold:
                state.open_until = 0.0
                state.successes = 0
                self.closed(deployment)

    def _failure(self, deployment: str, state: DeploymentState, settings: BreakerSettings) -> None:
        state.failures += 1
        state.successes = 0
        half_open = state.open_until and state.open_until <= time.monotonic()
        if half_open or state.failures >= settings.failure_threshold:
            state.open_until = time.monotonic() + settings.cooldown
            state.failures = 0
            log.warning("circuit open for %s (%.0f s)", deployment, settings.cooldown)
            self.opened(deployment, settings.cooldown)

    # Hooks for the shared variant.
    def opened(self, deployment: str, cooldown: float) -> None:
        pass

    def closed(self, deployment: str) -> None:
        pass

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        return {d: {"in_flight": s.in_flight, "latency_ms": round(s.latency_ms, 2) if s.latency_ms else None,
                    "circuit": "open" if s.open_until > now else ("half-open" if s.open_until else "closed")}
                for d, s in self.states.items()}


class SharedHealth(Health):
    """Breakers shared through Redis: an opened breaker is published (one round trip, only when a
    breaker opens or closes) and every process refreshes the open set twice a second."""

    KEY = "parrotrouter:circuits"

    def __init__(self, url: str, settings: BreakerSettings | None = None, timeout: float = 0.25,
                 interval: float = 0.5) -> None:
        super().__init__(settings)
        import redis.asyncio as aioredis

        self.client = aioredis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def opened(self, deployment: str, cooldown: float) -> None:
        self._spawn(self._publish(deployment, time.time() + cooldown))

    def closed(self, deployment: str) -> None:
        self._spawn(self._publish(deployment, 0.0))

    async def _publish(self, deployment: str, until: float) -> None:
        try:
            if until:
                await self.client.hset(self.KEY, deployment, repr(until))
            else:
                await self.client.hdel(self.KEY, deployment)
        except Exception as exc:
            log.warning("publishing circuit state failed: %s", type(exc).__name__)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:
                log.debug("circuit refresh failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def refresh(self) -> None:
        shared = await self.client.hgetall(self.KEY)
        wall, mono = time.time(), time.monotonic()
        for raw_name, raw_until in shared.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            until = float(raw_until)
            state = self.state(name)
            if until > wall:
                state.open_until = max(state.open_until, mono + (until - wall))

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()
