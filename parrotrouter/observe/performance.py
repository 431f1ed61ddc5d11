"""Rolling performance of each model (and success of each provider) from real traffic.

The request path only appends the request's record to a bounded deque (`finished`). A loop folds them, once a
second, into 10-second buckets of counters per model and provider: requests, successes, latency and time-to-first-token
histograms (bins 25% wide, so a percentile is within ~12% of the exact one), completion tokens and
generation time. With Redis every process adds its counters to the same buckets (one pipeline per
second) and a reader merges the buckets of the window, so every worker and instance reports the
same numbers; without Redis the numbers are this process's own.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..accounting.usage import STATUS_CLIENT_CLOSED, UsageRecord
from ..routing.health import COUNTED

if TYPE_CHECKING:
    from ..serving.context import RequestContext
    from . import Observers

log = logging.getLogger("parrotrouter.performance")

BUCKET_SECONDS = 10
FOLD_EVERY = 1.0  # seconds between folds (and Redis writes): how late the block may be
READ_CACHE = 1.0  # seconds a merged reading is reused (/v1/models does not hit Redis each time)
REDIS_BACKOFF = 5.0  # seconds readers skip an unreachable Redis (each try may wait its timeout)
MAX_SAMPLES = 100_000  # requests waiting to be folded, at most (beyond: the oldest are dropped)
KEY = "parrotrouter:perf:{bucket}"
RATIO = 1.25  # each histogram bin is 25% wider than the one before
EDGES: tuple[float, ...] = tuple(RATIO ** i for i in range(int(math.log(3_600_000, RATIO)) + 2))  # 1 ms .. >1 h
# Upstream failures that say something about a provider (a bad request does not).
BINS = len(EDGES) + 1  # bin b counts values in [EDGES[b-1], EDGES[b])
FAILURE_CODES = frozenset(kind.value for kind in COUNTED)
SEP = "\x1f"

# A finished request's record: status, timings, model and attempts are final once the serving core
# recorded it; its tokens are final once `deferred_count` is None (the ledger may count them meanwhile).
Sample = UsageRecord
Key = tuple[str, str]  # ("m", model id) or ("p", provider name)


class Stats:
    """Counters of one model or provider over some buckets (added up in place)."""

    __slots__ = ("generation_ms", "latency", "requests", "succeeded", "tokens", "ttft")

    def __init__(self) -> None:
        self.requests = 0
        self.succeeded = 0
        self.tokens = 0
        self.generation_ms = 0.0
        self.latency = [0] * BINS  # count per histogram bin
        self.ttft = [0] * BINS

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.requests if self.requests else None

    def add(self, other: Stats) -> None:
        self.requests += other.requests
        self.succeeded += other.succeeded
        self.tokens += other.tokens
        self.generation_ms += other.generation_ms
        self.latency = [a + b for a, b in zip(self.latency, other.latency, strict=True)]
        self.ttft = [a + b for a, b in zip(self.ttft, other.ttft, strict=True)]

    def fields(self, key: Key) -> Iterator[tuple[str, int]]:
        """As Redis hash fields, "kind\x1fname\x1fmetric" -> count."""
        prefix = f"{key[0]}{SEP}{key[1]}{SEP}"
        for metric, value in (("requests", self.requests), ("succeeded", self.succeeded), ("tokens", self.tokens),
                              ("generation_ms", round(self.generation_ms))):
            if value:
                yield prefix + metric, value
        for name, histogram in (("latency", self.latency), ("ttft", self.ttft)):
            for b, count in enumerate(histogram):
                if count:
                    yield f"{prefix}{name}{b}", count


Bucket = dict[Key, Stats]


def bin_of(ms: float) -> int:
    return bisect.bisect_right(EDGES, ms)


def percentile(bins: list[int], q: float) -> float | None:
    """The q-th quantile of a histogram, interpolated inside its bin; None when it is empty."""
    total = sum(bins)
    if not total:
        return None
    rank, seen = q * total, 0
    for b, count in enumerate(bins):
        if count and seen + count >= rank:
            low = EDGES[b - 1] if b > 0 else 0.0
            high = EDGES[b] if b < len(EDGES) else EDGES[-1]
            return low + (high - low) * ((rank - seen) / count)
        seen += count
    return EDGES[-1]


def _stats(bucket: Bucket, key: Key) -> Stats:
    found = bucket.get(key)
    if found is None:
        found = bucket[key] = Stats()
    return found


def fold(samples: Iterable[Sample]) -> dict[int, Bucket]:
    """Stats per bucket for finished requests (runs once a second over every request: kept lean,
    no function call in the common case but the histogram's bisect)."""
    models: dict[float, dict[str, Stats]] = {}
    providers: dict[float, dict[str, Stats]] = {}
    bisect_right, edges, failure_codes, width = bisect.bisect_right, EDGES, FAILURE_CODES, BUCKET_SECONDS
    last, by_model, by_provider = -1.0, {}, {}
    for record in samples:
        latency = record.latency_ms
        start = (record.created_at + latency / 1000) // width
        if start != last:
            last = start
            by_model = models.setdefault(start, {})
            by_provider = providers.setdefault(start, {})
        for attempt in record.attempts:
            ok = attempt.status < 400
            if ok or attempt.error_code in failure_codes:
                name = attempt.provider
                stats = by_provider[name] if name in by_provider else by_provider.setdefault(name, Stats())
                stats.requests += 1
                stats.succeeded += ok
        model, status = record.served_model, record.status
        if model is None or status == STATUS_CLIENT_CLOSED:
            continue
        ok = status < 400
        if not ok and status < 500 and status != 408 and status != 429:
            continue  # the caller's mistake, not the model's
        stats = by_model[model] if model in by_model else by_model.setdefault(model, Stats())
        stats.requests += 1
        if not ok:
            continue
        stats.succeeded += 1
        stats.latency[bisect_right(edges, latency)] += 1
        ttft = record.ttft_ms
        if ttft is not None:
            stats.ttft[bisect_right(edges, ttft)] += 1
        if record.deferred_count is None and record.completion_tokens:
            stats.tokens += record.completion_tokens
            stats.generation_ms += latency - ttft if ttft is not None else latency
    return {int(start * width): {**{("m", name): stats for name, stats in models[start].items()},
                                 **{("p", name): stats for name, stats in providers[start].items()}}
            for start in models}


def parse_fields(fields: Mapping[str, int], into: Bucket) -> None:
    """Redis hash fields (see `Stats.fields`) added into a bucket."""
    for field, value in fields.items():
        try:
            kind, name, metric = field.split(SEP)
        except ValueError:
            continue
        stats = _stats(into, (kind, name))
        for histogram in ("latency", "ttft"):
            if metric.startswith(histogram) and metric[len(histogram):].isdigit():
                b = int(metric[len(histogram):])
                if b < BINS:
                    getattr(stats, histogram)[b] += value
                break
        else:
            if metric in ("requests", "succeeded", "tokens", "generation_ms"):
                setattr(stats, metric, getattr(stats, metric) + value)


def merge(buckets: Iterable[Bucket]) -> Bucket:
    out: Bucket = {}
    for bucket in buckets:
        for key, stats in bucket.items():
            _stats(out, key).add(stats)
    return out


def performance_block(stats: Stats | None, window: float) -> dict[str, Any] | None:
    """The `performance` object of a model in /v1/models (null without traffic in the window)."""
    if stats is None or not stats.requests:
        return None
    p50, p95, ttft = (percentile(stats.latency, 0.5), percentile(stats.latency, 0.95),
                      percentile(stats.ttft, 0.5))
    return {
        "window_seconds": int(window),
        "requests": stats.requests,
        "success_rate": round(stats.requests and stats.succeeded / stats.requests, 4),
        "latency_p50_ms": None if p50 is None else round(p50),
        "latency_p95_ms": None if p95 is None else round(p95),
        "ttft_p50_ms": None if ttft is None else round(ttft),
        "tokens_per_second": round(stats.tokens * 1000 / stats.generation_ms, 2) if stats.generation_ms else None,
    }


class Performance:
    """The observer: an O(1) append per request, folded and shared off the request path."""

    wants_completed = False

    def __init__(self, window: float, redis_url: str | None = None, redis_timeout: float = 0.25) -> None:
        self.window = window
        self.samples: collections.deque[Sample] = collections.deque(maxlen=MAX_SAMPLES)
        self.local: dict[int, Bucket] = {}
        self.redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(redis_url, socket_connect_timeout=redis_timeout,
                                           socket_timeout=redis_timeout)
        self.shared_ok = True  # the last Redis write or read worked (logged when it changes)
        self._cached: tuple[float, Bucket] | None = None
        self._skip_redis_until = 0.0
        self._task: asyncio.Task[None] | None = None

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        self.samples.append(record)  # everything else happens in the fold, off the request path

    def completed(self, records: list[UsageRecord]) -> None:
        pass

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="performance")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FOLD_EVERY)
            try:
                await self.flush()
            except Exception:
                log.exception("folding performance samples failed")

    async def flush(self) -> None:
        """Fold the waiting samples into the buckets (and into Redis's)."""
        batch = list(self.samples)
        self.samples.clear()
        oldest = self._oldest_bucket()
        for start in [b for b in self.local if b < oldest]:
            del self.local[start]
        folded = {b: c for b, c in fold(batch).items() if b >= oldest}
        for start, bucket in folded.items():
            mine = self.local.setdefault(start, {})
            for key, stats in bucket.items():
                _stats(mine, key).add(stats)
        if self.redis is not None and folded:
            await self._share(folded)

    def _oldest_bucket(self) -> int:
        return int((time.time() - self.window) // BUCKET_SECONDS) * BUCKET_SECONDS

    async def _share(self, folded: dict[int, Bucket]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for start, bucket in folded.items():
                    key = KEY.format(bucket=start)
                    for name, stats in bucket.items():
                        for field, value in stats.fields(name):
                            pipe.hincrby(key, field, value)
                    pipe.expire(key, int(self.window) + 2 * BUCKET_SECONDS)
                await pipe.execute()
            self._shared(True)
        except Exception as exc:
            self._shared(False, exc)

    def _shared(self, ok: bool, exc: Exception | None = None) -> None:
        if ok != self.shared_ok:
            if ok:
                log.info("sharing performance counters through Redis works again")
            else:
                log.warning("sharing performance counters through Redis failed (%s): showing this "
                            "process's own", type(exc).__name__)
        self.shared_ok = ok

    async def stats(self) -> Bucket:
        """Stats per (kind, name) over the window: merged from Redis when shared, else this process's."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < READ_CACHE:
            return self._cached[1]
        oldest = self._oldest_bucket()
        result = None
        if self.redis is not None and now >= self._skip_redis_until:
            result = await self._read_shared(oldest)
            if result is None:
                self._skip_redis_until = now + REDIS_BACKOFF
        if result is None:
            result = merge(bucket for start, bucket in self.local.items() if start >= oldest)
        self._cached = (now, result)
        return result

    async def _read_shared(self, oldest: int) -> Bucket | None:
        buckets = range(oldest, int(time.time()) + 1, BUCKET_SECONDS)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket in buckets:
                    pipe.hgetall(KEY.format(bucket=bucket))
                answers = await pipe.execute()
        except Exception as exc:
            self._shared(False, exc)
            return None
        self._shared(True)
        merged: Bucket = {}
        for answer in answers:
            parse_fields({_text(k): int(v) for k, v in answer.items()}, merged)
        return merged

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.flush()
        except Exception:
            log.exception("folding the last performance samples failed")
        if self.redis is not None:
            await self.redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def performance_of(observers: Observers) -> Performance | None:
    """The performance observer among the observers, if it is on."""
    return next((o for o in observers.observers if isinstance(o, Performance)), None)
