"""Rolling performance of each model (and success of each provider) from real traffic.

The request path only appends one tuple to a bounded deque (`finished`). A loop folds them, once a
second, into 10-second buckets of counters: requests, successes, latency and time-to-first-token
histograms (bins 25% wide, so a percentile is within ~12% of the exact one), completion tokens and
generation time. With Redis every process adds its counters to the same buckets (one pipeline per
second) and a reader merges the buckets of the window, so every worker and instance reports the
same numbers; without Redis the numbers are this process's own.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..accounting.usage import STATUS_CLIENT_CLOSED, Attempt, UsageRecord
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
FAILURE_CODES = frozenset(kind.value for kind in COUNTED)
SEP = "\x1f"

# One finished request: model, status, latency, ttft, completion tokens (None: not yet counted),
# when it ended, and its attempts (final once the request is recorded).
Sample = tuple[str | None, int, float, float | None, int | None, float, list[Attempt]]
Counts = collections.Counter[str]  # field -> count; a field is "kind\x1fname\x1fmetric"


@dataclasses.dataclass(frozen=True, slots=True)
class Stats:
    """What a window of counters says about one model or provider."""

    requests: int
    succeeded: int
    latency: dict[int, int]
    ttft: dict[int, int]
    tokens: int
    generation_ms: int

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.requests if self.requests else None


def bin_of(ms: float) -> int:
    return bisect.bisect_right(EDGES, ms)


def percentile(bins: dict[int, int], q: float) -> float | None:
    """The q-th quantile of a histogram, interpolated inside its bin; None when it is empty."""
    total = sum(bins.values())
    if not total:
        return None
    rank, seen = q * total, 0
    for b in sorted(bins):
        count = bins[b]
        if seen + count >= rank:
            low = EDGES[b - 1] if b > 0 else 0.0
            high = EDGES[b] if b < len(EDGES) else EDGES[-1]
            return low + (high - low) * ((rank - seen) / count)
        seen += count
    return EDGES[-1]


def fold(samples: Iterable[Sample]) -> dict[int, Counts]:
    """Counters per bucket for finished requests."""
    buckets: dict[int, Counts] = {}
    for model, status, latency, ttft, tokens, ended, attempts in samples:
        counts = buckets.setdefault(int(ended // BUCKET_SECONDS) * BUCKET_SECONDS, collections.Counter())
        for attempt in attempts:
            ok = attempt.status < 400
            if ok or attempt.error_code in FAILURE_CODES:
                counts[f"p{SEP}{attempt.provider}{SEP}requests"] += 1
                counts[f"p{SEP}{attempt.provider}{SEP}succeeded"] += ok
        if model is None or status == STATUS_CLIENT_CLOSED:
            continue
        ok = status < 400
        if not ok and status < 500 and status not in (408, 429):
            continue  # the caller's mistake, not the model's
        prefix = f"m{SEP}{model}{SEP}"
        counts[prefix + "requests"] += 1
        if not ok:
            continue
        counts[prefix + "succeeded"] += 1
        counts[f"{prefix}latency{bin_of(latency)}"] += 1
        if ttft is not None:
            counts[f"{prefix}ttft{bin_of(ttft)}"] += 1
        if tokens:
            counts[prefix + "tokens"] += tokens
            counts[prefix + "generation_ms"] += max(1, round(latency - (ttft or 0.0)))
    return buckets


def summarize(counts: Counts) -> dict[tuple[str, str], Stats]:
    """Merged counters as stats per (kind, name): kind "m" for models, "p" for providers."""
    raw: dict[tuple[str, str], dict[str, Any]] = {}
    for field, value in counts.items():
        try:
            kind, name, metric = field.split(SEP)
        except ValueError:
            continue
        entry = raw.setdefault((kind, name), {"latency": {}, "ttft": {}})
        for histogram in ("latency", "ttft"):
            if metric.startswith(histogram) and metric[len(histogram):].isdigit():
                entry[histogram][int(metric[len(histogram):])] = int(value)
                break
        else:
            entry[metric] = int(value)
    return {key: Stats(e.get("requests", 0), e.get("succeeded", 0), e["latency"], e["ttft"], e.get("tokens", 0),
                       e.get("generation_ms", 0)) for key, e in raw.items()}


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
        self.local: dict[int, Counts] = {}
        self.redis: Any = None
        if redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.from_url(redis_url, socket_connect_timeout=redis_timeout,
                                           socket_timeout=redis_timeout)
        self.shared_ok = True  # the last Redis write or read worked (logged when it changes)
        self._cached: tuple[float, dict[tuple[str, str], Stats]] | None = None
        self._skip_redis_until = 0.0
        self._task: asyncio.Task[None] | None = None

    def finished(self, record: UsageRecord, ctx: RequestContext) -> None:
        tokens = record.completion_tokens if record.deferred_count is None else None
        self.samples.append((record.served_model, record.status, record.latency_ms, record.ttft_ms, tokens,
                             record.created_at + record.latency_ms / 1000, record.attempts))

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
        for bucket in [b for b in self.local if b < oldest]:
            del self.local[bucket]
        folded = {b: c for b, c in fold(batch).items() if b >= oldest}
        for bucket, counts in folded.items():
            self.local.setdefault(bucket, collections.Counter()).update(counts)
        if self.redis is not None and folded:
            await self._share(folded)

    def _oldest_bucket(self) -> int:
        return int((time.time() - self.window) // BUCKET_SECONDS) * BUCKET_SECONDS

    async def _share(self, folded: dict[int, Counts]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for bucket, counts in folded.items():
                    key = KEY.format(bucket=bucket)
                    for field, value in counts.items():
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

    async def stats(self) -> dict[tuple[str, str], Stats]:
        """Stats per (kind, name) over the window: merged from Redis when shared, else this process's."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < READ_CACHE:
            return self._cached[1]
        oldest = self._oldest_bucket()
        merged: Counts = collections.Counter()
        shared = None
        if self.redis is not None and now >= self._skip_redis_until:
            shared = await self._read_shared(oldest)
            if shared is None:
                self._skip_redis_until = now + REDIS_BACKOFF
        if shared is not None:
            for counts in shared:
                merged.update(counts)
        else:
            for bucket, counts in self.local.items():
                if bucket >= oldest:
                    merged.update(counts)
        result = summarize(merged)
        self._cached = (now, result)
        return result

    async def _read_shared(self, oldest: int) -> list[Counts] | None:
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
        return [collections.Counter({_text(k): int(v) for k, v in answer.items()}) for answer in answers]

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
