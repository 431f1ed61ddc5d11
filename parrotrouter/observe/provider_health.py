"""Live provider health: is each provider loaded, answering its probe, and not shut off by its breakers.

An active probe (`GET {base_url}/models`, or a provider's own `health_check`) runs off the request
path in one loop, each provider at its interval, with a short timeout. It is on by default for
self-hosted endpoints (loopback, private or link-local addresses, `localhost`, single-label and
`.local`/`.internal`/`.lan` host names, judged by `base_url`) and off for cloud ones unless
`health_check.probe` is true; the provider's key and headers go only to its own origin (a
`health_check.url` elsewhere is probed bare). In-process models (llama.cpp, WordLlama) are
healthy when loaded. With Redis, one process probes a provider per interval (a `SET NX` slot) and
publishes the result; every process adopts it. Breakers judge a deployment by its own breaker, and
a provider only when the breakers of all its catalog deployments are open.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import hashlib
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from ..catalog import Deployment, ProviderSpec
from ..providers.base import Provider
from ..routing.health import Health

log = logging.getLogger("parrotrouter.health")

IN_PROCESS = frozenset({"llamacpp", "wordllama"})
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")
DEFAULT_PATH = "/models"
RESULTS_KEY = "parrotrouter:probes"
SLOT_KEY = "parrotrouter:probe-slot:{key}:{slot}"
# How each provider type authenticates a probe of its own API (others send only their headers).
AUTH_HEADERS = {"openai": ("Authorization", "Bearer {}"), "cohere": ("Authorization", "Bearer {}"),
                "anthropic": ("x-api-key", "{}"), "gemini": ("x-goog-api-key", "{}"), "azure": ("api-key", "{}")}
EXTRA_HEADERS = {"anthropic": {"anthropic-version": "2023-06-01"}}


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """How one provider is probed (the URL and headers never appear in a message or a log line)."""

    provider: str
    url: str
    headers: Mapping[str, str] = dataclasses.field(repr=False)  # may hold the provider's key
    interval: float
    timeout: float
    lenient: bool  # the default path: a server without it (404, 405) is still up
    key: str  # the provider's name and a hash of its URL: instances sharing Redis share only equal probes


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    reason: str  # "ok", or why not: "connection refused", "HTTP 503", "timed out after 2 s"
    checked_at: float  # wall time
    since: float  # wall time of the last change between healthy and not


@dataclasses.dataclass(frozen=True, slots=True)
class Verdict:
    """One provider's or deployment's health, as /v1/models and /ready report it."""

    healthy: bool
    message: str


def self_hosted(base_url: str) -> bool:
    """Whether a URL names a self-hosted endpoint (probed by default) rather than a cloud API."""
    host = (urlsplit(base_url).hostname or "").lower()
    if not host:
        return False
    if host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host.strip("[]"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def origin(url: str) -> tuple[str, str, int | None] | None:
    """A URL's scheme, host and port (the scheme's default when absent); None when it has none."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None
    return (scheme, host, port) if scheme and host else None


def probe_for(spec: ProviderSpec, interval: float, timeout: float) -> Probe | None:
    """The provider's probe, or None when it is not probed."""
    check = spec.health_check
    if spec.type in IN_PROCESS or spec.base_url is None or spec.unix_socket:
        return None
    # On or off by where the provider is, not by where its probe points: a private health URL
    # does not turn billed probing on for a cloud provider.
    enabled = check.probe if check.probe is not None else self_hosted(spec.base_url)
    interval = check.interval if check.interval is not None else interval
    if not enabled or interval <= 0:
        return None
    url = check.url or spec.base_url + (check.path or DEFAULT_PATH)
    headers: dict[str, str] = {}
    base = origin(spec.base_url)
    if base is not None and origin(url) == base:  # credentials only to the provider's own origin
        headers.update(spec.headers)
        headers.update(EXTRA_HEADERS.get(spec.type, {}))
        auth = AUTH_HEADERS.get(spec.type)
        if auth is not None and spec.api_key:
            headers[auth[0]] = auth[1].format(spec.api_key.reveal())
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Probe(spec.name, url, headers, interval, check.timeout or timeout,
                 lenient=check.url is None and check.path is None, key=f"{spec.name}:{digest}")


