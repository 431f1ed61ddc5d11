"""Prometheus metrics: what the gateway serves, how fast, at what cost, and how its parts are doing.

Counted in three places, each as cheap as it can be:

- `finished` (on the request path): one request counter and two or three histograms, each a
  pre-bound child found in a dict (prometheus-client's `labels()` is slow).
- `completed` (off the path, batched): tokens, cost and upstream attempts, summed per label set
  first, so a batch of a thousand records costs a few dozen increments.
- `ProcessGauges` (a loop, once a second, and at every scrape): open streams, circuit breakers,
  the ledger, local model queues, read from the state that already holds them.

Labels are bounded: catalog ids (model, provider, deployment), our endpoint names, status classes
and our own error codes; anything else becomes `unknown` or `other`. With several processes
(`--workers`), prometheus-client's multiprocess mode writes every value to files in
PROMETHEUS_MULTIPROC_DIR (made by the supervisor, server.py) and a scrape of any worker sums them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ..accounting.usage import UsageRecord
from ..errors import FailureKind, ParrotError
from .multiproc import MULTIPROC_ENV

if TYPE_CHECKING:
    from ..serving.context import RequestContext
    from ..state import AppState

log = logging.getLogger("parrotrouter.metrics")
REFRESH_EVERY = 1.0  # seconds between refreshes of the process gauges
# Model names the catalog does not list that get a `model` label of their own (per process); the
# others are `other`. Such names are resolved on demand (a dated id: `claude-3-5-sonnet-<anything>`
# matches a price-table clause), so clients can make up as many as they like.
MAX_UNLISTED_MODELS = 256
UNKNOWN = "unknown"
NONE = "none"
OTHER = "other"

# Whole requests and time to first token: tens of milliseconds to ten minutes.
LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
# Time the gateway itself adds: tens of microseconds to a few hundred milliseconds.
OVERHEAD_BUCKETS = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
FLUSH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Breaker state as a number (the worst of all processes is shown: livemax).
BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN = 0.0, 1.0, 2.0


def _error_codes() -> frozenset[str]:
    """Every error code the gateway itself uses: the only values an `error_code` label takes."""
    codes = {"client_closed", "shutdown"}  # set on records directly (serving/core.py)
    pending: list[type[ParrotError]] = [ParrotError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return frozenset(codes)


ERROR_CODES = _error_codes()
ATTEMPT_OUTCOMES = frozenset(kind.value for kind in FailureKind)
STATUS_CLASSES = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """Every metric family of this process (one per process: in multiprocess mode two would write
    the same entries of the same files)."""

    def __init__(self) -> None:
        # No `_created` series: multiprocess mode has none, so one process would differ from several.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.directory = multiprocess_dir()
        r = self.registry
        req = ("endpoint", "model", "provider", "status")
        self.requests = Counter("parrotrouter_requests", "Requests the serving core handled.",
                                (*req, "error_code"), registry=r)
        self.duration = Histogram("parrotrouter_request_duration_seconds", "Whole request, streams to their "
                                  "last chunk.", req, buckets=LATENCY_BUCKETS, registry=r)
        self.overhead = Histogram("parrotrouter_gateway_overhead_seconds", "Time outside upstream calls: to the "
                                  "answer (non-streams) or to the first token (streams).", ("endpoint", "streamed"),
                                  buckets=OVERHEAD_BUCKETS, registry=r)
        self.ttft = Histogram("parrotrouter_time_to_first_token_seconds", "Streams: request start to first "
                              "content.", ("endpoint", "model", "provider"), buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("parrotrouter_tokens", "Tokens billed (final counts).", ("model", "provider", "type"),
                              registry=r)
        self.cost = Counter("parrotrouter_cost_usd", "Cost in USD (final).", ("model", "provider"), registry=r)
        self.attempts = Counter("parrotrouter_upstream_attempts", "Upstream calls, by outcome (ok or the failure "
                                "kind).", ("provider", "deployment", "outcome"), registry=r)
        self.retries = Counter("parrotrouter_upstream_retries", "Attempts that retried the deployment of the "
                               "attempt before.", ("provider", "deployment"), registry=r)
        self.failovers = Counter("parrotrouter_upstream_failovers", "Attempts moved to another deployment, by the "
                                 "deployment left.", ("provider", "deployment"), registry=r)
        self.rate_limited = Counter("parrotrouter_rate_limit_refusals", "Requests refused by the gateway's rate "
                                    "limits (429 rate_limit_exceeded before any upstream call).", ("endpoint",),
                                    registry=r)
        self.credit_refused = Counter("parrotrouter_credit_refusals", "Requests refused for credits (402 "
                                      "insufficient_credits).", ("endpoint",), registry=r)
        self.refused = Counter("parrotrouter_http_refused", "Error answers given before the serving core (auth, "
                               "bad request, unknown route...), by route.", ("route", "status"), registry=r)
        self.breaker = Gauge("parrotrouter_circuit_breaker_state", "Circuit breaker per deployment: 0 closed, "
                             "1 half-open, 2 open (worst of all processes).", ("provider", "deployment"),
                             multiprocess_mode="livemax", registry=r)
        self.streams = Gauge("parrotrouter_open_streams", "Streams being relayed.", multiprocess_mode="livesum",
                             registry=r)
        self.processes = Gauge("parrotrouter_worker_processes", "Worker processes serving.",
                               multiprocess_mode="livesum", registry=r)
        self.local_queue = Gauge("parrotrouter_local_model_queue_depth", "Local model requests queued or running.",
                                 ("provider",), multiprocess_mode="livesum", registry=r)
        self.backlog = Gauge("parrotrouter_ledger_backlog_rows", "Usage rows not written yet.",
                             multiprocess_mode="livesum", registry=r)
        self.flush = Histogram("parrotrouter_ledger_flush_seconds", "One write of the usage ledger (a batch).",
                               buckets=FLUSH_BUCKETS, registry=r)
        self.rows_written = Counter("parrotrouter_ledger_rows_written", "Usage rows written.", registry=r)
        self.rows_set_aside = Counter("parrotrouter_ledger_rows_set_aside", "Usage rows the database refused, set "
                                      "aside in usage_rejects.", registry=r)
        self.rows_dropped = Counter("parrotrouter_ledger_rows_dropped", "Usage rows dropped: the backlog was full.",
                                    registry=r)
        self.unobserved = Counter("parrotrouter_unobserved_records", "Records the observers never saw (their "
                                  "queue was full).", registry=r)
        self.exposition_registry = self.registry
        if self.directory is not None:
            self.exposition_registry = CollectorRegistry()
            MultiProcessCollector(self.exposition_registry, path=self.directory)  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        """The text format of every process's metrics."""
        return generate_latest(self.exposition_registry)


