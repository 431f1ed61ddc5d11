"""The per-request usage record, filled as the request walks through and written in `finally`."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from ..pricing import ModelPricing
from ..protocol.normalize import is_count
from ..store.schema import NANO, to_nanos, usd_text
from ..tokens import encoding_ready

if TYPE_CHECKING:
    from ..ratelimit.limiter import Ticket
    from ..store.content import LoggedContent
    from .credits import Reservation

STATUS_CLIENT_CLOSED = 499
OFF_LOOP_COUNT = 256 * 1024  # characters beyond which tokens are counted in a worker thread
TOKENS_MAX = 2**31 - 1  # the ledger's token columns are PostgreSQL `integer`


def token_count(value: Any) -> int:
    """A token count as the ledger stores it: an int in 0 .. 2**31-1 (an upstream may send
    anything: a float, a string, a negative or absurd number)."""
    if value.__class__ is int and 0 <= value <= TOKENS_MAX:
        return value
    if value is None:
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return min(max(number, 0), TOKENS_MAX)


@dataclasses.dataclass(slots=True)
class Attempt:
    provider: str
    deployment: str
    status: int
    error_code: str | None = None
    latency_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "deployment": self.deployment, "status": self.status,
                "error_code": self.error_code, "latency_ms": self.latency_ms}


@dataclasses.dataclass(slots=True)
class UsageRecord:
    id: str
    endpoint: str
    requested_model: str
    key_id: str | None = None
    account_id: str | None = None
    served_model: str | None = None
    provider: str | None = None
    deployment: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0  # priced (Anthropic's cache writes cost more), not a ledger column
    reasoning_tokens: int = 0
    usage_reported: bool = False
    cost: Decimal = Decimal(0)
    status: int = 200
    error_code: str | None = None
    streamed: bool = False
    finish_reason: str | None = None
    user: str | None = None
    # Who ended a stream that did not run to its end: "client", "upstream" or "shutdown".
    ended_by: str | None = None
    request_id: str | None = None  # the response's x-request-id (the client's own, when it sent one)
    # The logging headers (api/logging_headers.py): X-Logging-Level, X-Log-Session-ID, X-Log-Metadata
    # (X-Log-User-ID is `user`). Labels the caller chose, bounded; never content.
    log_level: str = "error"
    session_id: str | None = None
    log_metadata: dict[str, str] | None = None
    # The prompt and answer to store, when the request asked and the operator allows it (else None,
    # always by default); written beside the ledger row, never in a repr, a log line or a spill file.
    content: LoggedContent | None = dataclasses.field(default=None, repr=False)
    created_at: float = dataclasses.field(default_factory=time.time)
    started: float = dataclasses.field(default_factory=time.perf_counter)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: list[Attempt] = dataclasses.field(default_factory=list)
    pricing: ModelPricing | None = None
    # Counting tokens ourselves (upstream reported no usage, client did not ask for it now) is
    # deferred to the ledger writer, off the request path.
    deferred_count: Callable[[], tuple[int, int]] | None = None
    # Characters the deferred count will tokenize: large counts run in a worker thread (tiktoken
    # releases the GIL), once, however many callers wait for them.
    deferred_size: int = 0
    counting: asyncio.Future[None] | None = None
    finalized: bool = False
    reservation: Reservation | None = None  # credits held for this request, settled by the ledger
    limit_ticket: Ticket | None = None  # tokens taken from token rate limits, reconciled after
    observed: bool = False  # passed to the observers' `completed` (observe/__init__.py), once
    # The token counts `cost` was computed for (None: not priced yet): the answer's `usage.cost` and
    # the ledger's are one computation, redone only if the counts changed since.
    priced: tuple[int, int, int, int] | None = None
    # `cost` in whole nano-dollars (rounded half-even, as the ledger books it), and the `cost` it
    # is of (`cost` may be set directly: a spill file's record, a test's).
    nanos: int = 0
    nanos_of: Decimal | None = None

    def observe_usage(self, usage: dict[str, Any] | None) -> None:
        """Take the usage an upstream reported (OpenAI shape), each count bounded. A usage without
        a prompt or completion count (`{}`, nulls, strings) is not a report: the gateway
        counts the tokens itself, as when there is no usage at all."""
        if not isinstance(usage, dict) or not (is_count(usage.get("prompt_tokens"))
                                               or is_count(usage.get("completion_tokens"))):
            return
        self.usage_reported = True
        self.prompt_tokens = token_count(usage.get("prompt_tokens"))
        self.completion_tokens = token_count(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        self.cached_tokens = token_count(details.get("cached_tokens"))
        self.cache_write_tokens = token_count(details.get("cache_write_tokens"))
        cdetails = usage.get("completion_tokens_details")
        cdetails = cdetails if isinstance(cdetails, dict) else {}
        self.reasoning_tokens = token_count(cdetails.get("reasoning_tokens"))

    def first_token(self) -> None:
        if self.ttft_ms is None:
            self.ttft_ms = (time.perf_counter() - self.started) * 1000

    def settle(self) -> None:
        """Close the record on the request path: only what must be measured now (latency)."""
        self.latency_ms = (time.perf_counter() - self.started) * 1000

    def finalize(self) -> None:
        """Complete the record off the request path: deferred token counts and the cost."""
        if self.finalized:
            return
        self.finalized = True
        if self.deferred_count is not None:
            self.prompt_tokens, self.completion_tokens = self.deferred_count()
            self.deferred_count = None
        self.price()

    def price(self) -> Decimal:
        """The cost of the tokens counted so far, with the record's pricing (none: 0), computed once
        for the answer (`usage.cost`) and the ledger alike."""
        counts = (self.prompt_tokens, self.completion_tokens, self.cached_tokens, self.cache_write_tokens)
        if counts != self.priced:
            self.priced = counts
            pricing = self.pricing
            picos = None
            if pricing is None or not (self.prompt_tokens or self.completion_tokens):
                self.cost, picos = _ZERO, 0
            else:
                picos = pricing.cost_picos(*counts)
                self.cost = pricing.cost_of(*counts) if picos is None else Decimal(picos).scaleb(-12)
            if picos is not None:  # integer arithmetic: the nano-dollars without Decimal rounding
                self.nanos, self.nanos_of = _picos_to_nanos(picos), self.cost
        return self.cost

    def cost_nanos(self) -> int:
        """`cost` in whole nano-dollars, as the ledger row and the settlement book it."""
        cost = self.cost
        if cost is not self.nanos_of:
            self.nanos, self.nanos_of = (to_nanos(cost) if cost else 0), cost
        return self.nanos

    def answer_cost(self) -> orjson.Fragment:
        """`usage.cost` in an answer: USD rounded to the ledger's nano-dollar (as the ledger rounds
        it), written as a plain decimal JSON number (`0.00000006`, never `6e-08`)."""
        cost = self.price()
        if cost is self.nanos_of:
            return orjson.Fragment(nanos_text(self.nanos))
        return orjson.Fragment(usd_text(cost.quantize(NANO, ROUND_HALF_EVEN)))

    @property
    def counts_off_loop(self) -> bool:
        return self.deferred_count is not None and (
            self.deferred_size >= OFF_LOOP_COUNT or not encoding_ready(self.served_model or self.requested_model))

    async def complete(self) -> None:
        """`finalize`, with a large deferred count in a worker thread (shared by every caller)."""
        if self.finalized and self.counting is None:
            return
        if self.counting is None:
            if not self.counts_off_loop:
                self.finalize()
                return
            self.counting = asyncio.ensure_future(asyncio.to_thread(self.finalize))
        await asyncio.shield(self.counting)

    def usage_payload(self, accounting: bool = False) -> dict[str, Any]:
        """OpenAI `usage` object for this request, with its `cost`; with `accounting` (OpenRouter's
        `usage: {include: true}`) the token details always, zeros included."""
        payload: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens or accounting:
            payload["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens or accounting:
            payload["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        payload["cost"] = self.answer_cost()
        return payload

    def report(self, usage: dict[str, Any], accounting: bool = False) -> dict[str, Any]:
        """An upstream's (normalised) `usage` as the answer reports it: our `cost` (the ledger's,
        never an upstream's own), and with `accounting` the token details, zeros included."""
        if accounting:
            details = usage.setdefault("prompt_tokens_details", {})
            details.setdefault("cached_tokens", self.cached_tokens)
            details = usage.setdefault("completion_tokens_details", {})
            details.setdefault("reasoning_tokens", self.reasoning_tokens)
        usage["cost"] = self.answer_cost()
        return usage


_ZERO = Decimal(0)


def _picos_to_nanos(picos: int) -> int:
    """Pico-dollars to nano-dollars, rounded half-even (as `to_nanos` rounds a Decimal)."""
    nanos, rest = divmod(picos, 1000)
    if rest > 500 or (rest == 500 and nanos & 1):
        nanos += 1
    return nanos


def nanos_text(nanos: int) -> str:
    """Nano-dollars as a plain decimal numeral of USD (`usd_text` of the same amount)."""
    if nanos < 0:
        return "-" + nanos_text(-nanos)
    whole, fraction = divmod(nanos, 1_000_000_000)
    return f"{whole}.{fraction:09d}".rstrip("0") if fraction else str(whole)


class UsageSink(Protocol):
    """Where finished records go. `record` never blocks and never raises into the request."""

    def record(self, record: UsageRecord) -> None: ...


class NullSink:
    """Accounting switched off: records are dropped unfinished (no token counting)."""

    def record(self, record: UsageRecord) -> None:
        pass


class DiscardingSink:
    """For tools and tests that do not keep a ledger."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def record(self, record: UsageRecord) -> None:
        record.finalize()
        self.records.append(record)
        del self.records[:-1000]