def failure_reason(exc: BaseException, timeout: float) -> str:
    """Why a probe failed, in words that never quote a URL, a header or a key."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "host name not found"
    if isinstance(exc, aiohttp.ClientConnectorError):
        if exc.os_error.errno == errno.ECONNREFUSED:
            return "connection refused"
        return "cannot connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return "connection closed by the server"
    return "connection failed"


def healthy_status(status: int, lenient: bool) -> bool:
    return status < 400 or (lenient and status in (404, 405))


def utc(wall: float) -> str:
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ProviderHealth:
    """Every provider's health: loaded, probe, breakers. One loop probes; readers only look."""

    def __init__(self, specs: Mapping[str, ProviderSpec], providers: Mapping[str, Provider], breakers: Health,
                 *, interval: float, timeout: float, deployments: Iterable[Deployment] = (),
                 redis_url: str | None = None, redis_timeout: float = 0.25) -> None:
        self.providers = providers
        self.breakers = breakers
        # The catalog's deployments by provider: a provider is shut off by its breakers only when
        # every one of these is open (not merely every one that happens to have a breaker state).
        self.deployments: dict[str, set[str]] = {}
        self.track(deployments)
        self.probes = {name: p for name, spec in specs.items() if (p := probe_for(spec, interval, timeout))}
        self.results: dict[str, ProbeResult] = {}
        self.redis: Any = None
        if redis_url and self.probes:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(redis_url, socket_connect_timeout=redis_timeout,
                                           socket_timeout=redis_timeout)
        self.session: aiohttp.ClientSession | None = None
        self._next: dict[str, float] = {}
        self._running: dict[str, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, deployments: Iterable[Deployment]) -> None:
        """Judge providers by these deployments from now on (the catalog changed: model discovery)."""
        by_provider: dict[str, set[str]] = {}
        for deployment in deployments:
            by_provider.setdefault(deployment.provider, set()).add(deployment.id)
        self.deployments = by_provider

    # ------------------------------------------------------------------ reading
    def provider(self, name: str) -> Verdict:
        """A provider's health: loaded, its probe passing (or not probed), not every catalog deployment's
        breaker open."""
        verdict = self._reachable(name)
        if not verdict.healthy:
            return verdict
        catalog = self.deployments.get(name, ())
        retries = self._open(name)
        if catalog and len(retries) == len(catalog):
            return Verdict(False, f"provider '{name}' circuit breakers open on all its deployments after repeated "
                                  f"upstream failures (retried in {min(retries):.0f} s)")
        return verdict

    def deployment(self, provider: str, deployment: str) -> Verdict:
        """A deployment's health: its provider loaded and its probe passing, and its own breaker not open."""
        verdict = self._reachable(provider)
        if not verdict.healthy:
            return verdict
        retry = self.breakers.retry_after(deployment)
        if retry > 0:
            # No "since": the opening cooldown is not known here (another process may have opened it).
            return Verdict(False, f"deployment '{deployment}' circuit breaker open after repeated upstream "
                                  f"failures (retried in {retry:.0f} s)")
        return verdict

    def _reachable(self, name: str) -> Verdict:
        """A provider loaded and its probe passing (or not probed)."""
        provider = self.providers.get(name)
        if provider is None or not provider.ready():
            return Verdict(False, f"provider '{name}' is not loaded")
        result = self.results.get(name)
        if result is not None and not result.healthy:
            return Verdict(False, f"provider '{name}' probe failed: {result.reason} (since {utc(result.since)})")
        return Verdict(True, "available")

    def _open(self, name: str) -> list[float]:
        """Seconds until each open breaker of the provider's catalog deployments lets a request through
        (breakers of deployments the catalog does not have, say from Redis, are ignored)."""
        retries = (self.breakers.retry_after(deployment) for deployment in self.deployments.get(name, ()))
        return [retry for retry in retries if retry > 0]

    def report(self) -> dict[str, dict[str, Any]]:
        """Each provider's health for /ready."""
        out: dict[str, dict[str, Any]] = {}
        for name in self.providers:
            verdict = self.provider(name)
            result = self.results.get(name)
            entry: dict[str, Any] = {"healthy": verdict.healthy, "message": verdict.message,
                                     "probe": name in self.probes}
            if result is not None:
                entry["checked_at"] = utc(result.checked_at)
            open_breakers = len(self._open(name))
            if open_breakers:
                entry["open_circuits"] = open_breakers
            out[name] = entry
        return out

    # ------------------------------------------------------------------ probing
    async def start(self) -> None:
        if not self.probes:
            return
        self.session = aiohttp.ClientSession(trust_env=False, connector=aiohttp.TCPConnector(limit=0))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="provider-probes")

    async def _run(self) -> None:
        tick = max(0.05, min(1.0, min(p.interval for p in self.probes.values()) / 4))
        while True:
            now = time.time()
            for name, probe in self.probes.items():
                if now >= self._next.get(name, 0.0) and name not in self._running:
                    self._next[name] = (now // probe.interval + 1) * probe.interval
                    task = asyncio.get_running_loop().create_task(self._slot(probe, int(now // probe.interval)))
                    self._running[name] = task
                    task.add_done_callback(lambda _t, n=name: self._running.pop(n, None))  # type: ignore[misc]
            if self.redis is not None:
                await self._adopt()
            await asyncio.sleep(tick)

    async def _slot(self, probe: Probe, slot: int) -> None:
        try:
            if self.redis is not None and not await self._claim(probe, slot):
                return  # another process probes this provider in this interval
            result = await self.probe(probe)
            self._apply(probe.provider, result, announce=True)
            if self.redis is not None:
                await self._publish(probe, self.results[probe.provider])
        except Exception:
            log.exception("probing provider %s failed", probe.provider)

    async def probe(self, probe: Probe) -> ProbeResult:
        """One probe: GET the URL with the provider's headers, within its timeout."""
        assert self.session is not None
        now = time.time()
        try:
            async with self.session.get(probe.url, headers=probe.headers, allow_redirects=False,
                                        timeout=aiohttp.ClientTimeout(total=probe.timeout)) as response:
                healthy = healthy_status(response.status, probe.lenient)
                reason = "ok" if healthy else f"HTTP {response.status}"
        except Exception as exc:  # every way a probe fails is a reason, never an error of ours
            healthy, reason = False, failure_reason(exc, probe.timeout)
        return ProbeResult(healthy, reason, now, now)

    def _apply(self, name: str, result: ProbeResult, *, announce: bool) -> None:
        previous = self.results.get(name)
        if previous is not None and previous.healthy == result.healthy:
            result = dataclasses.replace(result, since=previous.since)
        elif announce and not result.healthy:
            log.warning("provider %s is unhealthy: probe failed: %s", name, result.reason)
        elif announce and previous is not None:
            log.info("provider %s is healthy again", name)
        if previous is None or result.checked_at >= previous.checked_at:
            self.results[name] = result

    async def _claim(self, probe: Probe, slot: int) -> bool:
        try:
            return bool(await self.redis.set(SLOT_KEY.format(key=probe.key, slot=slot), os.getpid(), nx=True,
                                             ex=max(1, int(probe.interval * 2 + 1))))
        except Exception as exc:
            log.debug("probe slot claim failed (%s): probing here", type(exc).__name__)
            return True

    async def _publish(self, probe: Probe, result: ProbeResult) -> None:
        try:
            await self.redis.hset(RESULTS_KEY, probe.key, orjson.dumps(dataclasses.asdict(result)))
        except Exception as exc:
            log.debug("publishing a probe result failed: %s", type(exc).__name__)

    async def _adopt(self) -> None:
        """Take the results other processes published (fresh ones only)."""
        try:
            shared = await self.redis.hmget(RESULTS_KEY, [p.key for p in self.probes.values()])
        except Exception as exc:
            log.debug("reading probe results failed: %s", type(exc).__name__)
            return
        now = time.time()
        for (name, probe), raw in zip(self.probes.items(), shared, strict=True):
            if raw is None:
                continue
            try:
                result = ProbeResult(**orjson.loads(raw))
            except (orjson.JSONDecodeError, TypeError):
                continue
            known = self.results.get(name)
            fresh = now - result.checked_at <= 3 * probe.interval
            if fresh and (known is None or result.checked_at > known.checked_at):
                self._apply(name, result, announce=False)

    async def aclose(self) -> None:
        tasks = [t for t in (self._task, *self._running.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()
        if self.redis is not None:
            await self.redis.aclose()