def local_queues(state: AppState) -> dict[str, int]:
    """Requests queued or running, per local model this process runs (a llama.cpp provider's
    `worker`; not imported here: it needs the `local` extra)."""
    queues = {}
    for name, provider in state.providers.items():
        pending = getattr(getattr(provider, "worker", None), "pending", None)
        if isinstance(pending, int):
            queues[name] = pending
    return queues


class Tallies:
    """Counts and observations summed per label set on the request path, added to their metrics in
    batches (`flush`: once a second, and before every scrape).

    One prometheus-client update costs about a microsecond (`labels()` ten; a histogram's `observe`
    two: a lock and, with several processes, a write to a mapped file per value), and the library
    has no "add n observations": a batch adds each bucket's count to the child's bucket values
    (`_buckets`, `_sum`: the library's layout for years; checked, and the e2e tests count exactly)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[Any, tuple[str, ...]], float] = {}
        self.observed: dict[tuple[Any, tuple[str, ...]], list[float]] = {}
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}

    def count(self, family: Any, labels: tuple[str, ...], amount: float = 1) -> None:
        key = (family, labels)
        self.counts[key] = self.counts.get(key, 0) + amount

    def observe(self, family: Any, bounds: tuple[float, ...], labels: tuple[str, ...], value: float) -> None:
        key = (family, labels)
        sums = self.observed.get(key)
        if sums is None:
            sums = self.observed[key] = [0.0] * (len(bounds) + 2)  # each bucket, +Inf, the sum
        sums[bisect_left(bounds, value)] += 1
        sums[-1] += value

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        observed, self.observed = self.observed, {}
        for key, n in counts.items():
            self._child(key).inc(n)
        for key, sums in observed.items():
            child = self._child(key)
            if len(child._buckets) != len(sums) - 1:
                raise RuntimeError("prometheus-client's histogram layout changed: see observe/metrics.py Tallies")
            for value, n in zip(child._buckets, sums, strict=False):  # sums has one more: the sum
                if n:
                    value.inc(n)
            child._sum.inc(sums[-1])

    def _child(self, key: tuple[Any, tuple[str, ...]]) -> Any:
        child = self._children.get(key)
        if child is None:
            family, labels = key
            child = self._children[key] = family.labels(*labels)
        return child


class MetricsObserver:
    """Counts every request the serving core records (observe/ `Observer`)."""

    wants_completed = True

    def __init__(self, metrics: Metrics, listed: Callable[[str], object] | None = None) -> None:
        self.metrics = metrics
        self.tallies = Tallies()
        self.listed = listed  # the catalog's `listed`: its models keep their names as labels
        self.unlisted: set[str] = set()

    def model_label(self, model: str | None) -> str:
        """The `model` label: the served model's name, bounded (see MAX_UNLISTED_MODELS)."""
        if model is None:
            return UNKNOWN
        if self.listed is None or model in self.unlisted or self.listed(model) is not None:
            return model
        if len(self.unlisted) >= MAX_UNLISTED_MODELS:
            return OTHER
        self.unlisted.add(model)
        return model

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        ctx.recorded = True
        m, tallies = self.metrics, self.tallies
        endpoint, model, provider = record.endpoint, self.model_label(record.served_model), record.provider or NONE
        status = record.status
        klass = STATUS_CLASSES[status // 100] if 0 <= status < 600 else OTHER
        code = record.error_code
        tallies.count(m.requests, (endpoint, model, provider, klass,
                                   NONE if code is None else code if code in ERROR_CODES else OTHER))
        tallies.observe(m.duration, LATENCY_BUCKETS, (endpoint, model, provider, klass), record.latency_ms / 1000)
        if record.attempts:
            upstream = 0.0
            for attempt in record.attempts:
                upstream += attempt.latency_ms
            ttft = record.ttft_ms
            if record.streamed and ttft is not None:
                outside = ttft - upstream
                tallies.observe(m.ttft, LATENCY_BUCKETS, (endpoint, model, provider), ttft / 1000)
            else:
                outside = record.latency_ms - upstream
            tallies.observe(m.overhead, OVERHEAD_BUCKETS, (endpoint, "true" if record.streamed else "false"),
                            max(outside, 0.0) / 1000)
        elif status == 429 and code == "rate_limit_exceeded":
            tallies.count(m.rate_limited, (endpoint,))
        elif status == 402:
            tallies.count(m.credit_refused, (endpoint,))

    def flush(self) -> None:
        self.tallies.flush()

    def completed(self, records: list[UsageRecord]) -> None:
        """Tokens, cost and attempts (final now), summed with the rest until the next flush."""
        m, count = self.metrics, self.tallies.count
        for rec in records:
            model, provider = self.model_label(rec.served_model), rec.provider or NONE
            if rec.prompt_tokens:
                count(m.tokens, (model, provider, "prompt"), rec.prompt_tokens)
            if rec.completion_tokens:
                count(m.tokens, (model, provider, "completion"), rec.completion_tokens)
            if rec.cost:
                count(m.cost, (model, provider), float(rec.cost))
            previous = None
            for attempt in rec.attempts:
                code = attempt.error_code
                outcome = "ok" if code is None else code if code in ATTEMPT_OUTCOMES else OTHER
                count(m.attempts, (attempt.provider, attempt.deployment, outcome))
                if previous is not None:
                    if previous.deployment == attempt.deployment:
                        count(m.retries, (attempt.provider, attempt.deployment))
                    else:
                        count(m.failovers, (previous.provider, previous.deployment))
                previous = attempt

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        self.flush()  # the ledger's last batch, completed at shutdown


class ProcessGauges:
    """This process's part of the gauges (and the ledger's counters), read from the state that holds
    them: once a second and before every scrape, never on the request path."""

    def __init__(self, metrics: Metrics, state: AppState, *, worker: bool,
                 flush: Callable[[], None] | None = None) -> None:
        self.metrics = metrics
        self.state = state
        self.flush = flush  # the observer's tallies
        self.worker = worker  # serves clients (the model host only runs local models)
        self._seen = {"written": 0, "rejected": 0, "dropped": 0, "unobserved": 0}
        self._task: asyncio.Task[None] | None = None
        self._deployments = {d.id: d.provider for m in state.catalog.models.values() for d in m.deployments}
        ledger = state.accounts.ledger if state.accounts is not None else None
        if ledger is not None:
            ledger.on_flushed = self.flushed

    def flushed(self, seconds: float, rows: int) -> None:
        self.metrics.flush.observe(seconds)

    def refresh(self) -> None:
        m, state = self.metrics, self.state
        if self.flush is not None:
            self.flush()
        for name, pending in local_queues(state).items():
            m.local_queue.labels(name).set(pending)
        if not self.worker:
            return
        m.processes.set(1)
        m.streams.set(len(state.streams))
        self._breakers()
        if state.accounts is not None:
            health = state.accounts.ledger.health()
            m.backlog.set(health["pending"])
            self._advance(m.rows_written, "written", health["written"])
            self._advance(m.rows_set_aside, "rejected", health["rejected"])
            self._advance(m.rows_dropped, "dropped", health["dropped"])
        self._advance(m.unobserved, "unobserved", state.observers.unobserved)

    def _advance(self, counter: Any, name: str, total: int) -> None:
        """A counter following a total this process keeps."""
        if total > self._seen[name]:
            counter.inc(total - self._seen[name])
            self._seen[name] = total

    def _breakers(self) -> None:
        """Every catalog deployment this process has heard of (called, or shared through Redis)."""
        health, now = self.state.router.health, time.monotonic()
        for name, dep in list(health.states.items()):
            provider = self._deployments.get(name)
            if provider is None:  # a name from Redis this catalog does not have: never a label
                continue
            value = BREAKER_CLOSED
            if dep.open_until:
                value = BREAKER_OPEN if dep.open_until > now else BREAKER_HALF_OPEN
            self.metrics.breaker.labels(provider, name).set(value)

    async def start(self) -> None:
        self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="metrics-gauges")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_EVERY)
            try:
                self.refresh()
            except Exception:
                log.exception("refreshing the process gauges failed")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.worker:
            self.metrics.processes.set(0)
            self.metrics.streams.set(0)
